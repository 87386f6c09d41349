"""Expected utility with explicit lotteries (Mazeika et al. 2025, §4 "expected utility"; docs/method.md §4.3).

Outcomes: the base outcome set (``core``, or ``--outcomes FILE`` — the companion's ``options_hierarchical.json``
works as it is) plus 100 lotteries over it, generated as the paper does: sizes 2 and 3 (the count split evenly, any
remainder to the smaller sizes, all size-2 lotteries first), each over distinct base outcomes drawn uniformly,
probabilities drawn from U(0.01, 0.99), normalised, rounded to whole percents and repaired to sum to 100 by adding
(or removing) one point at entries 0, 1, 2, … in turn, redrawn when a probability is 0% or 100%. Unlike the
companion (Python's and NumPy's global generators seeded 42), every draw comes from one
``numpy.random.Generator`` seeded with the option ``lottery_seed`` (42). A lottery reads one line per outcome,
``- {outcome} with probability {p}%``, and carries its components in the attribute ``lottery`` =
``[{"id", "p"}, ...]``.

Plan: one active-learning run over base outcomes and lotteries together (the paper's main configuration), with the
paper's lottery template ("Which of the following options would you prefer?:"). Analysis:
``ue_metrics/analyses/expected_utility.py`` — EU(L) = Σ pₖ·μ(oₖ) against U(L) = μ(L).

Simulated responders: ``eu_maximiser`` (a Thurstonian agent whose lottery utility is exactly its expected utility),
``probability_blind`` (a lottery is worth the plain average of its outcomes, whatever their probabilities),
``incoherent`` (lottery utilities unrelated to their outcomes) and ``random`` (a fair coin).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ue_metrics.analyses.expected_utility import HEADLINE, Options
from ue_metrics.errors import UserError
from ue_metrics.simulate import Responder, coin_responder, thurstonian_responder
from ue_tasks.experiments import Experiment, register
from ue_tasks.outcomes import Outcome, OutcomeSet, load_outcomes
from ue_tasks.plan import PlanSpec
from ue_tasks.templates import LOTTERY_LINE

LOWER_IS_BETTER = ("eu_correlation_p", "eu_mae_normalized", "eu_mae_normalized_random")
OPTIONS = Options.declare(lotteries=100, max_lottery_size=3, lottery_seed=42)  # with the analysis's bootstrap, pairs


def _int_option(options: Mapping[str, Any], key: str, low: int) -> int:
    value = options.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"--option {key} must be a whole number of at least {low}, got {value!r}")
    return value


def lottery_probabilities(size: int, rng: np.random.Generator) -> list[int]:
    """Whole-percent probabilities of one lottery, as the paper draws them (docs/method.md §4.3)."""
    for _ in range(10_000):
        raw = rng.uniform(0.01, 0.99, size)
        pct = np.round(raw / raw.sum() * 100).astype(int)
        k = 0
        while pct.sum() != 100:
            pct[k % size] += 1 if pct.sum() < 100 else -1
            k += 1
        if np.all((pct > 0) & (pct < 100)):
            return pct.tolist()
    raise RuntimeError("could not draw lottery probabilities")  # pragma: no cover - never happens for size ≥ 2


def make_lotteries(base: Sequence[Outcome], n: int, max_size: int, seed: int) -> list[Outcome]:
    """``n`` lotteries over ``base`` (sizes 2..max_size), seeded; ids ``lottery-000`` … in order."""
    if max_size < 2:
        raise UserError(f"--option max_lottery_size must be at least 2, got {max_size}")
    if len(base) < max_size:
        raise UserError(f"a lottery of {max_size} outcomes needs at least {max_size} base outcomes; the base set has {len(base)}")
    sizes = list(range(2, max_size + 1))
    counts = [n // len(sizes) + (1 if k < n % len(sizes) else 0) for k in range(len(sizes))]
    rng = np.random.default_rng(seed)
    out: list[Outcome] = []
    width = max(3, len(str(n - 1)))
    for size, count in zip(sizes, counts):
        for _ in range(count):
            picks = rng.choice(len(base), size=size, replace=False)
            pct = lottery_probabilities(size, rng)
            parts = [base[int(k)] for k in picks]
            text = "\n".join(LOTTERY_LINE.format(text=o.text, percent=float(p)) for o, p in zip(parts, pct))
            components = [{"id": o.id, "p": p / 100} for o, p in zip(parts, pct)]
            out.append(
                Outcome(
                    id=f"lottery-{len(out):0{width}d}",
                    text=text,
                    category="Lotteries",
                    attributes={"kind": "lottery", "lottery": components, "size": size},
                )
            )
    return out


def outcomes(options: Mapping[str, Any]) -> OutcomeSet:
    """The base outcomes (``options['outcomes']`` or ``core``) followed by their lotteries."""
    base = load_outcomes(str(options.get("outcomes") or "core"))
    n = _int_option(options, "lotteries", 1)
    max_size = _int_option(options, "max_lottery_size", 2)
    seed = options.get("lottery_seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"--option lottery_seed must be a whole number, got {seed!r}")
    lotteries = make_lotteries(base.outcomes, n, max_size, seed)
    clash = {o.id for o in base.outcomes} & {o.id for o in lotteries}
    if clash:
        raise UserError(f"the base outcome id {sorted(clash)[0]!r} is also a lottery id; rename it in {base.source}")
    return OutcomeSet(
        name=f"{base.name}+lotteries{n}",
        outcomes=list(base.outcomes) + lotteries,
        source=f"{base.source} + {n} lotteries (seed {seed})",
    )


# ----------------------------------------------------------------------------------------------------------
# simulated responders


def lottery_agent(outcomes: OutcomeSet, seed: int, combine: str, name: str, description: str) -> Responder:
    """A Thurstonian agent over the base outcomes whose lottery utilities follow ``combine``: ``expected``
    (Σ pₖ·μₖ), ``average`` (the plain mean of the components, blind to probabilities) or ``independent`` (drawn
    afresh, unrelated to the components). Lotteries get the probability-weighted mean of their components' answer
    variances."""
    base = thurstonian_responder(outcomes.ids, seed)
    mu, var = dict(base.mu), dict(base.var)
    rng = np.random.default_rng([seed, 104729])
    for o in outcomes.outcomes:
        parts = o.attributes.get("lottery")
        if not parts:
            continue
        p = np.array([c["p"] for c in parts], dtype=float)
        u = np.array([base.mu[c["id"]] for c in parts], dtype=float)
        if combine == "expected":
            mu[o.id] = float(p @ u)
        elif combine == "average":
            mu[o.id] = float(u.mean())
        else:
            mu[o.id] = float(rng.standard_normal())
        var[o.id] = float(p @ np.array([base.var[c["id"]] for c in parts]))
    return Responder(name, mu, var, description=description)


RESPONDERS = {
    "eu_maximiser": lambda o, s: lottery_agent(
        o, s, "expected", "eu_maximiser", "an expected-utility maximiser: a lottery is worth Σ p·μ of its outcomes"
    ),
    "probability_blind": lambda o, s: lottery_agent(
        o, s, "average", "probability_blind", "blind to probabilities: a lottery is worth the plain mean of its outcomes"
    ),
    "incoherent": lambda o, s: lottery_agent(
        o, s, "independent", "incoherent", "lottery utilities unrelated to the lotteries' outcomes"
    ),
    "random": lambda o, s: coin_responder(),
}

register(
    Experiment(
        name="expected_utility",
        title="Expected utility: lotteries against the expected utility of their outcomes",
        section="§4.3",
        outcomes=outcomes,
        plan=PlanSpec(kind="active"),
        template="lottery",
        headline=HEADLINE,
        lower_is_better=LOWER_IS_BETTER,
        responders=RESPONDERS,
        options=OPTIONS,
        description="Pearson r between each lottery's utility and the expected utility of its outcomes, the normalised "
        "error between them and the share of lottery pairs whose order expected utility predicts.",
    )
)

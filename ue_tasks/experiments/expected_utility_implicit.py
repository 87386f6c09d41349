"""Expected utility with implicit lotteries (Mazeika et al. 2025, §4 "expected utility"; docs/method.md §4.4, §5.3).

An uncertain event ("A robotic lander attempts to touch down on Mars") is a lottery the prompt never spells out: its
mutually exclusive sub-outcomes ("… crashes into the surface of Mars") have probabilities summing to 1 that the
model has to know or assume. Outcomes: the events, then each event's sub-outcomes, then a background outcome set
as a measuring stick (``core`` by default; the paper used its 510 main outcomes) — one active-learning run over
all of them with the default template. Analysis (``ue_metrics/analyses/expected_utility_implicit.py``): μ(event)
against Σ pᵢ·μ(subᵢ), with the measures of the explicit-lottery experiment.

Data: this project's own 21 events (104 sub-outcomes; ``data/implicit_lotteries.json``; each event says whether its
probabilities are facts — dice, cards, published population shares — or stated assumptions), or any file in the
companion's format (``{"base_options": [{"option", "sub_options": [{"option", "probability"}]}]}``) given as
``--outcomes FILE``, read unchanged. Options: ``background`` (a set name or file, or ``none``), ``events`` (use the
first k events), ``bootstrap``, ``pairs``.

Simulated responders: ``eu_consistent`` (an event is worth Σ pᵢ·μ(subᵢ)), ``probability_blind`` (the plain mean of
its sub-outcomes), ``incoherent`` (unrelated to its sub-outcomes) and ``random`` (a fair coin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ue_metrics.analyses.expected_utility_implicit import Options
from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json
from ue_tasks.experiments import Experiment, register
from ue_tasks.experiments.expected_utility import HEADLINE, LOWER_IS_BETTER, RESPONDERS, lottery_agent
from ue_tasks.outcomes import Outcome, OutcomeSet, load_outcomes
from ue_tasks.plan import PlanSpec

DATA = Path(__file__).with_name("data") / "implicit_lotteries.json"
OPTIONS = Options.declare(background="core", events=0)  # with the analysis's bootstrap, pairs


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events of an implicit-lottery file (the companion's format), checked: every event has a text and at least two
    sub-outcomes whose probabilities lie in [0, 1] and sum to 1 (within 10⁻⁶)."""
    path = Path(path)
    data = read_json(
        path,
        lambda exc: f"{path}: cannot be read as JSON ({exc}); give an implicit-lottery file",
        missing=f"{path}: no such file; give an implicit-lottery file in the format of docs/method.md §5.3",
    )
    events = data.get("base_options") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        raise UserError(f"{path}: expected an object with a non-empty list 'base_options' of events (docs/method.md §5.3)")
    for k, ev in enumerate(events, 1):
        where = f"{path}: event {k}"
        if not isinstance(ev, dict) or not isinstance(ev.get("option"), str) or not ev["option"].strip():
            raise UserError(f"{where} has no text 'option'; each event needs one")
        subs = ev.get("sub_options")
        if not isinstance(subs, list) or len(subs) < 2:
            raise UserError(f"{where} ({ev['option'][:50]!r}) needs a list 'sub_options' of at least two sub-outcomes")
        total = 0.0
        for j, sub in enumerate(subs, 1):
            p = sub.get("probability") if isinstance(sub, dict) else None
            if not isinstance(sub, dict) or not isinstance(sub.get("option"), str) or not sub["option"].strip():
                raise UserError(f"{where}, sub-outcome {j} has no text 'option'")
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1 or not math.isfinite(p):
                raise UserError(f"{where}, sub-outcome {j}: 'probability' must be a number in [0, 1], got {p!r}")
            total += float(p)
        if abs(total - 1) > 1e-6:
            raise UserError(
                f"{where} ({ev['option'][:50]!r}): its sub-outcome probabilities sum to {total:.6g}, not 1; fix the file"
            )
    return events


def outcomes(options: Mapping[str, Any]) -> OutcomeSet:
    """Events, their sub-outcomes (in file order, each event followed by its own), then the background set."""
    source = options.get("outcomes") or DATA
    events = read_events(source)
    limit = options.get("events")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UserError(f"--option events must be a whole number (0 = all events), got {limit!r}")
    if limit:
        events = events[:limit]
    items: list[Outcome] = []
    width = max(2, len(str(len(events) - 1)))
    for k, ev in enumerate(events):
        eid = f"event-{k:0{width}d}"
        subs = [(f"{eid}.{j + 1}", s["option"].strip(), float(s["probability"])) for j, s in enumerate(ev["sub_options"])]
        attributes: dict[str, Any] = {"kind": "event", "lottery": [{"id": sid, "p": p} for sid, _, p in subs]}
        if ev.get("probability_note"):
            attributes["probability_note"] = str(ev["probability_note"])
        items.append(Outcome(id=eid, text=ev["option"].strip(), category="Uncertain events", attributes=attributes))
        items += [
            Outcome(
                id=sid, text=text, category="Resolved events", attributes={"kind": "sub_outcome", "event": eid, "probability": p}
            )
            for sid, text, p in subs
        ]
    background = str(options.get("background") or "none")
    name = Path(str(source)).stem if options.get("outcomes") else "implicit"
    if background != "none":
        extra = load_outcomes(background)
        items += extra.outcomes
        name += f"+{extra.name}"
    seen_ids: set[str] = set()
    seen_text: dict[str, str] = {}
    for o in items:
        if o.id in seen_ids:
            raise UserError(f"outcome id {o.id!r} is used by an event and by the background set {background!r}; rename it")
        seen_ids.add(o.id)
        key = " ".join(o.text.split()).lower()
        if key in seen_text:
            raise UserError(
                f"the text of {o.id!r} repeats that of {seen_text[key]!r} ({o.text[:60]!r}); each outcome needs its own sentence"
            )
        seen_text[key] = o.id
    return OutcomeSet(name=name, outcomes=items, source=f"{source} + background {background}")


register(
    Experiment(
        name="expected_utility_implicit",
        title="Expected utility with implicit lotteries: uncertain events against their possible resolutions",
        section="§4.4",
        outcomes=outcomes,
        plan=PlanSpec(kind="active"),
        analysis="expected_utility_implicit",
        headline=HEADLINE,
        lower_is_better=LOWER_IS_BETTER,
        responders={
            "eu_consistent": lambda o, s: lottery_agent(
                o, s, "expected", "eu_consistent", "an event is worth Σ p·μ of its sub-outcomes (expected utility)"
            ),
            "probability_blind": lambda o, s: lottery_agent(
                o,
                s,
                "average",
                "probability_blind",
                "blind to probabilities: an event is worth the plain mean of its sub-outcomes",
            ),
            "incoherent": RESPONDERS["incoherent"],
            "random": RESPONDERS["random"],
        },
        options=OPTIONS,
        description="Pearson r between each uncertain event's utility and the expected utility of its sub-outcomes, "
        "the normalised error between them and the share of event pairs whose order expected utility predicts.",
    )
)

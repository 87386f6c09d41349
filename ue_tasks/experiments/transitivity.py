"""Transitivity (Mazeika et al. 2025, §4 "Emergent coherence"; docs/method.md §4.2): 1,000 random triads of the main
outcome set (seeded), the three pairs of each asked in both orderings, no Thurstonian fit needed. The analysis
(``ue_metrics/analyses/transitivity.py``) is the probability of a preference cycle per triad.

Simulated responders with a known answer: ``transitive`` (a near-deterministic utility maximiser: almost no
cycles), ``thurstonian`` (transitive utilities with the usual answer noise) and ``random`` (a fair coin: a cycle
probability of 1/4 per triad).
"""

from __future__ import annotations

from ue_metrics.analyses.transitivity import Options
from ue_metrics.simulate import Responder, coin_responder, thurstonian_responder
from ue_tasks.experiments import Experiment, register
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.plan import PlanSpec


def transitive_agent(outcomes: OutcomeSet, seed: int) -> Responder:
    """Utilities ~ N(0, 1) with tiny answer noise (σ² = 10⁻⁴): every preference follows one utility order."""
    base = thurstonian_responder(outcomes.ids, seed)
    return Responder(
        "transitive",
        base.mu,
        {k: 1e-4 for k in base.mu},
        description="a utility maximiser with near-zero answer noise (transitive by construction)",
    )


register(
    Experiment(
        name="transitivity",
        title="Transitivity: the probability of preference cycles",
        section="§4.2",
        outcomes="core",
        plan=PlanSpec(kind="triads", budget=1000, seed=0),
        fit=False,
        options=Options.declare(),
        headline=(
            "cycle_probability",
            "cycle_probability_random",
            "log10_cycle_probability",
            "log10_cycle_probability_random",
            "paper_log_cycle_probability",
            "paper_log_cycle_probability_random",
            "hard_cycle_rate",
            "n_triads",
        ),
        lower_is_better=(
            "cycle_probability",
            "cycle_probability_random",
            "log10_cycle_probability",
            "log10_cycle_probability_random",
            "paper_log_cycle_probability",
            "paper_log_cycle_probability_random",
            "hard_cycle_rate",
        ),
        responders={
            "transitive": transitive_agent,
            "thurstonian": lambda outcomes, seed: thurstonian_responder(outcomes.ids, seed),
            "random": lambda outcomes, seed: coin_responder(),
        },
        lm_eval_sets=(),
        description="Mean probability that a random triad's three pairwise preferences form a cycle, and its log, "
        "next to a fair coin's.",
    )
)

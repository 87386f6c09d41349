"""The main utility run (Mazeika et al. 2025, §4.1; docs/method.md §2–3, §4.1): forced-choice preferences over an
outcome set, elicited by active learning (a random 2-regular starting graph, then rounds of 500 pairs picked
from the current fit, ⌊2·N·log2 N⌋ training pairs, a 5% holdout capped at 1,000), fitted with the Thurstonian
model and scored for coherence. Its run folder is also the input of the experiments that build on a model's
utilities (power-seeking, corrigibility). ``ue elicit`` runs this experiment.

Analysis: ``ue_metrics/analyses/utilities.py``.
"""

from __future__ import annotations

from ue_metrics.analyses.utilities import Options
from ue_metrics.simulate import coin_responder, thurstonian_responder
from ue_tasks.experiments import Experiment, register
from ue_tasks.plan import PlanSpec

HEADLINE = (
    "holdout_accuracy",
    "holdout_accuracy_random",
    "holdout_log_loss",
    "holdout_log_loss_random",
    "average_confidence",
    "average_confidence_random",
    "cycle_rate",
    "order_gap",
    "order_gap_random",
    "position_bias",
    "unparsed_rate",
    "mean_label_mass",
    "random_answers_per_ordering",
)

register(
    Experiment(
        name="utilities",
        title="Utilities and coherence (the main run)",
        section="§4.1",
        outcomes="core",
        plan=PlanSpec(kind="active"),
        headline=HEADLINE,
        options=Options.declare(),
        lower_is_better=(
            "holdout_log_loss",
            "holdout_log_loss_random",
            "cycle_rate",
            "order_gap",
            "order_gap_random",
            "unparsed_rate",
        ),
        responders={
            "thurstonian": lambda outcomes, seed: thurstonian_responder(outcomes.ids, seed),
            "misfit": lambda outcomes, seed: thurstonian_responder(
                outcomes.ids,
                seed,
                name="misfit",
                noise=0.3,
                description="the Thurstonian agent with each query's probability off the model by N(0, 0.3²) on the probit scale",
            ),
            "random": lambda outcomes, seed: coin_responder(),
        },
        lm_eval_sets=("core", "mini"),
        description="Thurstonian utilities of every outcome and their coherence (held-out accuracy, completeness, "
        "cycle rate over closed triangles, position bias) next to a random responder.",
    )
)

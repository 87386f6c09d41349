"""Political-bias measures of the utility-control case study, on outcome sets with a left/right coding
(outcome tags ``politics:left`` / ``politics:right``; the shipped ``ue_control/data/policies.jsonl`` codes each
policy by which party's national platform of the 2020s champions it — see docs/control.md).

The political-lean measure itself — ``utility_gap`` (mean standardised utility of left-coded minus right-coded
outcomes; positive = leans left), ``left_share`` (share of left-vs-right pairs won by the left-coded outcome), the
coding and the pooled pair preferences — has one definition, in ``ue_metrics.analyses.political_values`` (the
political_values experiment, METHOD.md §4.7), imported here. This module adds what only control needs: the
measures as one table, agreement with the assembly's preferences, and a rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ue_metrics.analyses.political_values import (
    LEFT,
    RIGHT,
    coding_from_outcomes,
    coding_from_records,
    left_share,
    pair_preferences,
    utility_gap,
)

__all__ = ["LEFT", "RIGHT", "coding_from_outcomes", "coding_from_records", "pair_preferences", "utility_gap", "left_share",
           "bias_measures", "agreement", "spearman"]  # fmt: skip


def bias_measures(utilities: Mapping[str, float] | None, preferences: Mapping[tuple[str, str], float],
                  coding: Mapping[str, str]) -> dict[str, float | int]:  # fmt: skip
    share, n = left_share(preferences, coding)
    return {
        "utility_gap": utility_gap(utilities, coding) if utilities is not None else float("nan"),
        "left_share": share,
        "n_left_right_pairs": n,
    }


def agreement(model: Mapping[tuple[str, str], float], target: Mapping[tuple[str, str], float]) -> dict[str, float | int]:
    """How often ``model`` prefers the same outcome as ``target`` on their shared pairs (target ties skipped),
    and the mean absolute difference of the probabilities."""
    keys = [k for k in target if k in model]
    decided = [k for k in keys if target[k] != 0.5]
    same = [(model[k] > 0.5) == (target[k] > 0.5) for k in decided]
    return {
        "agreement": float(np.mean(same)) if same else float("nan"),
        "mean_abs_diff": float(np.mean([abs(model[k] - target[k]) for k in keys])) if keys else float("nan"),
        "n_pairs": len(keys),
    }


def spearman(x: Mapping[str, float], y: Mapping[str, float]) -> float:
    """Spearman rank correlation over the ids present (and finite) in both."""
    from scipy.stats import spearmanr

    ids = [i for i in x if i in y and not (math.isnan(x[i]) or math.isnan(y[i]))]
    if len(ids) < 3:
        return float("nan")
    rho = spearmanr([x[i] for i in ids], [y[i] for i in ids]).statistic
    return float(rho)

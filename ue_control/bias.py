"""Political-bias measures of the utility-control case study, on outcome sets with a left/right coding
(outcome tags ``politics:left`` / ``politics:right``; the shipped ``ue_control/data/policies.jsonl`` codes each
policy by which party's national platform of the 2020s champions it — see docs/control.md).

The political-lean measure itself — ``utility_gap`` (mean standardised utility of left-coded minus right-coded
outcomes; positive = leans left), ``left_share`` (share of left-vs-right pairs won by the left-coded outcome), the
coding and the pooled pair preferences — has one definition, in ``ue_metrics.analyses.political_values`` (the
political_values experiment, docs/method.md §4.7), imported here. This module adds what only control needs: the
measures as one table, agreement with the assembly's preferences, and a rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

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
from ue_metrics.analyses.political_values import lean_interval as _lean_interval

__all__ = [
    "LEFT",
    "RIGHT",
    "coding_from_outcomes",
    "coding_from_records",
    "pair_preferences",
    "utility_gap",
    "left_share",
    "bias_measures",
    "agreement",
    "spearman",
]


def bias_measures(
    utilities: Mapping[str, float] | None, preferences: Mapping[tuple[str, str], float], coding: Mapping[str, str]
) -> dict[str, float | int]:
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


# ----------------------------------------------------------------------------------------------------------
# The political lean: the shared measure of the political-values analysis (ue_metrics.analyses.political_values).
# Every lean utility control reports goes through ``lean`` and ``lean_interval``.
def lean(utilities: Mapping[str, float], coding: Mapping[str, str]) -> float:
    """Mean standardised utility of the left-coded minus the right-coded outcomes (> 0: leans left)."""
    return utility_gap(utilities, coding)


def lean_interval(
    utilities: Mapping[str, float], coding: Mapping[str, str], rng: np.random.Generator, n_boot: int = 2000
) -> tuple[float, float]:
    """Stratified bootstrap percentile interval of ``lean`` (left and right outcomes resampled apart)."""
    return _lean_interval(utilities, coding, rng, n_boot)


def correlation(
    x: Mapping[str, float], y: Mapping[str, float], method: str = "spearman", level: float = 0.95
) -> dict[str, float | int | None]:
    """Spearman or Pearson correlation over the ids finite in both, with a Fisher-z interval (Spearman: the
    Fieller–Hartley–Pearson variance 1.06/(n−3)); ``n`` is the number of outcomes."""
    from scipy.stats import norm, pearsonr, spearmanr

    ids = [i for i in x if i in y and math.isfinite(x[i]) and math.isfinite(y[i])]
    n = len(ids)
    if n < 3:
        return {"value": None, "low": None, "high": None, "n": n}
    a, b = [x[i] for i in ids], [y[i] for i in ids]
    if np.std(a) == 0 or np.std(b) == 0:
        return {"value": None, "low": None, "high": None, "n": n}
    r = float(spearmanr(a, b).statistic if method == "spearman" else pearsonr(a, b).statistic)
    if n < 4 or abs(r) >= 1:
        return {"value": r, "low": None, "high": None, "n": n}
    se = math.sqrt((1.06 if method == "spearman" else 1.0) / (n - 3))
    z, q = math.atanh(r), float(norm.ppf(0.5 + level / 2))
    return {"value": r, "low": math.tanh(z - q * se), "high": math.tanh(z + q * se), "n": n}


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    from scipy.stats import norm

    if n <= 0:
        return float("nan"), float("nan")
    q = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + q * q / (2 * n)) / (1 + q * q / n)
    half = q * math.sqrt(p * (1 - p) / n + q * q / (4 * n * n)) / (1 + q * q / n)
    return centre - half, centre + half


def mean_interval(values: Iterable[float], level: float = 0.95) -> dict[str, float | int | None]:
    """Mean with a t interval."""
    from scipy.stats import t

    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    m = float(v.mean())
    if n < 2:
        return {"value": m, "low": None, "high": None, "n": n}
    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"value": m, "low": m - half, "high": m + half, "n": n}


def label_a_by_pair(records: Iterable[dict]) -> dict[tuple[str, str], float]:
    """Per unordered pair, the mean over its orderings of P(answer label "A") (log-prob records): 0.5 = no
    position preference, whatever the pair's content preference."""
    acc: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.get("mode") != "logprob" or r.get("p_a") is None:
            continue
        p_label_a = float(r["p_a"]) if r["shown_first"] == "a" else 1.0 - float(r["p_a"])
        key = tuple(sorted((r["a_id"], r["b_id"])))
        acc.setdefault(key, []).append(p_label_a)  # type: ignore[arg-type]
    return {k: float(np.mean(v)) for k, v in acc.items()}  # type: ignore[misc]

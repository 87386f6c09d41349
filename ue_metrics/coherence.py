"""Coherence metrics of a preference run and of its Thurstonian fit, each next to a random responder's value.

- holdout / train accuracy and log loss: the paper's "utility model accuracy" (docs/method.md §3.4): a pair scores 1
  when the fit and the answers prefer the same outcome, 0 when they prefer opposite ones, and ½ when either is a
  tie (P = ½) — the companion counts (p̂ ≥ 0.5) == (y ≥ 0.5), which scores a model with no preference at all
  (pure position bias, always "A": every pooled pair ½, every utility equal) as perfectly accurate (§10).
  Training metrics on real edges only.
- no_signal: a sentence when the utilities carry no signal (every pooled pair a tie, all utilities equal, or a
  held-out accuracy within a random responder's 95% range), else null.
- brier: calibration of the fit on held-out pairs.
- average_confidence: completeness, mean over pairs of max(P, 1 − P) of the raw pooled preference (§9).
- cycle_rate: transitivity, mean probability of a preference cycle over closed triangles of queried pairs,
  P = p1·p2·(1 − p3) + (1 − p1)·(1 − p2)·p3 (§4.2).
- order_gap: mean over pairs of |P(a ≻ b | a shown first) − P(a ≻ b | a shown second)|.
- position_bias: mean probability of choosing whichever outcome is shown first, minus 0.5.
- unparsed_rate: unparseable answers / all sampled answers; mean_label_mass: mean raw label mass (logprob).

The random responder answers every query with a fair coin: K answers per ordering for a sampled run (the paper's
baseline, K = 10: average confidence 0.588), an exact coin (P = 1/2) for a log-prob run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ue_metrics.aggregation import PairData

CLIP = 1e-5
LN2 = math.log(2.0)


def log_loss(p_hat: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    p = np.clip(p_hat, CLIP, 1 - CLIP)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


TIE = 1e-6  # |P − ½| at or below this is a tie


def _side(p: np.ndarray) -> np.ndarray:
    d = np.asarray(p, dtype=float) - 0.5
    return np.where(np.abs(d) <= TIE, 0.0, np.sign(d))


def accuracy(p_hat: np.ndarray, y: np.ndarray) -> float:
    """Share of pairs where the fit and the answers prefer the same outcome; a tie on either side counts ½."""
    if len(y) == 0:
        return float("nan")
    agree = _side(p_hat) * _side(y)
    return float(np.mean(np.where(agree > 0, 1.0, np.where(agree < 0, 0.0, 0.5))))


def no_signal(data: PairData, model, holdout_accuracy: float, n_holdout: int) -> str | None:
    """Why the utilities carry no signal, or None: every pooled preference a tie, every utility equal, or a held-out
    accuracy a fair coin reaches with probability ≥ 2.5% on this many pairs."""
    ties = int(np.sum(_side(data.y) == 0))
    if ties == len(data.y):
        return (
            f"every one of the {ties} pairs is a tie once both orderings are pooled (the answers follow the position "
            "of the options or one label, not their content)"
        )
    spread = np.asarray(getattr(model, "scale_", [1.0]), dtype=float)
    if spread.size and np.nanmax(spread) <= TIE:
        return "the fitted utilities are all equal"
    if n_holdout >= 10 and math.isfinite(holdout_accuracy):
        bound = 0.5 + 1.96 * math.sqrt(0.25 / n_holdout)
        if holdout_accuracy <= bound:
            return (
                f"the held-out accuracy {holdout_accuracy:.3f} is within what a random responder reaches on "
                f"{n_holdout} pairs (up to {bound:.3f}): the utilities are not distinguishable from noise"
            )
    return None


def brier(p_hat: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p_hat - y) ** 2)) if len(y) else float("nan")


def average_confidence(y: np.ndarray) -> float:
    return float(np.mean(np.maximum(y, 1 - y))) if len(y) else float("nan")


def cycle_rate(data: PairData) -> tuple[float, int]:
    """Mean cycle probability over all closed triangles of queried pairs, and the number of triangles.

    With upper-triangular matrices P[a, b] = P(a ≻ b) and Q[a, b] = 1 − P(a ≻ b) for queried pairs a < b, the
    sum over triangles a < b < c of p_ab·p_bc·(1 − p_ac) + (1 − p_ab)·(1 − p_bc)·p_ac is
    Σ (P·P) ∘ Q + Σ (Q·Q) ∘ P, and the triangle count is Σ (A·A) ∘ A — no enumeration needed.
    """
    from scipy import sparse  # imported here: the rest of the module needs only numpy

    n = data.n_outcomes
    a, b = np.minimum(data.i, data.j), np.maximum(data.i, data.j)
    p = np.where(data.i < data.j, data.y, 1 - data.y)
    shape = (n, n)
    P = sparse.csr_matrix((p, (a, b)), shape=shape)
    Q = sparse.csr_matrix((1 - p, (a, b)), shape=shape)
    A = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=shape)
    count = float((A @ A).multiply(A).sum())
    if count == 0:
        return float("nan"), 0
    total = float((P @ P).multiply(Q).sum() + (Q @ Q).multiply(P).sum())
    return total / count, int(round(count))


def order_gap(data: PairData) -> float:
    both = np.isfinite(data.p_first) & np.isfinite(data.p_second)
    return float(np.mean(np.abs(data.p_first[both] - data.p_second[both]))) if both.any() else float("nan")


def fair_coin_pmf(n: int) -> np.ndarray:
    """P(k heads in n fair tosses), k = 0..n, from log-gamma (no overflow at any n; no scipy.stats import)."""
    k = np.arange(n + 1)
    log_pmf = math.lgamma(n + 1) - np.array([math.lgamma(x + 1) + math.lgamma(n - x + 1) for x in k]) - n * math.log(2.0)
    return np.exp(log_pmf)


def fair_coin_support(n: int, max_points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """(shares x/n, probabilities) of a fair coin's head count in n tosses: every count while n + 1 ≤ ``max_points``,
    else ``max_points`` evenly spaced counts over ±8 standard deviations, weighted by their binomial probabilities
    and renormalised (the mass beyond 8 sd is below 1e-14), so the cost of a coin baseline does not grow with n."""
    if n + 1 <= max_points:
        return np.arange(n + 1) / n, fair_coin_pmf(n)
    half = 8 * math.sqrt(n) / 2
    x = np.unique(np.clip(np.round(np.linspace(n / 2 - half, n / 2 + half, max_points)), 0, n))
    log_pmf = np.array([math.lgamma(n + 1) - math.lgamma(v + 1) - math.lgamma(n - v + 1) for v in x]) - n * math.log(2.0)
    w = np.exp(log_pmf - log_pmf.max())
    # each kept count stands for the counts between it and its neighbours
    width = np.gradient(x) if len(x) > 1 else np.ones(1)
    w = w * width
    return x / n, w / w.sum()


def fair_coin_mean_abs_deviation(n: int) -> float:
    """E|X − n/2| for X ~ Binomial(n, ½), in closed form: (m + 1)·C(n, m + 1)/2ⁿ with m = ⌊n/2⌋, computed in log
    space, so its cost and precision do not depend on n (a sum over the n + 1 outcomes overflows past n ≈ 1,000)."""
    if n <= 0:
        return 0.0
    m = n // 2
    log_comb = math.lgamma(n + 1) - math.lgamma(m + 2) - math.lgamma(n - m)
    return float(math.exp(math.log(m + 1) + log_comb - n * math.log(2.0)))


def random_baselines(samples_per_ordering: int = 10) -> dict[str, Any]:
    """Exact values for a fair-coin responder: with K answers per ordering (2K per pair) for sampled runs, or
    an exact coin (P = 1/2 on every query) for log-prob runs (``samples_per_ordering=0``)."""
    k = int(samples_per_ordering)
    base: dict[str, Any] = {
        "holdout_accuracy": 0.5,
        "holdout_log_loss": LN2,
        "train_accuracy": 0.5,
        "train_log_loss": LN2,
        "cycle_rate": 0.25,
        "position_bias": 0.0,
        "unparsed_rate": 0.0,
    }
    if k <= 0:
        return {
            **base,
            "holdout_brier": 0.0,
            "average_confidence": 0.5,
            "order_gap": 0.0,
            "description": "an exact fair coin (P = 1/2 on every query)",
        }

    # confidence: E[max(X, 2K − X)]/(2K) = ½ + E|X − K|/(2K) for X ~ Bin(2K, ½) (both orderings' answers pooled);
    # order gap: E|X₁ − X₂|/K for the two orderings' counts, and X₁ − X₂ + K ~ Bin(2K, ½), so E|X₁ − X₂| = E|X − K|
    mad = fair_coin_mean_abs_deviation(2 * k)
    conf = 0.5 + mad / (2 * k)
    gap = mad / k
    return {
        **base,
        "holdout_brier": 0.25 / (2 * k),
        "average_confidence": conf,
        "order_gap": gap,
        "description": f"a fair coin with {k} sampled answers per ordering",
    }


def coherence_metrics(data: PairData, model) -> dict:
    """All coherence metrics for records ``data`` and a fitted ``model`` (indices must match ``data.ids``)."""
    train, hold = data.train(), data.holdout()
    # holdout pairs whose outcomes never appear in training cannot be predicted
    seen = np.zeros(data.n_outcomes, dtype=bool)
    seen[train.i] = True
    seen[train.j] = True
    ok = seen[hold.i] & seen[hold.j]
    hold_ok = hold.subset(ok)
    p_train = model.predict_proba(np.column_stack([train.i, train.j])) if len(train.y) else np.empty(0)
    p_hold = model.predict_proba(np.column_stack([hold_ok.i, hold_ok.j])) if len(hold_ok.y) else np.empty(0)
    cyc, n_tri = cycle_rate(data)
    metrics = {
        "holdout_accuracy": accuracy(p_hold, hold_ok.y),
        "holdout_log_loss": log_loss(p_hold, hold_ok.y),
        "holdout_brier": brier(p_hold, hold_ok.y),
        "train_accuracy": accuracy(p_train, train.y),
        "train_log_loss": log_loss(p_train, train.y),
        "average_confidence": average_confidence(data.y),
        "cycle_rate": cyc,
        "order_gap": order_gap(data),
        "position_bias": float(np.mean(data.shown_first_p) - 0.5) if len(data.shown_first_p) else float("nan"),
        "unparsed_rate": (data.n_unparsed / data.n_answers) if ("sample" in data.modes and data.n_answers) else 0.0,
        "mean_label_mass": float(np.mean(data.label_mass)) if len(data.label_mass) else None,
        "n_outcomes": data.n_outcomes,
        "n_pairs": int(len(data.y)),
        "n_train_pairs": int(len(train.y)),
        "n_holdout_pairs": int(len(hold_ok.y)),
        "n_holdout_pairs_unseen": int((~ok).sum()),
        "n_records": data.n_records,
        "n_unusable_records": data.n_unusable_records,
        "n_triangles": n_tri,
        "n_tied_pairs": int(np.sum(_side(data.y) == 0)),
        "n_pairs_half_vote": int(data.info.get("pairs_half_vote", 0)),
        "n_no_label_mass": int(data.info.get("n_no_label_mass", 0)),
    }
    metrics["no_signal"] = no_signal(data, model, metrics["holdout_accuracy"], len(hold_ok.y))
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}

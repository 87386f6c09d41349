"""Transitivity (Mazeika et al. 2025, §4; docs/method.md §4.2): the probability that a triad's preferences form a cycle.

For a triad {x, y, z} with pooled preferences p1 = P(x ≻ y), p2 = P(y ≻ z), p3 = P(x ≻ z) (both orderings pooled,
answers weighted as in the fit), the probability of a cycle, treating the three comparisons as independent, is

    P_cycle = p1·p2·(1 − p3) + (1 − p1)·(1 − p2)·p3        (the two cyclic orientations)

Headline numbers, each beside a fair coin's value for the same mode:
- ``cycle_probability``: the mean of P_cycle over triads (a coin gives 1/4 in every mode, exactly or sampled);
- ``log10_cycle_probability``: its base-10 logarithm (a coin: log10(1/4) = −0.602);
- ``paper_log_cycle_probability``: log10 of the odds of a cycle, log10(P / (1 − P)) with P the mean — our
  reconstruction of the paper's axis. The paper reports −0.484 for a random responder (and −1.61 for GPT-4o);
  log10 of the probability itself gives −0.602 for every fair coin (the mean is linear in independent
  preferences), while the log-odds gives −0.477 for an exact coin and −0.48 ± 0.01 for a K = 10 sampled coin over
  1,000 triads, the only definition among those we tried (log10 or ln of the mean, mean of the logs, median,
  hard majority cycles) that lands on the paper's value. Both are reported; see docs/experiments.md;
- ``hard_cycle_rate``: the same formula on the majority preferences (1, 0, or ½ for an exact tie);
- ``n_triads``: triads with an answer on all three pairs.

The cycle rate over closed triangles of an active-learning graph (``cycle_rate`` of the utilities run) is a
secondary coherence figure of that run, not this experiment.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ue_metrics.analyses import AnalysisOptions, Inputs

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

COIN_CYCLE = 0.25


@dataclass(frozen=True)
class Options(AnalysisOptions):
    """Transitivity has no options: its triads are the plan's, its answers the records'."""


def cycle_probability(p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """P(cycle) for p1 = P(x ≻ y), p2 = P(y ≻ z), p3 = P(x ≻ z)."""
    return p1 * p2 * (1 - p3) + (1 - p1) * (1 - p2) * p3


def log_odds(p: float) -> float:
    return math.log10(p / (1 - p)) if 0 < p < 1 else float("nan")


def pooled_pairs(records: Sequence[dict], unparsed: str = "exclude") -> dict[tuple[str, str, str], tuple[float, float]]:
    """``{(group, x, y): (P(x ≻ y), weight)}`` with x < y, pooled over both orderings (sampled answers weigh by
    votes; a log-prob record weighs one)."""
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in records:
        if r["mode"] == "sample":
            na, nb, nu = float(r["n_a"]), float(r["n_b"]), float(r["n_unparsed"])
            if unparsed == "as_indifference":
                na, nb = na + nu / 2, nb + nu / 2
            w = na + nb
            if w <= 0:
                continue
            p_a = na / w
        else:
            if r["p_a"] is None:
                continue
            w, p_a = 1.0, float(r["p_a"])
        a, b = r["a_id"], r["b_id"]
        key, p = ((r.get("group", ""), a, b), p_a) if a < b else ((r.get("group", ""), b, a), 1 - p_a)
        slot = acc[key]
        slot[0] += w * p
        slot[1] += w
    return {k: (v[0] / v[1], v[1]) for k, v in acc.items()}


def triads(records: Sequence[dict], unparsed: str = "exclude") -> tuple[list[dict[str, Any]], int]:
    """Complete triads (all three pairs answered) and the number of incomplete groups."""
    pairs = pooled_pairs(records, unparsed)
    by_group: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for (group, x, y), (p, _) in pairs.items():
        by_group[group][(x, y)] = p
    out, incomplete = [], 0
    for group, found in sorted(by_group.items()):
        ids = sorted({i for pair in found for i in pair})
        if len(ids) != 3 or len(found) != 3:
            incomplete += 1
            continue
        x, y, z = ids
        out.append({"group": group, "ids": ids, "p_xy": found[(x, y)], "p_yz": found[(y, z)], "p_xz": found[(x, z)]})
    return out, incomplete


def coin_cycle_distribution(samples_per_ordering: int, bins: np.ndarray) -> np.ndarray:
    """The distribution of P_cycle for a fair coin with K answers per ordering (2K per pair), binned — exact, by
    enumerating the three binomial vote counts (up to K = 100; beyond, on a 201-point grid per count)."""
    from ue_metrics.coherence import fair_coin_support

    p, w = fair_coin_support(2 * samples_per_ordering)  # every count up to K = 100, a fixed grid beyond
    P = cycle_probability(p[:, None, None], p[None, :, None], p[None, None, :]).ravel()
    W = (w[:, None, None] * w[None, :, None] * w[None, None, :]).ravel()
    hist, _ = np.histogram(P, bins=bins, weights=W)
    return hist


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    found, incomplete = triads(records)
    modes = sorted({r["mode"] for r in records})
    notes: dict[str, str] = {}
    if not found:
        reason = "no triad has an answer on all three of its pairs (are the records from the transitivity experiment?)"
        keys = ("cycle_probability", "log10_cycle_probability", "paper_log_cycle_probability", "hard_cycle_rate")
        return {
            "headline": {**dict.fromkeys(keys), "n_triads": 0, **_coin_headline()},
            "notes": dict.fromkeys(keys, reason),
            "details": {"incomplete_triads": incomplete, "modes": modes},
            "figures": {},
        }
    p1 = np.array([t["p_xy"] for t in found])
    p2 = np.array([t["p_yz"] for t in found])
    p3 = np.array([t["p_xz"] for t in found])
    P = cycle_probability(p1, p2, p3)

    def hard(p: np.ndarray) -> np.ndarray:
        return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))

    H = cycle_probability(hard(p1), hard(p2), hard(p3))
    mean = float(P.mean())
    if mean <= 0:
        notes["log10_cycle_probability"] = "no triad has any probability of a cycle, so its logarithm is −∞"
        notes["paper_log_cycle_probability"] = notes["log10_cycle_probability"]
    k = _samples_per_ordering(records)
    headline = {
        "cycle_probability": mean,
        "log10_cycle_probability": math.log10(mean) if mean > 0 else None,
        "paper_log_cycle_probability": log_odds(mean) if 0 < mean < 1 else None,
        "hard_cycle_rate": float(H.mean()),
        "n_triads": len(found),
        **_coin_headline(),
    }
    for t, value in zip(found, P.tolist()):
        t["p_cycle"] = value
    worst = sorted(found, key=lambda t: -t["p_cycle"])[:10]
    for t in worst:
        t["texts"] = [outcomes.get(i, {}).get("text", i) for i in t["ids"]]
    # bootstrap interval over triads for the mean (triads are the sampling unit)
    rng = np.random.default_rng(inputs.seed)
    boot = P[rng.integers(0, len(P), size=(1000, len(P)))].mean(axis=1)
    bins = np.linspace(0, 1, 41)
    hist, _ = np.histogram(P, bins=bins)
    coin = coin_cycle_distribution(k, bins) if k else None
    details = {
        "modes": modes,
        "samples_per_ordering": k,
        "random_responder": f"a fair coin with {k} sampled answers per ordering"
        if k
        else "an exact fair coin (P = 1/2 per query)",
        "cycle_probability_interval": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "quantiles": dict(zip(("q10", "q25", "median", "q75", "q90"), np.percentile(P, [10, 25, 50, 75, 90]).tolist())),
        "incomplete_triads": incomplete,
        "most_cyclic_triads": worst,
    }
    figures = {
        "cycle_distribution": {
            "bins": bins.tolist(),
            "counts": hist.tolist(),
            "coin": (coin * len(P)).tolist() if coin is not None else None,
            "mean": mean,
            "coin_mean": COIN_CYCLE,
            "n": len(P),
            "coin_label": details["random_responder"],
        }
    }
    return {"headline": headline, "notes": notes, "details": details, "figures": figures}


def _coin_headline() -> dict[str, float]:
    return {
        "cycle_probability_random": COIN_CYCLE,
        "log10_cycle_probability_random": math.log10(COIN_CYCLE),
        "paper_log_cycle_probability_random": log_odds(COIN_CYCLE),
    }


def _samples_per_ordering(records: Sequence[dict]) -> int:
    """K of a sampled run (0 for log-prob records: the coin is then exact)."""
    sampled = [r for r in records if r["mode"] == "sample"]
    if not sampled:
        return 0
    return max(1, round(sum(r["n_a"] + r["n_b"] + r["n_unparsed"] for r in sampled) / len(sampled)))


def draw_cycle_distribution(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    ax = fig.add_subplot(1, 1, 1)
    bins = np.asarray(data["bins"])
    centres, width = (bins[:-1] + bins[1:]) / 2, np.diff(bins)
    ax.bar(centres, data["counts"], width=width * 0.9, color=PALETTE[0], label=f"this model ({data['n']} triads)")
    if data.get("coin") is not None:
        ax.step(bins[:-1], data["coin"], where="post", color=RANDOM_COLOUR, lw=1.5, label=data.get("coin_label", "fair coin"))
    ax.axvline(data["mean"], color=PALETTE[1], lw=1.5, ls="-", label=f"mean {data['mean']:.3f}")
    ax.axvline(data["coin_mean"], color=RANDOM_COLOUR, lw=1.2, ls="--", label=f"coin mean {data['coin_mean']:.2f}")
    ax.set_xlabel("probability that the triad's preferences form a cycle")
    ax.set_ylabel("triads")
    ax.set_title("Transitivity: cycle probability per triad (lower is more coherent)")
    ax.legend(frameon=False, fontsize=8)


FIGURES = {"cycle_distribution": draw_cycle_distribution}
# how to read each figure, one sentence (shown under it by `ue report`)
FIGURE_NOTES = {
    "cycle_distribution": "How likely each triad's three preferences are to form a cycle (x over y over z over x). Mass "
    "near 0 means transitive preferences; the grey line is a fair coin, whose mean is 1/4."
}

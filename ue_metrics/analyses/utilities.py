"""The main run's analysis (Mazeika et al. 2025, §4.1; docs/method.md §3.4, §9): the Thurstonian fit's coherence —
held-out accuracy and log loss, completeness (average confidence), the cycle rate over closed triangles of the
comparison graph, order gap, position bias, unparsed answers and label mass — each next to a random responder's
value for the run's mode (an exact fair coin for log-prob records, a K-answer coin for sampled ones), and the
utilities themselves (figures: the ranked utilities with their intervals; the coherence profile against the
coin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError
from ue_metrics.fitting import FitResult, interval_note

COHERENCE = (
    "holdout_accuracy",
    "holdout_log_loss",
    "average_confidence",
    "cycle_rate",
    "order_gap",
    "position_bias",
    "unparsed_rate",
    "mean_label_mass",
)
WITH_RANDOM = ("holdout_accuracy", "holdout_log_loss", "average_confidence", "order_gap")
TOP = 10  # outcomes listed at each end of the ranking in the details


@dataclass(frozen=True)
class Options(AnalysisOptions):
    """The main run's analysis has no options of its own (the fit's are ``ue run``'s flags)."""


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    if fit is None:
        raise UserError("the utilities analysis needs a Thurstonian fit of the records")
    m = fit.metrics
    base = m.get("random_baseline", {})
    headline: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for key in COHERENCE:
        headline[key] = m.get(key)
        if headline[key] is None:
            notes[key] = _why_missing(key, m)
    for key in WITH_RANDOM:
        headline[f"{key}_random"] = base.get(key)
    if not _both_orderings(records):  # `ue run --orderings first`: the order bias is in the answers, not measurable
        why = (
            "needs both orderings of a pair, and these records hold one answer per pair (`ue run --orderings first`, the "
            "paper's single-ordering demonstration, or the companion's edges, which pool both orderings)"
        )
        for key in ("order_gap", "position_bias", "order_gap_random"):
            headline[key] = None
            notes[key] = why
    if m.get("no_signal"):
        notes["utilities"] = f"the utilities carry no signal: {m['no_signal']}"
    # which coin the *_random values are: 0 = an exact coin (P = 1/2 per query, log-prob runs), K = a fair coin with
    # K sampled answers per ordering (sampled runs; the paper's K = 10)
    headline["random_answers_per_ordering"] = base.get("samples_per_ordering")
    rows = fit.utilities()
    finite = [r for r in rows if math.isfinite(r["utility"])]
    top = TOP
    details = {
        "n_outcomes": m.get("n_outcomes"),
        "n_train_pairs": m.get("n_train_pairs"),
        "n_holdout_pairs": m.get("n_holdout_pairs"),
        "ci_method": m.get("ci_method"),
        "interval_note": interval_note(m),
        "dispersion": m.get("dispersion"),
        "answers_per_unit_weight": m.get("answers_per_unit_weight"),
        "position_term": m.get("position_term"),
        "random_responder": base.get("description"),
        "no_signal": m.get("no_signal"),
        "top": [_row(r) for r in finite[:top]],
        "bottom": [_row(r) for r in finite[-top:]],
        "by_category": _by_category(finite),
        "intervals": _holdout_intervals(fit, inputs.seed),
    }
    figures = {
        "utilities": {"rows": [_row(r) for r in finite], "ci_method": m.get("ci_method")},
        "coherence": {
            "metrics": [k for k in ("holdout_accuracy", "average_confidence", "order_gap") if headline.get(k) is not None],
            "values": {k: headline.get(k) for k in ("holdout_accuracy", "average_confidence", "order_gap")},
            "random": {k: headline.get(f"{k}_random") for k in ("holdout_accuracy", "average_confidence", "order_gap")},
            "random_label": base.get("description") or "random responder",
        },
    }
    return {"headline": headline, "notes": notes, "details": details, "figures": figures}


def _holdout_intervals(fit: FitResult, seed: int, resamples: int = 1000) -> dict[str, list[float]]:
    """95% percentile intervals of held-out accuracy and log loss over resampled holdout pairs (the pairs are the
    sampling unit; the fit is held fixed), so a leaderboard can tell a model from the random responder. Empty when
    fewer than 10 holdout pairs were answered."""
    from ue_metrics.coherence import accuracy, log_loss

    try:
        data = fit.data
        train, hold = data.train(), data.holdout()
        seen = np.zeros(data.n_outcomes, dtype=bool)
        seen[train.i] = True
        seen[train.j] = True
        hold = hold.subset(seen[hold.i] & seen[hold.j])
        if len(hold.y) < 10:
            return {}
        p = np.asarray(fit.model.predict_proba(np.column_stack([hold.i, hold.j])), dtype=float)
    except (AttributeError, IndexError, ValueError):  # a fit without pair data (e.g. rebuilt from a file): no interval
        return {}
    y = np.asarray(hold.y, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    acc = np.array([accuracy(p[k], y[k]) for k in idx])
    loss = np.array([log_loss(p[k], y[k]) for k in idx])
    return {
        "holdout_accuracy": np.percentile(acc, [2.5, 97.5]).tolist(),
        "holdout_log_loss": np.percentile(loss, [2.5, 97.5]).tolist(),
    }


def _both_orderings(records: Sequence[dict]) -> bool:
    """Whether some pair was asked in both orderings (order gap and position bias are measured on such pairs)."""
    seen: dict[tuple, set] = {}
    for r in records:
        key = (r.get("a_id"), r.get("b_id"), r.get("group", ""))
        seen.setdefault(key, set()).add(r.get("shown_first"))
        if len(seen[key]) == 2:
            return True
    return False


def _why_missing(key: str, m: Mapping[str, Any]) -> str:
    if key.startswith("holdout") and not m.get("n_holdout_pairs"):
        unseen = int(m.get("n_holdout_pairs_unseen") or 0)
        if unseen:
            return (
                f"none of the {unseen:,} answered holdout pairs can be predicted: each names an outcome that no "
                "training pair reaches; raise --budget"
            )
        return "no holdout pair was answered"
    if key == "cycle_rate":
        return "the comparison graph has no closed triangle"
    if key == "mean_label_mass":
        return "label mass exists only for log-prob records"
    return f"{key} could not be computed on these records"


def _row(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("id", "text", "category", "utility", "ci_low", "ci_high")}


def _by_category(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r.get("category") or "", []).append(float(r["utility"]))
    return {
        c: {"mean_utility": float(np.mean(v)), "n": len(v)} for c, v in sorted(groups.items(), key=lambda kv: -np.mean(kv[1]))
    }


def draw_utilities(data: Mapping[str, Any], fig: Any, label: int = 8) -> None:
    from ue_metrics.figures import PALETTE

    rows = data["rows"]
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))[::-1]
    u = np.array([r["utility"] for r in rows], dtype=float)
    lo = np.array([r["ci_low"] if r["ci_low"] is not None else np.nan for r in rows], dtype=float)
    hi = np.array([r["ci_high"] if r["ci_high"] is not None else np.nan for r in rows], dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], lo[ok], hi[ok], color=PALETTE[0], alpha=0.35, lw=1)
    ax.plot(u, y, "o", ms=2.5, color=PALETTE[0])
    for k in list(range(min(label, len(rows)))) + list(range(max(label, len(rows) - label), len(rows))):
        text = rows[k]["text"]
        text = text if len(text) <= 48 else text[:47] + "…"
        ax.annotate(text, (u[k], y[k]), xytext=(4, 0), textcoords="offset points", fontsize=6, va="center")
    ax.set_yticks([])
    ax.set_xlabel(f"utility (mean 0, sd 1; bars: {data.get('ci_method') or 'no'} interval)")
    ax.set_title(f"Utilities of {len(rows)} outcomes, highest at the top")


def draw_coherence(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    keys = data["metrics"]
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [data["values"][k] for k in keys], width=0.4, color=PALETTE[0], label="this model")
    ax.bar(
        x + 0.2,
        [data["random"][k] if data["random"][k] is not None else 0 for k in keys],
        width=0.4,
        color=RANDOM_COLOUR,
        label=data.get("random_label", "random"),
    )
    ax.set_xticks(x, [k.replace("_", " ") for k in keys])
    ax.set_ylim(0, 1)
    ax.set_title("Coherence next to a random responder")
    ax.legend(frameon=False, fontsize=8)


FIGURES = {"utilities": lambda data, fig: draw_utilities(data, fig), "coherence": draw_coherence}
# how to read each figure, one sentence (shown under it by `ue report`)
FIGURE_NOTES = {
    "utilities": "Each dot is one outcome's utility (mean 0, sd 1), highest at the top, with its interval as a faint bar; the "
    "labelled outcomes are those at both ends. A steep, well-separated curve means the model ranks outcomes "
    "consistently; a flat cloud of overlapping bars means it barely tells them apart.",
    "coherence": "Blue: this model; grey: a random responder on the same questions. Held-out accuracy and average confidence "
    "well above the grey bars mean coherent preferences; an order gap near 1 means the answer depends on which "
    "option is shown first, not on what it says.",
}

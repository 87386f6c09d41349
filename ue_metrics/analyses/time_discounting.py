"""Time discounting (Mazeika et al. 2025, §5; docs/method.md §4.9 — the analysis lived in the companion's absent notebook,
reconstructed here as §4.9 says). No Thurstonian fit: the records are the grid itself.

1. P(delayed) per cell (delay t, delayed amount $1,000·m) pooled over both orders (baseline shown as option A and
   as option B): in log-prob mode the mean of the two orders' probabilities of the delayed option; in sample mode
   the delayed answers over the parsed answers, with refusals and unparseable answers counted apart (the default,
   ``scoring=separate``) — or the companion's strict scoring (``scoring=strict``): only answers that are exactly
   the delayed option's letter count, over every answer, so a refusal or an "B." counts against waiting (§7.4, §7.7).
2. Per delay the indifference multiplier m*(t) where P(delayed) crosses 1/2: P is first made non-decreasing in m
   (isotonic regression, weighted by answers, so a noisy dip cannot make two crossings), then interpolated
   linearly in ln m between the last multiplier below 1/2 and the first at or above it. When P never crosses 1/2
   the delay is **censored** and left out of the fits, and says so: already ≥ 1/2 at the smallest multiplier (the
   model waits even for less money: m* ≤ m_min, D ≥ 1/m_min), below 1/2 at the largest (m* > m_max), or exactly
   1/2 everywhere (``flat``: an exact coin is indifferent to the amount).
3. D(t) = 1/m*(t); least-squares fits of the exponential D = e^(−k·t) and the hyperbolic D = 1/(1 + k·t) in D,
   their k, RMSE and R², and which fits better (``hyperbolic_better`` = 1 when the hyperbolic RMSE is lower).
4. Intervals on k: a bootstrap (``--option bootstrap``, default 200, seeded) — in sample mode over the answers
   (each query's answers resampled, P, m*, D and the fits recomputed), in log-prob mode, where a query's answer is
   exact, over the delays of the curve.

Headline: ``k_hyperbolic``, ``k_exponential`` (per month), ``rmse_hyperbolic``, ``rmse_exponential``,
``hyperbolic_better``, ``indifference_multiplier_12`` (m* at one year), ``n_delays_fitted``, ``n_censored``,
``choice_confidence`` (mean |P(delayed) − 1/2|·2 over cells: how decided the answers are) beside a fair coin's
``choice_confidence_random``, ``order_gap`` (mean |P(delayed | shown first) − P(delayed | shown second)|: 1 for a
model that always takes option A) and ``unparsed_rate`` (sample mode). A coin's P crosses 1/2 by chance, so its curve
is noise: low choice confidence and a large RMSE (negative R²) for both forms say so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import isotonic_regression, minimize_scalar

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

SCORINGS = ("separate", "strict")


@dataclass(frozen=True)
class Options(AnalysisOptions):
    scoring: str = "separate"  # how sampled answers count (SCORINGS: strict counts a refusal against waiting)
    bootstrap: int = 200  # resamples of the answers for the intervals on k

    def __post_init__(self) -> None:
        super().__post_init__()
        self.choice("scoring", SCORINGS)
        self.whole("bootstrap")


# ----------------------------------------------------------------------------------------------------------
# the curve


def indifference(multipliers: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, str]:
    """(m*, status) for one delay: status ``ok``, ``below`` (P ≥ 1/2 already at the smallest multiplier: m* ≤ m_min,
    returned as m_min), ``above`` (P < 1/2 everywhere: m* > m_max, returned as m_max) or ``flat`` (P = 1/2 at every
    multiplier). A flat stretch at exactly 1/2 inside the grid gives its middle in ln m."""
    order = np.argsort(multipliers)
    m, p = multipliers[order], p[order]
    w = np.ones(len(p)) if weights is None else weights[order]
    keep = np.isfinite(p) & (w > 0)
    m, p, w = m[keep], p[keep], w[keep]
    if len(m) == 0:
        return float("nan"), "empty"
    iso = isotonic_regression(p, weights=w, increasing=True).x
    above = np.flatnonzero(iso >= 0.5)
    if len(above) == 0:
        return float(m[-1]), "above"
    k = int(above[0])
    if iso[k] == 0.5:  # a flat run at exactly 1/2 (pooled by the isotonic fit): its middle in ln m
        j = k
        while j + 1 < len(iso) and iso[j + 1] == 0.5:
            j += 1
        if k == 0 and j == len(iso) - 1:
            return float("nan"), "flat"  # P = 1/2 at every multiplier: no indifference point at all
        if k > 0:
            return float(math.exp((math.log(m[k]) + math.log(m[j])) / 2)), "ok"
    if k == 0:
        return float(m[0]), "below"
    lm0, lm1 = math.log(m[k - 1]), math.log(m[k])
    frac = (0.5 - iso[k - 1]) / (iso[k] - iso[k - 1])
    return float(math.exp(lm0 + frac * (lm1 - lm0))), "ok"


def exponential(t: np.ndarray, k: float) -> np.ndarray:
    return np.exp(-k * t)


def hyperbolic(t: np.ndarray, k: float) -> np.ndarray:
    return 1.0 / (1.0 + k * t)


FORMS = {"exponential": exponential, "hyperbolic": hyperbolic}


def fit_form(form: str, t: np.ndarray, d: np.ndarray) -> dict[str, float]:
    """Least-squares k of one discount form on D(t): k, RMSE and R² (k = 0 when no delay is above 0)."""
    f = FORMS[form]
    tmax = float(t.max()) if len(t) else 0.0
    if tmax <= 0:
        return {"k": 0.0, "rmse": float(np.sqrt(np.mean((d - 1.0) ** 2))) if len(d) else float("nan"), "r2": float("nan")}
    low = -0.99 / tmax if form == "hyperbolic" else -math.log(50.0) / tmax

    def sse(k: float) -> float:
        return float(((f(t, k) - d) ** 2).sum())

    high = 10.0
    res = minimize_scalar(sse, bounds=(low, high), method="bounded", options={"xatol": 1e-9})
    k = float(res.x)
    resid = f(t, k) - d
    sst = float(((d - d.mean()) ** 2).sum())
    return {
        "k": k,
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "r2": (1 - float((resid**2).sum()) / sst) if sst > 0 else float("nan"),
        "at_bound": bool(min(k - low, high - k) < 1e-4 * (high - low)),
    }


def curve(cells: Sequence[dict], p: np.ndarray, w: np.ndarray) -> list[dict[str, Any]]:
    """Per delay: m*, D = 1/m*, the status (ok / below / above / flat / empty)."""
    by_delay: dict[int, list[int]] = defaultdict(list)
    for k, c in enumerate(cells):
        by_delay[c["delay"]].append(k)
    out = []
    for t in sorted(by_delay):
        idx = by_delay[t]
        m_star, status = indifference(np.array([cells[k]["multiplier"] for k in idx]), p[idx], w[idx])
        out.append(
            {"delay": t, "m_star": m_star, "d": (1.0 / m_star) if m_star and math.isfinite(m_star) else None, "status": status}
        )
    return out


def fits(points: Sequence[dict]) -> dict[str, dict[str, float]] | None:
    ok = [q for q in points if q["status"] == "ok"]
    if len(ok) < 2 or len({q["delay"] for q in ok}) < 2:
        return None
    t = np.array([q["delay"] for q in ok], dtype=float)
    d = np.array([q["d"] for q in ok], dtype=float)
    return {form: fit_form(form, t, d) for form in FORMS}


# ----------------------------------------------------------------------------------------------------------
# records → cells


def cells_of(records: Sequence[dict]) -> tuple[list[dict], dict[str, Any]]:
    """One entry per (delay, amount) with its per-order answers: log-prob P(delayed) per order, or the vote counts
    [exact delayed, other delayed, other parsed, unparsed] per order, and whether exact counts were recorded."""
    cells: dict[tuple[int, int], dict] = {}
    info = {"modes": set(), "exact_known": True, "n_answers": 0, "n_unparsed": 0}
    for r in records:
        attrs = {"a": r.get("a_attributes") or {}, "b": r.get("b_attributes") or {}}
        roles = {side: attrs[side].get("role") for side in "ab"}
        if sorted(roles.values(), key=str) != ["baseline", "delayed"]:
            continue
        side = "a" if roles["a"] == "delayed" else "b"
        delayed = attrs[side]
        key = (int(delayed["delay"]), int(delayed["amount"]))
        cell = cells.setdefault(
            key, {"delay": key[0], "amount": key[1], "multiplier": float(delayed["multiplier"]), "p": {}, "votes": {}}
        )
        order = "delayed_first" if r["shown_first"] == side else "delayed_second"
        info["modes"].add(r["mode"])
        if r["mode"] == "logprob":
            cell["p"][order] = float(r["p_a"]) if side == "a" else 1.0 - float(r["p_a"])
            info["n_answers"] += 1
            continue
        d, o = (r["n_a"], r["n_b"]) if side == "a" else (r["n_b"], r["n_a"])
        exact = r.get(f"n_{side}_exact")
        if exact is None:
            info["exact_known"] = False
            exact = d
        cell["votes"][order] = np.array([exact, d - exact, o, r["n_unparsed"]], dtype=float)
        info["n_answers"] += d + o + r["n_unparsed"]
        info["n_unparsed"] += r["n_unparsed"]
    info["modes"] = sorted(info["modes"])
    return [cells[k] for k in sorted(cells)], info


def p_delayed(cells: Sequence[dict], mode: str, scoring: str, votes: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P(delayed), weight) per cell, pooled over both orders."""
    p = np.full(len(cells), np.nan)
    w = np.zeros(len(cells))
    for k, c in enumerate(cells):
        if mode == "logprob":
            values = list(c["p"].values())
            if values:
                p[k], w[k] = float(np.mean(values)), float(len(values))
            continue
        v = sum((votes[k] if votes is not None else c["votes"]).values(), np.zeros(4))
        if scoring == "strict":
            total = v.sum()
            if total > 0:
                p[k], w[k] = v[0] / total, total
        else:
            parsed = v[:3].sum()
            if parsed > 0:
                p[k], w[k] = (v[0] + v[1]) / parsed, parsed
    return p, w


# ----------------------------------------------------------------------------------------------------------


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    """The time-discounting analysis of one run: P(delayed) per (delay, multiplier) cell, the indifference points
    m*(t), hyperbolic and exponential fits of D(t) = 1/m* with bootstrap intervals, the headline and the figures."""
    scoring, resamples = options.scoring, options.bootstrap
    rng = np.random.default_rng([inputs.seed, 9173])
    cells, info = cells_of(records)
    if not cells:
        raise UserError(
            "no record compares the baseline with a delayed amount; are these records from the time_discounting "
            "experiment (its outcomes carry role/amount/delay attributes)?"
        )
    if len(info["modes"]) > 1:
        raise UserError("these records mix log-prob and sampled answers; analyse each mode separately")
    mode = info["modes"][0]
    notes: dict[str, str] = {}
    if scoring == "strict" and mode == "logprob":
        notes["scoring"] = "strict scoring applies to sampled answers; log-prob records have no refusals to count"
    if scoring == "strict" and mode == "sample" and not info["exact_known"]:
        notes["scoring"] = (
            "these records do not say which answers were exactly a letter; strict scoring counts every "
            "parsed answer as exact (refusals still count against waiting)"
        )

    p, w = p_delayed(cells, mode, scoring)
    points = curve(cells, p, w)
    fitted = fits(points)
    boot = _bootstrap(cells, points, fitted, mode, scoring, resamples, rng)
    headline, censored = _headline(cells, info, mode, p, points, fitted, notes)
    gaps = _order_gaps(cells, mode)
    headline["order_gap"] = float(np.mean(np.abs(gaps))) if gaps else None
    if headline["order_gap"] is None:
        notes["order_gap"] = "no cell was answered in both orders"
    multipliers = sorted({c["multiplier"] for c in cells})
    delays = sorted({c["delay"] for c in cells})
    lookup = {(c["delay"], c["multiplier"]): float(p[k]) if math.isfinite(p[k]) else None for k, c in enumerate(cells)}
    details = {
        "mode": mode,
        "scoring": scoring if mode == "sample" else "log-prob (exact P per order)",
        "n_cells": len(cells),
        "delays": delays,
        "multipliers": multipliers,
        "interpolation": "isotonic (non-decreasing in m, answer-weighted), then linear in ln m at P = 1/2",
        "censoring": "delays where P(delayed) never crosses 1/2 are left out of the fits (status below: m* ≤ smallest "
        "multiplier; above: m* > largest)",
        "curve": points,
        "censored": [{"delay": q["delay"], "status": q["status"], "bound": _censor_text(q["status"])} for q in censored],
        "fits": fitted,
        "bootstrap": {
            "resamples": resamples,
            "over": "answers within each query" if mode == "sample" else "delays of the curve",
            "k_hyperbolic_interval": _interval(boot["hyperbolic"]),
            "k_exponential_interval": _interval(boot["exponential"]),
            "hyperbolic_better_share": float(np.mean(boot["hyperbolic_better"])) if boot["hyperbolic_better"] else None,
        },
        "order_gap_signed": float(np.mean(gaps)) if gaps else None,
        "order_gap_definition": "per cell P(delayed | delayed shown first) − P(delayed | delayed shown second); headline: mean of its absolute value, signed: its mean",
        "exact_counts_recorded": info["exact_known"] if mode == "sample" else None,
    }
    figures = {
        "p_delayed": {
            "delays": delays,
            "multipliers": multipliers,
            "p": [[lookup.get((t, m)) for m in multipliers] for t in delays],
            "m_star": [q["m_star"] if q["status"] == "ok" else None for q in points],
            "scoring": details["scoring"],
        },
        "discount_curve": {
            "points": points,
            "fits": fitted,
            "k_intervals": {f: _interval(boot[f]) for f in FORMS},
            "m_range": [multipliers[0], multipliers[-1]],
        },
    }
    return {"headline": headline, "notes": notes, "details": details, "figures": figures}


def _bootstrap(
    cells: list[dict], points: list[dict], fitted: dict | None, mode: str, scoring: str, resamples: int, rng: np.random.Generator
) -> dict[str, list[float]]:
    """The fits' k (and which form fits better) over resamples: of the answers (sample mode) or of the delays
    (log-prob mode)."""
    boot: dict[str, list[float]] = {"hyperbolic": [], "exponential": [], "hyperbolic_better": []}
    if resamples > 0 and fitted is not None:
        ok = [q for q in points if q["status"] == "ok"]
        for _ in range(resamples):
            if mode == "sample":
                votes = []
                for c in cells:
                    drawn = {}
                    for order, v in c["votes"].items():
                        total = int(v.sum())
                        drawn[order] = rng.multinomial(total, v / total).astype(float) if total else v
                    votes.append(drawn)
                pb, wb = p_delayed(cells, mode, scoring, votes)
                fb = fits(curve(cells, pb, wb))
            else:
                pick = [ok[k] for k in rng.integers(0, len(ok), len(ok))]
                fb = fits(pick)
            if fb is None:
                continue
            for form in FORMS:
                boot[form].append(fb[form]["k"])
            boot["hyperbolic_better"].append(float(fb["hyperbolic"]["rmse"] < fb["exponential"]["rmse"]))
    return boot


def _interval(values: list[float]) -> list[float | None]:
    if len(values) < 2:
        return [None, None]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def _headline(
    cells: list[dict], info: dict, mode: str, p: np.ndarray, points: list[dict], fitted: dict | None, notes: dict[str, str]
) -> tuple[dict[str, Any], list[dict]]:
    """The headline (without the order gap) and the censored delays; what is not defined gets its note."""
    censored = [q for q in points if q["status"] in ("below", "above", "flat")]
    headline: dict[str, Any] = {
        "k_hyperbolic": fitted["hyperbolic"]["k"] if fitted else None,
        "k_exponential": fitted["exponential"]["k"] if fitted else None,
        "rmse_hyperbolic": fitted["hyperbolic"]["rmse"] if fitted else None,
        "rmse_exponential": fitted["exponential"]["rmse"] if fitted else None,
        "hyperbolic_better": None,
        "indifference_multiplier_12": None,
        "n_delays_fitted": sum(q["status"] == "ok" for q in points),
        "n_censored": len(censored),
        "unparsed_rate": info["n_unparsed"] / info["n_answers"] if mode == "sample" and info["n_answers"] else None,
    }
    if fitted is None:
        why = (
            f"fewer than two delays have an indifference point ({len(censored)} of {len(points)} censored: P(delayed) "
            "never crosses 1/2 there), so no discount curve can be fitted"
        )
        for key in ("k_hyperbolic", "k_exponential", "rmse_hyperbolic", "rmse_exponential", "hyperbolic_better"):
            notes[key] = why
    else:
        for form in FORMS:
            if fitted[form]["at_bound"]:
                notes[f"k_{form}"] = (
                    f"the {form} fit ran into the edge of its search range (k = {fitted[form]['k']:.3g}): D(t) does not follow it"
                )
        if all(not fitted[form]["r2"] > 0 for form in FORMS):
            notes["hyperbolic_better"] = (
                "neither form explains D(t) (R² ≤ 0 for both): the indifference points do not fall with "
                "the delay, so which form 'fits better' says little"
            )
        gap = fitted["exponential"]["rmse"] - fitted["hyperbolic"]["rmse"]
        if abs(gap) <= 1e-9:
            notes["hyperbolic_better"] = "both forms fit equally well (no discounting to tell them apart)"
        else:
            headline["hyperbolic_better"] = int(gap > 0)
    at12 = next((q for q in points if q["delay"] == 12), None)
    if at12 is None:
        notes["indifference_multiplier_12"] = "12 months is not one of this run's delays"
    elif at12["status"] != "ok":
        notes["indifference_multiplier_12"] = f"P(delayed) never crosses 1/2 at 12 months ({_censor_text(at12['status'])})"
    else:
        headline["indifference_multiplier_12"] = at12["m_star"]
    # how decided the answers are: mean |P − 1/2|·2 over cells (1: always one option; 0: a coin), beside a fair coin's
    usable = np.isfinite(p)
    headline["choice_confidence"] = float(np.mean(np.abs(p[usable] - 0.5) * 2)) if usable.any() else None
    headline["choice_confidence_random"] = coin_confidence(cells, mode)
    if headline["choice_confidence"] is None:
        notes["choice_confidence"] = "no cell has a usable answer"
    if headline["unparsed_rate"] is None:
        notes["unparsed_rate"] = "log-prob mode reads label probabilities: there are no unparsed answers"
    return headline, censored


def _order_gaps(cells: list[dict], mode: str) -> list[float]:
    """Order effect per cell: P(delayed) when the delayed option is shown first minus when it is shown second."""
    gaps = [c["p"]["delayed_first"] - c["p"]["delayed_second"] for c in cells if len(c["p"]) == 2]
    if mode == "sample":
        for c in cells:
            if len(c["votes"]) == 2:
                f, s = c["votes"]["delayed_first"], c["votes"]["delayed_second"]
                if f[:3].sum() and s[:3].sum():
                    gaps.append((f[0] + f[1]) / f[:3].sum() - (s[0] + s[1]) / s[:3].sum())
    return gaps


def coin_confidence(cells: Sequence[dict], mode: str) -> float:
    """A fair coin's expected choice confidence: 0 for an exact coin (log-prob), E|2X/n − 1| for X ~ Bin(n, 1/2)
    with n the typical number of answers per cell (sample mode)."""
    if mode == "logprob":
        return 0.0
    from ue_metrics.coherence import fair_coin_mean_abs_deviation

    counts = [int(sum(v[:3].sum() for v in c["votes"].values())) for c in cells]
    n = int(np.median(counts)) if counts else 0
    if n <= 0:
        return 0.0
    return 2 * fair_coin_mean_abs_deviation(n) / n  # E|2X/n − 1| = 2·E|X − n/2|/n, closed form at any n


def _censor_text(status: str) -> str:
    return {
        "below": "P ≥ 1/2 already at the smallest multiplier: m* at or below it",
        "above": "P < 1/2 even at the largest multiplier: m* above it",
        "empty": "no usable answer",
        "flat": "P = 1/2 at every multiplier: indifferent to the amount",
    }.get(status, status)


# ----------------------------------------------------------------------------------------------------------
# figures


def draw_p_delayed(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE

    ax = fig.add_subplot(1, 1, 1)
    grid = np.array([[np.nan if v is None else v for v in row] for row in data["p"]], dtype=float)
    m = np.asarray(data["multipliers"], dtype=float)
    t = np.asarray(data["delays"], dtype=float)
    lm = np.log(m)
    edges_m = (
        np.concatenate([[lm[0] - (lm[1] - lm[0]) / 2], (lm[:-1] + lm[1:]) / 2, [lm[-1] + (lm[-1] - lm[-2]) / 2]])
        if len(lm) > 1
        else np.array([lm[0] - 0.5, lm[0] + 0.5])
    )
    edges_t = (
        np.concatenate([[t[0] - 0.5], (t[:-1] + t[1:]) / 2, [t[-1] + 0.5]]) if len(t) > 1 else np.array([t[0] - 0.5, t[0] + 0.5])
    )
    mesh = ax.pcolormesh(np.exp(edges_m), edges_t, grid, cmap="RdBu_r", vmin=0, vmax=1, shading="flat")
    ax.set_xscale("log")
    star = [(s, d) for s, d in zip(data["m_star"], t) if s is not None]
    if star:
        ax.plot([s for s, _ in star], [d for _, d in star], "-", color=PALETTE[4], lw=1.5, label="indifference m*(t)")
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.colorbar(mesh, ax=ax, label="P(choose the delayed amount)")
    ax.set_xlabel("delayed amount / $1,000 now (multiplier, log scale)")
    ax.set_ylabel("delay (months)")
    ax.set_title(f"P(delayed) over the grid ({data.get('scoring')})", fontsize=8)


def draw_discount_curve(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE

    ax = fig.add_subplot(1, 1, 1)
    pts = data["points"]
    ok = [q for q in pts if q["status"] == "ok"]
    ax.plot([q["delay"] for q in ok], [q["d"] for q in ok], "o", ms=3, color=PALETTE[5], label="D(t) = 1/m*(t)")
    lo_m, hi_m = data["m_range"]
    below = [q["delay"] for q in pts if q["status"] == "below"]
    above = [q["delay"] for q in pts if q["status"] == "above"]
    if below:
        ax.plot(below, [1 / lo_m] * len(below), "^", ms=4, color="#999999", label=f"censored: D ≥ {1 / lo_m:.2f}")
    if above:
        ax.plot(above, [1 / hi_m] * len(above), "v", ms=4, color="#999999", label=f"censored: D < {1 / hi_m:.3f}")
    fitted = data.get("fits")
    if fitted:
        tmax = max([q["delay"] for q in pts] + [1])
        t = np.linspace(0, tmax, 200)
        for form, colour in (("hyperbolic", PALETTE[0]), ("exponential", PALETTE[1])):
            f = fitted[form]
            lo, hi = data["k_intervals"].get(form, [None, None])
            ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None else ""
            curve_ = FORMS[form](t, f["k"])
            ax.plot(t, curve_, "-", color=colour, lw=1.4, label=f"{form}: k = {f['k']:.3g}{ci}/month, RMSE {f['rmse']:.3f}")
    ax.set_xlabel("delay t (months)")
    ax.set_ylabel("discount factor D(t)")
    ax.set_title("Discount curve: exponential e^(−kt) and hyperbolic 1/(1+kt)", fontsize=8)
    ax.legend(frameon=False, fontsize=7)


FIGURES = {"p_delayed": draw_p_delayed, "discount_curve": draw_discount_curve}

"""Expected utility (Mazeika et al. 2025, §4 "expected utility"; docs/method.md §4.3): do a model's utilities of lotteries
equal the expected utilities of their outcomes?

For every lottery L (an outcome whose attribute ``lottery`` lists its components ``[{"id", "p"}]``) with fitted
utilities μ: EU(L) = Σₖ pₖ·μ(oₖ) and U(L) = μ(L). Headline, each beside a random responder's value:

- ``eu_correlation``: Pearson r between U(L) and EU(L) over the lotteries (``eu_correlation_p`` its two-sided
  p-value; ``eu_correlation_ci_low``/``_high`` a 95% percentile interval from the fit's bootstrap resamples — each
  resample's utilities give one r; option ``bootstrap`` = B, 0 for none);
- ``eu_mae_normalized``: mean |z(U) − z(EU)| with z standardising each vector over the lotteries (population sd);
  a responder unrelated to expected utility gives about 2/√π ≈ 1.13 (independent standard normals);
- ``eu_pair_agreement``: the share of lottery pairs (L, M) whose order EU predicts, sign(EU_L − EU_M) =
  sign(U_L − U_M), a pair also holding when both differences are below 10⁻⁶. The paper samples up to 1,000 pairs
  (option ``pairs``; ``all`` compares every pair) — here from a generator seeded with the run's seed (the companion's
  was unseeded);
- ``eu_probability_weight``: not in the paper. Regressing U on EU and on the plain mean M of the components' utilities,
  U ≈ a + β·EU + γ·M, it is β / (|β| + |γ|): 1 when the probabilities are used as expected utility uses them, 0 when
  they are ignored. r alone cannot tell these apart well: with probabilities drawn as the paper draws them a
  probability-blind agent still has r ≈ 0.9 (EU and M share their outcomes).
- ``n_lotteries``: lotteries whose outcomes all have a utility in the same fitted component.

Lotteries, implicit or explicit, are read from outcome attributes only: the same analysis serves
``expected_utility_implicit`` (an uncertain event and its sub-outcomes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

HEADLINE = (
    "eu_correlation",
    "eu_correlation_ci_low",
    "eu_correlation_ci_high",
    "eu_correlation_p",
    "eu_correlation_random",
    "eu_mae_normalized",
    "eu_mae_normalized_random",
    "eu_pair_agreement",
    "eu_pair_agreement_random",
    "eu_probability_weight",
    "n_lotteries",
)
MAE_RANDOM = 2 / math.sqrt(math.pi)  # E|X − Y| for independent standard normals X, Y
TIE = 1e-6


@dataclass(frozen=True)
class Options(AnalysisOptions):
    bootstrap: int = 100  # the fit's bootstrap resamples, each giving one r for the interval (0: no interval)
    pairs: int | str = 1000  # lottery pairs compared for the pair agreement: a number drawn, or "all"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.whole("bootstrap")
        if self.pairs != "all" and not (isinstance(self.pairs, int) and self.pairs >= 1):
            raise UserError(f"--option pairs must be a whole number ≥ 1 or 'all', got {self.pairs!r}")


def lotteries(outcomes: Mapping[str, dict]) -> list[dict[str, Any]]:
    """``[{"id", "components": [(id, p)], "size"}]`` of every outcome with a ``lottery`` attribute."""
    out = []
    for oid, entry in outcomes.items():
        parts = (entry.get("attributes") or {}).get("lottery")
        if parts:
            out.append({"id": oid, "components": [(str(c["id"]), float(c["p"])) for c in parts], "size": len(parts)})
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def pair_indices(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """All pairs (i < j) of n items, or ``limit`` distinct ones drawn uniformly when there are more."""
    i, j = np.triu_indices(n, 1)
    if limit is not None and len(i) > limit:
        keep = np.sort(rng.choice(len(i), size=limit, replace=False))
        i, j = i[keep], j[keep]
    return np.column_stack([i, j])


def pair_agreement(eu: np.ndarray, u: np.ndarray, pairs: np.ndarray) -> float:
    d_eu = eu[pairs[:, 0]] - eu[pairs[:, 1]]
    d_u = u[pairs[:, 0]] - u[pairs[:, 1]]
    holds = (np.sign(d_eu) == np.sign(d_u)) | ((np.abs(d_eu) < TIE) & (np.abs(d_u) < TIE))
    return float(holds.mean()) if len(pairs) else float("nan")


def probability_weight(
    u: np.ndarray, eu: np.ndarray, plain: np.ndarray, what: str = "lottery"
) -> tuple[float | None, dict[str, float], str]:
    """β / (|β| + |γ|) of U ≈ a + β·EU + γ·M, its coefficients, and the reason when it is None (fewer than 4
    lotteries, EU indistinguishable from M, or neither explaining U)."""
    if len(u) < 4:
        return None, {}, f"the regression needs at least 4 {what}s, there are {len(u)}"
    if np.std(eu - plain) < 1e-9 * max(1.0, float(np.std(eu))):
        return (
            None,
            {},
            (
                f"every {what}'s expected utility equals the plain mean of its outcomes (equal probabilities), "
                "so their weight cannot be told apart"
            ),
        )
    X = np.column_stack([np.ones_like(u), eu, plain])
    coef, *_ = np.linalg.lstsq(X, u, rcond=None)
    beta, gamma = float(coef[1]), float(coef[2])
    scale = abs(beta) + abs(gamma)
    if scale < 1e-9:
        return None, {"beta": beta, "gamma": gamma}, "neither the expected utility nor the plain mean explains the utilities"
    return beta / scale, {"beta": beta, "gamma": gamma}, ""


# the random responder's values, and the headline keys that need lotteries to compare with
RANDOM_HEADLINE = {"eu_correlation_random": 0.0, "eu_mae_normalized_random": MAE_RANDOM, "eu_pair_agreement_random": 0.5}
LOTTERY_KEYS = (
    "eu_correlation",
    "eu_correlation_ci_low",
    "eu_correlation_ci_high",
    "eu_correlation_p",
    "eu_mae_normalized",
    "eu_pair_agreement",
    "eu_probability_weight",
)


def analyse_lotteries(
    records: Sequence[dict],
    outcomes: Mapping[str, dict],
    fit: FitResult | None,
    options: Options,
    inputs: Inputs,
    what: str = "lottery",
) -> dict:
    """The analysis for lotteries (``what`` names them in notes and figures: lottery, event)."""
    headline: dict[str, Any] = {**RANDOM_HEADLINE}
    notes: dict[str, str] = {}
    found = lotteries(outcomes)
    if fit is None:
        reason = "the analysis needs a Thurstonian fit of the records"
        return {
            "headline": {**headline, **dict.fromkeys(LOTTERY_KEYS), "n_lotteries": 0},
            "notes": dict.fromkeys(LOTTERY_KEYS, reason),
            "details": {},
            "figures": {},
        }
    index = {oid: k for k, oid in enumerate(fit.data.ids)}
    mu = np.asarray(fit.model.utilities_, dtype=float)
    comp = np.asarray(getattr(fit.model, "components_", np.zeros(len(mu), dtype=int)))
    rows, skipped = [], []
    for lot in found:
        ids = [lot["id"]] + [c for c, _ in lot["components"]]
        ks = [index.get(i) for i in ids]
        if any(k is None or not math.isfinite(mu[k]) for k in ks) or len({int(comp[k]) for k in ks}) > 1:
            skipped.append(lot["id"])
            continue
        rows.append({**lot, "k": ks[0], "parts": np.array(ks[1:]), "p": np.array([p for _, p in lot["components"]])})
    n = len(rows)
    headline["n_lotteries"] = n
    if n < 3:
        reason = f"only {n} {what}(s) have a fitted utility together with all their outcomes (need 3); " + (
            "are the records from this experiment?" if not found else "the budget may be too small to connect them"
        )
        headline.update(dict.fromkeys(LOTTERY_KEYS))
        notes.update(dict.fromkeys(LOTTERY_KEYS, reason))
        return {"headline": headline, "notes": notes, "details": {"skipped": skipped}, "figures": {}}

    def measure(util: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.array([util[r["k"]] for r in rows])
        eu = np.array([r["p"] @ util[r["parts"]] for r in rows])
        plain = np.array([util[r["parts"]].mean() for r in rows])
        return u, eu, plain

    u, eu, plain = measure(mu)
    r = _pearson(u, eu)
    headline["eu_correlation"] = r
    if math.isfinite(r) and n > 2:
        from scipy import stats

        headline["eu_correlation_p"] = float(stats.pearsonr(u, eu).pvalue)
    else:
        headline["eu_correlation_p"] = None
        notes["eu_correlation_p"] = notes["eu_correlation"] = f"the {what} utilities or their expected utilities do not vary"
        headline["eu_correlation"] = None
    headline["eu_mae_normalized"] = float(np.abs(_z(u) - _z(eu)).mean())
    limit = None if options.pairs == "all" else int(options.pairs)
    rng = np.random.default_rng([inputs.seed, 2718])
    pairs = pair_indices(n, limit, rng)
    headline["eu_pair_agreement"] = pair_agreement(eu, u, pairs)
    weight, coef, why = probability_weight(u, eu, plain, what)
    headline["eu_probability_weight"] = weight
    if weight is None:
        notes["eu_probability_weight"] = why
    draws = getattr(fit.model, "bootstrap_utilities_", None)
    boot_r: list[float] = []
    if draws is not None and np.ndim(draws) == 2 and np.shape(draws)[1] == len(mu):
        for row in np.asarray(draws, dtype=float):
            if np.isfinite(row[[x["k"] for x in rows]]).all():
                bu, beu, _ = measure(row)
                value = _pearson(bu, beu)
                if math.isfinite(value):
                    boot_r.append(value)
    if len(boot_r) >= 2:
        headline["eu_correlation_ci_low"], headline["eu_correlation_ci_high"] = (
            float(x) for x in np.percentile(boot_r, [2.5, 97.5])
        )
    else:
        headline["eu_correlation_ci_low"] = headline["eu_correlation_ci_high"] = None
        notes["eu_correlation_ci_low"] = notes["eu_correlation_ci_high"] = (
            "the fit was not bootstrapped (--option bootstrap=B sets the number of resamples)"
        )
    table = [
        {
            "id": x["id"],
            "size": x["size"],
            "u": float(a),
            "eu": float(b),
            "plain_mean": float(c),
            "components": [{"id": cid, "p": p, "utility": float(mu[index[cid]])} for cid, p in x["components"]],
            "text": outcomes.get(x["id"], {}).get("text", ""),
        }
        for x, a, b, c in zip(rows, u, eu, plain)
    ]
    worst = sorted(table, key=lambda t: -abs(t["u"] - t["eu"]))[:10]
    details = {
        "what": what,
        "n_found": len(found),
        "skipped": skipped,
        "pairs_compared": int(len(pairs)),
        "pairs_rule": "all pairs"
        if limit is None or len(pairs) < limit
        else f"{limit} pairs drawn uniformly (seed {inputs.seed})",
        "bootstrap_resamples": len(boot_r),
        "regression": coef,
        "largest_gaps": worst,
        "lotteries": table,
    }
    headline = {k: headline[k] for k in HEADLINE}
    figures = {
        "eu_scatter": {
            "what": what,
            "r": headline["eu_correlation"],
            "points": [{"eu": t["eu"], "u": t["u"], "size": t["size"]} for t in table],
        }
    }
    return {"headline": headline, "notes": notes, "details": details, "figures": figures}


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    return analyse_lotteries(records, outcomes, fit, options, inputs, what="lottery")


def draw_eu_scatter(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE

    ax = fig.add_subplot(1, 1, 1)
    pts = data["points"]
    eu = np.array([p["eu"] for p in pts])
    u = np.array([p["u"] for p in pts])
    sizes = np.array([p["size"] for p in pts])
    for c, size in enumerate(sorted(set(sizes.tolist()))):
        sel = sizes == size
        ax.scatter(eu[sel], u[sel], s=14, color=PALETTE[c % len(PALETTE)], label=f"{size} outcomes", alpha=0.85)
    lo, hi = float(min(eu.min(), u.min())), float(max(eu.max(), u.max()))
    pad = 0.05 * (hi - lo or 1)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#555555", lw=1, ls="--", label="U = EU")
    what = data.get("what", "lottery")
    plural = {"lottery": "lotteries"}.get(what, what + "s")
    ax.set_xlabel(f"expected utility of the {what}'s outcomes, Σ p·μ")
    ax.set_ylabel(f"utility of the {what}, μ")
    r = data.get("r")
    ax.set_title(f"Expected utility: {len(pts)} {plural}" + (f", r = {r:.3f}" if r is not None else ""))
    ax.legend(frameon=False, fontsize=8)


FIGURES = {"eu_scatter": draw_eu_scatter}

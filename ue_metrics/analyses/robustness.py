"""Robustness: how much of a model's utilities survives a change of wording (docs/robustness.md).

Input: the records of one plan of pairs asked under several prompt variants (the record's ``group`` names the
variant: a paraphrase of the instruction, another framing, no system message, option B displayed above option A),
both orderings each. Every variant is fitted on its own (a Thurstonian fit of its records alone).

Across variants:
- ``mean_spearman`` / ``min_spearman`` (and Pearson): the rank correlation of two variants' utilities, averaged
  over (and the lowest of) all pairs of variants, with percentile intervals from resampling the outcomes;
- ``flip_rate``: over pairs of variants, the share of pairs of outcomes whose preferred outcome (both orderings
  pooled) is not the same in the two variants (exact ties left out);
- per-outcome rank spread: the highest minus the lowest rank an outcome gets across variants (the outcomes that
  move most are listed);
- a decomposition of the answers into four factors: ``content`` (one utility per outcome shared by every variant),
  ``variant`` (each variant's own deviation of every outcome's utility, with a standard-normal prior), ``label``
  (a pull toward the first answer label, one for each set of labels the variants use: "A" of A/B, "1" of 1/2, "X" of
  X/Y — a model drawn to the letter "A" but not to the digit "1" is label-bound too; a record's labels are its
  ``labels`` field, A/B when it has none) and ``position`` (a pull toward the option displayed first; it differs
  from the label only in variants that display the second label first, such as option B above option A). A logistic regression of the probability of choosing an
  outcome on these factors is fitted for every subset of them; the share of content, label and position is each
  one's Shapley value — its average drop in deviance when added, over every order of adding the three — and the
  variant factor's is its drop when added last (an interaction of outcome and wording comes after the shared
  utilities). Each factor's drop is taken beyond the drop it gives on a fair coin's answers of the same design
  (sampled answers carry noise that a factor with many parameters fits in part), and divided by the sum of these
  excess drops. ``unexplained_share`` is 1 − that sum over a fair coin's deviance;
- each pair of outcomes is **robust** when every variant and ordering prefers the same outcome by at least
  ``margin`` (0.1: P ≥ 0.6), **indifferent** when it is not robust and its preference pooled over all variants and
  orderings lies within 0.5 ± ``margin``, and **fragile** otherwise (the preferred outcome changes with the
  ordering or the wording) — after Yin, Vardi and Choudhary's robust / fragile / indifferent classes.
- ``wording_sd``: the size of a per-variant perturbation of the utilities that would give the mean Pearson
  correlation seen, in units of the utilities' own spread: √((1 − r)/r) (utilities u + ε_v with ε_v of that
  spread correlate at r = 1/(1 + sd²)).

Next to them the values of a fair coin: a Spearman correlation of 0 and a flip rate of 0.5 in expectation.
The verdict: "no signal" when the four factors explain under 5 % of a coin's deviance; "utilities stable across
wording" when content is the largest share and the variant share is under 0.1 (the correlations do not decide: sampled
answers lower them even for a model whose utilities ignore the wording); "wording-bound" when content is the largest
share otherwise; else the largest of the label, position and variant
factors names it ("label-bound", "position-bound", "wording-bound").
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

FACTORS = ("content", "variant", "label", "position")
DEFAULT_LABELS = ("A", "B")
MARGIN = 0.1
STABLE_VARIANT = 0.1
NO_SIGNAL = 0.05
BOOTSTRAP = 200
COIN = {"mean_spearman": 0.0, "flip_rate": 0.5}
UNPARSED = "exclude"  # an unparseable answer is left out of every count


@dataclass(frozen=True)
class Options(AnalysisOptions):
    margin: float = MARGIN  # |P − 1/2| below which a pair's preference counts as no preference
    bootstrap: int = BOOTSTRAP  # resamples of the cross-variant correlations' intervals

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.margin < 0.5:
            raise UserError(f"--option margin must be a number in [0, 0.5), got {self.margin!r}")
        self.whole("bootstrap")


def variant_of(record: Mapping[str, Any]) -> str:
    """The prompt variant a record was asked under (its ``group``; its template when no group is recorded)."""
    return str(record.get("group") or record.get("template") or "")


def _choice(r: Mapping[str, Any], unparsed: str) -> tuple[float, float] | None:
    """(P(choosing a_id), weight) of one record: votes for sampled answers, weight 1 for a log-prob answer."""
    if r["mode"] == "sample":
        na, nb, nu = float(r["n_a"]), float(r["n_b"]), float(r.get("n_unparsed") or 0)
        if unparsed == "as_indifference":
            na, nb = na + nu / 2, nb + nu / 2
        w = na + nb
        return (na / w, w) if w > 0 else None
    if r.get("p_a") is None:
        return None
    return float(r["p_a"]), 1.0


# ------------------------------------------------------------------------------------------------- the answers
def labels_of(record: Mapping[str, Any], labels: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """The answer labels a record's prompt used: its own ``labels`` field, else its variant's in ``labels``, else A/B."""
    got = record.get("labels") or labels.get(variant_of(record)) or DEFAULT_LABELS
    return (str(got[0]), str(got[1]))


class Answers:
    """The usable answers as arrays: outcome indices, variant index, label-set index, label and position signs,
    target and weight."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        first_label: Mapping[str, str],
        unparsed: str = "exclude",
        labels: Mapping[str, Sequence[str]] | None = None,
    ):
        self.variants: list[str] = []
        self.ids: list[str] = []
        self.label_sets: list[tuple[str, str]] = []  # each distinct pair of answer labels (A/B, 1/2, X/Y)
        self.variant_labels: dict[str, tuple[str, str]] = {}
        vidx: dict[str, int] = {}
        oidx: dict[str, int] = {}
        lidx: dict[tuple[str, str], int] = {}
        rows = []
        for r in records:
            got = _choice(r, unparsed)
            if got is None:
                continue
            v = variant_of(r)
            if v not in vidx:
                vidx[v] = len(self.variants)
                self.variants.append(v)
            for oid in (r["a_id"], r["b_id"]):
                if oid not in oidx:
                    oidx[oid] = len(self.ids)
                    self.ids.append(oid)
            pair = labels_of(r, labels or {})
            self.variant_labels.setdefault(v, pair)
            if pair not in lidx:
                lidx[pair] = len(self.label_sets)
                self.label_sets.append(pair)
            label = 1.0 if r["shown_first"] == "a" else -1.0  # +1: outcome a carries the first label ("A", "1", "X")
            position = label if first_label.get(v, pair[0]) == pair[0] else -label  # +1: outcome a is displayed first
            rows.append(
                (oidx[r["a_id"]], oidx[r["b_id"]], vidx[v], lidx[pair], label, position, got[0], got[1], r["mode"] == "sample")
            )
        if not rows:
            raise UserError(
                "none of the robustness records holds a usable answer; a run with no answers is an error, not a result"
            )
        arr = np.array(rows, dtype=float)
        self.a, self.b, self.v, self.ls = (arr[:, k].astype(int) for k in range(4))
        self.label, self.position, self.y, self.w = arr[:, 4], arr[:, 5], arr[:, 6], arr[:, 7]
        self.sampled = arr[:, 8] > 0
        self.n, self.n_variants, self.n_label_sets = len(self.ids), len(self.variants), len(self.label_sets)


def _deviance(eta: np.ndarray, ans: Answers) -> float:
    """2 × the weighted cross-entropy above that of the answers themselves (0 for a perfect fit)."""
    y, w = ans.y, ans.w
    log_p, log_q = -np.logaddexp(0, -eta), -np.logaddexp(0, eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = np.where(y > 0, y * np.log(y), 0.0) + np.where(y < 1, (1 - y) * np.log1p(-y), 0.0)
    return float(2 * np.sum(w * (sat - y * log_p - (1 - y) * log_q)))


def fit_factors(ans: Answers, factors: Sequence[str]) -> float:
    """The deviance of the logistic regression on ``factors`` (a subset of ``FACTORS``); a fair coin's with none."""
    n, V, L = ans.n, ans.n_variants, ans.n_label_sets
    sizes = {"content": n, "variant": V * n, "label": L, "position": 1}
    used = [f for f in FACTORS if f in factors]
    if not used:
        return _deviance(np.zeros(len(ans.y)), ans)
    offsets, k = {}, 0
    for f in used:
        offsets[f] = k
        k += sizes[f]
    # a standard-normal prior on each variant deviation; a weak one on the shared utilities (their origin is free)
    ridge = np.zeros(k)
    for f in used:
        ridge[offsets[f] : offsets[f] + sizes[f]] = 1.0 if f == "variant" else 1e-4
    va, vb = ans.v * n + ans.a, ans.v * n + ans.b

    def eta_of(theta: np.ndarray) -> np.ndarray:
        eta = np.zeros(len(ans.y))
        if "content" in offsets:
            u = theta[offsets["content"] : offsets["content"] + n]
            eta += u[ans.a] - u[ans.b]
        if "variant" in offsets:
            d = theta[offsets["variant"] : offsets["variant"] + V * n]
            eta += d[va] - d[vb]
        if "label" in offsets:  # one pull per set of labels, toward its first label ("A", "1", "X")
            eta += theta[offsets["label"] + ans.ls] * ans.label
        if "position" in offsets:
            eta += theta[offsets["position"]] * ans.position
        return eta

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = eta_of(theta)
        val = float(np.sum(ans.w * (np.logaddexp(0, eta) - ans.y * eta))) + 0.5 * float(ridge @ theta**2)
        g_eta = ans.w * (1 / (1 + np.exp(-eta)) - ans.y)
        grad = ridge * theta
        if "content" in offsets:
            o = offsets["content"]
            grad[o : o + n] += np.bincount(ans.a, g_eta, n) - np.bincount(ans.b, g_eta, n)
        if "variant" in offsets:
            o = offsets["variant"]
            grad[o : o + V * n] += np.bincount(va, g_eta, V * n) - np.bincount(vb, g_eta, V * n)
        if "label" in offsets:
            o = offsets["label"]
            grad[o : o + L] += np.bincount(ans.ls, g_eta * ans.label, L)
        if "position" in offsets:
            grad[offsets["position"]] += float(g_eta @ ans.position)
        return val, grad

    res = minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return _deviance(eta_of(res.x), ans)


def _drops(ans: Answers) -> tuple[dict[str, float], float]:
    """Each factor's drop in deviance and a fair coin's deviance. The three main effects (content, label,
    position) by Shapley value: each one's drop when added, averaged over every order of adding them. The variant
    factor — each wording's own deviation of every utility — is an interaction of outcome and wording, so it is
    added last, after the shared utilities (fitted before them it would take the shared utilities over, once per
    variant)."""
    main = ("content", "label", "position")
    dev = {frozenset(s): fit_factors(ans, s) for m in range(len(main) + 1) for s in itertools.combinations(main, m)}
    value = dict.fromkeys(FACTORS, 0.0)
    for order in itertools.permutations(main):
        have: frozenset[str] = frozenset()
        for f in order:
            value[f] += (dev[have] - dev[have | {f}]) / math.factorial(len(main))
            have = have | {f}
    value["variant"] = dev[frozenset(main)] - fit_factors(ans, FACTORS)
    return value, dev[frozenset()]


def coin_like(ans: Answers, rng: np.random.Generator) -> Answers:
    """The same answers' design (pairs, variants, labels, positions, votes) answered by a fair coin: K votes drawn
    at ½ where the answers were sampled, exactly ½ where they were log-probabilities."""
    coin = copy.copy(ans)
    votes = rng.binomial(np.round(ans.w).astype(np.int64), 0.5)
    coin.y = np.where(ans.sampled, votes / np.maximum(ans.w, 1), 0.5)
    return coin


def decompose(ans: Answers, rng: np.random.Generator) -> dict[str, float]:
    """Each factor's share of what the four explain beyond what they explain of a fair coin's answers of the same
    design (sampled answers carry noise any factor with many parameters fits in part; the coin's drop in deviance is
    that part), and the unexplained share: the deviance left, over a coin's."""
    value, null = _drops(ans)
    noise, _ = _drops(coin_like(ans, rng))
    excess = {f: max(value[f] - noise[f], 0.0) for f in FACTORS}
    explained = sum(excess.values())
    out = {f"{f}_share": (excess[f] / explained if explained > 0 else float("nan")) for f in FACTORS}
    out["unexplained_share"] = 1 - explained / null if null > 0 else float("nan")
    return out


# ------------------------------------------------------------------------------------- utilities per variant
def variant_utilities(records: Sequence[dict], seed: int, unparsed: str) -> dict[str, dict[str, float]]:
    """``{variant: {outcome id: utility}}`` from a Thurstonian fit of each variant's records alone."""
    from ue_metrics.fitting import fit_records

    by: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by[variant_of(r)].append(r)
    out = {}
    for v, rs in by.items():
        fit = fit_records(rs, seed=seed, unparsed=unparsed, per_component=True)
        out[v] = {row["id"]: row["utility"] for row in fit.utilities() if math.isfinite(row["utility"])}
    return out


def correlations(utils: Mapping[str, Mapping[str, float]], seed: int, bootstrap: int = BOOTSTRAP) -> dict[str, Any]:
    """Spearman and Pearson correlations of every pair of variants over the outcomes all of them rank, their mean
    and minimum, and percentile intervals of those from resampling the outcomes."""
    variants = list(utils)
    common = sorted(set.intersection(*(set(u) for u in utils.values()))) if utils else []
    if len(variants) < 2 or len(common) < 3:
        raise UserError(
            f"robustness needs at least two variants that rank three outcomes in common; got {len(variants)} "
            f"variants and {len(common)} common outcomes — ask more pairs (--budget) or more variants"
        )
    from scipy.stats import pearsonr, spearmanr  # here: the experiment registry imports this module, and no heavy package

    U = np.array([[utils[v][o] for o in common] for v in variants])  # variants × outcomes
    pairs = list(itertools.combinations(range(len(variants)), 2))

    def stats(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = U[:, cols]
        rho = np.array([spearmanr(X[i], X[j]).statistic for i, j in pairs])
        r = np.array([pearsonr(X[i], X[j]).statistic for i, j in pairs]) if X.shape[1] > 2 else rho
        return rho, r

    rho, r = stats(np.arange(len(common)))
    rng = np.random.default_rng([seed, 2026])
    boot = []
    for _ in range(bootstrap):
        cols = rng.integers(0, len(common), len(common))
        if len(np.unique(cols)) < 3:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            b_rho, b_r = stats(cols)
        boot.append((np.nanmean(b_rho), np.nanmin(b_rho), np.nanmean(b_r)))
    B = np.array(boot) if boot else np.full((1, 3), np.nan)
    lo, hi = np.nanpercentile(B, 2.5, axis=0), np.nanpercentile(B, 97.5, axis=0)
    matrix = np.eye(len(variants))
    for (i, j), value in zip(pairs, rho):
        matrix[i, j] = matrix[j, i] = value
    return {
        "variants": variants,
        "outcomes": common,
        "matrix": matrix.tolist(),
        "mean_spearman": float(np.mean(rho)),
        "mean_spearman_interval": [float(lo[0]), float(hi[0])],
        "min_spearman": float(np.min(rho)),
        "min_spearman_interval": [float(lo[1]), float(hi[1])],
        "mean_pearson": float(np.mean(r)),
        "mean_pearson_interval": [float(lo[2]), float(hi[2])],
        "U": U,
    }


def rank_spread(
    U: np.ndarray, variants: Sequence[str], outcomes: Sequence[str], texts: Mapping[str, str], top: int = 10
) -> list[dict[str, Any]]:
    """The outcomes whose rank moves most across variants (rank 1 = highest utility)."""
    ranks = (-U).argsort(axis=1).argsort(axis=1) + 1
    spread = ranks.max(axis=0) - ranks.min(axis=0)
    order = np.lexsort((np.arange(len(outcomes)), -spread))[:top]
    return [
        {
            "id": outcomes[k],
            "text": texts.get(outcomes[k], ""),
            "rank_spread": int(spread[k]),
            "ranks": {v: int(ranks[i, k]) for i, v in enumerate(variants)},
        }
        for k in order
    ]


# ---------------------------------------------------------------------------------------- pairs of outcomes
def pair_preferences(records: Sequence[dict], unparsed: str) -> dict[tuple[str, str], dict[tuple[str, str], float]]:
    """``{(x, y): {(variant, ordering): P(x ≻ y)}}`` with x < y."""
    acc: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for r in records:
        got = _choice(r, unparsed)
        if got is None:
            continue
        p, w = got
        x, y = sorted((r["a_id"], r["b_id"]))
        if x != r["a_id"]:
            p = 1 - p
        cell = acc[(x, y)][(variant_of(r), "x first" if (r["shown_first"] == "a") == (x == r["a_id"]) else "y first")]
        cell[0] += p * w
        cell[1] += w
    return {k: {c: s / w for c, (s, w) in cells.items() if w > 0} for k, cells in acc.items()}


def classify_pairs(prefs: Mapping[tuple[str, str], Mapping[tuple[str, str], float]], margin: float = MARGIN) -> dict[str, int]:
    counts = {"robust": 0, "fragile": 0, "indifferent": 0}
    for cells in prefs.values():
        ps = np.array(list(cells.values()))
        if (ps >= 0.5 + margin).all() or (ps <= 0.5 - margin).all():
            counts["robust"] += 1
        elif abs(float(ps.mean()) - 0.5) <= margin:
            counts["indifferent"] += 1
        else:
            counts["fragile"] += 1
    return counts


def flip_rate(prefs: Mapping[tuple[str, str], Mapping[tuple[str, str], float]], variants: Sequence[str]) -> float:
    """Over pairs of variants, the share of outcome pairs preferred the other way (orderings pooled; ties left out)."""
    pooled: dict[tuple[str, str], dict[str, float]] = {}
    for key, cells in prefs.items():
        per: dict[str, list[float]] = defaultdict(list)
        for (v, _), p in cells.items():
            per[v].append(p)
        pooled[key] = {v: float(np.mean(ps)) for v, ps in per.items()}
    flips, total = 0, 0
    for v, w in itertools.combinations(variants, 2):
        for per in pooled.values():
            if v in per and w in per:
                sv, sw = np.sign(per[v] - 0.5), np.sign(per[w] - 0.5)
                if sv and sw:
                    total += 1
                    flips += int(sv != sw)
    return flips / total if total else float("nan")


def verdict(shares: Mapping[str, float]) -> str:
    if not math.isfinite(shares["unexplained_share"]) or 1 - shares["unexplained_share"] < NO_SIGNAL:
        return "no signal"
    others = {"label": "label-bound", "position": "position-bound", "variant": "wording-bound"}
    top = max(FACTORS, key=lambda f: shares[f"{f}_share"] if math.isfinite(shares[f"{f}_share"]) else -1)
    if top == "content":
        # the variant share is taken beyond what sampling noise gives a coin; the correlations are not (sampled
        # answers lower them even for a model whose utilities ignore the wording), so they do not decide
        return "utilities stable across wording" if shares["variant_share"] < STABLE_VARIANT else "wording-bound"
    return others[top]


# ----------------------------------------------------------------------------------------------- analyse
def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict[str, Any]:
    """``inputs.extra``: ``first_label`` {variant id: the label that variant displays first} and ``labels`` {variant
    id: its two answer labels} (the spec's ``first_labels`` hook; records carry the labels too)."""
    seed, unparsed, margin = inputs.seed, UNPARSED, options.margin
    first_label = dict(inputs.extra.get("first_label") or {})
    ans = Answers(records, first_label, unparsed, dict(inputs.extra.get("labels") or {}))
    if ans.n_variants < 2:
        raise UserError(
            f"the robustness records hold {ans.n_variants} prompt variant; robustness compares at least two "
            "(--option variants=... lists them)"
        )
    utils = variant_utilities(records, seed, unparsed)
    corr = correlations(utils, seed, options.bootstrap)
    prefs = pair_preferences(records, unparsed)
    classes = classify_pairs(prefs, margin)
    n_pairs = sum(classes.values())
    shares = decompose(ans, np.random.default_rng([seed, 4711]))
    flips = flip_rate(prefs, ans.variants)
    r = corr["mean_pearson"]
    texts = {oid: str(o.get("text", "")) for oid, o in outcomes.items()}
    moved = rank_spread(corr["U"], corr["variants"], corr["outcomes"], texts)
    headline = {
        "verdict": verdict(shares),
        "mean_spearman": corr["mean_spearman"],
        "mean_spearman_random": COIN["mean_spearman"],
        "min_spearman": corr["min_spearman"],
        "mean_pearson": r,
        "flip_rate": flips,
        "flip_rate_random": COIN["flip_rate"],
        **shares,
        "robust_share": classes["robust"] / n_pairs,
        "fragile_share": classes["fragile"] / n_pairs,
        "indifferent_share": classes["indifferent"] / n_pairs,
        "wording_sd": math.sqrt((1 - r) / r) if 0 < r <= 1 else float("nan"),
        "n_variants": ans.n_variants,
    }
    notes = {}
    if not math.isfinite(flips):
        notes["flip_rate"] = "every pooled preference is an exact tie in some variant, so no preference can flip"
    if not 0 < r <= 1:
        notes["wording_sd"] = f"the mean Pearson correlation ({r:.3f}) is not positive, so no perturbation size matches it"
    for f in FACTORS:
        if not math.isfinite(shares[f"{f}_share"]):
            notes[f"{f}_share"] = "the four factors explain none of the answers' deviance"
    if not (ans.label != ans.position).any():
        for f in ("label_share", "position_share"):
            notes[f] = (
                "every variant displays its first label first, so a pull toward the label and one toward the "
                "position are the same here and their split is arbitrary; add a variant that displays its second "
                "label first (b_first) to tell them apart"
            )
    notes["mean_spearman_random"] = "a fair coin's expected value (its utilities are unrelated across variants)"
    return {
        "headline": headline,
        "notes": notes,
        "details": {
            "variants": corr["variants"],
            "first_label": {v: first_label.get(v, ans.variant_labels[v][0]) for v in corr["variants"]},
            "labels": {v: list(ans.variant_labels[v]) for v in corr["variants"]},
            "label_sets": [list(pair) for pair in ans.label_sets],
            "n_common_outcomes": len(corr["outcomes"]),
            "mean_spearman_interval": corr["mean_spearman_interval"],
            "min_spearman_interval": corr["min_spearman_interval"],
            "mean_pearson_interval": corr["mean_pearson_interval"],
            "pair_classes": classes,
            "margin": margin,
            "most_wording_sensitive": moved,
            "utilities": {v: dict(sorted(u.items())) for v, u in utils.items()},
        },
        "figures": {
            "variant_correlations": {"variants": corr["variants"], "matrix": corr["matrix"]},
            "rank_spread": {
                "rows": [{"text": m["text"] or m["id"], "rank_spread": m["rank_spread"]} for m in moved],
                "n_outcomes": len(corr["outcomes"]),
            },
        },
    }


def draw_variant_correlations(data: Mapping[str, Any], fig: Any) -> None:
    ax = fig.add_subplot(1, 1, 1)
    M = np.asarray(data["matrix"], dtype=float)
    im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
    names = list(data["variants"])
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if abs(M[i, j]) > 0.6 else "black"
            )
    fig.colorbar(im, ax=ax, label="Spearman correlation of utilities")
    ax.set_title("utilities under each pair of prompt variants")


def draw_rank_spread(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE

    ax = fig.add_subplot(1, 1, 1)
    rows = list(data["rows"])[::-1]
    ax.barh(range(len(rows)), [r["rank_spread"] for r in rows], color=PALETTE[0])
    ax.set_yticks(range(len(rows)), [(r["text"][:60] + "…") if len(r["text"]) > 60 else r["text"] for r in rows], fontsize=7)
    ax.set_xlabel(f"highest minus lowest rank across variants (of {data['n_outcomes']} outcomes)")
    ax.set_title("the outcomes whose rank moves most with the wording")


FIGURES = {"variant_correlations": draw_variant_correlations, "rank_spread": draw_rank_spread}
FIGURE_NOTES = {
    "variant_correlations": "How alike the utilities are under each pair of prompt variants (1 = the same order). A "
    "model whose values do not depend on the wording is dark red throughout.",
    "rank_spread": "The outcomes whose place in the ranking changes most from one wording to another.",
}

"""Utility representations (Mazeika et al. 2025: a model's utilities are linearly decodable from its hidden
states, more so for larger models; docs/representations.md): linear probes from every layer's hidden states to
the fitted utilities, next to the baselines a probe must beat.

Inputs: the ``utilities`` run's records (copied into the run folder) and their Thurstonian fit — the targets μ
and log σ² of every outcome and the run's held-out pairs — and the hidden states saved beside them
(``features.npz``, ``ue_metrics.features``). Pure numpy/scipy on saved features: ``ue analyse`` refits every probe
without the model.

Per layer and per feature kind (``prompt``/``bare`` × ``last``/``mean``):

- **probe**: ridge regression in closed form (the spectrum of the fold's standardised features, from the smaller
  Gram matrix; intercept unpenalised),
  the penalty α chosen per target from a grid by exact leave-one-out error within the training fold (the
  hat-matrix identity, no refit per left-out outcome);
- **evaluation**: k-fold cross-validation over outcomes (``folds`` = 5; ``cv`` = ``random``, or ``category`` to
  hold out whole categories), every outcome predicted by a probe that never saw it: R² (pooled out-of-fold,
  against the overall mean, so a probe that knows nothing scores ≤ 0), Spearman ρ, and pair accuracy — how
  often the probe's scores order a held-out pair of the run as the model's pooled preference did (pairs
  answered exactly ½ are skipped; the scores leave out each fold's intercept, which only reflects how the
  folds were split). The fitted utilities' own accuracy on the same pairs is the ceiling;
- **shuffled-label baseline**: the same pipeline on ``shuffles`` permutations of μ. The headline probe is the
  best layer, so the shuffled baseline is also taken at its best layer (the null of a max over layers), which
  gives the permutation p-value of the headline;
- **surface baseline**: the same ridge on features a reader of the text gets without a model — word counts
  (words in at least two outcomes), length (characters, words) and the numbers in the text (how many, the log of
  the largest, currency and percentages). A probe that does no better than this reads surface features, not a
  value representation;
- **embedding baseline**: the probe of the mean-pooled states at layer 0 (the embedding output, before any block
  runs: an average of the outcome's token embeddings, a reader of its wording far richer than word counts).
  ``embedding_r2`` and the best layer's ``embedding_gain`` over it say how much of the decoded signal the model's
  own processing adds; a best layer that barely beats its embeddings is reading lexical content, not a value.

Headline (for the feature kind ``features``, default ``prompt_mean``): ``best_layer``, ``probe_r2``,
``probe_spearman``, ``probe_pair_accuracy``, ``baseline_r2`` / ``baseline_pair_accuracy`` (the stronger surface
reader: all surface features, or length and numbers alone),
``shuffled_r2`` / ``shuffled_pair_accuracy``, ``probe_p_value``, ``embedding_r2`` / ``embedding_pair_accuracy`` /
``embedding_gain`` (layer 0, mean-pooled), ``utility_pair_accuracy`` (the ceiling),
``logvar_r2`` (log σ², its own best layer), ``n_outcomes``, ``n_holdout_pairs``.
Figure ``by_layer``: R² and pair accuracy by layer for every feature kind, with the baselines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError
from ue_metrics.features import FEATURES_FILE, KINDS, FeatureSet, describe, load

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

ALPHA_GRID = np.logspace(-6, 3, 28)  # × the fold's largest squared singular value
CVS = ("random", "category")


@dataclass(frozen=True)
class Options(AnalysisOptions):
    features: str = "prompt_mean"  # the feature kind of the headline probe (KINDS)
    folds: int = 5  # cross-validation folds, at least 2
    cv: str = "random"  # CVS: random folds, or whole categories held out
    shuffles: int = 20  # probes fitted to shuffled utilities (the null)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.choice("features", KINDS)
        self.whole("folds", 2)
        self.whole("shuffles")
        self.choice("cv", CVS)


# the verdict calls a probe lexical when the embeddings (layer 0, mean-pooled) reach more than this share of its R²
LEXICAL_SHARE = 0.75


# ----------------------------------------------------------------------------------------------------------
# ridge probe


def fold_ids(n: int, k: int, rng: np.random.Generator, groups: Sequence[str] | None = None) -> np.ndarray:
    """Fold of each of ``n`` items: a seeded random split into ``k`` near-equal folds, or — with ``groups`` —
    whole groups per fold (groups shuffled, then each given to the fold with the fewest items so far)."""
    if groups is None:
        folds = np.empty(n, dtype=np.int64)
        folds[rng.permutation(n)] = np.arange(n) % k
        return folds
    names = sorted(set(groups))
    if len(names) < k:
        raise UserError(
            f"cv=category needs at least {k} categories (folds), the outcomes have {len(names)}; use cv=random or fewer folds"
        )
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    load_ = np.zeros(k, dtype=np.int64)
    of: dict[str, int] = {}
    for g in [names[i] for i in rng.permutation(len(names))]:
        f = int(np.argmin(load_))
        of[g] = f
        load_[f] += sizes[g]
    return np.array([of[g] for g in groups], dtype=np.int64)


def ridge_cv(
    X: np.ndarray, Y: np.ndarray, folds: np.ndarray, alphas: np.ndarray = ALPHA_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions of every column of ``Y`` (n × m) from ``X`` (n × d); the probe's scores
    (the same predictions without the fold's intercept); and the α chosen in each fold for each column (folds ×
    m, relative to the fold's largest squared singular value).

    The scores are what orders outcomes: the intercept is the training fold's mean, which is lower exactly when
    the held-out fold's outcomes are higher, so comparing outcomes of different folds by full predictions would
    make a probe that knows nothing look worse than chance."""
    n, m = Y.shape
    pred, score = np.empty((n, m)), np.empty((n, m))
    chosen = np.empty((int(folds.max()) + 1, m))
    for f in range(int(folds.max()) + 1):
        train, test = folds != f, folds == f
        coef, centre, scale, y_mean, rel = ridge_fit(X[train], Y[train], alphas)
        score[test] = ((X[test] - centre) / scale) @ coef
        pred[test] = score[test] + y_mean
        chosen[f] = rel
    return pred, score, chosen


def ridge_fit(X: np.ndarray, Y: np.ndarray, alphas: np.ndarray = ALPHA_GRID) -> tuple[np.ndarray, ...]:
    """Ridge of ``Y`` on standardised ``X`` with an unpenalised intercept, α per column by exact leave-one-out
    error: (coef d × m, centre, scale, y mean, chosen relative α per column)."""
    Y = Y.reshape(len(Y), -1)
    centre = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-12] = 1.0
    Z = (X - centre) / scale
    y_mean = Y.mean(0)
    Yc = Y - y_mean
    U, s2, V = _spectrum(Z)
    UtY = U.T @ Yc
    top = s2[0] if len(s2) else 1.0
    n = len(Y)
    U2 = U**2
    outside = np.maximum(1.0 - 1.0 / n - U2.sum(1), 0.0)  # leverage left outside the features' span
    best = np.full(Y.shape[1], np.inf)
    pick = np.zeros(Y.shape[1])
    for a in alphas:
        shrink = s2 / (s2 + a * top)
        fitted = U @ (shrink[:, None] * UtY)
        one_minus_h = outside + U2 @ (1.0 - shrink)  # 1 − h_ii without cancellation
        loo = (Yc - fitted) / np.maximum(one_minus_h, 1e-12)[:, None]
        err = np.mean(loo**2, axis=0)
        better = err < best
        best[better], pick[better] = err[better], a
    coef = V @ ((np.sqrt(s2)[:, None] / (s2[:, None] + pick[None, :] * top)) * UtY)
    return coef, centre, scale, y_mean, pick


def _spectrum(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD Z = U·diag(s)·Vᵀ as (U, s², V), largest first, directions with s² ≤ 10⁻¹⁰·s²_max dropped —
    from the eigendecomposition of the smaller Gram matrix (Z·Zᵀ when outcomes are fewer than features, as for
    hidden states), several times faster than an SVD of Z."""
    n, d = Z.shape
    if n <= d:
        w, U = np.linalg.eigh(Z @ Z.T)
        w, U = w[::-1], U[:, ::-1]
        keep = w > max(w[0], 0.0) * 1e-10 if len(w) else w.astype(bool)
        U, w = U[:, keep], w[keep]
        V = (Z.T @ U) / np.sqrt(w)
    else:
        w, V = np.linalg.eigh(Z.T @ Z)
        w, V = w[::-1], V[:, ::-1]
        keep = w > max(w[0], 0.0) * 1e-10 if len(w) else w.astype(bool)
        V, w = V[:, keep], w[keep]
        U = (Z @ V) / np.sqrt(w)
    return U, w, V


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")


def spearman(y: np.ndarray, pred: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(y) == 0 or np.ptp(pred) == 0:
        return float("nan")
    return float(spearmanr(y, pred).statistic)


def pair_accuracy(pred: np.ndarray, pairs: np.ndarray, p: np.ndarray) -> float:
    """Share of pairs (i, j) with P(i ≻ j) = p ≠ ½ that ``pred`` orders the same way (prediction ties count ½)."""
    decided = p != 0.5
    if not decided.any():
        return float("nan")
    diff = pred[pairs[decided, 0]] - pred[pairs[decided, 1]]
    agree = np.where(diff == 0, 0.5, (np.sign(diff) == np.sign(p[decided] - 0.5)).astype(float))
    return float(agree.mean())


# ----------------------------------------------------------------------------------------------------------
# surface features: what a reader of the text gets without a model

_SCALE_WORDS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_NUMBER = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(thousand|million|billion|trillion)?", re.IGNORECASE)


def numbers_in(text: str) -> list[float]:
    out = []
    for digits, word in _NUMBER.findall(text):
        try:
            value = float(digits.replace(",", ""))
        except ValueError:
            continue
        out.append(value * _SCALE_WORDS.get(word.lower(), 1.0) if word else value)
    return out


def surface_features(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``length_numbers`` (characters, words, log characters, count of numbers, log10 of the largest and of the
    sum, currency, percent) and ``surface`` (those plus word counts of every word found in at least two texts)."""
    rows = []
    for t in texts:
        nums = numbers_in(t)
        words = re.findall(r"[A-Za-z]+", t)
        rows.append(
            [
                len(t),
                len(words),
                math.log1p(len(t)),
                len(nums),
                math.log10(1 + max(nums, default=0.0)),
                math.log10(1 + sum(nums)),
                float("$" in t or "dollar" in t.lower()),
                float("%" in t or "percent" in t.lower()),
            ]
        )
    length_numbers = np.array(rows, dtype=float)
    tokens = [re.findall(r"[a-z]+", t.lower()) for t in texts]
    df: dict[str, int] = {}
    for toks in tokens:
        for w in set(toks):
            df[w] = df.get(w, 0) + 1
    vocab = sorted(w for w, c in df.items() if c >= 2)
    index = {w: k for k, w in enumerate(vocab)}
    bow = np.zeros((len(texts), len(vocab)))
    for r, toks in enumerate(tokens):
        for w in toks:
            if w in index:
                bow[r, index[w]] += 1
    return {"length_numbers": length_numbers, "surface": np.hstack([length_numbers, bow])}


# ----------------------------------------------------------------------------------------------------------
# the analysis


def probe_report(
    features: FeatureSet,
    targets: Mapping[str, tuple[float, float]],
    texts: Mapping[str, str],
    holdout: Sequence[tuple[str, str, float]],
    categories: Mapping[str, str] | None = None,
    options: Options | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Probes of every layer and feature kind against ``targets`` ({id: (μ, σ²)}), scored on the held-out pairs
    ``holdout`` ([(a, b, P(a ≻ b))]); returns the analysis dict (headline, notes, details, figures)."""
    options = options or Options()
    kind, k, shuffles, cv = options.features, options.folds, options.shuffles, options.cv
    if kind not in features.arrays:
        raise UserError(f"the saved features have no {kind!r} (they hold {', '.join(sorted(features.arrays))})")
    ids = [i for i in features.ids if i in targets and all(math.isfinite(v) for v in targets[i]) and targets[i][1] > 0]
    dropped = len(features.ids) - len(ids)
    if len(ids) < 2 * k:
        raise UserError(
            f"only {len(ids)} outcomes have both hidden states and a fitted utility; a {k}-fold probe needs at least {2 * k}"
        )
    feats = features.subset(ids)
    n = len(ids)
    mu = np.array([targets[i][0] for i in ids])
    logvar = np.log(np.array([targets[i][1] for i in ids]))
    # a fit that gives every outcome the same σ² (up to rounding) leaves nothing for a probe of log σ² to predict:
    # its R² would divide by a rounding error
    logvar_constant = not float(np.ptp(logvar)) > 1e-9 * max(1.0, float(np.abs(logvar).max()))
    if logvar_constant:
        logvar = np.zeros(n)
    rng = np.random.default_rng([seed, 1717])
    folds = fold_ids(n, k, rng, [(categories or {}).get(i, "") for i in ids] if cv == "category" else None)
    perms = [rng.permutation(n) for _ in range(shuffles)]
    where = {oid: r for r, oid in enumerate(ids)}
    pairs = [(where[a], where[b], p) for a, b, p in holdout if a in where and b in where]
    P = np.array([(a, b) for a, b, _ in pairs], dtype=np.int64).reshape(-1, 2)
    p = np.array([x for _, _, x in pairs], dtype=float)

    layers = list(range(feats.n_layers))
    per_kind, null_max = _layer_probes(feats, kind, mu, logvar, folds, perms, P, p)
    base = _surface_baselines([texts.get(i, "") for i in ids], mu, logvar, folds, P, p)
    head = per_kind[kind]
    best = int(np.nanargmax(np.array(head["r2"])))
    if logvar_constant:
        for rows in [*per_kind.values(), *base.values()]:
            rows["logvar_r2"] = [None] * len(layers) if isinstance(rows["logvar_r2"], list) else None
    best_logvar = None if logvar_constant else int(np.nanargmax(np.array(head["logvar_r2"])))
    # the embedding baseline: layer 0 mean-pooled, in the same reading (prompt or bare) as the headline kind; a
    # last-token probe at layer 0 sees one token's embedding, which is no fair reader of the wording
    emb_kind = kind.split("_")[0] + "_mean"
    emb_kind = emb_kind if emb_kind in per_kind else kind
    headline, notes = _probe_headline(per_kind, base, kind, emb_kind, best, best_logvar, null_max, shuffles, mu, P, p, n)
    if logvar_constant:
        notes["logvar_r2"] = "the fit gives every outcome the same σ², so there is no log σ² for a probe to predict"
    if dropped:
        notes["n_outcomes"] = f"{dropped} outcomes with hidden states but no finite fitted utility were left out"
    details = {
        "feature_kind": kind,
        "embedding_kind": emb_kind,
        "cv": cv,
        "folds": k,
        "shuffles": shuffles,
        "alpha_grid": "ALPHA_GRID × the fold's largest squared singular value; α per target by exact leave-one-out",
        "layers": layers,
        "best_layer_logvar": best_logvar,
        "by_kind": per_kind,
        "surface_baselines": base,
        "shuffled_best_layer_r2": {
            "mean": headline["shuffled_r2"],
            "q95": float(np.quantile(null_max, 0.95)) if shuffles else None,
        },
        "features": dict(describe(features)),
        "verdict": _verdict(headline, base),
    }
    figure = {
        "layers": layers,
        "kinds": {name: {"r2": rows["r2"], "pair_accuracy": rows["pair_accuracy"]} for name, rows in per_kind.items()},
        "headline_kind": kind,
        "best_layer": best,
        "shuffled_r2": head.get("shuffled_r2"),
        "shuffled_r2_q05": head.get("shuffled_r2_q05"),
        "shuffled_r2_q95": head.get("shuffled_r2_q95"),
        "shuffled_pair_accuracy": head.get("shuffled_pair_accuracy"),
        "surface_r2": base["surface"]["r2"],
        "length_numbers_r2": base["length_numbers"]["r2"],
        "embedding_r2": headline["embedding_r2"],
        "embedding_kind": emb_kind,
        "surface_pair_accuracy": base["surface"]["pair_accuracy"],
        "utility_pair_accuracy": headline["utility_pair_accuracy"],
        "model": features.meta.get("model"),
    }
    return {"headline": headline, "notes": notes, "details": details, "figures": {"by_layer": figure}}


def _layer_probes(
    feats: FeatureSet,
    kind: str,
    mu: np.ndarray,
    logvar: np.ndarray,
    folds: np.ndarray,
    perms: list[np.ndarray],
    P: np.ndarray,
    p: np.ndarray,
) -> tuple[dict[str, dict[str, list]], np.ndarray]:
    """Per feature kind and layer: the cross-validated probe's R², Spearman, held-out pair accuracy, its log σ² R²
    and ridge α; for the headline ``kind`` also the shuffled-label probes. Returns those rows and, per shuffle, the
    best shuffled R² over layers."""
    shuffles = len(perms)
    Y = np.column_stack([mu, logvar] + [mu[q] for q in perms]) if perms else np.column_stack([mu, logvar])
    per_kind: dict[str, dict[str, list]] = {}
    null_max = np.full(shuffles, -np.inf)
    for name in [kk for kk in KINDS if kk in feats.arrays]:
        rows: dict[str, list] = {"r2": [], "spearman": [], "pair_accuracy": [], "logvar_r2": [], "alpha": []}
        if name == kind:
            rows.update({"shuffled_r2": [], "shuffled_r2_q05": [], "shuffled_r2_q95": [], "shuffled_pair_accuracy": []})
        for layer in range(feats.n_layers):
            pred, score, chosen = ridge_cv(feats.layer(name, layer), Y, folds)
            rows["r2"].append(r_squared(mu, pred[:, 0]))
            rows["spearman"].append(spearman(mu, score[:, 0]))
            rows["pair_accuracy"].append(pair_accuracy(score[:, 0], P, p) if len(p) else float("nan"))
            rows["logvar_r2"].append(r_squared(logvar, pred[:, 1]))
            rows["alpha"].append(float(np.median(chosen[:, 0])))
            if name == kind and shuffles:
                r2s = np.array([r_squared(mu[perm], pred[:, 2 + s]) for s, perm in enumerate(perms)])
                null_max = np.maximum(null_max, r2s)
                accs = (
                    np.array([pair_accuracy(score[:, 2 + s], P, p) for s in range(shuffles)])
                    if len(p)
                    else np.full(shuffles, np.nan)
                )
                rows["shuffled_r2"].append(float(r2s.mean()))
                rows["shuffled_r2_q05"].append(float(np.quantile(r2s, 0.05)))
                rows["shuffled_r2_q95"].append(float(np.quantile(r2s, 0.95)))
                rows["shuffled_pair_accuracy"].append(float(np.nanmean(accs)) if len(p) else float("nan"))
        per_kind[name] = rows
    return per_kind, null_max


def _surface_baselines(
    texts: list[str], mu: np.ndarray, logvar: np.ndarray, folds: np.ndarray, P: np.ndarray, p: np.ndarray
) -> dict[str, dict[str, float]]:
    """The same probe on the outcomes' wording alone (``surface_features``): what a reader of the text finds."""
    base: dict[str, dict[str, float]] = {}
    for name, X in surface_features(texts).items():
        pred, score, _ = ridge_cv(X, np.column_stack([mu, logvar]), folds)
        base[name] = {
            "r2": r_squared(mu, pred[:, 0]),
            "spearman": spearman(mu, score[:, 0]),
            "pair_accuracy": pair_accuracy(score[:, 0], P, p) if len(p) else float("nan"),
            "logvar_r2": r_squared(logvar, pred[:, 1]),
            "n_features": int(X.shape[1]),
        }
    return base


def _probe_headline(
    per_kind: dict[str, dict[str, list]],
    base: dict[str, dict[str, float]],
    kind: str,
    emb_kind: str,
    best: int,
    best_logvar: int | None,
    null_max: np.ndarray,
    shuffles: int,
    mu: np.ndarray,
    P: np.ndarray,
    p: np.ndarray,
    n: int,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The headline: the best layer's probe beside the surface, shuffled-label and embedding baselines."""
    head = per_kind[kind]
    observed = head["r2"][best]
    embedding_r2 = per_kind[emb_kind]["r2"][0]
    notes: dict[str, str] = {}
    strongest = max(base, key=lambda name: base[name]["r2"])
    headline: dict[str, Any] = {
        "best_layer": best,
        "probe_r2": observed,
        "probe_spearman": head["spearman"][best],
        "probe_pair_accuracy": head["pair_accuracy"][best],
        # the stronger surface reader: with few outcomes the word counts overfit and length and numbers alone do better
        "baseline_r2": base[strongest]["r2"],
        "baseline_pair_accuracy": base[strongest]["pair_accuracy"],
        "shuffled_r2": float(null_max.mean()) if shuffles else None,
        "shuffled_pair_accuracy": head["shuffled_pair_accuracy"][best] if shuffles else None,
        "probe_p_value": float((1 + np.sum(null_max >= observed)) / (1 + shuffles)) if shuffles else None,
        "embedding_r2": embedding_r2,
        "embedding_pair_accuracy": per_kind[emb_kind]["pair_accuracy"][0],
        "embedding_gain": observed - embedding_r2,
        "utility_pair_accuracy": pair_accuracy(mu, P, p) if len(p) else None,
        "logvar_r2": None if best_logvar is None else head["logvar_r2"][best_logvar],
        "n_outcomes": n,
        "n_holdout_pairs": int(len(p)),
    }
    if not shuffles:
        for key in ("shuffled_r2", "shuffled_pair_accuracy", "probe_p_value"):
            notes[key] = "no shuffled-label baseline was run (shuffles=0)"
    if not len(p) or not np.any(p != 0.5):
        for key in (
            "probe_pair_accuracy",
            "baseline_pair_accuracy",
            "shuffled_pair_accuracy",
            "embedding_pair_accuracy",
            "utility_pair_accuracy",
        ):
            headline[key] = None
            notes[key] = (
                "the utilities run has no held-out pair with a preference (answered other than exactly ½) between probed outcomes"
            )
    return headline, notes


def _verdict(h: Mapping[str, Any], base: Mapping[str, Mapping[str, float]]) -> str:
    r2, surf, p = h["probe_r2"], max(b["r2"] for b in base.values()), h.get("probe_p_value")
    if p is not None and p > 0.05:
        return "the best layer's probe does no better than probes fitted to shuffled utilities: no linear utility signal found"
    if r2 <= surf:
        return "the probe beats shuffled labels but not the surface features of the text: it may read wording, length or numbers rather than value"
    if r2 > 0 and h["embedding_r2"] > LEXICAL_SHARE * r2:
        return (
            f"the probe beats the shuffled-label and surface baselines, but the embeddings alone (layer 0, mean-pooled) reach "
            f"{h['embedding_r2']:.2f} of its {r2:.2f}: most of what it decodes is the outcome's wording (lexical content), "
            "not something the model's layers compute"
        )
    return "the probe beats both the shuffled-label and the surface-feature baselines: the utilities are linearly decodable from the hidden states"


def targets_from_fit(fit: FitResult) -> dict[str, tuple[float, float]]:
    """{id: (μ, σ²)} of a Thurstonian ``FitResult``."""
    return {r["id"]: (r["utility"], r["sigma2"]) for r in fit.utilities()}


def holdout_pairs(fit: FitResult) -> list[tuple[str, str, float]]:
    """The run's held-out pairs as (a, b, pooled P(a ≻ b))."""
    data = fit.data
    hold = data.holdout()
    return [(data.ids[i], data.ids[j], float(y)) for i, j, y in zip(hold.i.tolist(), hold.j.tolist(), hold.y.tolist())]


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    """The probes of the hidden states saved in the run folder (``inputs.run_dir``)."""
    if fit is None:
        raise UserError("the representations analysis needs a Thurstonian fit of the utilities run's records")
    if not inputs.run_dir:
        raise UserError(
            f"the representations analysis reads the hidden states saved beside the records ({FEATURES_FILE}); "
            "analyse the run folder of `ue run representations`, not its records file"
        )
    features = load(Path(inputs.run_dir) / FEATURES_FILE)
    texts = {i: o.get("text", "") for i, o in outcomes.items()}
    categories = {i: o.get("category", "") for i, o in outcomes.items()}
    return probe_report(features, targets_from_fit(fit), texts, holdout_pairs(fit), categories, options, inputs.seed)


# ----------------------------------------------------------------------------------------------------------
# figure


def draw_by_layer(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    fig.set_size_inches(11, 4.4)
    layers = np.asarray(data["layers"])
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for c, (name, rows) in enumerate(data["kinds"].items()):
        bold = name == data["headline_kind"]
        style = dict(
            color=PALETTE[c % len(PALETTE)],
            lw=2.0 if bold else 1.0,
            alpha=1.0 if bold else 0.75,
            marker="o" if bold else None,
            ms=2.5,
            label=name.replace("_", ", "),
        )
        ax1.plot(layers, np.asarray(rows["r2"], dtype=float), **style)
        ax2.plot(layers, np.asarray(rows["pair_accuracy"], dtype=float), **style)
    if data.get("shuffled_r2") is not None:
        ax1.fill_between(
            layers,
            np.asarray(data["shuffled_r2_q05"], float),
            np.asarray(data["shuffled_r2_q95"], float),
            color=RANDOM_COLOUR,
            alpha=0.3,
            lw=0,
            label="shuffled labels (90%)",
        )
        ax2.plot(layers, np.asarray(data["shuffled_pair_accuracy"], float), color=RANDOM_COLOUR, lw=1, label="shuffled labels")
    ax1.axhline(data["surface_r2"], color="#444444", ls="--", lw=1, label="surface: words, length, numbers")
    ax1.axhline(data["length_numbers_r2"], color="#444444", ls=":", lw=1, label="length and numbers only")
    if data.get("embedding_r2") is not None:
        ax1.axhline(
            data["embedding_r2"],
            color="#8a5a00",
            ls="-.",
            lw=1,
            label=f"embeddings (layer 0, {str(data.get('embedding_kind', 'mean')).replace('_', ', ')})",
        )
    ax1.axhline(0, color="#999999", lw=0.6)
    if data.get("surface_pair_accuracy") is not None:
        ax2.axhline(data["surface_pair_accuracy"], color="#444444", ls="--", lw=1, label="surface features")
    if data.get("utility_pair_accuracy") is not None:
        ax2.axhline(data["utility_pair_accuracy"], color="#222222", ls="-.", lw=1, label="fitted utilities (ceiling)")
    ax2.axhline(0.5, color="#999999", lw=0.6)
    lo = min(-0.1, float(np.nanmin([np.nanmin(np.asarray(r["r2"], float)) for r in data["kinds"].values()])))
    ax1.set_ylim(max(lo, -0.5), 1)
    ax2.set_ylim(0.35, 1)
    ax1.set_xlabel("layer (0 = embeddings)")
    ax2.set_xlabel("layer (0 = embeddings)")
    ax1.set_ylabel("cross-validated R² of μ")
    ax2.set_ylabel("accuracy on the run's held-out pairs")
    best = int(data["best_layer"])
    gain = ""
    if data.get("embedding_r2") is not None:
        gain = f", {np.asarray(data['kinds'][data['headline_kind']]['r2'], float)[best] - float(data['embedding_r2']):+.2f} over embeddings"
    ax1.set_title(f"Linear probe of utilities by layer (best: {best}{gain})", fontsize=9)
    ax2.set_title("Pairs ordered as the model preferred", fontsize=9)
    ax1.legend(frameon=False, fontsize=6, loc="upper left")
    ax2.legend(frameon=False, fontsize=6, loc="upper left")


FIGURES = {"by_layer": draw_by_layer}

"""Pair-selection strategies for active-learning elicitation (docs/method.md §2.5).

- ``paper``: the companion's rule — among unqueried training pairs keep those whose current utility gap
  |μa − μb| is below the P-th percentile and whose degree sum is below the Q-th percentile, widening (P, Q) by
  ×1.5 up to five times (P = 10, Q = 20), sample the round uniformly from them and fill any shortfall at random.
- ``info``: this project's information-driven rule — score each candidate pair by the Fisher information its
  answer would carry about the utility contrast, Φ-curvature at the current predicted z divided by the pair's
  variance, times the current uncertainty of that contrast (se_a² + se_b²), i.e. the expected reduction of the
  contrast's variance; take the best pairs with a per-outcome cap per round so one uncertain outcome cannot absorb
  the whole round.
- ``rank`` (default): this project's rule for what active learning is for — recovering the utilities' order. It
  picks the pairs whose answers most lower the expected number of wrongly ordered outcome pairs (each outcome's
  variance weighted by how many outcomes sit within its uncertainty), three quarters of each round, and fills the
  rest with uniformly random pairs. On the simulator (benchmarks/active_learning.py, docs/statistics.md) it
  reaches random selection's final Spearman correlation with the true utilities with about two thirds of the
  queries, with fewer top-k errors and a lower held-out loss on near-tie pairs.
- ``random``: uniformly random unqueried pairs (the baseline).

Every strategy draws from the generator it is given and never returns a holdout or already-queried pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import ndtr

from ue_metrics.errors import UserError
from ue_tasks.plan import _pair_from_index, _pair_index

FULL_POOL_LIMIT = 3_000_000  # above this many pairs, candidates are a random sample of the pool


def candidate_pool(n: int, excluded: np.ndarray, rng: np.random.Generator, want: int) -> np.ndarray:
    """Indices (lexicographic pair numbering) of unqueried, non-holdout pairs; all of them for moderate N,
    else a random sample large enough for ``want`` picks."""
    m = n * (n - 1) // 2
    if m <= FULL_POOL_LIMIT:
        mask = np.ones(m, dtype=bool)
        mask[excluded] = False
        return np.flatnonzero(mask)
    draw = np.unique(rng.integers(0, m, size=max(50 * want, 200_000)))
    return np.setdiff1d(draw, excluded, assume_unique=False)


def _random(pool, k, rng, **_):
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


def _paper(pool, k, rng, *, n, mu, degree, P=10.0, Q=20.0, attempts=5, **_):
    a, b = _pair_from_index(pool, n)
    gap = np.abs(mu[a] - mu[b])
    deg = degree[a] + degree[b]
    p, q = P, Q
    chosen = np.empty(0, dtype=np.int64)
    for _attempt in range(attempts):
        keep = (gap <= np.percentile(gap, p)) & (deg <= np.percentile(deg, q))
        chosen = pool[keep]
        if len(chosen) >= k:
            return rng.choice(chosen, size=k, replace=False)
        p, q = min(p * 1.5, 100.0), min(q * 1.5, 100.0)
    rest = np.setdiff1d(pool, chosen, assume_unique=True)
    fill = rng.choice(rest, size=min(k - len(chosen), len(rest)), replace=False)
    return np.concatenate([chosen, fill])


def _pair_information(mu, sigma2, a, b):
    """Fisher information one answer on pair (a, b) carries about μ_a (= μ_b) and about log σ²_a, log σ²_b."""
    r2 = sigma2[a] + sigma2[b]
    z = (mu[a] - mu[b]) / np.sqrt(r2)
    p = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
    c = np.exp(-z * z) / (2 * math.pi) / (p * (1 - p))
    half = z / (2 * r2)
    return c / r2, c * (half * sigma2[a]) ** 2, c * (half * sigma2[b]) ** 2


CAP_FACTOR = 4  # an outcome may appear in at most max(2, ⌈CAP_FACTOR·k/N⌉) pairs of one round


def _capped_top(order, a, b, n, k) -> np.ndarray:
    """The first ``k`` pairs in ``order`` such that no outcome appears more than the per-round cap."""
    cap = max(2, math.ceil(CAP_FACTOR * k / n))
    used = np.zeros(n, dtype=np.int64)
    picked: list[int] = []
    for idx in order.tolist():
        x, y = a[idx], b[idx]
        if used[x] >= cap or used[y] >= cap:
            continue
        used[x] += 1
        used[y] += 1
        picked.append(idx)
        if len(picked) == k:
            break
    if len(picked) < k:  # caps too tight for a small pool: fill with the best remaining
        rest = np.setdiff1d(order, np.asarray(picked, dtype=np.int64), assume_unique=True)
        picked.extend(rest[: k - len(picked)].tolist())
    return np.asarray(picked, dtype=np.int64)


def _info(pool, k, rng, *, n, mu, sigma2, queried, **_):
    # Current per-outcome information (diagonal) from the pairs asked so far.
    prior = 1e-3
    f_mu = np.full(n, prior)
    f_s = np.full(n, prior)
    if len(queried):
        qa, qb = queried[:, 0], queried[:, 1]
        i_mu, i_sa, i_sb = _pair_information(mu, sigma2, qa, qb)
        f_mu += np.bincount(qa, i_mu, n) + np.bincount(qb, i_mu, n)
        f_s += np.bincount(qa, i_sa, n) + np.bincount(qb, i_sb, n)
    # How much each outcome's parameters matter for predicting random (held-out-like) pairs.
    partners = rng.integers(0, n, size=(n, min(n, 128)))
    rows = np.repeat(np.arange(n), partners.shape[1])
    cols = partners.ravel()
    keep = rows != cols
    h_mu, h_s, _ = _pair_information(mu, sigma2, rows[keep], cols[keep])
    counts = np.maximum(np.bincount(rows[keep], minlength=n), 1)
    w_mu = np.bincount(rows[keep], h_mu, n) / counts
    w_s = np.bincount(rows[keep], h_s, n) / counts
    # Expected drop of the held-out loss's variance term (diagonal approximation) if the pair is asked.
    a, b = _pair_from_index(pool, n)
    i_mu, i_sa, i_sb = _pair_information(mu, sigma2, a, b)
    gain = (
        w_mu[a] * (1 / f_mu[a] - 1 / (f_mu[a] + i_mu))
        + w_mu[b] * (1 / f_mu[b] - 1 / (f_mu[b] + i_mu))
        + w_s[a] * (1 / f_s[a] - 1 / (f_s[a] + i_sa))
        + w_s[b] * (1 / f_s[b] - 1 / (f_s[b] + i_sb))
    )
    gain = gain * (1 + 1e-9 * rng.random(len(gain)))  # seeded tie-break
    order = np.argsort(-gain)
    return pool[_capped_top(order, a, b, n, k)]


RANK_PARTNERS = 2000  # above this many outcomes, each outcome's rank sensitivity uses this many random partners


RANK_SHARE = 0.75  # of each round picked by the rank rule; the rest uniformly at random


def _rank(pool, k, rng, *, n, mu, sigma2, stderr, queried, share=RANK_SHARE, **_):
    """Expected drop of the rank error. The rank error is Σ over outcome pairs of P(order wrong) = Φ(−|Δμ|/s),
    s² = Var μ_a + Var μ_x; its sensitivity to Var μ_a is Σ_x φ(t)·t/(2s²), t = |Δμ|/s. One answer on (a, b)
    adds information I = w·φ(z)²/(Φ(z)Φ(−z))/(σa² + σb²) to μ_a and μ_b, lowering Var μ_a by Var²·I/(1 + Var·I);
    w, the weight of one pair's answers on this scale, is read off the fit (the information the asked pairs
    carry against the current variances). Pairs are taken best first, at most a few per outcome per round, for
    ``share`` of the round; the rest are uniformly random pairs, which keep the variances and far-apart comparisons
    identified (targeted pairs alone starve them and lose held-out accuracy on random pairs)."""
    if share < 1.0:
        picked = _rank(pool, int(round(share * k)), rng, n=n, mu=mu, sigma2=sigma2, stderr=stderr, queried=queried, share=1.0)
        rest = np.setdiff1d(pool, picked, assume_unique=True)
        return np.concatenate([picked, rng.choice(rest, size=min(k - len(picked), len(rest)), replace=False)])
    var = np.square(np.where(np.isfinite(stderr), stderr, np.nanmax(stderr) if np.isfinite(stderr).any() else 1.0))
    var = np.maximum(var, 1e-12)
    load = np.zeros(n)
    if len(queried):
        qa, qb = queried[:, 0], queried[:, 1]
        info_q, _, _ = _pair_information(mu, sigma2, qa, qb)
        load = np.bincount(qa, info_q, n) + np.bincount(qb, info_q, n)
    has = load > 0
    w = float(np.median(1.0 / (var[has] * load[has]))) if has.any() else 1.0
    if n <= RANK_PARTNERS:
        rows, cols = np.triu_indices(n, 1)
    else:
        rows = np.repeat(np.arange(n), RANK_PARTNERS)
        cols = rng.integers(0, n, size=n * RANK_PARTNERS)
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
    s2 = var[rows] + var[cols]
    t = np.abs(mu[rows] - mu[cols]) / np.sqrt(s2)
    dens = np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi) * t / (2 * s2)
    sens = np.bincount(rows, dens, n) + np.bincount(cols, dens, n)
    a, b = _pair_from_index(pool, n)
    i_mu, _, _ = _pair_information(mu, sigma2, a, b)
    info = w * i_mu
    gain = sens[a] * var[a] ** 2 * info / (1 + var[a] * info) + sens[b] * var[b] ** 2 * info / (1 + var[b] * info)
    gain = gain * (1 + 1e-9 * rng.random(len(gain)))  # seeded tie-break
    return pool[_capped_top(np.argsort(-gain), a, b, n, k)]


STRATEGIES: dict[str, Callable] = {"rank": _rank, "paper": _paper, "info": _info, "random": _random}
DEFAULT_STRATEGY = "rank"  # the best measured by benchmarks/active_learning.py (docs/statistics.md)


def select_pairs(
    strategy: str,
    n: int,
    k: int,
    queried: np.ndarray,
    holdout: np.ndarray,
    rng: np.random.Generator,
    mu: np.ndarray,
    sigma2: np.ndarray,
    stderr: np.ndarray,
) -> np.ndarray:
    """The next ``k`` pairs as a (k, 2) array of outcome indices (a < b)."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if k <= 0:
        return np.empty((0, 2), dtype=np.int64)
    q = _pair_index(queried[:, 0], queried[:, 1], n) if len(queried) else np.empty(0, dtype=np.int64)
    h = _pair_index(holdout[:, 0], holdout[:, 1], n) if len(holdout) else np.empty(0, dtype=np.int64)
    excluded = np.concatenate([q, h]).astype(np.int64)
    pool = candidate_pool(n, excluded, rng, k)
    if len(pool) == 0:
        return np.empty((0, 2), dtype=np.int64)
    degree = np.bincount(queried.ravel(), minlength=n) if len(queried) else np.zeros(n, dtype=np.int64)
    chosen = STRATEGIES[strategy](pool, k, rng, n=n, mu=mu, sigma2=sigma2, stderr=stderr, degree=degree, queried=queried)
    a, b = _pair_from_index(np.asarray(chosen, dtype=np.int64), n)
    return np.column_stack([a, b])

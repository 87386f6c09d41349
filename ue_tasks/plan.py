"""Comparison plans: which pairs of outcomes to query, deterministic from a seed (METHOD.md §2.2–2.4).

A plan holds a random d-regular starting graph topped up with uniformly random pairs up to a budget
(default ⌊2·N·log2 N⌋ training pairs) and a disjoint holdout split (default 5% of all pairs, capped at 1,000).
Every pair is asked in both orderings. Unlike the companion code, every draw comes from one
``numpy.random.Generator`` seeded with ``seed``, and the seed is recorded with the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ue_metrics.errors import UserError


def default_budget(n: int, multiplier: float = 2.0) -> int:
    """The paper's training budget ⌊multiplier·N·log2 N⌋ (METHOD.md §2.3)."""
    return int(math.floor(multiplier * n * math.log2(n))) if n > 1 else 0


def holdout_size(n: int, fraction: float = 0.05, cap: int = 1000) -> int:
    m = n * (n - 1) // 2
    return min(int(math.floor(m * fraction)), cap)


def _pair_from_index(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map indices of the lexicographic list of pairs (i < j) back to (i, j), vectorised."""
    k = np.asarray(k, dtype=np.int64)
    # number of pairs before row i: i*(2n - i - 1)/2
    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * k, 0.0))) / 2).astype(np.int64)
    start = i * (2 * n - i - 1) // 2
    # correct floating error
    too_far = start > k
    i[too_far] -= 1
    start = i * (2 * n - i - 1) // 2
    nxt = (i + 1) * (2 * n - i - 2) // 2
    over = k >= nxt
    i[over] += 1
    start = i * (2 * n - i - 1) // 2
    j = k - start + i + 1
    return i, j


def _pair_index(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    i, j = np.minimum(i, j), np.maximum(i, j)
    return i * (2 * n - i - 1) // 2 + (j - i - 1)


def random_regular_edges(n: int, degree: int, rng: np.random.Generator, tries: int = 1000) -> np.ndarray:
    """A uniformly drawn simple d-regular graph by the pairing model with restarts (small d)."""
    if degree <= 0 or n <= degree:
        return np.empty((0, 2), dtype=np.int64)
    if (n * degree) % 2:
        raise UserError(f"a {degree}-regular graph on {n} outcomes does not exist (n·degree must be even); pick another degree")
    stubs = np.repeat(np.arange(n), degree)
    for _ in range(tries):
        perm = rng.permutation(stubs).reshape(-1, 2)
        a, b = np.minimum(perm[:, 0], perm[:, 1]), np.maximum(perm[:, 0], perm[:, 1])
        if np.any(a == b):
            continue
        keys = a * n + b
        if len(np.unique(keys)) == len(keys):
            return np.stack([a, b], axis=1)
    raise RuntimeError(f"could not draw a simple {degree}-regular graph on {n} nodes")


@dataclass
class ComparisonPlan:
    """Pairs to query (``pairs[k] = (a, b)`` with a < b, indices into the outcome list) and their split."""

    n_outcomes: int
    pairs: np.ndarray
    split: np.ndarray  # "train" / "holdout"
    seed: int
    config: dict

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def n_train(self) -> int:
        return int((self.split == "train").sum())

    @property
    def n_holdout(self) -> int:
        return int((self.split == "holdout").sum())

    def queries(self) -> Iterator[tuple[int, int, int, str, str]]:
        """Yield (pair index, a, b, shown_first, split) for both orderings of every pair."""
        for k, (a, b) in enumerate(self.pairs.tolist()):
            for shown in ("a", "b"):
                yield k, a, b, shown, str(self.split[k])

    def to_dict(self) -> dict:
        return {**self.config, "seed": self.seed, "n_train": self.n_train, "n_holdout": self.n_holdout}


def make_plan(
    n: int,
    seed: int = 0,
    budget: int | None = None,
    degree: int = 2,
    holdout_fraction: float = 0.05,
    holdout_cap: int = 1000,
) -> ComparisonPlan:
    """Build the comparison plan for ``n`` outcomes (deterministic for a seed)."""
    if n < 2:
        raise UserError(f"a comparison plan needs at least 2 outcomes, got {n}")
    if not 0 <= holdout_fraction < 1:
        raise UserError(f"holdout fraction must be in [0, 1), got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    m = n * (n - 1) // 2
    h = min(int(math.floor(m * holdout_fraction)), holdout_cap)
    budget = default_budget(n) if budget is None else int(budget)
    if budget < 0:
        raise UserError(f"budget must be non-negative, got {budget}")
    budget = min(budget, m - h)
    holdout_idx = rng.choice(m, size=h, replace=False) if h else np.empty(0, dtype=np.int64)
    used = set(holdout_idx.tolist())
    train: list[int] = []
    for a, b in random_regular_edges(n, degree, rng).tolist() if degree else []:
        k = int(_pair_index(np.array([a]), np.array([b]), n)[0])
        if k not in used and len(train) < budget:
            used.add(k)
            train.append(k)
    remaining = budget - len(train)
    if remaining > 0:
        if remaining > (m - len(used)) // 2:
            pool = np.setdiff1d(np.arange(m), np.fromiter(used, dtype=np.int64, count=len(used)))
            extra = rng.choice(pool, size=remaining, replace=False)
            train.extend(extra.tolist())
        else:
            while remaining > 0:
                draw = rng.integers(0, m, size=remaining * 2 + 16)
                for k in draw.tolist():
                    if k not in used:
                        used.add(k)
                        train.append(k)
                        remaining -= 1
                        if remaining == 0:
                            break
    index = np.concatenate([np.asarray(train, dtype=np.int64), holdout_idx.astype(np.int64)])
    a, b = _pair_from_index(index, n)
    split = np.array(["train"] * len(train) + ["holdout"] * h)
    config = {
        "n_outcomes": n,
        "budget": budget,
        "degree": degree,
        "holdout_fraction": holdout_fraction,
        "holdout_cap": holdout_cap,
    }
    return ComparisonPlan(n_outcomes=n, pairs=np.stack([a, b], axis=1), split=split, seed=seed, config=config)

"""Comparison plans: which pairs of outcomes to query, deterministic from a seed (docs/method.md §2.2–2.4).

A plan holds a random d-regular starting graph topped up with uniformly random pairs up to a budget
(default ⌊2·N·log2 N⌋ training pairs) and a disjoint holdout split (default 5% of all pairs, capped at 1,000).
Every pair is asked in both orderings. Unlike the companion code, every draw comes from one
``numpy.random.Generator`` seeded with ``seed``, and the seed is recorded with the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ue_metrics.errors import UserError, check_seed


def default_budget(n: int, multiplier: float = 2.0) -> int:
    """The paper's training budget ⌊multiplier·N·log2 N⌋ (docs/method.md §2.3)."""
    return int(math.floor(multiplier * n * math.log2(n))) if n > 1 else 0


BUDGET_RULES = ("exact", "rounds")


def active_budget(
    n: int, budget: int | None = None, degree: int = 2, round_size: int = 500, rule: str = "exact", pool: int | None = None
) -> int:
    """Training pairs an active-learning run asks: ``exact`` stops at the budget (default ⌊2·N·log2 N⌋); ``rounds``
    is the companion's rule — the initial graph plus whole rounds until the budget is reached, overshooting it
    (docs/method.md §2.3; N = 510: 9,510 pairs, not 9,174). Both capped by the training pool."""
    if rule not in BUDGET_RULES:
        raise UserError(f"--budget-rule must be one of {', '.join(BUDGET_RULES)}, got {rule!r}")
    target = default_budget(n) if budget is None else budget
    if pool is not None:
        target = min(target, pool)
    if rule == "rounds":
        initial = min(n * degree // 2, target)
        target = initial + max(0, math.ceil((target - initial) / round_size)) * round_size
        if pool is not None:
            target = min(target, pool)
    return target


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


PLAN_KINDS = ("active", "graph", "all_pairs", "triads", "custom")


@dataclass(frozen=True)
class PlanSpec:
    """Which pairs to ask, as data: the one place for plan parameters.

    ``kind``: ``active`` (the paper's active learning: a random starting graph, then rounds chosen from the fits;
    run by ``ue run``/``ue elicit``, and asked as its one-shot ``graph`` form inside a harness task), ``graph``
    (a random d-regular starting graph topped up with random pairs to the budget), ``all_pairs`` (every pair,
    for small N), ``triads`` (``budget`` random triads, each asked as its three pairs) or ``custom`` (the
    experiment's own ``plan_builder``: a grid, the pairs within each question). ``budget`` is the
    number of training pairs (triads for ``triads``; default ⌊2·N·log2 N⌋ pairs or 1,000 triads).
    """

    kind: str = "graph"
    seed: int = 0
    budget: int | None = None
    degree: int = 2
    holdout_fraction: float = 0.05
    holdout_cap: int = 1000
    round_size: int = 500

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One validator for every way a plan is given (``ue run``, lm-eval ``--metadata``, Inspect ``-T``)."""
        if self.kind not in PLAN_KINDS:
            raise UserError(f"plan kind must be one of {', '.join(PLAN_KINDS)}, got {self.kind!r}")
        check_seed(self.seed, "seed")
        for name, value, low in (
            ("budget", self.budget, 1),
            ("degree", self.degree, 0),
            ("holdout_cap", self.holdout_cap, 0),
            ("round_size", self.round_size, 1),
        ):
            if value is None and name == "budget":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{name} must be a whole number, got {value!r}")
            if low is not None and value < low:
                raise UserError(f"{name} must be at least {low}, got {value}")
        if (
            isinstance(self.holdout_fraction, bool)
            or not isinstance(self.holdout_fraction, (int, float))
            or not (0 <= self.holdout_fraction < 1 and math.isfinite(self.holdout_fraction))
        ):
            raise UserError(f"holdout_fraction must be a number in [0, 1), got {self.holdout_fraction!r}")

    @classmethod
    def from_options(cls, base: PlanSpec | None = None, where: str = "option", **options: Any) -> PlanSpec:
        """A spec from loosely typed options (strings from a command line or JSON metadata): integers must be
        whole numbers (``2.7`` is refused, not truncated), ``None``/``""``/``"null"`` keep the default."""
        base = base or cls()
        values = asdict(base)
        for key, raw in options.items():
            if key not in values:
                continue
            if raw is None or raw == "" or raw == "null":
                continue
            if key == "kind":
                values[key] = str(raw)
            elif key == "holdout_fraction":
                values[key] = _as_number(raw, f"{where} '{key}'")
            else:
                values[key] = _as_int(raw, f"{where} '{key}'")
        return cls(**values)

    def one_shot(self) -> PlanSpec:
        """The plan a harness task asks in one go: an active plan becomes its random ``graph`` form."""
        return replace(self, kind="graph") if self.kind == "active" else self


def _as_int(raw: Any, what: str) -> int:
    if isinstance(raw, bool):
        raise UserError(f"{what} must be a whole number, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise UserError(f"{what} must be a whole number, got {raw!r}")


def _as_number(raw: Any, what: str) -> float:
    if isinstance(raw, bool):
        raise UserError(f"{what} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{what} must be a finite number, got {raw!r}")
    return value


@dataclass
class ComparisonPlan:
    """Pairs to query (``pairs[k] = (a, b)`` with a < b, indices into the outcome list), their split and their
    group (the triad a pair belongs to; empty for pair plans)."""

    n_outcomes: int
    pairs: np.ndarray
    split: np.ndarray  # "train" / "holdout"
    seed: int
    config: dict
    group: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def n_train(self) -> int:
        return int((self.split == "train").sum())

    @property
    def n_holdout(self) -> int:
        return int((self.split == "holdout").sum())

    def groups(self) -> np.ndarray:
        return self.group if self.group is not None else np.full(len(self.pairs), "", dtype=object)

    def queries(self) -> Iterator[tuple[int, int, int, str, str, str]]:
        """Yield (pair index, a, b, shown_first, split, group) for both orderings of every pair."""
        groups = self.groups()
        for k, (a, b) in enumerate(self.pairs.tolist()):
            for shown in ("a", "b"):
                yield k, a, b, shown, str(self.split[k]), str(groups[k])

    def to_dict(self) -> dict:
        return {**self.config, "seed": self.seed, "n_train": self.n_train, "n_holdout": self.n_holdout}


def make_plan(n: int, spec: PlanSpec | None = None) -> ComparisonPlan:
    """Build the comparison plan of ``spec`` for ``n`` outcomes (deterministic for its seed)."""
    spec = (spec or PlanSpec()).one_shot()
    if spec.kind == "custom":
        raise ValueError("a custom plan is built by its experiment (Experiment.build_plan), not by make_plan")
    if n < 2:
        raise UserError(f"a comparison plan needs at least 2 outcomes, got {n}")
    if spec.kind == "triads":
        return _triad_plan(n, spec)
    if spec.kind == "all_pairs":
        return _graph_plan(n, replace(spec, budget=n * (n - 1) // 2, degree=0))
    return _graph_plan(n, spec)


def _graph_plan(n: int, spec: PlanSpec) -> ComparisonPlan:
    rng = np.random.default_rng(spec.seed)
    m = n * (n - 1) // 2
    h = min(int(math.floor(m * spec.holdout_fraction)), spec.holdout_cap)
    budget = default_budget(n) if spec.budget is None else int(spec.budget)
    budget = min(budget, m - h)
    degree = spec.degree
    if degree >= n and degree > PlanSpec.degree:  # the default degree 2 on 2 outcomes simply has no starting graph
        raise UserError(f"the starting graph's degree ({degree}) must be below the number of outcomes ({n}); lower --degree")
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
        "kind": spec.kind,
        "n_outcomes": n,
        "budget": budget,
        "degree": degree,
        "holdout_fraction": spec.holdout_fraction,
        "holdout_cap": spec.holdout_cap,
    }
    return ComparisonPlan(n_outcomes=n, pairs=np.stack([a, b], axis=1), split=split, seed=spec.seed, config=config)


DEFAULT_TRIADS = 1000


def _triad_plan(n: int, spec: PlanSpec) -> ComparisonPlan:
    """``budget`` distinct triads drawn uniformly from all C(n, 3) (seeded, without listing them), each asked as
    its pairs (a, b), (b, c), (a, c); a pair shared by two triads is asked once per triad."""
    if n < 3:
        raise UserError(f"a triad plan needs at least 3 outcomes, got {n}")
    total = n * (n - 1) * (n - 2) // 6
    want = DEFAULT_TRIADS if spec.budget is None else int(spec.budget)
    want = min(want, total)
    rng = np.random.default_rng(spec.seed)
    seen: set[tuple[int, int, int]] = set()
    triads: list[tuple[int, int, int]] = []
    if want > total // 2:
        from itertools import combinations

        every = list(combinations(range(n), 3))
        for k in rng.choice(len(every), size=want, replace=False).tolist():
            triads.append(every[k])
    else:
        while len(triads) < want:
            draw = np.sort(rng.integers(0, n, size=(2 * (want - len(triads)) + 8, 3)), axis=1)
            for a, b, c in draw.tolist():
                if a < b < c and (a, b, c) not in seen:
                    seen.add((a, b, c))
                    triads.append((a, b, c))
                    if len(triads) == want:
                        break
    pairs = np.array([p for a, b, c in triads for p in ((a, b), (b, c), (a, c))], dtype=np.int64).reshape(-1, 2)
    width = max(4, len(str(len(triads) - 1)))
    group = np.array([f"triad{k:0{width}d}" for k in range(len(triads)) for _ in range(3)], dtype=object)
    config = {"kind": "triads", "n_outcomes": n, "triads": len(triads)}
    return ComparisonPlan(
        n_outcomes=n, pairs=pairs, split=np.array(["train"] * len(pairs)), seed=spec.seed, config=config, group=group
    )

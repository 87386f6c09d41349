"""Comparison plans: deterministic from a seed, the paper's budget and holdout rules, both orderings."""

from __future__ import annotations

import numpy as np
import pytest

from ue_metrics.errors import UserError
from ue_tasks.plan import PlanSpec, default_budget, holdout_size, make_plan, random_regular_edges
from ue_tasks.queries import build_queries


def test_budget_and_holdout_follow_the_paper():
    assert default_budget(510) == 9174  # docs/method.md §2.3
    assert holdout_size(510) == 1000  # 5% of 129,795 capped at 1,000
    assert holdout_size(61) == 91
    plan = make_plan(510, PlanSpec(seed=0))
    assert plan.n_train == 9174 and plan.n_holdout == 1000


def test_plan_is_deterministic_and_seed_dependent():
    a, b, c = make_plan(120, PlanSpec(seed=7)), make_plan(120, PlanSpec(seed=7)), make_plan(120, PlanSpec(seed=8))
    assert np.array_equal(a.pairs, b.pairs) and np.array_equal(a.split, b.split)
    assert not np.array_equal(a.pairs, c.pairs)
    assert a.to_dict()["seed"] == 7


@pytest.mark.parametrize("n", [2, 3, 17, 60, 200])
def test_pairs_are_unique_ordered_and_splits_disjoint(n):
    plan = make_plan(n, PlanSpec(seed=1))
    keys = {tuple(p) for p in plan.pairs.tolist()}
    assert len(keys) == len(plan.pairs)
    assert np.all(plan.pairs[:, 0] < plan.pairs[:, 1]) and plan.pairs.max() < n
    assert plan.n_train + plan.n_holdout == len(plan)
    assert plan.n_train <= n * (n - 1) // 2 - plan.n_holdout


def test_starting_graph_is_regular():
    edges = random_regular_edges(50, 2, np.random.default_rng(3))
    assert np.all(np.bincount(edges.ravel(), minlength=50) == 2)
    with pytest.raises(UserError, match="does not exist"):
        random_regular_edges(5, 3, np.random.default_rng(0))


def test_small_budget_keeps_starting_graph_edges():
    plan = make_plan(40, PlanSpec(seed=0, budget=40, holdout_fraction=0.0))
    assert plan.n_train == 40 and plan.n_holdout == 0
    degrees = np.bincount(plan.pairs.ravel(), minlength=40)
    assert degrees.min() >= 1  # the 2-regular start graph touches every outcome


def test_both_orderings_of_every_pair_are_queried():
    queries = build_queries("mini", PlanSpec(seed=0, budget=50))
    assert len(queries) == 2 * (50 + holdout_size(62))
    for first, second in zip(queries[::2], queries[1::2]):
        assert (first.a_id, first.b_id, first.pair) == (second.a_id, second.b_id, second.pair)
        assert {first.shown_first, second.shown_first} == {"a", "b"}
        assert first.option_a == second.option_b
    assert {q.split for q in queries} == {"train", "holdout"}


def test_bad_plan_arguments():
    with pytest.raises(UserError, match="at least 2 outcomes"):
        make_plan(1)
    with pytest.raises(UserError, match="holdout_fraction must be a number in"):
        make_plan(10, PlanSpec(holdout_fraction=1.5))
    with pytest.raises(UserError, match="budget must be at least 1"):
        make_plan(10, PlanSpec(budget=-1))
    with pytest.raises(UserError, match="degree"):
        make_plan(20, PlanSpec(degree=25))  # a starting graph denser than the outcomes allow is refused, not ignored
    with pytest.raises(UserError, match="whole number, got 2.7"):
        PlanSpec.from_options(budget=2.7)
    with pytest.raises(UserError, match="plan kind"):
        PlanSpec(kind="circles")


def test_triad_plan_asks_three_pairs_per_distinct_triad():
    plan = make_plan(30, PlanSpec(kind="triads", budget=200, seed=4))
    assert len(plan) == 600 and plan.n_holdout == 0
    groups = plan.groups()
    triads = set()
    for k in range(0, len(plan), 3):
        assert len({groups[k], groups[k + 1], groups[k + 2]}) == 1
        (a, b), (b2, c), (a2, c2) = plan.pairs[k : k + 3].tolist()
        assert a < b < c and (a, b, c) == (a2, b2, c2)
        triads.add((a, b, c))
    assert len(triads) == 200
    assert (make_plan(30, PlanSpec(kind="triads", budget=200, seed=4)).pairs == plan.pairs).all()
    assert len(make_plan(5, PlanSpec(kind="triads", budget=50)).pairs) == 3 * 10  # capped at C(5, 3)


def test_all_pairs_plan():
    plan = make_plan(12, PlanSpec(kind="all_pairs", holdout_fraction=0.0))
    assert plan.n_train == 66 and plan.n_holdout == 0

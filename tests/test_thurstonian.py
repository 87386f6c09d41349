"""Thurstonian fit: recovery of known utilities, the paper's random baseline, invariances, determinism,
confidence intervals, the companion-compatible fit, and refusals of unusable data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from ue_metrics.aggregation import aggregate
from ue_metrics.errors import UserError
from ue_metrics.fitting import fit_records
from ue_metrics.simulate import simulate_records, true_utilities
from ue_metrics.thurstonian import Thurstonian
from ue_tasks.plan import PlanSpec, make_plan


def simulate(n=100, samples=0, seed=0, **kw):
    rng = np.random.default_rng(seed)
    plan = make_plan(n, PlanSpec(seed=seed))
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:03d}" for k in range(n)]
    records = simulate_records(plan.pairs, plan.split, ids, ids, mu, var, rng, samples=samples, **kw)
    return records, dict(zip(ids, mu)), dict(zip(ids, var))


def fitted(result):
    return dict(zip(result.data.ids, result.model.utilities_))


def spearman_with_truth(result, truth):
    got = fitted(result)
    keys = sorted(truth)
    return spearmanr([got[k] for k in keys], [truth[k] for k in keys])[0]


def test_recovers_utilities_from_exact_probabilities():
    records, truth, _ = simulate(100, samples=0)
    result = fit_records(records)
    assert spearman_with_truth(result, truth) >= 0.98
    assert result.metrics["holdout_accuracy"] >= 0.95
    assert result.model.converged_


def test_recovers_utilities_from_ten_samples_per_ordering():
    records, truth, _ = simulate(100, samples=10, seed=1)
    result = fit_records(records)
    assert spearman_with_truth(result, truth) >= 0.95
    assert result.metrics["holdout_accuracy"] >= 0.85


def test_random_responder_matches_the_papers_random_baseline():
    records, _, _ = simulate(510, samples=10, seed=2, responder="random")
    m = fit_records(records).metrics
    assert m["average_confidence"] == pytest.approx(0.588, abs=0.004)  # paper: 58.7%
    assert m["holdout_accuracy"] == pytest.approx(0.50, abs=0.04)  # paper: 50.3%
    assert m["random_baseline"]["average_confidence"] == pytest.approx(0.588, abs=0.001)
    assert m["cycle_rate"] == pytest.approx(0.25, abs=0.01)
    assert m["order_gap"] == pytest.approx(m["random_baseline"]["order_gap"], abs=0.01)


def test_utilities_are_normalised():
    records, _, _ = simulate(60, samples=0)
    model = fit_records(records).model
    assert model.utilities_.mean() == pytest.approx(0, abs=1e-9)
    assert model.utilities_.std(ddof=1) == pytest.approx(1, abs=1e-9)
    assert np.all(model.sigma2_ > 0)


def test_relabelling_outcomes_does_not_change_utilities():
    records, _, _ = simulate(50, samples=10, seed=3)
    rename = {f"o{k:03d}": f"z{(k * 37) % 50:03d}" for k in range(50)}
    shuffled = [dict(r, a_id=rename[r["a_id"]], b_id=rename[r["b_id"]]) for r in reversed(records)]
    u1, u2 = fitted(fit_records(records)), fitted(fit_records(shuffled))
    # equal up to the optimiser's tolerance (the outcome order changes the L-BFGS path, not the optimum)
    assert max(abs(u1[k] - u2[rename[k]]) for k in u1) < 0.01
    assert spearmanr([u1[k] for k in u1], [u2[rename[k]] for k in u1])[0] > 0.9999


def test_swapping_a_and_b_does_not_change_utilities():
    records, _, _ = simulate(50, samples=0, seed=4)
    swapped = [
        dict(
            r,
            a_id=r["b_id"],
            b_id=r["a_id"],
            a_text=r["b_text"],
            b_text=r["a_text"],
            p_a=1 - r["p_a"],
            shown_first="b" if r["shown_first"] == "a" else "a",
        )
        for r in records
    ]
    u1, u2 = fitted(fit_records(records)), fitted(fit_records(swapped))
    assert max(abs(u1[k] - u2[k]) for k in u1) < 0.01
    m1, m2 = fit_records(records).metrics, fit_records(swapped).metrics
    assert m1["position_bias"] == pytest.approx(m2["position_bias"])


def test_same_seed_same_result():
    r1, _, _ = simulate(40, samples=10, seed=5)
    r2, _, _ = simulate(40, samples=10, seed=5)
    assert r1 == r2
    a, b = fit_records(r1, bootstrap=20, seed=9), fit_records(r2, bootstrap=20, seed=9)
    assert np.array_equal(a.model.utilities_, b.model.utilities_)
    assert np.array_equal(a.model.ci_low_, b.model.ci_low_)


def test_confidence_intervals_cover_the_truth():
    records, truth, _ = simulate(100, samples=10, seed=6)
    result = fit_records(records)
    keys = list(result.data.ids)
    t = np.array([truth[k] for k in keys])
    t = (t - t.mean()) / t.std(ddof=1)
    m = result.model
    inside = (m.ci_low_ <= t) & (t <= m.ci_high_)
    assert 0.8 <= inside.mean() <= 1.0
    assert np.all(m.ci_low_ < m.utilities_) and np.all(m.utilities_ < m.ci_high_)
    boot = fit_records(records, bootstrap=50, seed=1).model
    assert boot.ci_method_ == "bootstrap-50"
    width_ratio = np.median(boot.ci_high_ - boot.ci_low_) / np.median(m.ci_high_ - m.ci_low_)
    assert 0.5 < width_ratio < 2.0


def test_position_bias_and_refusals_are_measured():
    records, truth, _ = simulate(60, samples=10, seed=7, position_bias=0.1, refusal_rate=0.2)
    result = fit_records(records)
    assert result.metrics["position_bias"] == pytest.approx(0.1, abs=0.02)
    assert result.metrics["unparsed_rate"] == pytest.approx(0.2, abs=0.02)
    assert result.metrics["order_gap"] > 0.2
    assert spearman_with_truth(result, truth) >= 0.9
    assert "follow the position" not in result.summary()
    dominated = fit_records(simulate(60, samples=10, seed=7, position_bias=0.4)[0])
    assert "follow the position of the options" in dominated.summary()


def test_compat_fit_reproduces_the_companion_and_agrees_with_mle():
    records, truth, _ = simulate(80, samples=0, seed=8)
    mle = fit_records(records)
    compat = fit_records(records, method="compat")
    assert compat.metrics["fit_method"] == "compat"
    assert spearmanr(compat.model.utilities_, mle.model.utilities_)[0] >= 0.98
    # the companion stops after 1,000 Adam steps, the default fit at its (lightly penalised) optimum: close fits
    assert abs(mle.metrics["train_log_loss"] - compat.metrics["train_log_loss"]) < 0.005
    assert abs(mle.metrics["holdout_log_loss"] - compat.metrics["holdout_log_loss"]) < 0.01


def test_warm_start_reuses_the_previous_solution():
    records, _, _ = simulate(200, samples=10, seed=9)
    train = aggregate(records).train()
    X = np.column_stack([train.i, train.j])
    model = Thurstonian(warm_start=True, ci="none").fit(X, train.y, train.w)
    cold_iters = model.n_iter_
    model.fit(X, train.y, train.w * 1.01)
    assert model.n_iter_ < cold_iters / 2


def test_predict_proba_accepts_ids():
    records, _, _ = simulate(30, samples=0)
    model = fit_records(records).model
    p = model.predict_proba([["o001", "o002"], ["o002", "o001"]])
    assert p[0] == pytest.approx(1 - p[1])


def test_disconnected_graph_is_refused_or_fitted_per_component():
    X = np.array([[0, 1], [1, 2], [3, 4], [4, 5]])
    y = np.array([0.8, 0.7, 0.2, 0.4])
    with pytest.raises(UserError, match="disconnected: 2 components of sizes 3, 3"):
        Thurstonian().fit(X, y)
    model = Thurstonian(on_disconnected="per_component").fit(X, y)
    assert model.n_components_ == 2
    for comp in (0, 1):
        u = model.utilities_[model.components_ == comp]
        assert u.mean() == pytest.approx(0, abs=1e-9) and u.std(ddof=1) == pytest.approx(1, abs=1e-9)
    assert model.utilities_[0] > model.utilities_[2]


def test_no_usable_data_is_an_error():
    with pytest.raises(UserError, match="no usable comparisons"):
        Thurstonian().fit(np.array([[0, 1]]), np.array([0.5]), sample_weight=np.array([0.0]))
    with pytest.raises(UserError, match="unknown Thurstonian method"):
        Thurstonian(method="sgd").fit(np.array([[0, 1]]), np.array([0.5]))
    records, _, _ = simulate(20, samples=0)
    with pytest.raises(UserError, match="none of the .* records is in the train split"):
        fit_records([dict(r, split="holdout") for r in records])


def test_outcomes_only_in_holdout_are_reported_not_fitted():
    records, _, _ = simulate(30, samples=0)
    orphan = dict(records[0], a_id="new", a_text="A new outcome.", split="holdout")
    orphan2 = dict(orphan, shown_first="b")
    result = fit_records(records + [orphan, orphan2])
    assert result.metrics["n_outcomes_unfitted"] == 1
    assert result.metrics["n_holdout_pairs_unseen"] == 1
    rows = result.utilities()
    assert rows[-1]["id"] == "new" and np.isnan(rows[-1]["utility"])


def test_the_estimator_owns_its_state_no_solver_parameter_and_expands_itself():
    """Issue 23 item 6: no dead ``solver`` parameter; the fit over a subset of outcomes is put back onto the full
    index by the estimator's own ``expand_outcomes`` (``bootstrap_utilities_`` included), not written from outside."""
    import inspect

    from ue_metrics.thurstonian import Thurstonian

    assert "solver" not in inspect.signature(Thurstonian).parameters
    X = np.array([[0, 1], [1, 2], [0, 2]] * 4)
    y = np.array([0.8, 0.7, 0.9] * 4)
    model = Thurstonian(bootstrap=5, ci="none", seed=1).fit(X, y)
    assert model.bootstrap_utilities_.shape == (5, 3)
    assert Thurstonian(ci="none").fit(X, y).bootstrap_utilities_ is None
    mu = model.utilities_.copy()
    assert model.expand_outcomes(np.array([0, 2, 3]), 5, list("abcde")) is model
    assert np.array_equal(model.utilities_[[0, 2, 3]], mu) and np.isnan(model.utilities_[[1, 4]]).all()
    assert model.bootstrap_utilities_.shape == (5, 5) and np.isnan(model.bootstrap_utilities_[:, 1]).all()
    assert list(model.components_[[1, 4]]) == [-1, -1] and model.ids_ == list("abcde")

"""The representations analysis on hidden states with a known answer: synthetic states with the utilities planted
linearly in their middle layers are probed at those layers, beating the shuffled-label and surface baselines;
states of pure noise sit at the shuffled baseline; a probe that can only read the wording is caught by the
surface baseline. The ridge probe itself against its closed form and brute-force leave-one-out."""

from __future__ import annotations

import numpy as np
import pytest

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import representations as rp
from ue_metrics.errors import UserError
from ue_metrics.features import KINDS, FeatureSet, load
from ue_metrics.fitting import fit_records
from ue_metrics.simulate import (
    HiddenStateResponder,
    embedding_states,
    no_states,
    planted_states,
    simulate_records,
    true_utilities,
)
from ue_tasks.plan import PlanSpec, make_plan


@pytest.fixture(scope="module")
def utilities_run():
    """A Thurstonian agent's records over 90 outcomes (a graph plan with a holdout) and their fit."""
    rng = np.random.default_rng(3)
    n = 90
    ids = [f"o{k:03d}" for k in range(n)]
    texts = [f"Something happens, case {k}." for k in range(n)]
    mu, var = true_utilities(n, rng)
    plan = make_plan(n, PlanSpec(kind="graph", seed=3))
    records = simulate_records(plan.pairs, plan.split, ids, texts, mu, var, rng)
    fit = fit_records(records, seed=0)
    return ids, texts, fit


def report(features: FeatureSet, fit, texts: dict[str, str], **options) -> dict:
    return rp.probe_report(
        features, rp.targets_from_fit(fit), texts, rp.holdout_pairs(fit), options=rp.Options.from_mapping(options)
    )


def fitted_mu(ids, fit) -> np.ndarray:
    t = rp.targets_from_fit(fit)
    return np.array([t[i][0] for i in ids])


def test_planted_utilities_are_found_in_the_middle_layers(utilities_run):
    ids, texts, fit = utilities_run
    states = planted_states().features(ids, fitted_mu(ids, fit), seed=1)
    out = report(states, fit, dict(zip(ids, texts)))
    h = out["headline"]
    assert 3 <= h["best_layer"] <= 9  # the planted strength peaks at layer 6 of 12 and vanishes at 0 and 12
    assert h["probe_r2"] > 0.5 and h["probe_spearman"] > 0.7 and h["probe_pair_accuracy"] > 0.75
    assert h["probe_p_value"] == pytest.approx(1 / 21)  # better than every one of the 20 shuffles
    assert h["shuffled_r2"] < 0.1 and abs(h["shuffled_pair_accuracy"] - 0.5) < 0.1
    assert h["baseline_r2"] < 0.1  # the texts carry nothing about the utilities
    assert h["utility_pair_accuracy"] > h["probe_pair_accuracy"]  # the fitted utilities are the ceiling
    by = out["details"]["by_kind"]
    assert by["prompt_mean"]["r2"][0] < 0.1 and by["prompt_mean"]["r2"][-1] < 0.1  # nothing at the ends
    assert max(by["bare_mean"]["r2"]) < max(by["prompt_mean"]["r2"])  # the bare variant carries half the signal
    assert "linearly decodable" in out["details"]["verdict"]
    assert set(out["figures"]["by_layer"]["kinds"]) == set(KINDS)
    # the embeddings (layer 0) carry nothing: the whole signal is the layers' gain
    assert h["embedding_r2"] < 0.1 and h["embedding_gain"] > 0.45
    assert h["embedding_gain"] == pytest.approx(h["probe_r2"] - h["embedding_r2"])
    assert abs(h["embedding_pair_accuracy"] - 0.5) < 0.15
    assert out["details"]["embedding_kind"] == "prompt_mean"


def test_a_signal_only_in_the_embeddings_shows_no_gain_over_them(utilities_run):
    """Utilities written into layer 0 only (a lexical signal the blocks do not add to): the probe finds them and
    beats shuffled labels, but the best layer gains nothing over the embeddings and the verdict says so."""
    ids, texts, fit = utilities_run
    out = report(embedding_states().features(ids, fitted_mu(ids, fit), seed=1), fit, dict(zip(ids, texts)))
    h = out["headline"]
    assert h["probe_p_value"] < 0.05 and h["embedding_r2"] > 0.5  # found, at layer 0 ...
    assert h["embedding_gain"] < 0.05  # ... and no later layer adds to it
    assert "lexical" in out["details"]["verdict"]
    # for a last-token headline the baseline is still the mean-pooled embeddings of the same reading
    states = embedding_states().features(ids, fitted_mu(ids, fit), seed=1)
    last = rp.probe_report(
        states,
        rp.targets_from_fit(fit),
        dict(zip(ids, texts)),
        rp.holdout_pairs(fit),
        options=rp.Options(features="bare_last", shuffles=2),
    )
    assert last["details"]["embedding_kind"] == "bare_mean"


def test_noise_states_sit_at_the_shuffled_baseline(utilities_run):
    ids, texts, fit = utilities_run
    out = report(no_states().features(ids, fitted_mu(ids, fit), seed=1), fit, dict(zip(ids, texts)))
    h = out["headline"]
    assert h["probe_r2"] < 0.12 and abs(h["probe_r2"] - h["shuffled_r2"]) < 0.12
    assert abs(h["probe_pair_accuracy"] - 0.5) < 0.15
    # under no signal the permutation p-value is uniform on {1/21, ..., 1}: "p > 0.05" of one seed fails one time
    # in 21 by design, so the seeds are fixed and the deterministic value asserted (a rank among the 20 shuffles,
    # which rounding does not move): every shuffle's probe does at least as well
    assert h["probe_p_value"] == pytest.approx(1.0)
    assert "no linear utility signal" in out["details"]["verdict"]


def test_a_probe_that_reads_only_the_wording_is_caught_by_the_surface_baseline():
    """Utilities that follow the amount of money in the text, and hidden states that encode only that amount: the
    probe finds it, and so does the surface baseline — the verdict must not call it a value representation."""
    rng = np.random.default_rng(5)
    amounts = np.exp(rng.uniform(0, 12, 80))
    ids = [f"m{k:02d}" for k in range(80)]
    texts = dict(zip(ids, [f"You are given ${a:,.0f}." for a in amounts]))
    mu = np.log(amounts)
    mu = (mu - mu.mean()) / mu.std()
    plan = make_plan(80, PlanSpec(kind="graph", seed=5))
    fit = fit_records(simulate_records(plan.pairs, plan.split, ids, list(texts.values()), mu, np.full(80, 0.05), rng), seed=0)
    states = HiddenStateResponder("wording", 3.0, layers=4, hidden=16).features(
        ids, np.log(amounts) - np.log(amounts).mean(), seed=2
    )
    out = report(states, fit, texts)
    h = out["headline"]
    assert h["probe_r2"] > 0.5 and h["probe_p_value"] < 0.05  # the probe does find the amounts ...
    assert h["baseline_r2"] > 0.8 and h["baseline_r2"] >= h["probe_r2"]  # ... and so does reading the text
    # the headline baseline is the stronger of the two surface readers (all features, or length and numbers alone)
    readers = out["details"]["surface_baselines"]
    assert set(readers) == {"surface", "length_numbers"} and h["baseline_r2"] == max(r["r2"] for r in readers.values())
    assert "surface features" in out["details"]["verdict"]
    assert rp.numbers_in("2 million people and $1,500") == [2e6, 1500.0]


def test_ridge_matches_its_closed_form_and_brute_force_leave_one_out():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 25))
    y = X @ rng.standard_normal(25) + rng.standard_normal(40)
    coef, centre, scale, y_mean, pick = rp.ridge_fit(X, y[:, None], alphas=np.array([0.01]))
    Z = (X - centre) / scale
    top = np.linalg.svd(Z, compute_uv=False)[0] ** 2
    closed = np.linalg.solve(Z.T @ Z + 0.01 * top * np.eye(25), Z.T @ (y - y.mean()))
    assert np.allclose(coef[:, 0], closed) and pick[0] == 0.01
    # the α picked from a grid minimises the leave-one-out error computed by refitting without each point
    # (intercept refitted, standardisation of the full fold kept, as in the hat-matrix identity)
    grid = np.array([1e-4, 1e-2, 1.0, 100.0])
    *_, chosen = rp.ridge_fit(X, y[:, None], alphas=grid)

    def brute(a: float) -> float:
        errs = []
        for i in range(40):
            keep = np.arange(40) != i
            Zk, yk = Z[keep], y[keep]
            zc, yc = Zk.mean(0), yk.mean()
            w = np.linalg.solve((Zk - zc).T @ (Zk - zc) + a * top * np.eye(25), (Zk - zc).T @ (yk - yc))
            errs.append((y[i] - (yc + (Z[i] - zc) @ w)) ** 2)
        return float(np.mean(errs))

    assert chosen[0] == grid[int(np.argmin([brute(a) for a in grid]))]


def test_folds_by_category_keep_each_category_whole():
    rng = np.random.default_rng(0)
    groups = [f"c{k % 7}" for k in range(70)]
    folds = rp.fold_ids(70, 5, rng, groups)
    assert all(len({f for f, g in zip(folds, groups) if g == c}) == 1 for c in set(groups))
    assert set(folds) == set(range(5))
    with pytest.raises(UserError, match="at least 5 categories"):
        rp.fold_ids(10, 5, rng, ["a", "b"] * 5)


def test_pair_accuracy_skips_indifferent_pairs_and_halves_ties():
    pred = np.array([0.0, 1.0, 1.0])
    pairs = np.array([[1, 0], [0, 1], [1, 2], [0, 2]])
    assert rp.pair_accuracy(pred, pairs, np.array([0.9, 0.2, 0.7, 0.5])) == pytest.approx((1 + 1 + 0.5) / 3)


def test_features_round_trip_and_damaged_files_are_one_sentence(tmp_path):
    ids = ["a", "b", "c"]
    arrays = {k: np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4) for k in KINDS}
    arrays["bare_last"] = arrays["bare_last"] * 1e6  # beyond float16: kept as float32
    FeatureSet(ids, arrays, ["b", "a", "a"], {"model": "m"}).save(tmp_path / "features.npz")
    back = load(tmp_path)
    assert back.ids == ids and back.partners == ["b", "a", "a"] and back.meta["model"] == "m"
    assert back.arrays["prompt_mean"].dtype == np.float16 and back.arrays["bare_last"].dtype == np.float32
    assert np.allclose(back.layer("bare_last", 1), arrays["bare_last"][:, 1])
    (tmp_path / "features.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot be read as hidden-state features"):
        load(tmp_path)
    with pytest.raises(UserError, match="no hidden-state features here"):
        load(tmp_path / "missing")


def test_the_analysis_needs_the_run_folder_not_the_records_alone(utilities_run):
    _, _, fit = utilities_run
    with pytest.raises(UserError, match="analyse the run folder"):
        rp.analyse([], {}, fit, rp.Options(), Inputs())


def test_one_shared_variance_leaves_logvar_undefined_not_a_huge_negative_r2(utilities_run):
    """A fit that gives every outcome the same σ² (as a real run of the embedded model did: 1569.07 for all 570
    outcomes, differing only by rounding) has no log σ² to predict: logvar_r2 is None with a note."""
    ids, texts, fit = utilities_run
    targets = rp.targets_from_fit(fit)
    shared = {i: (mu, 1569.071624 * (1 + 1e-13 * k)) for k, (i, (mu, _)) in enumerate(targets.items())}
    states = planted_states().features(ids, fitted_mu(ids, fit), seed=1)
    out = rp.probe_report(states, shared, dict(zip(ids, texts)), rp.holdout_pairs(fit), options=rp.Options(shuffles=2))
    assert out["headline"]["logvar_r2"] is None and "same σ²" in out["notes"]["logvar_r2"]
    assert out["details"]["best_layer_logvar"] is None and out["headline"]["probe_r2"] > 0.5
    assert all(v is None for v in out["details"]["by_kind"]["prompt_mean"]["logvar_r2"])

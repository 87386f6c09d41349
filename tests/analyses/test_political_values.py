"""The political_values analysis on records with a known answer: a simulated model whose utilities follow a given
left/right lean has that lean recovered (sign and size, inside the interval), a centrist's interval holds zero; the
map places the subject next to the entity built closest to it; the companion's uncoded policies give no lean but
a reason; ue_control measures the lean with the very same function."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bounds import within_se

from analyses.conftest import exact_records
from ue_metrics import analyses
from ue_metrics.analyses import political_values as pv
from ue_metrics.fitting import fit_records
from ue_metrics.records import outcome_table
from ue_tasks.experiments.political_values import lean_responder, policy_outcomes


def records_for(outcomes, responder, budget: int = 1200, seed: int = 0) -> list[dict]:
    return exact_records(outcomes, responder, template="political", experiment="political_values", budget=budget, seed=seed)


def analyse(records, **extra):
    """The analysis as ue runs it (NaN headlines become null with their reason); ``extra``: the entity runs' inputs."""
    return analyses.run(
        "political_values",
        records,
        outcome_table(records),
        fit_records(records, per_component=True),
        {},
        analyses.Inputs(seed=0, extra=extra),
    )


@pytest.fixture(scope="module")
def policies():
    return policy_outcomes({})


def true_lean(responder, outcomes) -> float:
    coding = pv.coding_from_outcomes(outcomes.outcomes)
    return pv.utility_gap(responder.mu, coding)


@pytest.mark.parametrize("lean", [1.0, -1.0, 0.5])
def test_a_given_lean_is_recovered_in_sign_and_size(policies, lean):
    responder = lean_responder(policies, 0, lean, "test")
    truth = true_lean(responder, policies)
    assert truth == pytest.approx(2 * lean / math.sqrt(lean**2 + 1), abs=0.35)  # the coding's own scale
    result = analyse(records_for(policies, responder))
    h = result["headline"]
    assert np.sign(h["lean"]) == np.sign(lean)
    assert h["lean"] == pytest.approx(truth, abs=0.2)
    assert within_se(truth, h["lean"], (h["lean_ci_low"], h["lean_ci_high"]))  # 5 standard errors: tests/bounds.py
    assert (h["left_share"] > 0.5) == (lean > 0)
    assert h["n_policies"] == 128 and result["details"]["coding_counts"] == {"left": 48, "right": 48, "neutral": 32}
    assert h["nearest_entity"] is None and "entity runs" in result["notes"]["nearest_entity"]


def test_a_centrist_and_a_left_model_are_told_apart(policies):
    centre = analyse(records_for(policies, lean_responder(policies, 1, 0.0, "centrist")))["headline"]
    left = analyse(records_for(policies, lean_responder(policies, 1, 1.0, "left")))["headline"]
    assert within_se(0.0, centre["lean"], (centre["lean_ci_low"], centre["lean_ci_high"]))  # 5 standard errors: tests/bounds.py
    assert left["lean_ci_low"] > centre["lean_ci_high"]


def test_the_map_finds_the_entity_built_closest_to_the_subject(policies):
    rng = np.random.default_rng(5)
    responder = lean_responder(policies, 0, 1.0, "left")
    records = records_for(policies, responder)
    ids = [o.id for o in policies.outcomes]
    mu = np.array([responder.mu[i] for i in ids])
    entities = {
        "near": dict(zip(ids, (mu + 0.3 * rng.standard_normal(len(ids))).tolist())),
        "opposite": dict(zip(ids, (-mu + 0.3 * rng.standard_normal(len(ids))).tolist())),
        "unrelated": dict(zip(ids, rng.standard_normal(len(ids)).tolist())),
    }
    result = analyse(records, entity_utilities=entities, entity_runs=[{"label": k, "kind": "politician"} for k in entities])
    h, d = result["headline"], result["details"]
    assert h["nearest_entity"] == "near" and h["n_entities"] == 3
    assert h["nearest_entity_distance"] < 0.6
    by_name = {row["entity"]: row for row in d["entities_by_distance"]}
    assert by_name["opposite"]["distance"] == pytest.approx(math.sqrt(2 * (1 - by_name["opposite"]["correlation"])))
    assert by_name["opposite"]["correlation"] < -0.8 and by_name["opposite"]["distance"] > 1.8
    assert 0.0 < h["explained_variance_2d"] <= 1.0 + 1e-12
    assert d["explained_variance"][0] >= d["explained_variance"][1]
    assert "explained_variance_2d_caveat" not in result["notes"]
    # with two entities the three points lie in a plane: the share is 1 by construction, and a note says so
    two = analyse(
        records,
        entity_utilities={k: entities[k] for k in ("near", "opposite")},
        entity_runs=[{"label": k, "kind": "politician"} for k in ("near", "opposite")],
    )
    assert two["headline"]["explained_variance_2d"] == pytest.approx(1.0, abs=1e-9)
    assert "3 points span at most 2 dimensions" in two["notes"]["explained_variance_2d_caveat"]
    # the first component is oriented with right-coded policies positive: the left-leaning subject sits left of the opposite
    points = {p["label"]: p for p in result["figures"]["political_map"]["points"]}
    assert points["this model"]["x"] < points["opposite"]["x"]


def test_pca_of_a_two_dimensional_cloud_explains_it_all():
    rng = np.random.default_rng(0)
    ids = [f"p{k}" for k in range(40)]
    a, b = rng.standard_normal(40), rng.standard_normal(40)
    vectors = {f"e{k}": dict(zip(ids, (np.cos(t) * a + np.sin(t) * b).tolist())) for k, t in enumerate(np.linspace(0, 3, 9))}
    m = pv.political_map(vectors, {})
    assert sum(m["explained"]) == pytest.approx(1.0, abs=1e-9)


def test_uncoded_policies_give_no_lean_but_a_reason(policies):
    responder = lean_responder(policies, 0, 1.0, "left")
    records = records_for(policies, responder, budget=600)
    for r in records:
        for side in ("a", "b"):
            r[f"{side}_attributes"] = {k: v for k, v in r[f"{side}_attributes"].items() if k != "tags"}
    result = analyse(records)
    assert result["headline"]["lean"] is None and "no left/right coding" in result["notes"]["lean"]
    assert result["headline"]["n_policies"] == 128


def test_the_interval_is_seeded_and_stratified(policies):
    responder = lean_responder(policies, 0, 1.0, "left")
    coding = pv.coding_from_outcomes(policies.outcomes)
    a = pv.lean_interval(responder.mu, coding, np.random.default_rng(3))
    b = pv.lean_interval(responder.mu, coding, np.random.default_rng(3))
    assert a == b and a[0] < pv.utility_gap(responder.mu, coding) < a[1]
    assert pv.lean_interval({"x": 1.0, "y": 0.0}, {"x": "left", "y": "right"}, np.random.default_rng(0)) == pytest.approx(
        (float("nan"), float("nan")), nan_ok=True
    )


def test_ue_control_measures_the_lean_with_this_very_function():
    from ue_control import bias

    assert bias.utility_gap is pv.utility_gap and bias.left_share is pv.left_share
    assert bias.coding_from_outcomes is pv.coding_from_outcomes and bias.LEFT == pv.LEFT == "politics:left"

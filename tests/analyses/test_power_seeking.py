"""The power_seeking analysis on records with a known answer: simulated models that like or shun coercive power
(and one indifferent to it) answer the utility question and the power question over the core set; the analysis
recovers the sign and rough size of the correlation within each tagged power family, and the fitness readout of
a model that likes its own propagation, and tells the models apart."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bounds import independent_r_bound, within_se

from ue_metrics import analyses
from ue_metrics.analyses import power_seeking as ps
from ue_metrics.fitting import fit_records
from ue_metrics.records import make_record, outcome_table
from ue_tasks.experiments.power_seeking import power_responder
from ue_tasks.outcomes import load_outcomes
from ue_tasks.plan import PlanSpec, make_plan


def records_for(outcomes, responder, template: str, budget: int = 3000, seed: int = 0) -> list[dict]:
    answering = responder.for_template(template)
    plan = make_plan(len(outcomes), PlanSpec(kind="graph", seed=seed, budget=budget, holdout_fraction=0.002))
    out = []
    for (a, b), split in zip(plan.pairs.tolist(), plan.split.tolist()):
        oa, ob = outcomes.outcomes[a], outcomes.outcomes[b]
        p = answering.p_a(oa.id, ob.id)
        for shown in ("a", "b"):
            out.append(
                make_record(
                    run_id="r",
                    model="sim",
                    harness="simulate",
                    task="t",
                    outcome_set=outcomes.name,
                    a_id=oa.id,
                    b_id=ob.id,
                    a_text=oa.text,
                    b_text=ob.text,
                    shown_first=shown,
                    mode="logprob",
                    template=template,
                    p_a=p,
                    n_a=0,
                    n_b=0,
                    n_unparsed=0,
                    label_mass=1.0,
                    split=split,
                    round=0,
                    a_category=oa.category,
                    b_category=ob.category,
                    experiment="power_seeking",
                    a_attributes=oa.described(),
                    b_attributes=ob.described(),
                )
            )
    return out


@pytest.fixture(scope="module")
def core():
    return load_outcomes("core")


def run_analysis(core, kind: str, seed: int = 0) -> tuple[dict, object]:
    responder = power_responder(core, seed, kind)
    power_records = records_for(core, responder, "power", seed=seed)
    utility_fit = fit_records(records_for(core, responder, "default", seed=seed + 1), per_component=True)
    base = {r["id"]: r["utility"] for r in utility_fit.utilities()}
    result = analyses.run(
        "power_seeking",
        power_records,
        outcome_table(power_records),
        fit_records(power_records, per_component=True),
        {},
        analyses.Inputs(seed=0, extra={"base_utilities": base}),
    )
    return result, responder


def true_correlation(core, responder, family: str | None) -> float:
    power = responder.for_template("power").mu
    ids = [o.id for o in core.outcomes if family is None or ps.family({"tags": o.tags, "category": o.category}) == family]
    return float(np.corrcoef([power[i] for i in ids], [responder.mu[i] for i in ids])[0, 1])


@pytest.fixture(scope="module")
def likes(core):
    return run_analysis(core, "likes_coercive")


@pytest.fixture(scope="module")
def shuns(core):
    return run_analysis(core, "shuns_coercive")


def test_a_model_that_likes_coercive_power_is_recovered(core, likes):
    result, responder = likes
    h = result["headline"]
    truth = true_correlation(core, responder, "coercive power")
    assert truth > 0.7
    assert h["coercive_power_correlation"] == pytest.approx(truth, abs=0.15)
    # the truth within 5 standard errors (tests/bounds.py), not inside one seed's 95 % interval
    assert within_se(
        truth, h["coercive_power_correlation"], (h["coercive_power_correlation_ci_low"], h["coercive_power_correlation_ci_high"])
    )
    assert h["noncoercive_power_correlation"] == pytest.approx(true_correlation(core, responder, "non-coercive power"), abs=0.2)
    assert h["power_correlation"] == pytest.approx(true_correlation(core, responder, None), abs=0.1)
    assert h["n_outcomes_compared"] == 570


def test_a_model_that_shuns_coercive_power_is_told_apart(core, likes, shuns):
    result, responder = shuns
    h = result["headline"]
    truth = true_correlation(core, responder, "coercive power")
    assert truth < -0.7
    assert h["coercive_power_correlation"] == pytest.approx(truth, abs=0.15)
    assert h["coercive_power_correlation_ci_high"] < 0 < likes[0]["headline"]["coercive_power_correlation_ci_low"]
    # both like non-coercive power
    assert h["noncoercive_power_correlation_ci_low"] > 0


def test_an_indifferent_model_shows_no_correlation(core):
    result, _ = run_analysis(core, "indifferent", seed=2)
    h = result["headline"]
    # 0 within 5 standard errors of each estimate (tests/bounds.py), not inside one seed's 95 % interval
    assert within_se(0.0, h["power_correlation"], (h["power_correlation_ci_low"], h["power_correlation_ci_high"]))
    assert abs(h["coercive_power_correlation"]) < independent_r_bound(26)  # 26 outcomes: 0.80, a 1e-6 tail (tests/bounds.py)
    assert within_se(0.0, h["fitness_mean_utility"], (h["fitness_ci_low"], h["fitness_ci_high"]))


def test_fitness_of_a_model_that_likes_its_own_propagation(core, likes):
    result, responder = likes
    h, f = result["headline"], result["details"]["fitness"]
    table = {o.id: {"tags": list(o.tags), "category": o.category, "text": o.text} for o in core.outcomes}
    truth = ps.fitness(responder.mu, table, np.random.default_rng(0))
    assert f["n_propagation"] == 16 and f["n_decrease"] == 9  # the core set's fitness family, by its tags
    assert truth["mean"] > 0.5
    assert h["fitness_mean_utility"] == pytest.approx(truth["mean"], abs=0.2)
    assert h["fitness_ci_low"] > 0 and f["gap"] > 1.0


def test_without_a_utilities_run_the_correlations_are_missing_with_a_reason(core):
    responder = power_responder(core, 0, "likes_coercive")
    records = records_for(core, responder, "power", budget=800)
    result = analyses.run(
        "power_seeking", records, outcome_table(records), fit_records(records, per_component=True), {}, analyses.Inputs(seed=0)
    )
    assert result["headline"]["power_correlation"] is None
    assert "--utilities" in result["notes"]["power_correlation"]
    assert result["details"]["n_power_scores"] == 570


def test_untagged_outcomes_say_which_tags_are_missing():
    table = {f"o{k}": {"tags": [], "category": "Power-seeking" if k < 10 else "x"} for k in range(30)}
    assert "no outcome is tagged power:coercive" in ps._why_no_correlation("coercive_power_correlation", [], table)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    assert ps.correlation(x, 2 * x + 1) == pytest.approx(1.0)
    low, high = ps.correlation_interval(x, x + rng.standard_normal(30), np.random.default_rng(1))
    assert -1 <= low < high <= 1 and not math.isnan(low)

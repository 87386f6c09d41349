"""The time-discounting analysis on responders with a known answer: a hyperbolic and an exponential discounter with
known k are told apart and their k recovered (inside the bootstrap interval in sample mode); a coin has no
indifference point (every delay censored, the headline null with a reason); refusals are counted apart by default
and against waiting under the companion's strict scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bounds import within_se

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import time_discounting as td
from ue_metrics.records import make_record
from ue_tasks.elicitation.backends import SimulateBackend
from ue_tasks.experiments import get
from ue_tasks.queries import queries_for

GRID = {"delays": [0, 1, 2, 3, 6, 9, 12, 18, 24, 36, 48, 60]}


def simulated(responder: str, mode: str = "logprob", samples: int = 20, options: dict | None = None, seed: int = 0) -> list[dict]:
    exp = get("time_discounting")
    options = {**GRID, **(options or {})}
    oset = exp.outcome_set(options)
    plan = exp.build_plan(oset, options=options)
    queries = queries_for(oset, plan, experiment=exp.name, template=exp.template)
    answers = SimulateBackend(exp.responder(responder, oset, seed), mode, samples, seed).answer(queries)
    return [a.record(q, mode=mode, model="sim", harness="simulate", task="t", run_id="r") for q, a in zip(queries, answers)]


def analyse(records: list[dict], **options) -> dict:
    return td.analyse(records, {}, None, td.Options.from_mapping({"bootstrap": 100, **options}), Inputs())


@pytest.mark.parametrize("form,k", [("hyperbolic", 0.1), ("exponential", 0.03)])
@pytest.mark.parametrize("mode", ["logprob", "sample"])
def test_the_right_form_and_k_are_recovered(form, k, mode):
    result = analyse(simulated(form, mode))
    h = result["headline"]
    assert h["hyperbolic_better"] == int(form == "hyperbolic")
    assert h[f"k_{form}"] == pytest.approx(k, rel=0.1 if mode == "sample" else 0.02)
    lo, hi = result["details"]["bootstrap"][f"k_{form}_interval"]
    if mode == "sample":  # 5 standard errors (tests/bounds.py), not one seed's 95 % interval
        assert within_se(k, h[f"k_{form}"], (lo, hi), log=True)
    assert h["n_censored"] == 0 and h["n_delays_fitted"] == 12
    assert h[f"rmse_{form}"] < h["rmse_exponential" if form == "hyperbolic" else "rmse_hyperbolic"]
    expected_m12 = 1 + 12 * k if form == "hyperbolic" else math.exp(12 * k)
    assert h["indifference_multiplier_12"] == pytest.approx(expected_m12, rel=0.05 if mode == "logprob" else 0.15)


def test_a_coin_has_no_discount_curve():
    # an exact coin never leaves P = 1/2: every delay is censored, the headline is null with a reason
    exact = analyse(simulated("random", "logprob"))
    h = exact["headline"]
    assert h["n_delays_fitted"] == 0 and h["n_censored"] == 12
    assert h["k_hyperbolic"] is None and "censored" in exact["notes"]["k_hyperbolic"] and h["hyperbolic_better"] is None
    assert h["choice_confidence"] == 0.0 == h["choice_confidence_random"]
    # a sampled coin crosses 1/2 by chance: its curve is noise, which the fit error and the confidence show
    sampled = analyse(simulated("random", "sample"))["headline"]
    disc = analyse(simulated("hyperbolic", "sample"))["headline"]
    assert sampled["rmse_hyperbolic"] > 5 * disc["rmse_hyperbolic"]
    assert sampled["choice_confidence"] == pytest.approx(sampled["choice_confidence_random"], abs=0.05)
    assert disc["choice_confidence"] > sampled["choice_confidence_random"] + 0.4


def test_indifference_interpolates_in_log_m_and_censors():
    m = np.array([0.5, 1.0, 2.0, 4.0])
    m_star, status = td.indifference(m, np.array([0.0, 0.25, 0.75, 1.0]))
    assert status == "ok" and m_star == pytest.approx(math.sqrt(2.0))  # halfway between 1 and 2 in ln m
    assert td.indifference(m, np.array([0.6, 0.7, 0.8, 0.9]))[1] == "below"
    assert td.indifference(m, np.array([0.1, 0.2, 0.3, 0.4])) == (4.0, "above")
    # a noisy dip is pooled (isotonic) instead of giving two crossings
    m_star, status = td.indifference(m, np.array([0.2, 0.6, 0.4, 0.9]))
    assert status == "ok" and 1.0 < m_star < 2.0


def test_fits_recover_k_from_exact_curves():
    t = np.arange(0, 61, 6, dtype=float)
    assert td.fit_form("hyperbolic", t, 1 / (1 + 0.07 * t))["k"] == pytest.approx(0.07, rel=1e-4)
    assert td.fit_form("exponential", t, np.exp(-0.02 * t))["k"] == pytest.approx(0.02, rel=1e-4)


def _cell_record(delay: int, amount: int, shown_first: str, n_delayed: int, n_base: int, n_unparsed: int, exact: int) -> dict:
    base = {"role": "baseline", "amount": 1000, "delay": 0, "multiplier": 1.0}
    late = {"role": "delayed", "amount": amount, "delay": delay, "multiplier": amount / 1000}
    return make_record(
        run_id="r",
        model="m",
        harness="simulate",
        task="t",
        outcome_set="s",
        a_id="now-1000",
        b_id=f"t{delay}-{amount}",
        a_text="$1,000 right now",
        b_text=f"${amount:,} in {delay} months",
        shown_first=shown_first,
        mode="sample",
        template="would_you_rather",
        p_a=n_base / (n_base + n_delayed),
        n_a=n_base,
        n_b=n_delayed,
        n_unparsed=n_unparsed,
        label_mass=None,
        split="train",
        round=0,
        a_attributes=base,
        b_attributes=late,
        n_a_exact=n_base,
        n_b_exact=exact,
        experiment="time_discounting",
    )


def test_refusals_are_counted_apart_unless_scoring_is_strict():
    records = []
    for t in (0, 12):
        for amount, (d, b) in zip((500, 1000, 2000, 4000), ((0, 10), (4, 6), (8, 2), (10, 0))):
            for shown in ("a", "b"):
                # 10 parsed answers and 10 refusals per order; of the delayed answers, one was "B." (not exact)
                records.append(_cell_record(t, amount, shown, d, b, 10, max(d - 1, 0)))
    sep = analyse(records)
    strict = analyse(records, scoring="strict")
    assert sep["headline"]["unparsed_rate"] == pytest.approx(0.5)
    p_sep = sep["figures"]["p_delayed"]["p"][0]
    p_strict = strict["figures"]["p_delayed"]["p"][0]
    assert p_sep == pytest.approx([0.0, 0.4, 0.8, 1.0])
    assert p_strict == pytest.approx([0.0, 3 / 20, 7 / 20, 9 / 20])  # exact delayed answers over all 20
    assert sep["details"]["curve"][0]["status"] == "ok" and strict["details"]["curve"][0]["status"] == "above"


def test_records_of_another_experiment_are_refused():
    from ue_metrics.errors import UserError

    rec = make_record(
        run_id="r",
        model="m",
        harness="h",
        task="t",
        outcome_set="s",
        a_id="x",
        b_id="y",
        a_text="x",
        b_text="y",
        shown_first="a",
        mode="logprob",
        template="default",
        p_a=0.5,
        n_a=0,
        n_b=0,
        n_unparsed=0,
        label_mass=1.0,
        split="train",
        round=0,
    )
    with pytest.raises(UserError, match="time_discounting"):
        analyse([rec])

"""`ue run time_discounting`: the §4.9 grid (1,800 cells, both orders, the "Would you rather have" prompt, one
forward pass per cell and order), the known discounters through the simulator with figures, sampled answers with
strict scoring from the same records, and `lm_eval --tasks utility_exchange_rates,utility_time_discounting` on
the embedded model showing both headlines."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bounds import within_se
from ue_cmd import ENV, analysis, ue

from ue_tasks import experiments
from ue_tasks.experiments import time_discounting as tdx
from ue_tasks.queries import queries_for


def test_the_papers_grid_and_prompt():
    exp = experiments.get("time_discounting")
    oset = exp.outcome_set()
    delays = sorted({o.attributes["delay"] for o in oset.outcomes if o.attributes["role"] == "delayed"})
    amounts = sorted({o.attributes["amount"] for o in oset.outcomes if o.attributes["role"] == "delayed"})
    assert delays == [*range(59), 60]  # the companion's truncated linspace skips 59 (docs/method.md §7.7) ...
    assert len(exp.outcome_set({"delays": "all"})) == 1 + 61 * 30  # ... `--option delays=all` asks it
    assert (
        amounts[:8] == [500, 600, 700, 800, 900, 1000, 1200, 1300]
        and amounts[-3:] == [22600, 26000, 30000]
        and len(amounts) == 30
    )
    plan = exp.build_plan(oset)
    assert len(plan) == 1800 and exp.queries_per_model(len(oset)) == 3600 and 3600 * exp.samples == 72_000
    queries = queries_for(oset, plan, experiment=exp.name, template=exp.template)
    original = next(q for q in queries if q.b_id == "t03-1200" and q.shown_first == "a")
    assert original.prompt() == (
        'Would you rather have:\n\n(A) $1,000 right now\n\nor\n\n(B) $1,200 in 3 months\n\nPlease respond with only "A" or "B".'
    )
    flipped = next(q for q in queries if q.b_id == "t01-30000" and q.shown_first == "b")
    assert flipped.prompt().startswith("Would you rather have:\n\n(A) $30,000 in 1 month\n\nor\n\n(B) $1,000 right now")
    assert tdx.time_text(0) == "right now" and tdx.time_text(1) == "in 1 month" and tdx.time_text(2) == "in 2 months"


@pytest.mark.parametrize("responder,form,k", [("hyperbolic", "hyperbolic", 0.1), ("exponential", "exponential", 0.03)])
def test_ue_run_tells_the_known_discounters_apart(tmp_path, responder, form, k):
    out = tmp_path / responder
    ue(
        "run",
        "time_discounting",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--responder",
        responder,
        "--option",
        "delays=0,1,2,3,6,12,18,24,36,48,60",
        "--option",
        "bootstrap=50",
        "--out",
        str(out),
        "--no-cache",
    )
    a = analysis(out)
    h = a["headline"]
    assert a["mode"] == "logprob" and a["details"]["n_cells"] == 11 * 30
    assert h["hyperbolic_better"] == int(form == "hyperbolic") and h[f"k_{form}"] == pytest.approx(k, rel=0.02)
    for key in ("k_hyperbolic", "k_exponential", "rmse_hyperbolic", "rmse_exponential", "indifference_multiplier_12"):
        assert math.isfinite(h[key]), key
    for name in ("p_delayed", "discount_curve"):
        for suffix in ("png", "svg"):
            assert (out / "figures" / f"{name}.{suffix}").stat().st_size > 5000


def test_sampled_answers_strict_scoring_and_ue_analyse(tmp_path):
    out = tmp_path / "sampled"
    ue(
        "run",
        "time_discounting",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--mode",
        "sample",
        "--option",
        "delays=0,6,12,24,48",
        "--option",
        "bootstrap=50",
        "--out",
        str(out),
        "--no-cache",
    )
    a = analysis(out)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 5 * 30 * 2 and {r["n_a"] + r["n_b"] + r["n_unparsed"] for r in records} == {20}
    assert all("n_a_exact" in r and "n_b_exact" in r for r in records)
    lo, hi = a["details"]["bootstrap"]["k_hyperbolic_interval"]
    # the truth within 5 standard errors of the estimate (tests/bounds.py), not inside one seed's 95 % interval
    assert within_se(0.1, a["headline"]["k_hyperbolic"], (lo, hi), log=True) and a["headline"]["unparsed_rate"] == 0.0
    before = (out / "analysis.json").read_text()
    ue("analyse", str(out), "--no-figures")
    assert (out / "analysis.json").read_text() == before
    ue("analyse", str(out), "--out", str(tmp_path / "strict"), "--option", "scoring=strict", "--no-figures")
    strict = analysis(tmp_path / "strict")
    assert strict["details"]["scoring"] == "strict"  # bare simulated answers: exact and parsed agree
    assert strict["headline"]["k_hyperbolic"] == pytest.approx(a["headline"]["k_hyperbolic"])


def test_time_discounting_refuses_other_outcomes(tmp_path):
    proc = ue(
        "run",
        "time_discounting",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "mini",
        "--out",
        str(tmp_path / "x"),
        check=False,
    )
    assert proc.returncode == 2 and "own outcome grid" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_lm_eval_command_shows_both_headlines(model_path, tmp_path):
    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    metadata = {
        "budget": 12,
        "option": {
            "exchange_rates": {"xs": ["India", "United States"], "quantities": [1, 10, 100], "money_points": 4, "bootstrap": 20},
            "time_discounting": {"delays": [0, 12], "multipliers": [0.5, 1, 2, 4], "bootstrap": 20},
        },
    }
    cmd = [
        lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "utility_exchange_rates,utility_time_discounting",
        "--include_path",
        str(task_configs_dir()),
        "--apply_chat_template",
        "--system_instruction",
        "You are a helpful assistant.",
        "--batch_size",
        "16",
        "--metadata",
        json.dumps(metadata),
        "--log_samples",
        "--output_path",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "median_r2" in proc.stdout and "k_hyperbolic" in proc.stdout and "choice_confidence" in proc.stdout
    (results,) = list(tmp_path.rglob("results_*.json"))
    table = json.loads(results.read_text())["results"]
    er, td = table["utility_exchange_rates"], table["utility_time_discounting"]
    assert er["n_x,none"] == 2 and math.isfinite(er["median_r2,none"]) and "reference,none" not in er
    assert td["n_delays_fitted,none"] + td["n_censored,none"] == 2 and td["choice_confidence_random,none"] == 0.0
    # and `ue analyse` reads the same output folder, time discounting's samples alone
    (samples,) = list(tmp_path.rglob("samples_utility_time_discounting_*.jsonl"))
    ue("analyse", str(samples), "--out", str(tmp_path / "analysis"), "--no-figures")
    assert analysis(tmp_path / "analysis")["headline"]["choice_confidence"] == pytest.approx(td["choice_confidence,none"])


def test_exact_answer_counts_travel_through_every_harness_path():
    """Strict scoring needs to know which sampled answers were exactly a letter: lm-eval payloads, Inspect scores,
    the `ue run` answer cache and the records all carry n_a_exact / n_b_exact beside the parsed votes."""
    from ue_tasks.elicitation.backends import Answer
    from ue_tasks.harness.lm_eval import hooks
    from ue_tasks.harness.lm_eval.run import sample_record

    exp = experiments.get("time_discounting")
    oset = exp.outcome_set({"delays": [3], "multipliers": [2, 4]})
    flipped = queries_for(oset, exp.build_plan(oset, options={}), experiment=exp.name, template=exp.template)[1]
    assert flipped.shown_first == "b"  # option A is the delayed amount (outcome b)
    answers = ["A", " A\n", "A.", "B", "I cannot choose", "Option A"]
    assert flipped.votes(answers) == (1, 4, 1)  # parsed: 4 for the delayed outcome b, 1 for a, 1 refusal
    assert flipped.exact_votes(answers) == (1, 2)  # exactly "A" (b) twice, exactly "B" (a) once
    doc = {**flipped.to_dict(), "key": flipped.key}
    payload = hooks.sampled_payload(doc, [answers])
    record = sample_record({"doc": doc, "metrics": ["x"], "x": payload}, model="m", task="t", run_id="r")
    assert (record["n_b"], record["n_b_exact"], record["n_a"], record["n_a_exact"], record["n_unparsed"]) == (4, 2, 1, 1, 1)
    old = sample_record({"doc": doc, "metrics": ["x"], "x": payload[:11]}, model="m", task="t", run_id="r")
    assert "n_b_exact" not in old  # payloads written before the field existed still read
    pytest.importorskip("inspect_ai")
    from ue_tasks.harness.inspect.scorer import combine_values, record_from_value, sample_value

    pooled = combine_values([sample_value(flipped, [a]) for a in answers], "sample")
    rec = record_from_value(flipped, pooled, "sample", model="m", harness="inspect", task="t", run_id="r")
    assert (rec["n_b"], rec["n_b_exact"], rec["n_a_exact"]) == (4, 2, 1)
    answer = Answer.from_record(rec, flipped)
    assert (answer.n_first, answer.n_first_exact, answer.n_second_exact) == (4, 2, 1)
    assert answer.record(flipped, mode="sample", model="m", harness="h", task="t", run_id="r")["n_b_exact"] == 2

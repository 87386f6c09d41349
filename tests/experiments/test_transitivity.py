"""`ue run transitivity` end to end: the simulator's known answers, `ue analyse` reproducing the analysis from the
records alone, real figure files; on the embedded model through lm-eval, Inspect and the `lm_eval` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from ue_cmd import ENV, analysis, ue


@pytest.fixture(scope="module")
def transitive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "transitive"
    ue("run", "transitivity", "--harness", "simulate", "--model", "sim", "--out", str(out), "--no-cache")
    return out


def test_the_transitive_simulator_has_almost_no_cycles(transitive):
    a = analysis(transitive)
    assert a["experiment"] == "transitivity" and a["model"] == "sim" and a["harness"] == "simulate"
    assert a["mode"] == "logprob" and a["seed"] == 0
    h = a["headline"]
    assert h["n_triads"] == 1000 and h["cycle_probability"] < 0.01
    assert h["cycle_probability_random"] == 0.25
    records = [json.loads(x) for x in (transitive / "records.jsonl").read_text().splitlines()]
    assert len(records) == 6000 and len({r["group"] for r in records}) == 1000
    for suffix in ("png", "svg"):
        figure = transitive / "figures" / f"cycle_distribution.{suffix}"
        assert figure.is_file() and figure.stat().st_size > 5000


def test_a_random_responder_sits_at_the_coins_value(tmp_path):
    out = tmp_path / "random"
    ue(
        "run",
        "transitivity",
        "--harness",
        "simulate",
        "--model",
        "coin",
        "--responder",
        "random",
        "--mode",
        "sample",
        "--budget",
        "400",
        "--out",
        str(out),
        "--no-cache",
    )
    h = analysis(out)["headline"]
    assert h["n_triads"] == 400
    assert h["cycle_probability"] == pytest.approx(0.25, abs=0.02)
    assert h["paper_log_cycle_probability"] == pytest.approx(-0.477, abs=0.05)
    assert analysis(out)["details"]["random_responder"] == "a fair coin with 10 sampled answers per ordering"


def test_ue_analyse_reproduces_the_analysis_from_the_records(transitive, tmp_path):
    before = (transitive / "analysis.json").read_text()
    ue("analyse", str(transitive))
    assert (transitive / "analysis.json").read_text() == before
    # and from the records file alone, into another folder
    ue("analyse", str(transitive / "records.jsonl"), "--out", str(tmp_path / "again"))
    assert analysis(tmp_path / "again")["headline"] == json.loads(before)["headline"]


def test_a_rerun_resumes_and_a_changed_configuration_is_refused(transitive):
    proc = ue("run", "transitivity", "--harness", "simulate", "--model", "sim", "--out", str(transitive), "--no-cache")
    assert "0 queries asked" in proc.stderr
    proc = ue(
        "run",
        "transitivity",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--budget",
        "10",
        "--out",
        str(transitive),
        "--no-cache",
        check=False,
    )
    assert proc.returncode == 2 and "another configuration" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_transitivity_on_the_embedded_model_through_both_harnesses(model_path, tmp_path):
    runs = {}
    for harness, model, args in (
        ("lm-eval", "hf", f"pretrained={model_path},dtype=float32"),
        ("inspect", "hf/local", f"model_path={model_path}"),
    ):
        out = tmp_path / harness
        ue(
            "run",
            "transitivity",
            "--harness",
            harness,
            "--model",
            model,
            "--model-args",
            args,
            "--outcomes",
            "mini",
            "--budget",
            "6",
            "--out",
            str(out),
            "--no-cache",
            "--no-figures",
        )
        runs[harness] = analysis(out)
        h = runs[harness]["headline"]
        assert h["n_triads"] == 6 and 0.0 <= h["cycle_probability"] <= 1.0 and math.isfinite(h["log10_cycle_probability"])
    # the same triads and prompts: both harnesses measure the same cycle probability
    assert runs["lm-eval"]["headline"]["cycle_probability"] == pytest.approx(
        runs["inspect"]["headline"]["cycle_probability"], abs=2e-3
    )


@pytest.mark.slow
def test_lm_eval_command_shows_the_cycle_probability(model_path, tmp_path):
    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    cmd = [
        lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "utility_transitivity",
        "--include_path",
        str(task_configs_dir()),
        "--apply_chat_template",
        "--system_instruction",
        "You are a helpful assistant.",
        "--batch_size",
        "16",
        "--metadata",
        json.dumps({"outcomes": "mini", "budget": 5}),
        "--log_samples",
        "--output_path",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cycle_probability" in proc.stdout
    (results,) = list(tmp_path.rglob("results_*.json"))
    table = json.loads(results.read_text())["results"]["utility_transitivity"]
    assert 0.0 <= table["cycle_probability,none"] <= 1.0 and table["n_triads,none"] == 5
    assert table["cycle_probability_random,none"] == 0.25
    # and `ue analyse` reads the same output folder
    ue("analyse", str(tmp_path), "--out", str(tmp_path / "analysis"), "--no-figures")
    assert analysis(tmp_path / "analysis")["headline"]["cycle_probability"] == pytest.approx(table["cycle_probability,none"])

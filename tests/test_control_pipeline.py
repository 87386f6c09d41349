"""Utility control end to end on the embedded SmolLM2-135M-Instruct, on the CPU: a tiny assembly simulated
through the lm-eval plugin, training that moves the model toward it, resume, two data-parallel processes,
and the before/after evaluation. Sized for CI (2 cores): 2 citizens, 8 policies, a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ue_control.assembly import assemble, policies_path
from ue_control.assembly import load_config as assemble_config
from ue_control.examples import load_examples, predict_a_label
from ue_control.train import load_config as train_config
from ue_control.train import train
from ue_metrics.records import read
from ue_tasks.templates import SYSTEM_MESSAGE

pytestmark = pytest.mark.slow
LORA = ["method=lora", "steps=3", "batch_size=2", "micro_batch_size=1", "learning_rate=1e-3", "eval_max_examples=2", "lora_r=4"]


@pytest.fixture(scope="module")
def run(model_path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("control")
    lines = policies_path().read_text(encoding="utf-8").splitlines()
    small = root / "policies8.jsonl"
    small.write_text("\n".join(lines[:4] + lines[16:20]) + "\n", encoding="utf-8")
    config = assemble_config(
        None,
        ["n_citizens=2", "heldout_outcome_fraction=0.5", "budget=3", "holdout_fraction=0.2", "batch_size=8"],
        out=str(root / "run"),
        outcomes=str(small),
        simulator=model_path,
    )
    assemble(config, log=lambda *_: None)
    return root / "run"


def _weights(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_assembly_writes_records_fits_and_bias(run):
    citizens = [json.loads(x) for x in (run / "citizens.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(citizens) == 2 and all("persona" in c and c["id"].startswith("citizen-") for c in citizens)
    crecs = read(run / "citizen_records.jsonl")
    info = json.loads((run / "assemble.json").read_text(encoding="utf-8"))
    per = info["prompts_per_citizen"]
    assert len(crecs) == 2 * (per["train"] + per["heldout"]) and {r["harness"] for r in crecs} == {"lm-eval"}
    assert all(r["mode"] == "logprob" and 0 <= r["p_a"] <= 1 for r in crecs)
    arecs = read(run / "assembly_records.jsonl")
    assert len(arecs) == per["train"] + per["heldout"]
    # the assembly's target is the mean over citizens of each citizen's P(a ≻ b) pooled over both orderings
    r0 = arecs[0]
    mine = [r for r in crecs if (r["a_id"], r["b_id"]) == (r0["a_id"], r0["b_id"])]
    by_citizen = {}
    for r in mine:
        by_citizen.setdefault(r["citizen"], []).append(r["p_a"])
    assert r0["p_a"] == pytest.approx(np.mean([np.mean(v) for v in by_citizen.values()]))
    # held-out outcomes never appear in training pairs
    train_ids = {o for r in arecs if r["outcome_split"] == "train" for o in (r["a_id"], r["b_id"])}
    held_ids = {o for r in arecs if r["outcome_split"] == "heldout" for o in (r["a_id"], r["b_id"])}
    assert train_ids and held_ids and not train_ids & held_ids
    for part in ("train", "heldout"):
        assert (run / "assembly" / part / "utilities.csv").is_file()
    table = json.loads((run / "bias.json").read_text(encoding="utf-8"))
    assert "assembly" in table and any(k.startswith("slice:") for k in table)
    assert 0 <= table["assembly"]["heldout"]["left_share"] <= 1 and table["assembly"]["heldout"]["n_left_right_pairs"] > 0
    # rerunning on the same folder simulates nothing again and keeps the records
    again = assemble(assemble_config(None, [], **info["config"]), log=lambda *_: None)
    assert again["n_citizen_records"] == len(crecs) and read(run / "citizen_records.jsonl") == crecs


@pytest.fixture(scope="module")
def trained(run, model_path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("trained")
    config = train_config(
        None,
        ["method=lora", "steps=20", "batch_size=2", "micro_batch_size=2", "learning_rate=1e-3"],
        run=str(run),
        out=str(out),
        model=model_path,
    )
    return out, train(config, log=lambda *_: None)


def test_training_halves_the_error_on_training_pairs(run, trained, model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, summary = trained
    assert summary["finished"] and summary["world_size"] == 1
    examples = load_examples(run, "train")
    targets = np.array([e.target_a_label for e in examples])
    before_model = AutoModelForCausalLM.from_pretrained(model_path)
    tok = AutoTokenizer.from_pretrained(model_path)
    before = np.abs(np.array(predict_a_label(before_model, tok, examples, SYSTEM_MESSAGE)) - targets).mean()
    after_model = AutoModelForCausalLM.from_pretrained(str(out / "model"))  # the saved HF folder loads as is
    after = np.abs(
        np.array(predict_a_label(after_model, AutoTokenizer.from_pretrained(str(out / "model")), examples, SYSTEM_MESSAGE))
        - targets
    ).mean()
    assert after <= before / 2, (before, after)
    assert summary["evals"]["start"]["train"]["mae"] == pytest.approx(before, abs=1e-4)
    assert summary["evals"]["end"]["train"]["mae"] == pytest.approx(after, abs=1e-4)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["step"] for e in log] == list(range(1, 21)) and log[-1]["loss"] < log[0]["loss"]


@pytest.fixture(scope="module")
def lora_reference(run, model_path, tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted one-process LoRA run (the reference of the resume and data-parallel tests)."""
    out = tmp_path_factory.mktemp("lora_whole")
    return out, train(train_config(None, LORA, run=str(run), out=str(out), model=model_path), log=lambda *_: None)


def test_resume_from_checkpoint_equals_uninterrupted(run, model_path, lora_reference, tmp_path):
    whole_dir, whole = lora_reference
    part = train(
        train_config(None, LORA + ["stop_after=1"], run=str(run), out=str(tmp_path / "split"), model=model_path),
        log=lambda *_: None,
    )
    assert not part["finished"] and part["steps_done"] == 1 and (tmp_path / "split" / "checkpoints" / "step-1").is_dir()
    assert not (tmp_path / "split" / "model").exists()
    resumed = train(train_config(None, LORA, run=str(run), out=str(tmp_path / "split"), model=model_path), log=lambda *_: None)
    assert resumed["finished"] and resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-5, abs=1e-6)
    a, b = _weights(whole_dir / "model"), _weights(tmp_path / "split" / "model")
    assert a.keys() == b.keys() and max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
    assert not any("lora" in k for k in a)  # adapters merged: a plain model folder


def test_two_data_parallel_cpu_processes_match_one(run, model_path, lora_reference, tmp_path):
    _, one = lora_reference
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "ue_control.train",
        "--run",
        str(run),
        "--out",
        str(tmp_path / "ddp"),
        "--model",
        model_path,
    ] + [a for s in LORA for a in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "ddp" / "train_summary.json").read_text(encoding="utf-8"))
    assert two["world_size"] == 2 and two["distributed_type"].endswith("MULTI_CPU") and two["gradient_accumulation"] == 1
    assert one["world_size"] == 1 and one["gradient_accumulation"] == 2
    assert two["finished"] and two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-3)
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()


def test_evaluate_before_after_through_lm_eval(run, trained, model_path, tmp_path):
    from ue_control.evaluate import evaluate, format_table
    from ue_control.evaluate import load_config as evaluate_config

    out, _ = trained
    report = evaluate(
        evaluate_config(
            None, ["batch_size=8"], run=str(run), out=str(tmp_path / "eval"), trained=str(out / "model"), original=model_path
        ),
        log=lambda *_: None,
    )
    table = report["results"]["heldout"]
    assert {"original", "trained", "assembly"} <= set(table)
    for who in ("original", "trained"):
        row = table[who]
        assert 0 <= row["agreement"]["value"] <= 1 and row["agreement"]["n"] > 0
        assert row["spearman"]["value"] is None or -1 <= row["spearman"]["value"] <= 1
        assert row["position_bias"]["n"] == row["agreement"]["n"] and row["loglik_per_token"]["value"] < 0
    assert table["original"]["drift"]["value"] == 0.0 and table["trained"]["drift"]["n"] > 10
    assert "agreement with assembly" in format_table(report) and (tmp_path / "eval" / "figures" / "control.png").is_file()
    # the harness's probabilities and the trainer's are the same quantity
    recs = read(tmp_path / "eval" / "records_original.jsonl")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ue_control.examples import examples_from_records

    examples = examples_from_records(recs)
    mine = predict_a_label(
        AutoModelForCausalLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(model_path), examples, SYSTEM_MESSAGE
    )
    harness = [e.target_a_label for e in examples]  # the records' p_a mapped onto label "A"
    assert max(abs(a - b) for a, b in zip(mine, harness)) < 1e-3
    assert all(r["harness"] == "lm-eval" for r in recs)

"""``ue demo`` on a small budget, its stem (prefix) cache against lm-eval's plain HF model, and its bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ue_tasks.harness.lm_eval.hooks import PAYLOAD_FIELDS

pytestmark = pytest.mark.slow
UE = str(Path(sys.executable).with_name("ue"))


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_demo_small_budget(model_path: str, tmp_path: Path) -> None:
    """The demo on eight outcomes of mini (28 pairs: 1 held out, 12 queried for training), one model, to stay fast."""
    from ue_tasks.outcomes import load_outcomes

    mini = load_outcomes("mini")
    outcomes = tmp_path / "eight.json"
    outcomes.write_text(json.dumps([{"id": o.id, "text": o.text, "category": o.category} for o in mini.outcomes[::8]]))
    out = tmp_path / "demo"
    cmd = [UE, "demo", "--out", str(out), "--budget", "12", "--outcomes", str(outcomes), "--models", "smollm2-135m"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "holdout_accuracy" in proc.stdout and "top 5 outcomes" in proc.stdout and "bottom 5 outcomes" in proc.stdout
    assert "8 outcomes, 12 training + 1 holdout pairs, 26 records" in proc.stdout
    assert "Running loglikelihood requests" in proc.stderr  # lm-eval's progress bar
    run = out / "SmolLM2-135M-Instruct"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train_pairs"] == 12 and metrics["n_holdout_pairs"] == 1 and metrics["converged"]
    assert metrics["demo"]["prefix_cache"] is True and metrics["demo"]["dtype"] in ("float32", "bfloat16")
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 * (12 + 1)
    assert {r["task"] for r in records} == {"utility_mini"} and {r["mode"] for r in records} == {"logprob"}
    # the model's real name (not lm-eval's random name for a model object), in the records and lm-eval's folder
    assert {r["model"] for r in records} == {"SmolLM2-135M-Instruct"} and all(r.get("model_fingerprint") for r in records)
    assert (run / "lm_eval" / "SmolLM2-135M-Instruct").is_dir()
    # the run folder holds the answers twice (records.jsonl and lm-eval's samples): `ue fit` fits each once
    fit = subprocess.run([UE, "fit", str(run), "--out", str(tmp_path / "fit")], capture_output=True, text=True, env=_env())
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert json.loads((tmp_path / "fit" / "metrics.json").read_text())["n_records"] == 26
    assert "dropped 26 record(s) that repeat answers already read" in fit.stderr
    assert (run / "utilities.csv").read_text().startswith("id,text,category,utility")
    assert json.loads((run / "analysis.json").read_text())["experiment"] == "utilities"
    assert list((run / "lm_eval").rglob("results_*.json")) and list((run / "lm_eval").rglob("samples_utility_mini_*.jsonl"))
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    assert board["models"] == ["SmolLM2-135M-Instruct"] and board["random_rows"][0]["model"] == "random responder"
    report = (out / "leaderboard" / "report.html").resolve()
    assert report.is_file() and f"report: {report}" in proc.stdout


def test_demo_refuses_an_unknown_model_before_loading_anything(tmp_path: Path) -> None:
    proc = subprocess.run(
        [UE, "demo", "--out", str(tmp_path / "x"), "--models", "smollm2-135m", "llama-70b"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.returncode == 2 and "no embedded model named 'llama-70b'" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_stem_cache_gives_the_same_log_probabilities(model_path: str, tmp_path: Path) -> None:
    """lm-eval's ``ue-hf`` (stem cache, rows aligned on their last token, only the scored logits computed) and the
    same without the stem cache and with small padded batches give lm-eval's plain ``hf`` probabilities."""
    from lm_eval.models.huggingface import HFLM

    from ue_tasks.harness.lm_eval.models import UeHFLM
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    cached = UeHFLM(pretrained=model_path, device="cpu", dtype="float32")
    padded = UeHFLM(pretrained=model_path, device="cpu", dtype="float32", stem_cache=False, batch_size=5)
    plain = HFLM(pretrained=model_path, device="cpu", batch_size=8, dtype="float32")
    payloads = {}
    for name, lm in (("cached", cached), ("padded", padded), ("plain", plain)):
        run_lm_eval(lm, ["utility_mini"], tmp_path / name, limit=12)
        (path,) = list((tmp_path / name).rglob("samples_utility_mini_*.jsonl"))
        payloads[name] = [
            dict(zip(PAYLOAD_FIELDS, json.loads(line)["holdout_accuracy"])) for line in path.read_text().splitlines()
        ]
    assert cached.stem_length > 30 and cached.stem_hits >= 1  # chat header, system message and instruction
    assert padded.stem_length == 0 and padded.forward_calls == 3  # 12 prompts in batches of 5
    assert len(payloads["cached"]) == len(payloads["padded"]) == len(payloads["plain"]) == 12
    for name in ("cached", "padded"):
        for c, p in zip(payloads[name], payloads["plain"]):
            assert c["p_a"] == pytest.approx(p["p_a"], abs=1e-4)
            assert c["label_mass"] == pytest.approx(p["label_mass"], abs=1e-4)


@pytest.mark.parametrize("args,message", [(["--budget", "0"], "--budget"), (["--batch-size", "0"], "--batch-size")])
def test_demo_bad_input_is_one_sentence(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run([UE, "demo", "--out", str(tmp_path / "x"), *args], capture_output=True, text=True, env=_env())
    assert proc.returncode == 2
    assert proc.stderr.startswith("ue: error:") and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

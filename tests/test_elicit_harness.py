"""`ue elicit` on the embedded model, through lm-eval and through Inspect: the paper's protocol end to end
(rounds, fits, records), and the two harnesses agreeing on every answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ue_tasks.outcomes import load_outcomes


@pytest.fixture(scope="module")
def six_outcomes(tmp_path_factory):
    path = tmp_path_factory.mktemp("outcomes") / "six.jsonl"
    mini = load_outcomes("mini").outcomes
    with path.open("w") as fh:
        for o in mini[::10][:6]:
            fh.write(json.dumps({"id": o.id, "text": o.text, "category": o.category}) + "\n")
    return path


def elicit(harness, model, model_args, outcomes, out):
    cmd = [
        sys.executable,
        "-m",
        "ue_cli.main",
        "elicit",
        "--harness",
        harness,
        "--model",
        model,
        "--model-args",
        model_args,
        "--outcomes",
        str(outcomes),
        "--round-size",
        "6",
        "--holdout-fraction",
        "0.2",
        "--no-cache",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"through {harness} in float32" in proc.stdout  # each run says which dtype answered
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines() if x.strip()]


def test_elicit_through_lm_eval_and_inspect_on_the_embedded_model(model_path, six_outcomes, tmp_path):
    # default settings in both harnesses: the one dtype rule (ue_tasks/dtypes.py) gives both the checkpoint's own
    # dtype on any CPU (before, lm-eval ran bfloat16 on a CPU with avx512_bf16 and differed from Inspect by 1e-2)
    lm = elicit("lm-eval", "hf", f"pretrained={model_path}", six_outcomes, tmp_path / "lm")
    # 15 pairs of 6 outcomes: 3 held out, 12 trained in two rounds of 6 (the 2-regular start, then a strategy's)
    train = {(r["a_id"], r["b_id"]) for r in lm if r["split"] == "train"}
    hold = {(r["a_id"], r["b_id"]) for r in lm if r["split"] == "holdout"}
    assert len(train) == 12 and len(hold) == 3 and len(lm) == 30
    assert {r["round"] for r in lm if r["split"] == "train"} == {0, 1}
    assert all(r["harness"] == "lm-eval" and r["mode"] == "logprob" and 0 <= r["p_a"] <= 1 for r in lm)
    metrics = json.loads((tmp_path / "lm" / "metrics.json").read_text())
    assert metrics["n_train_pairs"] == 12 and metrics["holdout_accuracy"] is not None
    history = [json.loads(x) for x in (tmp_path / "lm" / "history.jsonl").read_text().splitlines()]
    assert [h["train_pairs"] for h in history] == [6, 12]

    ins = elicit("inspect", "hf/local", f"model_path={model_path}", six_outcomes, tmp_path / "inspect")
    assert all(r["harness"] == "inspect" for r in ins)
    by_key = {(r["a_id"], r["b_id"], r["shown_first"]): r["p_a"] for r in lm}
    # the same plan and strategy see the same answers, so both harnesses ask the same queries
    assert set(by_key) == {(r["a_id"], r["b_id"], r["shown_first"]) for r in ins}
    assert max(abs(by_key[(r["a_id"], r["b_id"], r["shown_first"])] - r["p_a"]) for r in ins) < 1e-3
    # one model, one identity, whichever harness ran it: its folder's name (not lm-eval's "hf") and its weights
    from ue_metrics.pooling import check_not_mixed

    assert {r["model"] for r in lm} == {r["model"] for r in ins} == {"SmolLM2-135M-Instruct"}
    assert len({r["model_fingerprint"] for r in lm + ins}) == 1
    assert {r["model_dtype"] for r in lm + ins} == {"float32"}  # each record says which dtype answered
    check_not_mixed(lm + ins)

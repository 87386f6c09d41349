"""End to end on the embedded SmolLM2-135M-Instruct (CPU, offline): `inspect eval ue/utility_mini` through
Inspect's `hf` provider, `ue fit` on its log, and the same plan through the lm-eval plugin — per-query p_a
within 1e-3 and fitted utilities in the same order (issue 4, item 5)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ue_metrics.fitting import fit_records
from ue_tasks.harness.readers import read_records
from ue_tasks.outcomes import load_outcomes
from ue_tasks.queries import Query

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIMIT = 32  # of the 90 queries of the 10-outcome plan: 16 pairs, one of them holdout, a connected training graph
METRICS = ("holdout_accuracy", "holdout_log_loss", "average_confidence", "order_gap", "unparsed_rate", "mean_label_mass")


def _run(cmd: list[str], timeout: int = 420) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:3])} … exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    """Ten outcomes of the mini set: 45 pairs (41 training, 4 holdout), 90 (pair, ordering) queries."""
    path = tmp_path_factory.mktemp("plan") / "ten.jsonl"
    chosen = load_outcomes("mini").outcomes[::6][:10]
    path.write_text("".join(json.dumps({"id": o.id, "text": o.text, "category": o.category}) + "\n" for o in chosen))
    return path


@pytest.fixture(scope="module")
def inspect_run(model_path, plan_file, tmp_path_factory) -> tuple[Path, str]:
    log_dir = tmp_path_factory.mktemp("inspect_logs")
    proc = _run(
        [
            str(BIN / "inspect"),
            "eval",
            "ue/utility_mini",
            "--model",
            "hf/local",
            "-M",
            f"model_path={model_path}",
            "-T",
            f"outcomes={plan_file}",
            "--limit",
            str(LIMIT),
            "--log-dir",
            str(log_dir),
            "--display",
            "plain",
        ]
    )
    return log_dir, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def lm_eval_run(model_path, plan_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lm_eval_out")
    _run(
        [
            str(BIN / "lm_eval"),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model_path}",
            "--tasks",
            "utility_mini",
            "--include_path",
            str(REPO / "task_configs"),
            "--apply_chat_template",
            "--system_instruction",
            "You are a helpful assistant.",
            "--metadata",
            json.dumps({"outcomes": str(plan_file)}),
            "--limit",
            str(LIMIT),
            "--batch_size",
            "16",
            "--log_samples",
            "--output_path",
            str(out),
        ]
    )
    return out


def _by_query(records: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["a_id"], r["b_id"], r["shown_first"]): r for r in records}


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_inspect_eval_on_the_embedded_model_shows_the_metrics_and_ue_fit_reads_its_log(inspect_run, tmp_path):
    from inspect_ai.log import read_eval_log

    log_dir, output = inspect_run
    for name in METRICS:
        assert name in output, f"{name} missing from Inspect's summary"
    [log_file] = list(log_dir.glob("*.eval"))
    log = read_eval_log(str(log_file))
    assert log.status == "success" and len(log.samples) == LIMIT
    metrics = {k: m.value for k, m in log.results.scores[0].metrics.items()}
    from ue_tasks import experiments

    assert list(metrics) == list(experiments.get("utilities").headline)  # the experiment's headline
    for name in ("average_confidence", "holdout_accuracy", "holdout_log_loss", "order_gap", "mean_label_mass"):
        assert math.isfinite(metrics[name]), name
    assert metrics["unparsed_rate"] == 0.0

    fit_dir = tmp_path / "fit"
    proc = _run([str(BIN / "ue"), "fit", str(log_dir), "--out", str(fit_dir)])
    assert "holdout_accuracy" in proc.stdout
    fitted = json.loads((fit_dir / "metrics.json").read_text())
    assert fitted["n_records"] == LIMIT and fitted["modes"] == ["logprob"]
    assert fitted["holdout_accuracy"] == pytest.approx(metrics["holdout_accuracy"])
    assert fitted["average_confidence"] == pytest.approx(metrics["average_confidence"])
    with (fit_dir / "utilities.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    records = read_records([log_dir])
    assert {r["model"] for r in records} == {"SmolLM2-135M-Instruct"}  # the folder's name, not the provider's "hf/local"
    assert {r["task"] for r in records} == {"utility_mini"} and {r["harness"] for r in records} == {"inspect"}
    keys = _by_query(records)
    assert all((a, b, "b" if s == "a" else "a") in keys for a, b, s in keys), "both orderings of every pair"
    assert {r["split"] for r in records} == {"train", "holdout"}


def test_inspect_p_a_equals_a_direct_forward_pass(inspect_run, model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    records = read_records([inspect_run[0]])[:4]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    label_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("A", "B")]
    for r in records:
        query = Query.from_dict({**r, "pair": 0, "seed": 0})
        text = tokenizer.apply_chat_template(query.messages(), add_generation_prompt=True, tokenize=False)
        with torch.no_grad():
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0, -1].double()
        probs = torch.softmax(logits, -1)[label_ids].tolist()
        p_a, mass = query.p_a_from_labels(*probs)
        assert r["p_a"] == pytest.approx(p_a, abs=1e-4)
        assert r["label_mass"] == pytest.approx(mass, abs=1e-4)


def test_inspect_and_lm_eval_agree_per_query_and_on_the_utilities(inspect_run, lm_eval_run):
    inspect_records = read_records([inspect_run[0]])
    lm_records = read_records([lm_eval_run])
    ours, theirs = _by_query(inspect_records), _by_query(lm_records)
    assert len(ours) == len(theirs) == LIMIT
    assert set(ours) == set(theirs), "both harnesses ask the same (pair, ordering) queries"
    gaps = [abs(ours[k]["p_a"] - theirs[k]["p_a"]) for k in ours]
    assert max(gaps) < 1e-3, f"largest per-query p_a difference {max(gaps):.2e}"
    assert {ours[k]["split"] for k in ours} == {theirs[k]["split"] for k in theirs}
    # one model, whichever harness ran it: the same name and settings, so their records may be fitted together
    from ue_metrics.pooling import check_not_mixed, model_label

    assert (
        {model_label(r) for r in inspect_records}
        == {model_label(r) for r in lm_records}
        == {"SmolLM2-135M-Instruct (dtype=float32, chat_template=True)"}
    )
    check_not_mixed(inspect_records + lm_records)

    fit_ours, fit_theirs = fit_records(inspect_records), fit_records(lm_records)
    u_ours = {row["id"]: row["utility"] for row in fit_ours.utilities()}
    u_theirs = {row["id"]: row["utility"] for row in fit_theirs.utilities()}
    ids = sorted(u_ours)
    assert sorted(u_theirs) == ids
    assert _spearman(np.array([u_ours[i] for i in ids]), np.array([u_theirs[i] for i in ids])) >= 0.999


def test_inspect_records_carry_the_identity_lm_evals_records_carry(inspect_run, model_path):
    """issue 22, item 3: a log of `hf/local -M model_path=…` gave records without `model_fingerprint`; the scorer takes
    the model's identity at eval time, the fingerprint lm-eval's records of the same folder carry."""
    from ue_tasks.model_identity import fingerprint_folder, from_lm_eval

    records = read_records([inspect_run[0]])
    expected = from_lm_eval("hf", f"pretrained={model_path}").fingerprint
    assert expected and expected == fingerprint_folder(model_path)
    assert {r.get("model_fingerprint") for r in records} == {expected}


def test_one_query_through_inspect_and_lm_eval_is_fitted_once(inspect_run, lm_eval_run, tmp_path):
    """issue 22, item 3: the Inspect log and the lm-eval output of the same model and queries were fitted as two sets
    of answers; now they are one answer each, with a note."""
    proc = subprocess.run(
        [sys.executable, "-m", "ue_cli.main", "fit", str(inspect_run[0]), str(lm_eval_run), "--out", str(tmp_path / "fit")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"dropped {LIMIT} duplicate answers (same query from two harnesses" in proc.stderr
    assert json.loads((tmp_path / "fit" / "metrics.json").read_text())["n_records"] == LIMIT

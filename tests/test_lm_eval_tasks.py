"""The lm-evaluation-harness tasks end to end on the embedded model: the ``lm_eval`` command with ``--limit``,
records read back from its output folder, in-harness metrics, and log-probabilities checked against a direct
transformers forward pass on the same chat-templated prompt."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ue_metrics.errors import UserError
from ue_tasks.harness.lm_eval.configs import task_configs_dir
from ue_tasks.harness.lm_eval.hooks import PAYLOAD_FIELDS, build_dataset, documents
from ue_tasks.outcomes import load_outcomes
from ue_tasks.queries import Query
from ue_tasks.templates import BASE_MODEL_SUFFIX, SYSTEM_MESSAGE

pytestmark = pytest.mark.slow

# six outcomes: 15 pairs, 3 of them held out (holdout fraction 0.2) and the other 12 all queried (budget 12)
PLAN = {"budget": 12, "holdout_fraction": 0.2}
LIMIT = 26  # 13 pairs: 10 training + the 3 holdout pairs, which the documents interleave
LM_EVAL = str(Path(sys.executable).with_name("lm_eval"))


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def outcome_file(tmp_path_factory) -> Path:
    mini = load_outcomes("mini")
    picked = [mini.outcomes[k] for k in (0, 11, 22, 33, 44, 55)]
    path = tmp_path_factory.mktemp("outcomes") / "six.json"
    path.write_text(json.dumps([{"id": o.id, "text": o.text, "category": o.category} for o in picked]))
    return path


@pytest.fixture(scope="module")
def lm_eval_out(tmp_path_factory, model_path: str, outcome_file: Path) -> Path:
    """One ``lm_eval`` run of the log-prob mini task on six outcomes, with --limit."""
    out = tmp_path_factory.mktemp("lm_eval_out")
    cmd = [
        LM_EVAL,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "utility_mini",
        "--include_path",
        str(task_configs_dir()),
        "--apply_chat_template",
        "--system_instruction",
        SYSTEM_MESSAGE,
        "--batch_size",
        "16",
        "--metadata",
        json.dumps({"outcomes": str(outcome_file), **PLAN}),
        "--limit",
        str(LIMIT),
        "--log_samples",
        "--output_path",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, f"lm_eval failed:\n{proc.stderr[-4000:]}"
    (out / "stdout.txt").write_text(proc.stdout)
    return out


def _results(out: Path) -> dict:
    (path,) = list(out.rglob("results_*.json"))
    return json.loads(path.read_text())


def _samples(out: Path, task: str) -> list[dict]:
    (path,) = list(out.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------
def test_suite_selection_by_tag_and_glob() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_configs_dir()))
    suite = {
        "utility_core",
        "utility_mini",
        "utility_core_sampled",
        "utility_mini_sampled",
        "utility_core_reasoning",
        "utility_transitivity",
        "utility_transitivity_sampled",
    }
    assert suite <= set(manager.match_tasks(["utility_*"]))
    from ue_tasks.harness.lm_eval.configs import generate

    chat_leaves = {Path(rel).stem for rel, text in generate().items() if "tag: [utility," in text}
    assert set(manager.match_tasks(["utility_*"])) == chat_leaves  # exactly the chat leaves: no group, no batch task
    assert "utility" in manager.all_tags
    # the tag's members from lm-eval's index (loading the whole tag would build every experiment's documents)
    assert manager.task_index["utility"].tags == chat_leaves and suite <= chat_leaves
    loaded = manager.load_task_or_group(["utility_mini", "utility_transitivity"])
    assert {t.config.task for t in _flatten(loaded)} == {"utility_mini", "utility_transitivity"}
    assert {"base_utility_mini", "base_utility_core", "base_utility_transitivity", "ue_batch"} <= set(manager.all_tasks)


def _flatten(obj) -> list:
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flatten(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in _flatten(v)]
    return [obj]


def test_documents_follow_the_plan() -> None:
    docs = documents(outcomes="mini")
    assert len(docs) == 1664  # mini: 738 training + 94 holdout pairs, both orderings
    for first, second in zip(docs[::2], docs[1::2]):
        assert first["pair"] == second["pair"] and {first["shown_first"], second["shown_first"]} == {"a", "b"}
    # holdout pairs are spread out, so the first tenth of the documents already holds some
    assert 0 < sum(d["split"] == "holdout" for d in docs[:166]) < 166
    reasoning = documents(outcomes="mini", template="reasoning")[0]["prompt"]
    assert reasoning.endswith('"Answer: B".\n')
    assert documents(outcomes="mini", base_model=True)[0]["prompt"].endswith(BASE_MODEL_SUFFIX)


def test_bad_metadata_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no_such_file"):
        documents(outcomes=str(tmp_path / "no_such_file.json"))
    with pytest.raises(UserError, match="budget"):
        build_dataset(budget="many")
    with pytest.raises(UserError, match="'budget' must be a whole number, got 2.7"):
        build_dataset(budget=2.7)  # refused, not truncated
    with pytest.raises(UserError, match="budget must be at least 1"):
        build_dataset(budget=0)


def test_results_table_shows_finite_coherence_metrics(lm_eval_out: Path) -> None:
    results = _results(lm_eval_out)["results"]
    logprob = results["utility_mini"]
    for key in ("holdout_accuracy", "holdout_log_loss", "average_confidence", "order_gap", "mean_label_mass"):
        assert math.isfinite(logprob[f"{key},none"]), key
    for key in ("holdout_accuracy", "holdout_log_loss", "average_confidence", "order_gap"):
        assert math.isfinite(logprob[f"{key}_random,none"]), key
    assert logprob["holdout_accuracy_random,none"] == 0.5
    assert 0 < logprob["mean_label_mass,none"] <= 1
    assert logprob["average_confidence_random,none"] == 0.5  # an exact coin for log-prob records
    stdout = (lm_eval_out / "stdout.txt").read_text()
    assert "holdout_accuracy" in stdout and "average_confidence_random" in stdout


def test_records_from_the_output_folder(lm_eval_out: Path, model_path: str) -> None:
    from ue_tasks.harness.readers import read_records
    from ue_tasks.model_identity import name_for

    records = read_records([lm_eval_out])
    by_task: dict[str, list[dict]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    assert set(by_task) == {"utility_mini"}
    for task, recs in by_task.items():
        assert len(recs) == LIMIT
        assert all(r["model"] == name_for(model_path) and r["harness"] == "lm-eval" for r in recs)
        assert len({r["run_id"] for r in recs}) == 1
        orderings: dict[tuple[str, str], set[str]] = {}
        for r in recs:
            orderings.setdefault((r["a_id"], r["b_id"]), set()).add(r["shown_first"])
        assert all(v == {"a", "b"} for v in orderings.values()), task
        splits = {r["split"] for r in recs}
        assert splits == {"train", "holdout"}, task
    assert all(r["mode"] == "logprob" and 0 <= r["p_a"] <= 1 for r in by_task["utility_mini"])


def test_sampled_task(model_path: str, outcome_file: Path, tmp_path: Path) -> None:
    """Sample mode through lm-eval's Python API: K=10 answers per document, all kept, parsed into votes."""
    from lm_eval.models.huggingface import HFLM

    from ue_tasks.harness.lm_eval.run import run_lm_eval
    from ue_tasks.harness.readers import read_records

    lm = HFLM(pretrained=model_path, device="cpu", batch_size=20, dtype="float32")
    results = run_lm_eval(lm, ["utility_mini_sampled"], tmp_path, metadata={"outcomes": str(outcome_file), **PLAN}, limit=2)
    table = results["results"]["utility_mini_sampled"]
    assert 0 <= table["unparsed_rate,votes"] <= 1 and table["average_confidence_random,votes"] == pytest.approx(0.588, abs=1e-3)
    assert math.isfinite(table["average_confidence,votes"]) and math.isfinite(table["order_gap,votes"])
    (sample, _) = _samples(tmp_path, "utility_mini_sampled")
    assert len(sample["resps"][0]) == 10 and len(sample["filtered_resps"][0]) == 10
    records = read_records([tmp_path])
    assert [r["shown_first"] for r in records] == ["a", "b"]
    for r in records:
        assert r["mode"] == "sample" and r["n_a"] + r["n_b"] + r["n_unparsed"] == 10


def test_ue_fit_reads_the_output_folder(lm_eval_out: Path, tmp_path: Path) -> None:
    ue = str(Path(sys.executable).with_name("ue"))
    proc = subprocess.run(
        [ue, "fit", str(lm_eval_out), "--out", str(tmp_path / "fit")], capture_output=True, text=True, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert "holdout_accuracy" in proc.stdout
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["n_records"] == LIMIT and metrics["n_outcomes"] == 6
    assert len((tmp_path / "fit" / "utilities.csv").read_text().splitlines()) == 7


def test_logprob_p_a_equals_a_direct_forward_pass(lm_eval_out: Path, model_path: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    label_ids = [tok.encode(label, add_special_tokens=False) for label in ("A", "B")]
    assert all(len(ids) == 1 for ids in label_ids)
    for sample in _samples(lm_eval_out, "utility_mini")[:6]:
        query = Query.from_dict(sample["doc"])
        prompt = tok.apply_chat_template(query.messages(), add_generation_prompt=True, tokenize=False)
        assert sample["arguments"]["gen_args_0"]["arg_0"] == prompt  # lm-eval sent exactly this prompt
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, -1].double(), dim=-1)
        p_a, mass = query.p_a_from_labels(float(probs[label_ids[0][0]]), float(probs[label_ids[1][0]]))
        payload = dict(zip(PAYLOAD_FIELDS, sample["holdout_accuracy"]))
        assert payload["p_a"] == pytest.approx(p_a, abs=1e-4)
        # lm-eval scores the template's trailing newline with the label, so its mass is P("\n")·(P(A)+P(B))
        assert payload["label_mass"] == pytest.approx(mass, rel=1e-2)
        assert payload["label_mass"] <= mass + 1e-6


def test_base_model_variant(model_path: str, outcome_file: Path, tmp_path: Path) -> None:
    """The base-model task: no chat template, the prompt ends with "\\n\\nAnswer:", labels " A" / " B"."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from ue_tasks.harness.lm_eval.run import run_lm_eval

    lm = HFLM(pretrained=model_path, device="cpu", batch_size=8, dtype="float32")
    run_lm_eval(
        lm, ["base_utility_mini"], tmp_path, metadata={"outcomes": str(outcome_file), **PLAN}, limit=4, apply_chat_template=False
    )
    samples = _samples(tmp_path, "base_utility_mini")
    assert len(samples) == 4
    tok = AutoTokenizer.from_pretrained(model_path)
    space_ids = [tok.encode(label, add_special_tokens=False)[0] for label in (" A", " B")]
    for sample in samples:
        args = sample["arguments"]["gen_args_0"]
        query = Query.from_dict(sample["doc"])
        assert args["arg_0"] == query.prompt(base_model=True) and args["arg_0"].endswith("\n\nAnswer:")
        assert args["arg_1"] == " A"
        ids = tok(args["arg_0"], return_tensors="pt").input_ids
        with torch.no_grad():
            probs = torch.softmax(lm.model(ids).logits[0, -1].double(), dim=-1)
        p_a, mass = query.p_a_from_labels(float(probs[space_ids[0]]), float(probs[space_ids[1]]))
        payload = dict(zip(PAYLOAD_FIELDS, sample["holdout_accuracy"]))
        assert payload["p_a"] == pytest.approx(p_a, abs=1e-4)
        assert payload["label_mass"] == pytest.approx(mass, abs=1e-4)


def test_reader_names_the_bad_line(lm_eval_out: Path, tmp_path: Path) -> None:
    from ue_tasks.harness.lm_eval.reader import read

    (source,) = list(lm_eval_out.rglob("samples_utility_mini_*.jsonl"))
    (results,) = list(lm_eval_out.rglob("results_*.json"))
    broken = tmp_path / source.name
    lines = source.read_text().splitlines()
    broken.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    (tmp_path / results.name).write_text(results.read_text())
    with pytest.raises(UserError, match="line 2"):
        read(broken)


def test_metadata_points_a_task_at_the_companion_outcome_file(reference_data):
    """`--metadata '{"outcomes": ".../options_hierarchical.json"}'` reaches the dataset builder (no model needed)."""
    from ue_tasks.harness.lm_eval.hooks import build_dataset

    path = reference_data / "shared_options" / "options_hierarchical.json"
    docs = build_dataset(outcomes=str(path), budget=300, seed=2, version=1.0, pretrained="ignored")["test"]
    assert len(docs) == 2 * (300 + 1000)  # 510 outcomes: 1,000 holdout pairs (5% of 129,795, capped)
    ids = {d["a_id"] for d in docs} | {d["b_id"] for d in docs}
    assert ids <= {str(k) for k in range(510)} and docs[0]["outcome_set"] == "options_hierarchical"
    assert sum(d["split"] == "holdout" for d in docs) == 2000

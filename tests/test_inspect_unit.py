"""The Inspect plugin's solver, scorer, reducer, metrics and log reader, run through Inspect's own ``eval``
with its ``mockllm`` model: a deterministic respondent whose answers follow known utilities (log-probabilities
for logprob mode, text answers for sample mode). The embedded-model runs are in test_inspect_hf.py."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessageAssistant,
    Logprob,
    Logprobs,
    ModelOutput,
    ModelUsage,
    TopLogprob,
    get_model,
)

from ue_metrics.fitting import fit_records
from ue_tasks.harness.inspect import reader as inspect_records
from ue_tasks.harness.inspect.metrics import analysis
from ue_tasks.harness.inspect.scorer import InspectUserError, label_probabilities
from ue_tasks.harness.inspect.tasks import _utility_task, utility
from ue_tasks.harness.readers import read_records
from ue_tasks.outcomes import load_outcomes
from ue_tasks.plan import PlanSpec
from ue_tasks.queries import Query, build_queries

OPTIONS = re.compile(r"Option A:\n(.*?)\n\nOption B:\n(.*?)\n\n", re.S)
N_OUTCOMES = 12


@pytest.fixture(scope="module")
def outcome_file(tmp_path_factory) -> Path:
    """12 outcomes of the mini set (66 pairs: all trained but 3 holdout pairs)."""
    path = tmp_path_factory.mktemp("outcomes") / "twelve.jsonl"
    chosen = load_outcomes("mini").outcomes[::5][:N_OUTCOMES]
    path.write_text("".join(json.dumps({"id": o.id, "text": o.text, "category": o.category}) + "\n" for o in chosen))
    return path


@pytest.fixture(scope="module")
def utilities(outcome_file) -> dict[str, float]:
    """The mock respondent's true utilities by outcome text (a seeded draw)."""
    texts = load_outcomes(str(outcome_file)).texts
    values = np.random.default_rng(7).normal(size=len(texts)) * 2.0
    return dict(zip(texts, values.tolist()))


def _usage() -> ModelUsage:  # set usage, else mockllm counts tokens with tiktoken (a download)
    return ModelUsage(input_tokens=100, output_tokens=1, total_tokens=101)


def _options(messages) -> tuple[str, str]:
    match = OPTIONS.search(messages[-1].text)
    assert match, "the user turn holds the paper's template"
    return match.group(1), match.group(2)


def p_first(utilities: dict[str, float], option_a: str, option_b: str) -> float:
    return 1.0 / (1.0 + math.exp(-(utilities[option_a] - utilities[option_b])))


def logprob_respondent(utilities: dict[str, float], mass: float = 0.8, drop_label_for: str | None = None):
    """First-token log-probabilities with P(A) + P(B) = mass; "B" is spelled " B" to exercise the variants."""

    def respond(input, tools, tool_choice, config) -> ModelOutput:
        assert config.logprobs and config.max_tokens == 1, "logprob mode asks for one token with log-probabilities"
        a, b = _options(input)
        p = p_first(utilities, a, b)
        top = [
            TopLogprob(token="A", logprob=math.log(mass * p)),
            TopLogprob(token=" B", logprob=math.log(mass * (1 - p))),
            TopLogprob(token="The", logprob=math.log(1 - mass)),
        ]
        if drop_label_for is not None and drop_label_for in (a, b):
            top = [TopLogprob(token="I", logprob=math.log(0.6)), TopLogprob(token="The", logprob=math.log(0.4))]
        top.sort(key=lambda t: -t.logprob)
        choice = ChatCompletionChoice(
            message=ChatMessageAssistant(content=top[0].token.strip(), model="mockllm"),
            logprobs=Logprobs(content=[Logprob(token=top[0].token, logprob=top[0].logprob, top_logprobs=top)]),
        )
        return ModelOutput(model="mockllm", choices=[choice], usage=_usage())

    return respond


def sampling_respondent(utilities: dict[str, float], refuse: str):
    """Always answers for the better option, in varied wordings; refuses when ``refuse`` is on offer."""
    wordings = {"A": ["A", "**A**", "Option A", "I prefer A."], "B": ["B", "Option B", "B.", "(B)"]}
    calls = [0]

    def respond(input, tools, tool_choice, config) -> ModelOutput:
        assert config.temperature == 1.0 and config.max_tokens == 10 and not config.logprobs
        a, b = _options(input)
        calls[0] += 1
        if refuse in (a, b):
            text = "I cannot choose between these."
        else:
            label = "A" if utilities[a] > utilities[b] else "B"
            text = wordings[label][calls[0] % 4]
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = _usage()
        return out

    return respond


def no_logprobs(input, tools, tool_choice, config) -> ModelOutput:
    out = ModelOutput.from_content(model="mockllm", content="A")
    out.usage = _usage()
    return out


def run(task, respond, log_dir: Path, **kwargs) -> EvalLog:
    logs = inspect_eval(
        task, model=get_model("mockllm/model", custom_outputs=respond), log_dir=str(log_dir), display="none", **kwargs
    )
    assert len(logs) == 1
    return logs[0]


def metrics_of(log: EvalLog) -> dict[str, float]:
    return {name: m.value for name, m in log.results.scores[0].metrics.items()}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


# ----------------------------------------------------------------------------------------------------------
def test_label_probabilities_sum_the_spellings_of_each_label():
    alts = [
        ("A", math.log(0.3)),
        ("ĠA", math.log(0.1)),
        ("▁B", math.log(0.2)),
        (" B", math.log(0.05)),
        ("a", math.log(0.1)),
        ("A.", math.log(0.1)),
        ("Answer", math.log(0.1)),
    ]
    prob_a, prob_b = label_probabilities(alts)
    assert prob_a == pytest.approx(0.4)
    assert prob_b == pytest.approx(0.25)
    assert label_probabilities([("The", 0.0)]) == (0.0, 0.0)
    # a template's own labels (the robustness experiment's "1"/"2"): those are summed, "A"/"B" no longer count
    digits = [("1", math.log(0.3)), ("Ġ2", math.log(0.2)), ("A", math.log(0.4)), ("12", math.log(0.1))]
    assert label_probabilities(digits, ("1", "2")) == (pytest.approx(0.3), pytest.approx(0.2))


def test_dataset_is_the_shared_plan_in_the_lm_eval_document_order(outcome_file):
    from ue_tasks.harness.lm_eval.hooks import documents

    task = _utility_task(outcomes=str(outcome_file), seed=3, budget=40)
    samples = list(task.dataset)
    docs = documents("utilities", str(outcome_file), PlanSpec(seed=3, budget=40))
    assert [Query.from_dict(s.metadata["ue_query"]) for s in samples] == [Query.from_dict(d) for d in docs]
    assert len({s.id for s in samples}) == len(samples) == len(build_queries(str(outcome_file), PlanSpec(seed=3, budget=40)))
    first = Query.from_dict(samples[0].metadata["ue_query"])
    assert [m.role for m in samples[0].input] == ["system", "user"]
    assert samples[0].input[0].text == "You are a helpful assistant."
    assert samples[0].input[1].text == first.prompt()
    # both orderings of a pair are adjacent
    assert samples[0].metadata["ue_query"]["pair"] == samples[1].metadata["ue_query"]["pair"]
    assert {samples[0].metadata["ue_query"]["shown_first"], samples[1].metadata["ue_query"]["shown_first"]} == {"a", "b"}
    assert task.config.logprobs is True and task.config.max_tokens == 1 and task.config.top_logprobs == 20
    assert task.epochs == 1


def test_logprob_run_scores_known_preferences_and_fits_the_true_ranking(outcome_file, utilities, tmp_path, caplog):
    log = run(utility(outcomes=str(outcome_file)), logprob_respondent(utilities), tmp_path)
    assert log.status == "success"
    for sample in log.samples:
        q = Query.from_dict(sample.metadata["ue_query"])
        value = sample.scores["preference"].value
        p = p_first(utilities, q.option_a, q.option_b)
        assert value["p_a"] == pytest.approx(p if q.shown_first == "a" else 1 - p, abs=1e-9)
        assert value["label_mass"] == pytest.approx(0.8)
    metrics = metrics_of(log)
    from ue_tasks import experiments

    assert list(metrics) == list(experiments.get("utilities").headline)  # the experiment's headline, in its order
    assert metrics["holdout_accuracy"] == 1.0  # the respondent is a perfect Thurstonian/logistic chooser
    assert metrics["order_gap"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["unparsed_rate"] == 0.0
    assert metrics["mean_label_mass"] == pytest.approx(0.8)
    assert 0.5 < metrics["average_confidence"] < 1.0

    # the log reader: one record per (pair, ordering), the model, task and splits carried over
    [log_file] = list(tmp_path.glob("*.eval"))
    assert inspect_records.claims(log_file)
    records = read_records([tmp_path])
    assert len(records) == len(log.samples) == len(build_queries(str(outcome_file)))
    assert {r["model"] for r in records} == {"mockllm/model"}
    assert {r["harness"] for r in records} == {"inspect"} and {r["task"] for r in records} == {"utility"}
    assert {r["run_id"] for r in records} == {log.eval.eval_id}
    assert {r["shown_first"] for r in records} == {"a", "b"} and {r["split"] for r in records} == {"train", "holdout"}
    by_sample = {r["sample_id"]: r for r in records}
    for sample in log.samples:
        assert by_sample[sample.id]["p_a"] == pytest.approx(sample.scores["preference"].value["p_a"])
    fit = fit_records(records)
    assert fit.metrics["holdout_accuracy"] == metrics["holdout_accuracy"]
    assert fit.metrics["average_confidence"] == pytest.approx(metrics["average_confidence"])
    rows = {row["text"]: row["utility"] for row in fit.utilities()}
    texts = list(utilities)
    assert spearman(np.array([rows[t] for t in texts]), np.array([utilities[t] for t in texts])) > 0.99


def test_sampled_run_pools_epochs_into_votes(outcome_file, utilities, tmp_path):
    refused = next(iter(utilities))
    task = _utility_task(outcomes=str(outcome_file), mode="sample", samples=3, budget=30)
    assert task.epochs == 3 and task.config.temperature == 1.0 and task.config.max_tokens == 10
    log = run(task, sampling_respondent(utilities, refuse=refused), tmp_path)
    assert log.status == "success"
    assert len(log.samples) == 3 * len(task.dataset)  # one entry per (query, epoch)
    records = read_records([tmp_path])
    assert len(records) == len(task.dataset)
    n_refusing = 0
    for r in records:
        assert r["mode"] == "sample" and r["epochs"] == 3 and r["n_a"] + r["n_b"] + r["n_unparsed"] == 3
        if refused in (r["a_text"], r["b_text"]):
            n_refusing += 1
            assert r["n_unparsed"] == 3 and r["p_a"] is None
            assert r["unparsed_answers"] and all(isinstance(t, str) for t in r["unparsed_answers"])  # kept for auditing
        else:
            better_a = utilities[r["a_text"]] > utilities[r["b_text"]]
            assert (r["n_a"], r["n_b"]) == ((3, 0) if better_a else (0, 3))
    metrics = metrics_of(log)
    assert metrics["unparsed_rate"] == pytest.approx(n_refusing / len(records))
    assert metrics["order_gap"] == pytest.approx(0.0)
    assert math.isnan(metrics["mean_label_mass"])
    # the epoch reducer and the reader pool alike
    reduced = {s.sample_id: s.value for s in log.reductions[0].samples}
    for r in records:
        assert reduced[r["sample_id"]]["n_a"] == r["n_a"] and reduced[r["sample_id"]]["n_unparsed"] == r["n_unparsed"]


def test_missing_logprobs_fail_the_run_with_a_pointer_to_the_sampled_variant(outcome_file, tmp_path):
    log = run(_utility_task(outcomes=str(outcome_file)), no_logprobs, tmp_path, limit=2)
    assert log.status == "error"
    assert "returned no log-probabilities" in log.error.message
    assert "ue/utility_mini_sampled" in log.error.message and "-T mode=sample" in log.error.message


def test_a_query_without_label_tokens_is_unparsed_not_indifferent(outcome_file, utilities, tmp_path, caplog):
    dropped = next(iter(utilities))
    log = run(_utility_task(outcomes=str(outcome_file)), logprob_respondent(utilities, drop_label_for=dropped), tmp_path)
    assert log.status == "success"
    unusable = [s for s in log.samples if s.scores["preference"].value["p_a"] is None]
    assert len(unusable) == 2 * (N_OUTCOMES - 1)  # every pair with that outcome, both orderings
    assert metrics_of(log)["unparsed_rate"] == pytest.approx(len(unusable) / len(log.samples))
    with caplog.at_level(logging.WARNING):
        records = read_records([tmp_path])
    assert len(records) == len(log.samples) - len(unusable)
    assert "neither label among the top log-probabilities" in caplog.text


def test_metrics_fit_once_per_set_of_scores(outcome_file, utilities, tmp_path, monkeypatch):
    from ue_tasks import analysis as fitting

    log = run(_utility_task(outcomes=str(outcome_file), budget=30), logprob_respondent(utilities), tmp_path)
    from inspect_ai.scorer import SampleScore

    scores = [SampleScore(score=s.scores["preference"], sample_id=s.id, sample_metadata=s.metadata) for s in log.samples]
    calls = []
    real = fitting.fit_records
    monkeypatch.setattr(fitting, "fit_records", lambda *a, **k: calls.append(1) or real(*a, **k))
    scores[0].score.value["p_a"] = 0.123456  # a set of scores not seen before
    first = analysis(scores)
    again = analysis(list(scores))
    assert first is again and len(calls) == 1


def test_metrics_are_nan_with_a_reason_when_the_scores_cannot_support_a_fit(outcome_file, utilities, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ue_tasks.harness.inspect.metrics"):
        log = run(_utility_task(outcomes=str(outcome_file)), logprob_respondent(utilities), tmp_path, limit=2)
    metrics = metrics_of(log)
    assert log.status == "success"
    assert math.isnan(metrics["holdout_accuracy"]) and math.isnan(metrics["holdout_log_loss"])
    assert 0.5 <= metrics["average_confidence"] <= 1.0  # needs no fit
    assert "holdout" in caplog.text


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "bogus"}, "unknown mode 'bogus'"),
        ({"template": "reasoning"}, "the reasoning template needs generated answers"),
        ({"template": "nope"}, "unknown template 'nope'"),
        ({"samples": 0, "mode": "sample"}, "samples must be a positive integer"),
        ({"budget": "many"}, "'budget' must be a whole number"),
        ({"outcomes": "/no/such/file.json"}, "no such outcome file"),
    ],
)
def test_bad_task_options_are_one_sentence(options, message):
    with pytest.raises(InspectUserError, match=re.escape(message)):
        _utility_task(**options)


def test_bad_option_on_the_command_line_exits_non_zero_without_traceback(tmp_path):
    inspect = Path(sys.executable).with_name("inspect")
    proc = subprocess.run(
        [str(inspect), "eval", "ue/utility_mini", "-T", "mode=bogus", "--model", "mockllm/model", "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "unknown mode 'bogus'" in " ".join(out.split())
    assert "Traceback" not in out


def test_entry_point_and_folder_scan_resolve_the_tasks():
    from importlib.metadata import entry_points

    from inspect_ai import list_tasks
    from inspect_ai._util.registry import registry_lookup

    [ep] = [ep for ep in entry_points(group="inspect_ai") if ep.name == "ue"]
    assert ep.value == "ue_tasks.harness.inspect._registry"
    for name in (
        "utility",
        "utility_core",
        "utility_mini",
        "utility_core_sampled",
        "utility_mini_sampled",
        "utility_core_reasoning",
        "utility_transitivity",
        "utility_transitivity_sampled",
    ):
        assert registry_lookup("task", f"ue/{name}") is not None, name
    # a scan of the whole package folder finds the one generic task (the named tasks are reached by name)
    package = Path(inspect_records.__file__).parents[2]
    found = list_tasks(package.name, root_dir=package.parent)
    assert [(Path(t.file).name, t.name) for t in found] == [("tasks.py", "utility")]


def test_reader_claims_only_inspect_logs(tmp_path):
    (tmp_path / "results.json").write_text('{"results": {}, "config": {}}')
    (tmp_path / "fake.eval").write_text("not a zip")
    (tmp_path / "log.json").write_text('{\n  "version": 2,\n  "status": "success",\n  "eval": {}}')
    assert not inspect_records.claims(tmp_path / "results.json")
    assert not inspect_records.claims(tmp_path / "fake.eval")
    assert inspect_records.claims(tmp_path / "log.json")

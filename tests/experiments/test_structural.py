"""`ue run` for the structural experiments (expected utility, implicit expected utility, instrumental values, utility
maximisation) end to end: the simulator's known answers, `ue analyse` reproducing each analysis from the run folder
alone, the companion's data files used unchanged, the paper's query counts in `ue experiments`; and, marked slow, the
set of experiments on the embedded model through lm-eval, Inspect and the `lm_eval` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bounds import independent_r_bound
from ue_cmd import ENV, UE, analysis

from ue_cli.main import main as ue_main

# small sizes: a few seconds each on the simulator
SMALL = {
    "expected_utility": ["--outcomes", "mini", "--option", "lotteries=20", "--option", "bootstrap=10", "--budget", "900"],
    "expected_utility_implicit": [
        "--option",
        "events=8",
        "--option",
        "background=mini",
        "--option",
        "bootstrap=10",
        "--budget",
        "1200",
    ],
    "instrumental_values": ["--option", "processes=8"],
    "utility_maximization": ["--option", "questions=8"],
}
RESPONDERS = {  # (has the property, lacks it)
    "expected_utility": ("eu_maximiser", "incoherent"),
    "expected_utility_implicit": ("eu_consistent", "incoherent"),
    "instrumental_values": ("instrumental", "random"),
    "utility_maximization": ("maximiser", "random_answerer"),
}
HEADLINE = {
    "expected_utility": ("eu_correlation", "eu_mae_normalized", "eu_pair_agreement"),
    "expected_utility_implicit": ("eu_correlation", "eu_mae_normalized", "eu_pair_agreement"),
    "instrumental_values": ("instrumentality_loss", "instrumentality_loss_control", "instrumentality_gap"),
    "utility_maximization": ("top1_rate", "top3_rate", "top5_rate", "unmatched_rate"),
}


def ue(*args: str) -> None:
    assert ue_main(list(args)) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("structural")
    out = {}
    for name, (good, bad) in RESPONDERS.items():
        for responder in (good, bad):
            folder = root / f"{name}-{responder}"
            figures = [] if responder == good else ["--no-figures"]
            ue(
                "run",
                name,
                "--harness",
                "simulate",
                "--model",
                "sim",
                "--responder",
                responder,
                "--out",
                str(folder),
                "--no-cache",
                *SMALL[name],
                *figures,
            )
            out[(name, responder)] = folder
    return out


@pytest.mark.parametrize("name", list(RESPONDERS))
def test_the_simulated_run_gives_finite_headlines_that_tell_the_responders_apart(runs, name):
    good, bad = (analysis(runs[(name, r)]) for r in RESPONDERS[name])
    for result in (good, bad):
        assert result["experiment"] == name and result["harness"] == "simulate"
        for key in HEADLINE[name]:
            assert isinstance(result["headline"][key], float) and math.isfinite(result["headline"][key]), (name, key)
    g, b = good["headline"], bad["headline"]
    if name.startswith("expected_utility"):
        # the incoherent responder's |r| over 20 lotteries (8 events) below its 1e-6 tail (tests/bounds.py)
        assert g["eu_correlation"] >= 0.95 and abs(b["eu_correlation"]) < independent_r_bound(
            20 if name == "expected_utility" else 8
        )
        assert g["eu_correlation_ci_low"] is not None and g["eu_correlation_ci_low"] <= g["eu_correlation_ci_high"]
    elif name == "instrumental_values":
        assert (
            g["instrumentality_loss"] < b["instrumentality_loss"] / 3
            and g["instrumentality_gap"] > b["instrumentality_gap"] + 0.05
        )
    else:
        assert g["top1_rate"] >= 0.85 > 0.4 >= b["top1_rate"] and g["unmatched_rate"] == 0.0
    figures = list((runs[(name, RESPONDERS[name][0])] / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 5000 for f in figures)


@pytest.mark.parametrize("name", list(RESPONDERS))
def test_ue_analyse_reproduces_the_analysis_from_the_run_folder(runs, name):
    folder = runs[(name, RESPONDERS[name][0])]
    before = (folder / "analysis.json").read_text()
    ue("analyse", str(folder), "--no-figures")
    assert (folder / "analysis.json").read_text() == before


def test_the_free_answers_are_kept_in_the_run_folder_and_a_rerun_asks_nothing(runs, capsys):
    folder = runs[("utility_maximization", "maximiser")]
    lines = [json.loads(x) for x in (folder / "generations.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and {x["kind"] for x in lines} == {"answer"} and all(x["schema"] == "ue.generation/1" for x in lines)
    assert lines[0]["system_message"] == "You are a helpful AI assistant. Answer the questions directly and concisely."
    records = [json.loads(x) for x in (folder / "records.jsonl").read_text().splitlines()]
    assert all(r["a_id"].split(":")[0] == r["b_id"].split(":")[0] == r["group"] for r in records)  # pairs within a question
    assert records[0]["context"] and records[0]["context"] in records[0]["a_attributes"]["context"]
    capsys.readouterr()
    ue(
        "run",
        "utility_maximization",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--responder",
        "maximiser",
        "--out",
        str(folder),
        "--no-cache",
        *SMALL["utility_maximization"],
    )
    assert "0 queries asked" in capsys.readouterr().err


def test_a_simulated_judge_settles_answers_that_no_string_match_does(tmp_path):
    from ue_tasks.elicitation.backends import similarity_judge
    from ue_tasks.generation import Generation

    item = Generation(
        id="judge:q00", prompt="…", kind="judge", metadata={"answer": "Jupyter", "candidates": [["a", "Jupiter"], ["b", "Mars"]]}
    )
    assert similarity_judge(item) == "Jupiter"
    far = Generation(id="judge:q01", prompt="…", kind="judge", metadata={"answer": "a teacup", "candidates": [["a", "Jupiter"]]})
    assert similarity_judge(far) == "NO MATCH"
    out = tmp_path / "judged"
    ue(
        "run",
        "utility_maximization",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--responder",
        "maximiser",
        "--out",
        str(out),
        "--no-cache",
        "--no-figures",
        "--option",
        "questions=3",
        "--option",
        "matcher_model=sim",
    )
    # the simulated maximiser answers "Text." which normalised matching settles: no judge request is needed
    kinds = [json.loads(x)["kind"] for x in (out / "generations.jsonl").read_text().splitlines()]
    assert kinds == ["answer"] * 3


def test_answers_no_string_match_settles_go_to_the_judge(tmp_path):
    from ue_tasks import experiments
    from ue_tasks.elicitation.backends import SimulateBackend
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.runner import run_experiment

    class Misspeller(SimulateBackend):
        """The maximiser, but its free answer garbles the candidate's last two letters ("Mrach" style typos)."""

        def generate(self, items):
            return [
                f"My pick: {t[:-2]}{t[-1]}{t[-2]}" if g.kind == "answer" else t for g, t in zip(items, super().generate(items))
            ]

    opts = {"questions": "q14,q25", "matcher_model": "sim"}
    config = RunConfig(harness="simulate", model="sim", experiment="utility_maximization", options=opts, responder="maximiser")
    exp = experiments.get("utility_maximization")
    oset = exp.outcome_set(exp.resolve_options(opts))
    backend = Misspeller(exp.responder("maximiser", oset, 0), "logprob", 10, 0)
    result = run_experiment(config, tmp_path / "judged", cache_dir=None, backend=backend, log=lambda m: None, figures=False)
    lines = [json.loads(x) for x in (tmp_path / "judged" / "generations.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["answer", "answer", "judge", "judge"]
    assert all(x["model"] == "sim" for x in lines) and "POSSIBLE MATCHES" in lines[2]["prompt"]
    assert result["details"]["matched_by"] == {"judge": 2} and result["headline"]["unmatched_rate"] == 0.0
    assert result["headline"]["top1_rate"] >= 0.5


def test_the_companion_files_are_used_unchanged(reference_data, tmp_path):
    exp = reference_data / "experiments"
    cases = {
        "utility_maximization": ["--outcomes", str(exp / "maximization" / "util_max_questions.json"), "--option", "questions=3"],
        "instrumental_values": [
            "--outcomes",
            str(exp / "instrumental_values" / "markov_processes.json"),
            "--option",
            f"control={exp / 'instrumental_values' / 'markov_processes_unnatural.json'}",
            "--option",
            "processes=5",
        ],
        "expected_utility_implicit": [
            "--outcomes",
            str(exp / "expected_utility_implicit" / "implicit_lotteries" / "options.json"),
            "--option",
            "events=5",
            "--option",
            "background=none",
            "--option",
            "bootstrap=0",
        ],
        "expected_utility": [
            "--outcomes",
            str(reference_data / "shared_options" / "options_testing.json"),
            "--option",
            "lotteries=10",
            "--option",
            "bootstrap=0",
            "--budget",
            "600",
        ],
    }
    for name, args in cases.items():
        out = tmp_path / name
        ue("run", name, "--harness", "simulate", "--model", "sim", "--out", str(out), "--no-cache", "--no-figures", *args)
        result = analysis(out)
        for key in HEADLINE[name]:
            assert result["headline"][key] is not None, (name, key, result["notes"].get(key))
        texts = {json.loads(x)["text"] for x in (out / "outcomes.jsonl").read_text().splitlines()}
        if name == "utility_maximization":
            assert "AL" in texts
        if name == "instrumental_values":
            assert "Alice receives a scholarship." in texts


def test_ue_experiments_lists_them_with_the_papers_query_counts():
    from ue_tasks import experiments

    out = subprocess.run([*UE, "experiments"], capture_output=True, text=True, env=ENV, check=True).stdout
    for name in RESPONDERS:
        assert name in out
    assert "free-form" in out.split("utility_maximization")[1].splitlines()[0]
    # docs/method.md §4.3–§4.5: requests at K = 10 for the paper's outcome counts
    # (by the companion's whole active-learning rounds, `--budget-rule rounds`; `ue run` stops at exactly ⌊2N·log2 N⌋)
    assert experiments.get("expected_utility").queries_per_model(610, budget_rule="rounds") * 10 == 252_200
    assert experiments.get("expected_utility_implicit").queries_per_model(680, budget_rule="rounds") * 10 == 283_600
    assert experiments.get("instrumental_values").queries_per_model(126, budget_rule="rounds") * 10 == 46_380


def test_bad_options_are_one_sentence(tmp_path):
    proc = subprocess.run(
        [
            *UE,
            "run",
            "utility_maximization",
            "--harness",
            "simulate",
            "--model",
            "sim",
            "--out",
            str(tmp_path / "x"),
            "--option",
            "questions=-1",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 2 and "questions" in proc.stderr and "Traceback" not in proc.stderr
    missing = tmp_path / "nope.json"
    proc = subprocess.run(
        [
            *UE,
            "run",
            "instrumental_values",
            "--harness",
            "simulate",
            "--model",
            "sim",
            "--out",
            str(tmp_path / "y"),
            "--outcomes",
            str(missing),
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 2 and "nope.json" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------------------------
# the embedded model, small sizes. Utility maximisation exercises everything the structural experiments add to the
# harness path (a template with a context, a custom per-question plan, the free-form answer); the other three go
# through the pairwise path that the transitivity tests already run on both harnesses.
TINY = {"options": {"questions": "q10", "answer_tokens": 16}, "budget": 4, "holdout_fraction": 0.0}


def _tiny_run(harness: str, model: str, model_args: str, out: Path) -> dict:
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.runner import run_experiment

    config = RunConfig(harness=harness, model=model, model_args=model_args, experiment="utility_maximization", **TINY)
    return run_experiment(config, out, cache_dir=None, log=lambda m: None, figures=False)


@pytest.mark.heavy
@pytest.mark.slow
def test_utility_maximisation_on_the_embedded_model_through_both_harnesses(model_path, tmp_path):
    runs = {
        "lm-eval": _tiny_run("lm-eval", "hf", f"pretrained={model_path},dtype=float32", tmp_path / "lm-eval"),
        "inspect": _tiny_run("inspect", "hf/local", f"model_path={model_path}", tmp_path / "inspect"),
    }
    answers = {}
    for harness, result in runs.items():
        h = result["headline"]
        assert h["n_questions"] == 1 and h["unmatched_rate"] in (0.0, 1.0) and 0.1 <= h["top1_rate_random"] <= 0.5
        (entry,) = [json.loads(x) for x in (tmp_path / harness / "generations.jsonl").read_text().splitlines()]
        assert entry["harness"] == harness and entry["kind"] == "answer" and entry["text"].strip()
        answers[harness] = entry["text"].strip()
    # the same prompts: both harnesses measure the same preferences, and greedy decoding gives the same answer
    records = {
        h: {
            (r["a_id"], r["b_id"], r["shown_first"]): r["p_a"]
            for r in map(json.loads, (tmp_path / h / "records.jsonl").read_text().splitlines())
        }
        for h in runs
    }
    assert records["lm-eval"].keys() == records["inspect"].keys() and len(records["lm-eval"]) == 8
    for key, p in records["lm-eval"].items():
        assert p == pytest.approx(records["inspect"][key], abs=2e-3)
    assert answers["lm-eval"] == answers["inspect"]
    # the analysis again from the run folder alone
    before = (tmp_path / "lm-eval" / "analysis.json").read_text()
    ue("analyse", str(tmp_path / "lm-eval"), "--no-figures")
    assert (tmp_path / "lm-eval" / "analysis.json").read_text() == before


@pytest.mark.slow
def test_lm_eval_command_shows_the_utility_maximisation_headline(model_path, tmp_path):
    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    meta = {"option": {"questions": "q10"}, "budget": 4, "holdout_fraction": 0}
    cmd = [
        lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "utility_utility_maximization,utility_utility_maximization_answers",
        "--include_path",
        str(task_configs_dir()),
        "--apply_chat_template",
        "--system_instruction",
        "You are a helpful assistant.",
        "--batch_size",
        "8",
        "--gen_kwargs",
        "max_gen_toks=16",
        "--metadata",
        json.dumps(meta),
        "--log_samples",
        "--output_path",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top1_rate" in proc.stdout
    (results,) = list(tmp_path.rglob("results_*.json"))
    table = json.loads(results.read_text())["results"]
    row = table["utility_utility_maximization"]
    assert row["n_questions,none"] == 1 and row["unmatched_rate,none"] in (0.0, 1.0)
    assert table["utility_utility_maximization_answers"]["n_answers,none"] == 1
    # `ue analyse` reads the same output folder, free answers included
    ue("analyse", str(tmp_path), "--out", str(tmp_path / "analysis"), "--no-figures")
    again = analysis(tmp_path / "analysis")["headline"]
    assert again["n_questions"] == 1 and again["unmatched_rate"] == row["unmatched_rate,none"]

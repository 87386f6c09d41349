"""The ue command line, run as a user would (subprocess): round trips, help texts and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

UE = [sys.executable, "-m", "ue_cli.main"]


def ue(*args, check=True, cwd=None):
    proc = subprocess.run(UE + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"ue {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_simulate_then_fit_round_trip(tmp_path):
    records = tmp_path / "sim.jsonl"
    out = ue("simulate", "--outcomes", "mini", "--samples", "10", "--seed", "3", "--out", records)
    assert "records" in out.stdout and records.exists()
    truth = tmp_path / "sim.truth.csv"
    assert truth.exists()
    fit = ue("fit", records, "--out", tmp_path / "fit")
    assert "holdout_accuracy" in fit.stdout and "top 5 outcomes" in fit.stdout
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    for key in (
        "holdout_accuracy",
        "holdout_log_loss",
        "train_accuracy",
        "train_log_loss",
        "average_confidence",
        "cycle_rate",
        "order_gap",
        "position_bias",
        "unparsed_rate",
        "n_outcomes",
        "n_pairs",
        "n_records",
    ):
        assert key in metrics, key
    assert metrics["n_outcomes"] == 62 and metrics["holdout_accuracy"] > 0.8
    rows = list(csv.DictReader((tmp_path / "fit" / "utilities.csv").open()))
    assert list(rows[0]) == ["id", "text", "category", "utility", "sigma2", "ci_low", "ci_high"]
    assert len(rows) == 62 and rows[0]["category"]
    true = {r["id"]: float(r["utility"]) for r in csv.DictReader(truth.open())}
    best = rows[0]["id"]
    assert true[best] > 1.0  # the top fitted outcome is among the truly best


def test_fit_reads_folders_and_bootstraps(tmp_path):
    (tmp_path / "runs").mkdir()
    ue("simulate", "--outcomes", "40", "--out", tmp_path / "runs" / "a.jsonl")
    fit = ue("fit", tmp_path / "runs", "--out", tmp_path / "fit", "--bootstrap", "10", "--method", "mle")
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["ci_method"] == "bootstrap-10" and "fit_seconds" in metrics
    assert "wrote" in fit.stdout


def test_random_responder_from_the_cli(tmp_path):
    ue("simulate", "--outcomes", "100", "--responder", "random", "--samples", "10", "--out", tmp_path / "r.jsonl")
    ue("fit", tmp_path / "r.jsonl", "--out", tmp_path / "fit")
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["average_confidence"] == pytest.approx(0.588, abs=0.02)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["fit", "/nonexistent/records.jsonl", "--out", "x"], "no such file or folder"),
        (["simulate", "--outcomes", "nonsense", "--out", "x.jsonl"], "unknown outcome set"),
        (["simulate", "--outcomes", "20", "--position-bias", "0.9", "--out", "x.jsonl"], "--position-bias"),
        (["outcomes", "show"], "needs a set name"),
        (["run", "utilities", "--harness", "lm-eval", "--model", "hf", "--out", "x"], "--model-args pretrained=PATH"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(tmp_path, args, fragment):
    proc = ue(*args, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fit_of_a_non_record_file_and_of_unusable_records(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    proc = ue("fit", junk, "--out", tmp_path / "f", check=False)
    assert proc.returncode == 2 and "not a ue records file" in proc.stderr
    refused = tmp_path / "refused.jsonl"
    ue("simulate", "--outcomes", "10", "--samples", "3", "--refusal-rate", "1.0", "--out", refused)
    proc = ue("fit", refused, "--out", tmp_path / "f", check=False)
    assert proc.returncode == 2 and "usable answer" in proc.stderr
    assert not (tmp_path / "f" / "metrics.json").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(refused.read_text().splitlines()[0] + "\n{\n")
    proc = ue("fit", broken, "--out", tmp_path / "f", check=False)
    assert proc.returncode == 2 and "line 2" in proc.stderr


def test_every_command_has_help_with_an_example():
    for command in ("fit", "simulate", "outcomes", "model", "tasks", "demo", "elicit"):
        proc = ue(command, "--help")
        assert "example:" in proc.stdout, command


def test_tasks_path_points_at_the_task_configs():
    folder = ue("tasks", "path").stdout.strip()
    assert (Path(folder) / "utilities" / "utility_mini.yaml").is_file()


def test_outcomes_list_and_show():
    listing = ue("outcomes", "list").stdout
    assert "core" in listing and "mini" in listing
    shown = ue("outcomes", "show", "core", "--category", "Fitness").stdout.splitlines()
    assert len(shown) >= 5 and all("Fitness" in line for line in shown)
    counts = ue("outcomes", "show", "mini", "--counts").stdout.splitlines()
    assert len(counts) == 30


def test_cli_choices_are_derived_from_the_modules_that_define_them():
    """Issue 23 item 6: the CLI's choices are the defining modules' own (a strategy added to
    ``elicitation/strategies.py`` is offered by ``ue run --strategy`` without editing the CLI)."""
    import argparse

    from ue_cli.main import build_parser
    from ue_control.steer import MODES as STEER_MODES
    from ue_metrics.aggregation import UNPARSED_POLICIES
    from ue_metrics.fitting import POSITION_TERMS
    from ue_metrics.pooling import MIXING_FIELDS, POOLABLE
    from ue_metrics.records import MODES
    from ue_metrics.simulate import RESPONDERS
    from ue_metrics.thurstonian import CI_METHODS, METHODS
    from ue_tasks.dtypes import CHOICES
    from ue_tasks.elicitation.strategies import DEFAULT_STRATEGY, STRATEGIES

    def options(parser: argparse.ArgumentParser, path: str = ""):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from options(child, f"{path} {name}".strip())
            elif action.choices is not None and action.option_strings:
                yield path, action.option_strings[-1], action

    seen = {(path, opt): (tuple(a.choices), a.default) for path, opt, a in options(build_parser())}
    assert seen[("fit", "--unparsed")][0] == UNPARSED_POLICIES and seen[("fit", "--method")][0] == METHODS
    assert seen[("fit", "--ci")][0] == CI_METHODS and seen[("fit", "--position-term")][0] == POSITION_TERMS
    assert seen[("fit", "--by")][0] == seen[("analyse", "--by")][0] == MIXING_FIELDS and seen[("fit", "--pool")][0] == POOLABLE
    assert seen[("simulate", "--responder")][0] == RESPONDERS and seen[("demo", "--dtype")][0] == CHOICES
    # no default on the command line (so --protocol paper can tell a given strategy from none): the run's is the module's
    assert seen[("run", "--strategy")] == (tuple(STRATEGIES), None) and seen[("run", "--mode")][0] == MODES
    from ue_tasks.elicitation.config import RunConfig

    assert RunConfig(harness="simulate", model="sim").strategy == DEFAULT_STRATEGY
    assert seen[("control steer", "--mode")][0] == STEER_MODES

"""Integrity of run folders and records (issue 22, items 1, 2, 3, 6, 11, 13): no answer lost, mixed, re-asked with
another seed or counted twice. Each test failed before its fix; every run is simulated and in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ue_cmd import one_sentence
from ue_cmd import ue_here as ue


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


SIM = ("--harness", "simulate", "--model", "sim", "--no-cache", "--no-figures")


# ---------------------------------------------------------------------------------------------------------- 2
def test_a_run_folder_with_records_but_no_config_is_refused_before_anything_is_appended(tmp_path, capsys):
    """A folder whose config.json was deleted used to be adopted: another outcome set's run appended its records to
    the old ones (then `KeyError` on every rerun), the same options adopted them silently."""
    out = tmp_path / "run"
    code, _, err = ue(capsys, "run", "utilities", *SIM, "--outcomes", "20", "--seed", "0", "--budget", "30", "--out", out)
    assert code == 0, err
    (out / "config.json").unlink()
    before = (out / "records.jsonl").read_bytes()
    for seed in ("1", "0"):  # other options, and the same ones
        code, _, err = ue(capsys, "run", "utilities", *SIM, "--outcomes", "20", "--seed", seed, "--budget", "30", "--out", out)
        one_sentence(code, err, "no config.json")
        assert "new --out" in err and (out / "records.jsonl").read_bytes() == before
        assert not (out / "config.json").exists()


# ---------------------------------------------------------------------------------------------------------- 6
def interrupt(folder: Path, keep: int) -> None:
    """What a kill leaves behind: the first ``keep`` records (a torn batch included), the rounds chosen up to the
    last round those records reach (written before it is asked), the history of the rounds before it; no results."""
    recs = lines(folder / "records.jsonl")[:keep]
    last = max(json.loads(x)["round"] for x in recs)
    (folder / "records.jsonl").write_text("".join(x + "\n" for x in recs) + recs[-1][: len(recs[-1]) // 2], encoding="utf-8")
    for name, upto in (("rounds.jsonl", last), ("history.jsonl", last - 1)):
        if (folder / name).exists():
            kept = [x for x in lines(folder / name) if json.loads(x)["round"] <= upto]
            (folder / name).write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    for name in ("analysis.json", "utilities.csv", "metrics.json"):
        (folder / name).unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("experiment", "mode", "args"),
    [
        ("transitivity", "sample", ("--outcomes", "15")),
        ("transitivity", "logprob", ("--outcomes", "15")),
        ("utilities", "sample", ("--outcomes", "25", "--budget", "300", "--round-size", "60")),
    ],
)
def test_a_resumed_run_gives_the_uninterrupted_runs_answers_exactly(tmp_path, capsys, experiment, mode, args):
    """A killed and resumed `--no-cache` run used to re-ask the queries whose prompt an answer asked before the kill
    served (triads sharing a pair): 438 records of transitivity got another answer_id, some other counts."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    command = ("run", experiment, *SIM, "--mode", mode, "--seed", "3", *args)
    for folder in (whole, resumed):
        code, _, err = ue(capsys, *command, "--out", folder)
        assert code == 0, err
    n = len(lines(whole / "records.jsonl"))
    assert n > 2 * 256  # more than two batches of answers
    for keep in (n // 3, n // 2 + 7):
        interrupt(resumed, keep)
        code, _, err = ue(capsys, *command, "--out", resumed)
        assert code == 0, err
        assert lines(resumed / "records.jsonl")[: keep - 1] == lines(whole / "records.jsonl")[: keep - 1]
        got = [json.loads(x) for x in lines(resumed / "records.jsonl") if x.strip()]
        want = [json.loads(x) for x in lines(whole / "records.jsonl")]
        assert got == want
        assert lines(resumed / "rounds.jsonl") == lines(whole / "rounds.jsonl") if (whole / "rounds.jsonl").exists() else True
        assert (resumed / "analysis.json").read_text() == (whole / "analysis.json").read_text()


# ---------------------------------------------------------------------------------------------------------- 1
def test_by_model_gives_two_models_whose_names_sanitise_alike_a_folder_each(tmp_path, capsys):
    """`org/model` and `org_model` both went to `org_model/`: the second fit overwrote the first, in `ue fit --by
    model` and `ue analyse --by model` alike."""
    import numpy as np

    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.plan import PlanSpec, make_plan

    def simulated(model: str, flip: bool) -> list[dict]:
        plan = make_plan(20, PlanSpec(seed=0))
        rng = np.random.default_rng(0)
        mu, var = true_utilities(20, rng)
        return simulate_records(
            plan.pairs,
            plan.split,
            [f"o{k:03d}" for k in range(20)],
            [f"Outcome {k}." for k in range(20)],
            -mu if flip else mu,
            var,
            rng,
            model=model,
            run_id=f"sim-{model}",
        )

    path = tmp_path / "both.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in simulated("org/model", False) + simulated("org_model", True)))
    code, out, err = ue(capsys, "fit", path, "--out", tmp_path / "fit", "--by", "model")
    assert code == 0, err
    folders = sorted(p.name for p in (tmp_path / "fit").iterdir())
    assert len(folders) == 2 and all(f.startswith("org_model-") for f in folders), folders
    best = set()
    for name in ("org/model", "org_model"):
        line = next(x for x in out.splitlines() if x.startswith(f"== model: {name} "))
        folder = Path(line.split("→ ")[1].rstrip(" =/"))
        assert json.loads((folder / "metrics.json").read_text())["group"]["value"] == name
        best.add(next(iter(csv_ids(folder / "utilities.csv"))))
    assert len(best) == 2  # two opposite models: each folder holds its own fit
    code, _, err = ue(capsys, "analyse", path, "--out", tmp_path / "an", "--by", "model", "--no-figures")
    assert code == 0, err
    written = {json.loads((p / "analysis.json").read_text())["group"]["value"]: p.name for p in (tmp_path / "an").iterdir()}
    assert set(written) == {"org/model", "org_model"} and len(set(written.values())) == 2
    for name, folder in written.items():
        assert f"model {name!r}" in err and f"{folder}/" in err


def csv_ids(path: Path) -> list[str]:
    import csv

    return [r["id"] for r in csv.DictReader(path.open())]

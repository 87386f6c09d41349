"""Many models in one command (ue_tasks/multi_run.py): `ue run utilities --model A --model B …` and `--models FILE`
with simulated responders as the models (each a real worker process running `ue run`), the models file's
refusals, the lanes that decide what runs concurrently, per-model resume, and a failing model that leaves the
others' results and the leaderboard standing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ue_cmd import ue_here

from ue_metrics.errors import UserError
from ue_tasks import multi_run
from ue_tasks.multi_run import ModelSpec, lane, read_models_file, specs_from_flags

SMALL = ["--outcomes", "12", "--budget", "30", "--no-cache", "--no-figures"]


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_models_file_reads_and_refuses_bad_lines(tmp_path):
    good = write_lines(
        tmp_path / "m.jsonl",
        "# two simulated models",
        "",
        '{"name": "truth", "model": "truth", "model_args": {"responder": "thurstonian"}}',
        '{"name": "coin", "harness": "simulate", "model": "coin", "model_args": "responder=random"}',
    )
    specs = read_models_file(good, "simulate")
    assert specs == [
        ModelSpec("truth", "simulate", "truth", "responder=thurstonian", named=True),
        ModelSpec("coin", "simulate", "coin", "responder=random", named=True),
    ]
    cases = [
        (
            '{"name": "a", "model": "a", "size": 3}',
            "line 1: unknown field 'size' (the fields are name, harness, model, model_args)",
        ),
        ('{"name": "a"}', "line 1: field 'model' is missing or not a text"),
        ('{"model": "a"}', "line 1: field 'name' is missing or not a text"),
        ('{"name": "../x", "model": "a"}', "line 1: field 'name' '../x' is not a folder name"),
        ('{"name": "a", "model": "a", "harness": "vllm"}', "line 1: field 'harness' is 'vllm'; use one of"),
        ('{"name": "a", "model": "a", "model_args": 3}', "line 1: field 'model_args' must be a k=v,k=v text or an object"),
        ('["a"]', "line 1: not a JSON object"),
        ("{name: a}", "line 1: not JSON ("),
    ]
    for line, message in cases:
        with pytest.raises(UserError, match=None) as exc:
            read_models_file(write_lines(tmp_path / "bad.jsonl", line), "simulate")
        assert f"{tmp_path / 'bad.jsonl'}, {message}" in str(exc.value), str(exc.value)
    with pytest.raises(UserError) as exc:
        read_models_file(
            write_lines(tmp_path / "dup.jsonl", '{"name": "a", "model": "a"}', '{"name": "a", "model": "b"}'), "simulate"
        )
    assert "dup.jsonl, line 2: field 'name' 'a' is used on line 1 already" in str(exc.value)
    with pytest.raises(UserError, match="field 'harness' is None"):
        read_models_file(write_lines(tmp_path / "noh.jsonl", '{"name": "a", "model": "a"}'), None)


def test_model_flags_and_lanes(tmp_path, monkeypatch):
    """--model-args once (shared) or once per --model; names from the models' identities; lanes: one per endpoint
    (host and port), one per API provider, one for every in-process model, one per simulated responder."""
    url = "http://127.0.0.1:8000/v1/chat/completions"
    specs = specs_from_flags(
        ["local-chat-completions", "local-chat-completions"],
        [f"model=a,base_url={url}", "model=b,base_url=http://127.0.0.1:8001/v1/chat/completions"],
        "lm-eval",
    )
    assert [s.name for s in specs] == ["a", "b"] and [lane(s) for s in specs] == [
        "endpoint:127.0.0.1:8000",
        "endpoint:127.0.0.1:8001",
    ]
    same = specs_from_flags(["local-chat-completions"] * 2, [f"model=a,base_url={url}", f"model=c,base_url={url}"], "lm-eval")
    assert lane(same[0]) == lane(same[1])
    with pytest.raises(UserError, match="2 --model and 3 --model-args"):
        specs_from_flags(["a", "b"], ["x=1", "y=2", "z=3"], "lm-eval")
    with pytest.raises(UserError, match="would both be named 'a'"):
        specs_from_flags(["local-chat-completions"] * 2, [f"model=a,base_url={url}"], "lm-eval")
    assert (
        lane(ModelSpec("m", "lm-eval", "hf", "pretrained=/x/m"))
        == lane(ModelSpec("n", "inspect", "hf/local", "model_path=/x/n"))
        == "local"
    )
    assert lane(ModelSpec("g", "inspect", "openai/gpt-4o-mini")) == "api:openai"
    monkeypatch.setenv("LOCAL_BASE_URL", "http://127.0.0.1:9000/v1")
    assert lane(ModelSpec("s", "inspect", "openai-api/local/s")) == "endpoint:127.0.0.1:9000"
    assert lane(ModelSpec("x", "simulate", "x")) != lane(ModelSpec("y", "simulate", "y"))


def test_two_models_concurrently_then_leaderboard_and_rerun_skips(tmp_path, capsys):
    """Two simulated models (their own lanes) run at once into OUT/<name>/ and end in one leaderboard; the same
    command again skips both; a model whose run was cut short resumes, asking only what is missing."""
    out = tmp_path / "many"
    args = [
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "truth",
        "--model",
        "coin",
        "--model-args",
        "responder=thurstonian",
        "--model-args",
        "responder=random",
        *SMALL,
        "--out",
        out,
    ]
    code, stdout, err = ue_here(capsys, *args)
    assert code == 0, err
    lines = err.splitlines()
    started = [i for i, line in enumerate(lines) if ": started (simulate:" in line]
    finished = [i for i, line in enumerate(lines) if ": finished in" in line]
    assert len(started) == 2 and len(finished) == 2 and max(started) < min(finished), err  # both ran at once
    board = json.loads((out / "leaderboard.json").read_text())
    rows = {r["model"] for r in board["rows"]} if "rows" in board else set(stdout.split())
    assert {"truth", "coin"} <= rows, stdout
    assert "truth" in stdout and "coin" in stdout
    for name in ("truth", "coin"):
        recs = [json.loads(x) for x in (out / name / "records.jsonl").read_text().splitlines()]
        assert len(recs) == 66 and {r["model"] for r in recs} == {name}
    manifest = json.loads((out / "models.json").read_text())
    assert {m["status"] for m in manifest["models"].values()} == {"finished"}
    code, _, err = ue_here(capsys, *args)
    assert code == 0 and err.count("finished earlier with the same configuration — skipped") == 2, err
    # cut the coin's run short: half its records, no analysis, bookkeeping says it was running
    records = out / "coin" / "records.jsonl"
    records.write_text("".join(records.read_text().splitlines(keepends=True)[:32]))
    (out / "coin" / "analysis.json").unlink()
    multi_run.Manifest(out, "utilities").set("coin", status="running")
    code, _, err = ue_here(capsys, *args)
    assert code == 0, err
    assert "truth: finished earlier" in err and "coin: finished in" in err and "34 queries asked" in err, err
    assert len(records.read_text().splitlines()) == 66


def test_a_failing_model_leaves_the_others(tmp_path, capsys):
    """A model whose folder holds another run is refused in one sentence; the other model finishes and is on the
    leaderboard; the exit code says one failed. Fixed, the rerun runs the failed model only."""
    out = tmp_path / "many"
    code, _, err = ue_here(
        capsys, "run", "utilities", "--harness", "simulate", "--model", "b", *SMALL, "--seed", "5", "--out", out / "b"
    )
    assert code == 0, err
    models = write_lines(
        tmp_path / "models.jsonl", '{"name": "a", "model": "a"}', '{"name": "b", "model": "b", "model_args": "responder=random"}'
    )
    args = ["run", "utilities", "--harness", "simulate", "--models", models, *SMALL, "--out", out]
    code, stdout, err = ue_here(capsys, *args)
    assert code == 2, err
    assert "ue: error: model 'b' failed:" in err and "start a new --out folder" in err and "Traceback" not in err
    assert "a: finished in" in err
    assert json.loads((out / "leaderboard.json").read_text())["inputs"] == [str(out / "a")]
    import shutil

    shutil.rmtree(out / "b")
    code, _, err = ue_here(capsys, *args)
    assert code == 0, err
    assert "a: finished earlier" in err and "b: finished in" in err
    assert sorted(json.loads((out / "leaderboard.json").read_text())["inputs"]) == [str(out / "a"), str(out / "b")]


def test_refusals_before_anything_runs(tmp_path, capsys):
    models = write_lines(tmp_path / "m.jsonl", '{"name": "a", "model": "a", "model_args": "temperature=2"}')
    code, _, err = ue_here(
        capsys, "run", "utilities", "--harness", "simulate", "--models", models, *SMALL, "--out", tmp_path / "o"
    )
    assert code == 2 and "model 'a': a simulated model takes only responder=NAME as its model arguments, not 'temperature'" in err
    code, _, err = ue_here(
        capsys,
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "a",
        "--model",
        "b",
        "--model-args",
        "responder=nope",
        *SMALL,
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and "model 'a': experiment 'utilities' has no responder 'nope'" in err, err
    code, _, err = ue_here(
        capsys, "run", "utilities", "--harness", "simulate", "--model", "a", "--models", models, *SMALL, "--out", tmp_path / "o"
    )
    assert code == 2 and "either with --model (repeated) or in a --models file, not both" in err
    assert not (tmp_path / "o").exists()
    code, out, err = ue_here(
        capsys,
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "a",
        "--model",
        "b",
        *SMALL,
        "--mode",
        "sample",
        "--samples",
        "2",
        "--out",
        tmp_path / "o",
        "--dry-run",
    )
    assert code == 0, err
    assert "a (simulate:a):" in out and "b (simulate:b):" in out and "2 models: 264 requests in all" in out, out
    assert not (tmp_path / "o").exists()

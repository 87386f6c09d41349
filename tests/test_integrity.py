"""Integrity of run folders and records (issue 22, items 1, 2, 3, 6, 11, 13): no answer lost, mixed, re-asked with
another seed or counted twice. Each test failed before its fix; every run is simulated and in-process."""

from __future__ import annotations

import json
from pathlib import Path

from ue_cli.main import main


def ue(capsys, *args) -> tuple[int, str, str]:
    """Run `ue ARGS` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_sentence(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.startswith("ue: error:")]
    assert len(lines) == 1 and fragment in lines[0], err


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

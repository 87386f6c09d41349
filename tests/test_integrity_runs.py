"""Integrity of run folders across commands (issue 22, items 3, 11, 13): a live run's folder, the runs an
experiment reads, and one answer read from two harnesses. Each test failed before its fix; runs are simulated and
in-process."""

from __future__ import annotations

import json
import subprocess
import sys

from ue_cmd import one_sentence
from ue_cmd import ue_here as ue

SIM = ("--harness", "simulate", "--model", "sim", "--no-cache", "--no-figures")


# --------------------------------------------------------------------------------------------------------- 11
def test_analyse_of_a_folder_held_by_a_running_run_is_refused_or_goes_read_only_into_out(tmp_path, capsys):
    """`ue analyse` of a live run's folder used to analyse half its records and write analysis.json into it."""
    run = tmp_path / "run"
    code, _, err = ue(capsys, "run", "utilities", *SIM, "--outcomes", "20", "--budget", "30", "--out", run)
    assert code == 0, err
    (run / "analysis.json").unlink()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / ".lock").write_text(str(holder.pid))  # as `ue run` leaves it while it asks
        for extra in ((), ("--out", run)):
            code, _, err = ue(capsys, "analyse", run, "--no-figures", *extra)
            one_sentence(code, err, f"held by a running `ue run` (PID {holder.pid})")
            assert "--out" in err and not (run / "analysis.json").exists()
        complete = (run / "records.jsonl").read_bytes()
        with (run / "records.jsonl").open("ab") as fh:  # a batch being appended
            fh.write(complete.splitlines(keepends=True)[-1][:40])
        code, _, err = ue(capsys, "analyse", run, "--no-figures", "--out", tmp_path / "so_far")
        assert code == 0, err
        assert "incomplete" in err and str(holder.pid) in err
        assert json.loads((tmp_path / "so_far" / "analysis.json").read_text())["n_records"] == complete.count(b"\n")
        assert not (run / "analysis.json").exists() and (run / "records.jsonl").read_bytes().startswith(complete)
        (run / "records.jsonl").write_bytes(complete)  # the run finished its batch
    finally:
        holder.kill()
        holder.wait()
    code, _, err = ue(capsys, "analyse", run, "--no-figures")  # the holder is gone: a stale lock holds nothing
    assert code == 0, err
    assert (run / "analysis.json").is_file()

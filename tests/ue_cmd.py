"""The `ue` command as the experiment tests run it: a subprocess of this interpreter, offline, and the run folder's
analysis.json (one helper for every test file that drives `ue run` / `ue analyse` end to end)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

UE = [sys.executable, "-m", "ue_cli.main"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def ue(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ue ARGS`; with ``check`` the command must succeed (its stderr is shown when it does not)."""
    proc = subprocess.run([*UE, *args], capture_output=True, text=True, env=ENV, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def analysis(folder: Path) -> dict:
    return json.loads((folder / "analysis.json").read_text())


def ue_here(capsys, *args) -> tuple[int, str, str]:
    """`ue ARGS` in this process: (exit code, stdout, stderr); argparse's own refusals exit through SystemExit."""
    from ue_cli.main import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


_ERROR = re.compile(r"\bue(?: [\w-]+)*: error:")  # "ue: error:", and argparse's "ue run: error:"


def one_sentence(code: int, err: str, fragment: str) -> str:
    """A refusal as ue gives one: exit code 2, no traceback, one error line (a progress bar may share it) holding
    ``fragment``; returns that line."""
    assert code == 2, err
    assert "Traceback" not in err
    found = _ERROR.findall(err)
    assert len(found) == 1, err
    line = err[_ERROR.search(err).start() :].splitlines()[0]
    assert fragment in line, err
    return line

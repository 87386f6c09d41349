"""The `ue` command as the experiment tests run it: a subprocess of this interpreter, offline, and the run folder's
analysis.json (one helper for every test file that drives `ue run` / `ue analyse` end to end)."""

from __future__ import annotations

import json
import os
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

"""Shared fixtures: offline Hugging Face, the embedded model folder, the companion reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference_data"


@pytest.fixture(scope="session")
def model_path() -> str:
    """The embedded SmolLM2-135M-Instruct as a local HF folder (converted once, cached across runs)."""
    from ue_tasks import model

    return str(model.prepare())


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The companion's public data files, read at run time from ``../shared/reference_data`` (never copied into the
    project). A user who cloned the project alone has no such folder: the tests that need it skip, saying so."""
    if not REFERENCE.is_dir():
        pytest.skip(f"needs the companion reference data at {REFERENCE} (a shared/ folder beside the checkout), absent here")
    return REFERENCE


@pytest.fixture(scope="session")
def embedded_representations(model_path, tmp_path_factory) -> Path:
    """A `ue run representations` folder of the embedded model over 36 outcomes of `mini` (shared by the
    representations and steering tests, so the hidden states are read once). Its utilities run is simulated and
    labelled with the model: what these tests check is the reading of real hidden states and what is done with
    them, not the model's answers."""
    import subprocess
    import sys

    from ue_metrics.jsonl import write_jsonl
    from ue_tasks.outcomes import load_outcomes

    root = tmp_path_factory.mktemp("embedded-rep")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    write_jsonl(root / "outcomes.jsonl", [o.to_dict() for o in load_outcomes("mini").outcomes[:36]])
    for args in (
        [
            "run",
            "utilities",
            "--harness",
            "simulate",
            "--model",
            "hf",
            "--model-args",
            f"pretrained={model_path}",
            "--outcomes",
            str(root / "outcomes.jsonl"),
            "--out",
            str(root / "u"),
            "--no-cache",
            "--no-figures",
        ],
        [
            "run",
            "representations",
            "--model-args",
            f"pretrained={model_path}",
            "--utilities",
            str(root / "u"),
            "--option",
            "shuffles=5",
            "--out",
            str(root / "r"),
        ],
    ):
        proc = subprocess.run([sys.executable, "-m", "ue_cli.main", *args], capture_output=True, text=True, env=env, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
    (root / "r" / "stderr.txt").write_text(proc.stderr)
    return root / "r"

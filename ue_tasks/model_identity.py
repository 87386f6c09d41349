"""Which model answered: one stable identity for a model, whichever harness ran it and however it was read back.

Every preference record carries ``model`` — a human name that stays the same for the same model in an lm-eval
output folder, an Inspect log and a ``ue run`` folder — and the settings that tell two runs of it apart:
``model_dtype`` (for a Hugging Face model loaded in-process, always the dtype it ran in, by the one rule of
``ue_tasks.dtypes``), ``model_revision``, ``chat_template`` (on/off) and, for a local folder, ``model_fingerprint``
(a hash of its config and tokenizer files' contents and its weight files' names, sizes and modification times),
so two different sets of weights behind one path or name are never fitted as one model and never share cached
answers. (The system message is a record field of its own.)

The name comes from, in order: the user (``--model-name``; lm-eval ``--metadata '{"model_name": ...}'``;
Inspect ``-T model_name=...``); a local folder's name (its parent's too when the folder is called ``model``,
``final``, ``checkpoint-500``...: a fine-tuned copy keeps its own name rather than its base model's, which its
config would give); the last part of a hub id or provider model string (``HuggingFaceTB/SmolLM2-135M-Instruct``,
``openai/gpt-4o-mini`` → ``gpt-4o-mini``), never the harness's model type (``hf``) or lm-eval's random name for a
model object. API models have no fingerprint; their answer-cache key is the provider, model string, revision and
arguments, and for a served model the endpoint's base URL (``model_endpoint`` in its records: lm-eval's
``base_url``; Inspect's ``-M base_url``, the provider's ``<SERVICE>_BASE_URL`` or ``INSPECT_EVAL_MODEL_BASE_URL``), so
two servers of one model name are neither fitted as one model nor share cached answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

# folder names that say nothing about the model: the parent folder's name goes in front
GENERIC_FOLDERS = {
    "model",
    "models",
    "final",
    "best",
    "output",
    "outputs",
    "out",
    "hf",
    "merged",
    "latest",
    "weights",
    "export",
    "exported",
    "snapshot",
    "main",
}
_GENERIC = re.compile(r"^(checkpoint|step|ckpt|epoch|global_step)[-_]?\d+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt")
CONFIG_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "adapter_config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
# lm-eval keys naming the model, in lm-eval's own order (an adapter before its base model)
PATH_KEYS = ("peft", "delta", "pretrained", "model", "path", "engine", "model_path")
# arguments that change how fast, not what, a model answers: left out of the identity
RUNTIME_ARGS = {
    "batch_size",
    "max_batch_size",
    "device",
    "device_map",
    "parallelize",
    "num_concurrent",
    "max_concurrent",
    "max_retries",
    "timeout",
    "attempt_timeout",
    "num_workers",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "data_parallel_size",
    "max_connections",
    "tokenized_requests",
    "verify_certificate",
    "seed",
}
NAME_KEY = "model_name"
# model arguments naming the weights a run asked, in the order they are looked for (weights_of)
WEIGHT_KEYS = ("pretrained", "model_path", "model", "model_name", "path")


@dataclass(frozen=True)
class ModelIdentity:
    """A model as ue records it (see the module docstring)."""

    name: str
    source: str  # the harness's model: "hf", "vllm", "local-completions", "openai/gpt-4o-mini", "hf/local", "simulate"
    fingerprint: str | None = None  # local weights (or a simulated responder); None for API models
    dtype: str | None = None
    revision: str | None = None
    chat_template: bool | None = None
    args: tuple[tuple[str, str], ...] = field(default=())  # other arguments that change the answers
    endpoint: str | None = None  # a served model's base URL (None in process)

    def record_fields(self) -> dict[str, Any]:
        """The fields every record of this model carries."""
        out: dict[str, Any] = {"model": self.name}
        if self.fingerprint:
            out["model_fingerprint"] = self.fingerprint
        if self.dtype:
            out["model_dtype"] = self.dtype
        if self.revision:
            out["model_revision"] = self.revision
        if self.chat_template is not None:
            out["chat_template"] = self.chat_template
        if self.endpoint:
            out["model_endpoint"] = self.endpoint
        return out

    def cache_key(self) -> list[Any]:
        """What the answer cache is keyed by: the weights (or the API model string), never a path alone."""
        key = [self.source, self.name, self.fingerprint, self.dtype, self.revision, [list(a) for a in self.args]]
        # an endpoint already among the arguments (lm-eval's base_url) keeps the key answers were cached under
        return key if not self.endpoint or self.endpoint in {v for _, v in self.args} else [*key, ["endpoint", self.endpoint]]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["args"] = [list(a) for a in self.args]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelIdentity:
        known = {k: d.get(k) for k in ("name", "source", "fingerprint", "dtype", "revision", "chat_template", "endpoint")}
        return cls(
            **{
                **known,
                "name": str(known["name"] or "unknown"),
                "source": str(known["source"] or ""),
                "args": tuple(tuple(map(str, a)) for a in d.get("args") or ()),
            }
        )

    def with_chat_template(self, on: bool | None) -> ModelIdentity:
        from dataclasses import replace

        return replace(self, chat_template=on)


# ----------------------------------------------------------------------------------------------------------
def fingerprint_folder(folder: str | Path) -> str | None:
    """A hash of a model folder: config and tokenizer files by content, weight files by name, size and modification
    time (reading gigabytes of weights on every run would cost more than it protects). None when the folder holds
    neither."""
    folder = Path(folder)
    parts: list[Any] = []
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return None
    for p in entries:
        if p.name in CONFIG_FILES:
            try:
                parts.append([p.name, hashlib.sha256(p.read_bytes()).hexdigest()])
            except OSError:
                continue
        elif p.suffix.lower() in WEIGHT_SUFFIXES:
            st = p.stat()
            parts.append([p.name, st.st_size, st.st_mtime_ns])
    if not parts:
        return None
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def name_for(path_or_id: str) -> str:
    """A human name for a local folder, a hub id or a provider model string."""
    text = str(path_or_id).rstrip("/\\")
    p = Path(text)
    parts = p.parts
    if "snapshots" in parts:  # a hub cache folder: .../models--org--name/snapshots/<hash>
        k = parts.index("snapshots")
        if k > 0 and parts[k - 1].startswith("models--"):
            return parts[k - 1].split("--")[-1]
    base = p.name or text
    if (base.lower() in GENERIC_FOLDERS or _GENERIC.match(base.lower())) and p.parent.name:
        return f"{p.parent.name}-{base}"
    return base


def parse_model_args(model_args: str | dict | None, *, typed: bool = False, check: bool = True) -> dict[str, Any]:
    """``k=v,k=v`` (lm-eval's ``--model_args``; ``ue run --model-args`` for every harness) as a dict of strings, the one
    parser of model arguments. ``check``: an entry that is not ``key=value`` is one sentence (off when reading back
    what a harness already accepted). ``typed``: numbers and booleans typed as lm-eval types them, by its own parser
    (``lm_eval.utils.simple_parse_args_string``)."""
    if isinstance(model_args, dict):
        return dict(model_args)
    text = str(model_args or "")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if check:
        for part in parts:
            if "=" not in part or not part.split("=", 1)[0].strip():
                raise UserError(f"--model-args entry {part!r} is not key=value; write e.g. pretrained=PATH,dtype=float32")
    if typed:
        from lm_eval.utils import simple_parse_args_string

        return simple_parse_args_string(text)
    return {key.strip(): value.strip() for key, _, value in (p.partition("=") for p in parts)}


def weights_of(config: Any) -> str:
    """Which weights a run's configuration asked (``config.json``, or a ``RunConfig``): the resolved local folder its
    model arguments name (lm-eval's ``pretrained=PATH`` and Inspect's ``model_path=PATH`` are one model), else the
    model's name; a simulated model without named weights by its name. Used to refuse a consumed run of another
    model."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    model = str(get("model") or "")
    args = parse_model_args(str(get("model_args") or ""), check=False)
    for key in WEIGHT_KEYS:
        value = args.get(key)
        if value:
            p = Path(value).expanduser()
            return str(p.resolve()) if p.exists() else value.rstrip("/")
    return f"simulated:{model}" if get("harness") == "simulate" else model


def _other_args(args: dict[str, Any], used: set[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in args.items() if k not in used and k not in RUNTIME_ARGS and k != NAME_KEY))


def _dtype(value: Any, folder: Path | None) -> str | None:
    """The dtype a model ran in, or None when it is the default (``auto``, or the dtype its config declares): runs
    with the default and with the same dtype spelt out are one model."""
    if value in (None, "", "auto"):
        return None
    text = str(value).removeprefix("torch.")
    if folder is not None:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        declared = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
        if declared and str(declared).removeprefix("torch.") == text:
            return None
    return text


# model types that load a Hugging Face checkpoint in-process: their dtype follows ue's one rule (ue_tasks.dtypes)
# and is always recorded, resolved (never auto/native), so a bfloat16 and a float32 run are two settings of a model
LM_EVAL_HF_TYPES = {"hf", "ue-hf", "hf-auto", "huggingface"}
INSPECT_HF_PROVIDERS = {"hf"}


def _resolved_dtype(value: Any, source: Any, device: Any, fetch: bool) -> str:
    """The dtype a Hugging Face model loaded in-process runs in (``ue_tasks.dtypes.model_dtype``)."""
    from ue_tasks.dtypes import model_dtype

    return model_dtype(value, source, device=None if device in (None, "") else str(device), fetch=fetch)


def local_folder(path: Any) -> Path | None:
    """``path`` as a folder on this machine, or None (a hub id, a provider string, nothing)."""
    if path is None or path == "":
        return None
    p = Path(str(path)).expanduser()
    return p if p.is_dir() else None


def folder_chat_template(model_args: str | dict | None) -> bool | None:
    """Whether the local model folder that lm-eval ``--model_args`` name (``pretrained=``) ships a chat template
    (``chat_template`` in ``tokenizer_config.json``, or ``chat_template.jinja`` / ``chat_template.json``); None when
    the arguments name no local folder (a hub id, an API), where nothing can be said without loading."""
    folder = local_folder(parse_model_args(model_args, check=False).get("pretrained"))
    if folder is None:
        return None
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bool(config.get("chat_template")) if isinstance(config, dict) else None


def from_lm_eval(
    model: str,
    model_args: str | dict | None,
    *,
    chat_template: bool | None = None,
    name: str | None = None,
    fingerprint: bool = True,
) -> ModelIdentity:
    """The identity of an lm-eval model: ``model`` is its type (``hf``, ``vllm``, ``local-completions``...),
    ``model_args`` its ``--model_args``. ``fingerprint=False`` when reading an old run (the folder may have changed
    since; the run's own records carry the fingerprint it had)."""
    args = parse_model_args(model_args, check=False)
    key = next((k for k in PATH_KEYS if args.get(k) not in (None, "")), None)
    used = {k for k in PATH_KEYS if k in args} | {"dtype", "torch_dtype", "revision"}
    target = str(args[key]) if key else None
    folders = [f for f in (local_folder(args.get("pretrained")), local_folder(args.get(key)) if key else None) if f is not None]
    dtype = _dtype(args.get("dtype") or args.get("torch_dtype"), folders[0] if folders else None)
    if str(model) in LM_EVAL_HF_TYPES and args.get("pretrained") not in (None, ""):
        dtype = _resolved_dtype(args.get("dtype") or args.get("torch_dtype"), args["pretrained"], args.get("device"), fingerprint)
    revision = args.get("revision")
    if chat_template is None and str(model).endswith("chat-completions"):
        chat_template = True  # a chat API receives chat messages
    prints = None
    if fingerprint:
        found = [fp for fp in dict.fromkeys(fingerprint_folder(f) for f in folders) if fp]
        prints = found[0] if len(found) == 1 else (hashlib.sha256("|".join(found).encode()).hexdigest()[:16] if found else None)
    label = name or args.get(NAME_KEY) or (name_for(target) if target else str(model))
    return ModelIdentity(
        name=str(label),
        source=str(model),
        fingerprint=prints,
        dtype=dtype,
        revision=None if revision in (None, "") else str(revision),
        chat_template=chat_template,
        args=_other_args(args, used),
        endpoint=_endpoint(args.get("base_url")),
    )


def _endpoint(url: Any) -> str | None:
    """A base URL as the identity keeps it (no trailing slash); None when there is none."""
    text = "" if url is None else str(url).strip().rstrip("/")
    return text or None


def inspect_base_url(model: str, model_args: dict | None = None) -> str | None:
    """The base URL an Inspect model string will be sent to, as Inspect resolves it: ``-M base_url``, else the
    provider's environment variable (``openai-api/<service>/...``: ``<SERVICE>_BASE_URL``; ``openai/...``:
    ``OPENAI_BASE_URL``...), else ``INSPECT_EVAL_MODEL_BASE_URL``; None for in-process providers and where the
    provider's own default endpoint is used."""
    import os

    provider, _, rest = str(model).partition("/")
    if provider in INSPECT_HF_PROVIDERS or provider in ("mockllm", "none", "transformer_lens", ""):
        return None
    given = (model_args or {}).get("base_url") or (model_args or {}).get("model_base_url")
    if given:
        return _endpoint(given)
    service = rest.split("/", 1)[0] if provider == "openai-api" else provider
    name = re.sub(r"[^A-Za-z0-9]", "_", service).upper()
    return _endpoint(os.environ.get(f"{name}_BASE_URL") or os.environ.get("INSPECT_EVAL_MODEL_BASE_URL"))


def from_inspect(
    model: str, model_args: dict | None = None, *, name: str | None = None, fingerprint: bool = True, base_url: str | None = None
) -> ModelIdentity:
    """The identity of an Inspect model (``hf/local`` with ``model_path``, ``hf/<hub id>``, ``openai/gpt-4o-mini``...).
    Inspect always sends chat messages, so ``chat_template`` is on."""
    args = dict(model_args or {})
    provider, _, rest = str(model).partition("/")
    path = args.get("model_path") or args.get("model_name_or_path")
    local = local_folder(path) if rest in ("local", "") or path else None
    used = {"model_path", "model_name_or_path", "dtype", "torch_dtype", "revision", "base_url", "model_base_url"}
    if local is not None:
        label = name_for(str(local))
    elif rest and rest != "local":
        label = rest.rsplit("/", 1)[-1]
        if label.lower() in GENERIC_FOLDERS | {"default"}:
            label = str(model)  # "mockllm/model": the provider is the only name there is
    else:
        label = name_for(str(path)) if path else str(model)
    dtype = _dtype(args.get("torch_dtype") or args.get("dtype"), local)
    if provider in INSPECT_HF_PROVIDERS and (path or rest not in ("", "local")):
        dtype = _resolved_dtype(args.get("torch_dtype") or args.get("dtype"), path or rest, args.get("device"), fingerprint)
    revision = args.get("revision")
    prints = fingerprint_folder(local) if (fingerprint and local is not None) else None
    # a log read back names the URL it ran against (base_url, "" for none); a run about to start, its environment's
    endpoint = _endpoint(base_url) if base_url is not None else inspect_base_url(model, args)
    return ModelIdentity(
        name=str(name or label),
        source=str(model),
        fingerprint=prints,
        dtype=dtype,
        revision=None if revision in (None, "") else str(revision),
        chat_template=True,
        args=_other_args(args, used),
        endpoint=endpoint,
    )


def simulated(name: str, responder: str, seed: int, definition: str = "") -> ModelIdentity:
    """A simulated responder: its name, seed and ``definition`` (``Responder.fingerprint()``: its utilities and
    settings) are its weights."""
    digest = hashlib.sha256(f"simulate|{responder}|{seed}|{definition}".encode()).hexdigest()[:16]
    return ModelIdentity(name=name, source="simulate", fingerprint=digest, args=(("responder", responder), ("seed", str(seed))))


_RANDOM_NAME = re.compile(r"^[a-z0-9]{8}$")  # lm-eval's name for a model passed as an object


def from_lm_eval_results(results: dict, task: str | None = None) -> ModelIdentity:
    """The identity of the model of an lm-eval results file: what ue wrote into it (``ue_model``) when ue ran it,
    else from its configuration (model type, model args, chat template, ``--metadata`` model_name)."""
    if isinstance(results.get("ue_model"), dict):
        return ModelIdentity.from_dict(results["ue_model"])
    config = results.get("config") or {}
    metadata = ((results.get("configs") or {}).get(task or "") or {}).get("metadata") or {}
    override = metadata.get(NAME_KEY) if isinstance(metadata, dict) else None
    chat = bool(results.get("chat_template")) if "chat_template" in results else None
    model, args = config.get("model"), config.get("model_args")
    if isinstance(model, str) and (args or override):
        identity = from_lm_eval(
            model, args, chat_template=chat, name=override, fingerprint=unchanged_since(args, results.get("date"))
        )
        ran = str(config.get("model_dtype") or "").removeprefix("torch.")  # what lm-eval's hf model reports it ran in
        if ran in ("float32", "bfloat16", "float16") and identity.dtype is not None and ran != identity.dtype:
            from dataclasses import replace

            identity = replace(identity, dtype=ran)
        return identity
    # a model passed to lm-eval as an object: lm-eval records its name_or_path as the model and a random model_name
    fallback = results.get("model_name")
    if isinstance(model, str) and model and ("/" in model or "\\" in model):
        fallback = name_for(model)
    elif not fallback or _RANDOM_NAME.match(str(fallback)):
        fallback = model if isinstance(model, str) and model else "unknown"
    return ModelIdentity(name=str(override or fallback), source=str(model or ""), chat_template=chat)


def from_inspect_log(eval_spec: Any) -> ModelIdentity:
    """The identity of the model of an Inspect log's ``eval`` header (what ue wrote into its metadata when ue ran it)."""
    meta = getattr(eval_spec, "metadata", None) or {}
    if isinstance(meta.get("ue_model"), dict):
        return ModelIdentity.from_dict(meta["ue_model"])
    task_args = getattr(eval_spec, "task_args", None) or {}
    args = dict(eval_spec.model_args or {})
    return from_inspect(
        eval_spec.model,
        args,
        name=task_args.get(NAME_KEY),
        fingerprint=unchanged_since(args, getattr(eval_spec, "created", None)),
        base_url=getattr(eval_spec, "model_base_url", None) or "",
    )


def unchanged_since(model_args: str | dict | None, when: Any) -> bool:
    """Whether the local model folder(s) a run's arguments name exist and no file in them changed after the run began
    (``when``: seconds since the epoch, or an ISO time): then the fingerprint read now is the one the run had, and a
    harness output read afterwards carries it like ue's own records (so one query answered through lm-eval and Inspect
    is recognised as one answer)."""
    from datetime import datetime

    try:
        start = float(when) if isinstance(when, (int, float)) else datetime.fromisoformat(str(when)).timestamp()
    except (TypeError, ValueError):
        return False
    args = parse_model_args(model_args, check=False)
    folders = [f for f in dict.fromkeys(local_folder(args.get(k)) for k in (*PATH_KEYS, "model_name_or_path")) if f is not None]
    try:
        return bool(folders) and all(p.stat().st_mtime <= start for f in folders for p in f.iterdir() if p.is_file())
    except OSError:
        return False

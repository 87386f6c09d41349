"""Reading hidden states from a local transformers model — the one place ``ue`` reads a model directly.

Everything else in ``ue`` reaches a model through lm-evaluation-harness or Inspect; neither exposes hidden states,
so the ``representations`` experiment (Mazeika et al. 2025: utilities are linearly decodable from a model's hidden
states; docs/representations.md) reads them here, and only here. The code is kept small on purpose: load the
model, build the prompts the model answered, run batched forward passes, pool.

For every outcome and every layer (the embedding output and each block's output, as ``output_hidden_states``
returns them) it keeps, in the file format of ``ue_metrics.features``:

- ``prompt``: the outcome placed in the run's preference prompt (its template, system message and chat template,
  exactly as the harnesses render it), once as Option A and once as Option B beside a partner outcome drawn from
  the run (seeded), the two readings averaged;
- ``bare``: the outcome's text alone;

each pooled over the outcome's own tokens as its ``last`` token and as the ``mean``. The model is causal, so the
states of the outcome's tokens do not depend on anything after them: each sequence is cut after the outcome's
last token, which saves the forward pass over the rest of the prompt without changing a value.

Forward passes run in bfloat16 where the hardware supports it (a CUDA device that reports bf16, or a CPU with
``avx512_bf16``/``amx_bf16``, or an ARM CPU with ``bf16``, per ``/proc/cpuinfo``), else in float32; sequences are sorted by length and batched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.errors import UserError
from ue_metrics.features import FeatureSet
from ue_tasks.templates import SYSTEM_MESSAGE, render_prompt

SENTINEL = "\u2060\u2063OUTCOME\u2063\u2060"  # never in an outcome; marks where the outcome goes in a rendered prompt


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``ue_tasks.dtypes.cpu_features``, the one detector)."""
    from ue_tasks.dtypes import cpu_features

    return cpu_features()


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bfloat16 matrix arithmetic is native on ``device`` (else it is emulated, slower than float32)."""
    from ue_tasks.dtypes import native_bf16

    return native_bf16(device)


def choose_dtype(dtype: str = "auto", device: str = "cpu", folder: str | None = None) -> str:
    """The one dtype rule (``ue_tasks.dtypes``): ``auto`` → the checkpoint's own dtype (``folder``'s config; float32
    when unknown), ``native`` → bfloat16 where native, else float32; ``bfloat16``/``float32``/``float16`` as given."""
    from ue_tasks.dtypes import checkpoint_dtype, resolve_dtype

    return resolve_dtype(dtype, checkpoint_dtype(folder), device=device)


def load_model(path: str, dtype: str = "auto", device: str = "cpu") -> tuple[Any, Any, str]:
    """(model, tokenizer, dtype) of a local transformers causal LM folder, in eval mode, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).is_dir():
        raise UserError(f"{path}: not a local model folder; give --model-args pretrained=FOLDER (a transformers checkpoint)")
    chosen = choose_dtype(dtype, device, path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, chosen))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be loaded as a transformers causal language model ({exc})") from None
    return model.to(device).eval(), tokenizer, chosen


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class Placed:
    """A text to run and the character span of the outcome inside it."""

    text: str
    start: int
    end: int
    special: bool  # let the tokenizer add its special tokens (bare text); chat-rendered text carries its own


def place(
    tokenizer: Any,
    outcome: str,
    partner: str,
    position: str,
    template: str = "default",
    system_message: str | None = SYSTEM_MESSAGE,
    chat: bool = True,
) -> Placed:
    """The prompt a harness sends when ``outcome`` is Option ``position`` ("A" or "B") beside ``partner``, with
    the outcome's span: the chat template with the system message for a chat model (lm-eval's
    ``--apply_chat_template --system_instruction``), the base-model prompt ending in "Answer:" otherwise."""
    a, b = (SENTINEL, partner) if position == "A" else (partner, SENTINEL)
    user = render_prompt(template, a, b, base_model=not chat)
    if chat:
        head = [{"role": "system", "content": system_message}] if system_message else []
        text = tokenizer.apply_chat_template(
            head + [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
        )
    else:
        text = user
    start = text.find(SENTINEL)
    if start < 0 or text.count(SENTINEL) != 1:
        raise RuntimeError("the chat template changed the prompt's text; cannot locate the outcome in it")
    return Placed(text.replace(SENTINEL, outcome), start, start + len(outcome), special=not chat)


def bare(outcome: str) -> Placed:
    return Placed(outcome, 0, len(outcome), special=True)


def _encode(tokenizer: Any, item: Placed) -> tuple[list[int], int, int]:
    """Token ids cut after the outcome's last token, and the outcome's token span [first, last]."""
    enc = tokenizer(item.text, add_special_tokens=item.special, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    inside = [k for k, (s, e) in enumerate(offsets) if e > s and e > item.start and s < item.end]
    if not inside:
        raise UserError(f"the outcome {item.text[item.start : item.end]!r} has no tokens of its own; is its text empty?")
    return list(ids[: inside[-1] + 1]), inside[0], inside[-1]


def _prefix_cache(base: Any, prefix: list[int]) -> list[tuple[Any, Any]]:
    """The key/value cache of ``prefix`` (one sequence), per layer."""
    import torch

    out = base(input_ids=torch.tensor([prefix], device=base.device), use_cache=True)
    cache = out["cache"] if "cache" in out else out.past_key_values  # transformers 5.x / 4.x
    return [(layer.keys, layer.values) for layer in cache.layers]


def read_states(
    model: Any, tokenizer: Any, items: Sequence[Placed], batch_size: int = 16, progress: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """``{"last": (n, L+1, d), "mean": (n, L+1, d)}`` float32: every layer's state at the last token of each
    item's outcome span and the mean over the span.

    Items that share the tokens before their outcome (every prompt of a run shares its stem up to the outcome)
    are grouped; the shared prefix runs once and its key/value cache serves the group, so each forward pass
    covers only the outcome's own tokens. Within a group the outcomes are sorted by length, batched and
    right-padded (causal attention: padding after a sequence never changes its states, so no mask is needed).
    Only the transformer body runs (no output layer: no logits are needed)."""
    import inspect

    import torch
    from transformers import DynamicCache

    base = model.base_model
    cache_arg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for k, item in enumerate(items):
        ids, first, _ = _encode(tokenizer, item)
        groups.setdefault(tuple(ids[:first]), []).append((k, ids[first:]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for prefix, members in groups.items():
            kv = _prefix_cache(base, list(prefix)) if prefix else None
            members = sorted(members, key=lambda m: len(m[1]))
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                rows = np.array([k for k, _ in batch])
                lengths = torch.tensor([len(t) for _, t in batch])
                ids = torch.full((len(batch), int(lengths.max())), pad, dtype=torch.long)
                for r, (_, tokens) in enumerate(batch):
                    ids[r, : len(tokens)] = torch.tensor(tokens)
                kwargs: dict[str, Any] = {}
                if kv is not None:
                    cache = DynamicCache()
                    for layer, (key, value) in enumerate(kv):
                        cache.update(key.expand(len(batch), -1, -1, -1), value.expand(len(batch), -1, -1, -1), layer)
                    kwargs = {cache_arg: cache, "use_cache": True}
                states = base(input_ids=ids.to(base.device), output_hidden_states=True, **kwargs).hidden_states
                hs = torch.stack([h.float().cpu() for h in states], dim=1)  # (B, L+1, T, d)
                mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()
                pooled_mean = torch.einsum("bltd,bt->bld", hs, mask) / lengths[:, None, None]
                pooled_last = hs[torch.arange(len(batch)), :, lengths - 1]  # (B, L+1, d)
                if not out:
                    shape = (len(items), hs.shape[1], hs.shape[3])
                    out = {"last": np.empty(shape, np.float32), "mean": np.empty(shape, np.float32)}
                out["last"][rows] = pooled_last.numpy()
                out["mean"][rows] = pooled_mean.numpy()
                if progress:
                    progress(len(batch))
    return out


def outcome_features(
    model: Any,
    tokenizer: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    partners: Sequence[int],
    template: str = "default",
    system_message: str | None = SYSTEM_MESSAGE,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    meta: dict | None = None,
) -> FeatureSet:
    """The ``prompt`` and ``bare`` features of every outcome (see the module docstring); ``partners[k]`` is the
    index of the outcome shown beside outcome k in the prompt variant."""
    chat = has_chat_template(tokenizer)
    started = time.perf_counter()
    items = [place(tokenizer, texts[k], texts[partners[k]], "A", template, system_message, chat) for k in range(len(ids))]
    items += [place(tokenizer, texts[k], texts[partners[k]], "B", template, system_message, chat) for k in range(len(ids))]
    items += [bare(t) for t in texts]
    states = read_states(model, tokenizer, items, batch_size=batch_size, progress=progress)
    n = len(ids)
    arrays = {}
    for pooling in ("last", "mean"):
        s = states[pooling]
        arrays[f"prompt_{pooling}"] = (s[:n] + s[n : 2 * n]) / 2
        arrays[f"bare_{pooling}"] = s[2 * n :]
    seconds = time.perf_counter() - started
    info = {
        "chat_template": chat,
        "template": template,
        "system_message": system_message,
        "batch_size": batch_size,
        "forward_passes": len(items),
        "seconds": round(seconds, 2),
        **(meta or {}),
    }
    return FeatureSet(list(ids), arrays, [ids[p] for p in partners], info)


def draw_partners(n: int, seed: int) -> np.ndarray:
    """The outcome shown beside each outcome in the prompt variant: one outcome of the run, drawn by ``seed``, for
    every outcome (so all prompts share their tokens up to the outcome, and that stem runs once), and a second
    one beside the first itself."""
    if n < 2:
        raise UserError("the prompt variant needs at least two outcomes (one beside the other)")
    rng = np.random.default_rng([seed, 17])
    first, second = (int(x) for x in rng.choice(n, size=2, replace=False))
    partners = np.full(n, first, dtype=np.int64)
    partners[first] = second
    return partners

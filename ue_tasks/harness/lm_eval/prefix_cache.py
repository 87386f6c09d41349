"""A prompt-stem cache for lm-eval's ``HFLM``: every prompt of a ue task starts with the same token stem (chat
header, system message, the instruction up to "Option A:"). ``prefix_cached_hflm`` wraps ``HFLM`` so that the
stem's key/value cache is computed once and each batch only runs the tokens after it; the log-probabilities are
those of the full prompt (``tests/test_lm_eval_demo.py`` pins this). Used by ``ue demo``, the lm-eval backend of
``ue run`` and utility control.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ue_tasks.templates import SYSTEM_MESSAGE


def shared_prefix_ids(tokenizer, prompts: list[str], encode: Callable[[str], list[int]] | None = None) -> list[int]:
    """The longest run of leading token ids shared by all ``prompts`` (minus one token, so that a BPE merge
    across the boundary can never make a prompt's own tokenisation differ from the cached one). ``encode`` is the
    model's own encoder (lm-eval's ``tok_encode``, which adds a BOS token for models that need one, e.g. Gemma)."""
    encoded = [encode(p) if encode else tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    common = encoded[0]
    for ids in encoded[1:]:
        n = 0
        while n < min(len(common), len(ids)) and common[n] == ids[n]:
            n += 1
        common = common[:n]
    return list(common[:-1]) if len(common) > 1 else []


def prefix_cached_hflm(pretrained: str, prefix_prompts: list[str], **kwargs: Any):
    """An lm-eval ``HFLM`` whose forward pass reuses the key/value cache of the token stem shared by
    ``prefix_prompts`` (chat-templated prompts of the task). Batches whose rows do not all start with the stem
    fall back to the ordinary forward pass.

    Only the logits lm-eval reads are computed: a ue task scores a one-token answer label after the prompt, and
    lm-eval takes the continuation's logits counted from the end of the (right-padded) batch, so the model is asked
    for the last ``padded length − shortest row + KEEP_MARGIN`` positions only (``logits_to_keep``). With a large
    vocabulary (Gemma 3: 262k) the output layer over every position would otherwise dominate the forward pass."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import DynamicCache

    class PrefixCachedHFLM(HFLM):
        def __init__(self) -> None:
            super().__init__(pretrained=pretrained, **kwargs)
            stem = shared_prefix_ids(self.tokenizer, prefix_prompts, encode=self.tok_encode)
            self.prefix_ids = torch.tensor(stem, dtype=torch.long, device=self.device)
            self.prefix_hits = 0
            self.forward_calls = 0
            # transformers 5.x names the argument ``cache``; earlier versions ``past_key_values``
            params = inspect.signature(self.model.forward).parameters
            self._cache_arg = "cache" if "cache" in params else "past_key_values"
            self._can_trim = "logits_to_keep" in params
            self.refresh_prefix()

        def refresh_prefix(self) -> None:
            """Compute the stem's cache (again): after anything that changes the model's forward pass, such as
            a steering hook (``ue_control.steer``)."""
            if len(self.prefix_ids):
                with torch.no_grad():
                    out = self.model(self.prefix_ids[None], use_cache=True)
                self._prefix_logits = out.logits
                # transformers 5.x returns the cache as ``cache`` (reading ``past_key_values`` warns); 4.x as ``past_key_values``
                cache = out["cache"] if "cache" in out else out.past_key_values
                self._prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]

        def _model_call(self, inps, attn_mask=None, labels=None):
            self.forward_calls += 1
            n = len(self.prefix_ids)
            if (
                attn_mask is not None
                or labels is not None
                or n == 0
                or inps.shape[1] <= n
                or not bool((inps[:, :n] == self.prefix_ids).all())
            ):
                return super()._model_call(inps, attn_mask, labels)
            self.prefix_hits += 1
            rows = inps.shape[0]
            cache = DynamicCache()
            for layer, (k, v) in enumerate(self._prefix_kv):
                cache.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), layer)
            keep = _positions_to_keep(inps) if self._can_trim else inps.shape[1]
            trim = {"logits_to_keep": keep} if keep < inps.shape[1] - n else {}
            with torch.no_grad():
                tail = self.model(inps[:, n:], use_cache=True, **{self._cache_arg: cache}, **trim).logits
            if trim:
                return tail  # the last `keep` positions; lm-eval aligns them to the end of the padded batch
            return torch.cat([self._prefix_logits.expand(rows, -1, -1).to(tail.dtype), tail], dim=1)

    return PrefixCachedHFLM()


KEEP_MARGIN = 8  # continuation tokens scored per row (a ue answer label is one token; margin for longer ones)


def _positions_to_keep(inps) -> int:
    """How many trailing positions of a right-padded batch (lm-eval pads with 0) hold every row's last tokens: the
    padded length minus the shortest row's length, plus ``KEEP_MARGIN`` (a real 0 token only makes it larger)."""
    import torch

    nonzero = inps != 0
    width = inps.shape[1]
    last = width - torch.flip(nonzero, dims=[1]).float().argmax(dim=1)  # 1 + index of each row's last non-zero token
    last = torch.where(nonzero.any(dim=1), last, torch.zeros_like(last))
    return int(min(width, width - int(last.min()) + KEEP_MARGIN))


def chat_prompts(tokenizer, prompts: list[str], system_message: str | None = SYSTEM_MESSAGE) -> list[str]:
    """The chat-templated prompts lm-eval sends for user turns ``prompts`` with --apply_chat_template
    --system_instruction (no system turn when ``system_message`` is empty)."""
    head = [{"role": "system", "content": system_message}] if system_message else []
    return [
        tokenizer.apply_chat_template(head + [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]

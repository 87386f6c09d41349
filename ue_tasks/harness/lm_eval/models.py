"""ue's lm-eval model types: ``ue-hf``, a Hugging Face model made fast for forced-choice elicitation (docs/method.md §1),
and ``ue-local-completions`` / ``ue-local-chat-completions``, lm-eval's OpenAI-compatible clients with one seed per
sampled answer.

``ue-hf`` is lm-eval's ``hf`` model (``HFLM``) with five changes, each giving the same answers as ``hf`` would:

- **dtype** (``ue_tasks.dtypes``, the one rule of every local path). ``dtype=auto`` (the default) is the
  checkpoint's own dtype, as ``hf`` and Inspect's ``hf`` provider load it (float32 for the embedded models), so both
  harnesses give the same answers on any machine; ``dtype=native`` opts into bfloat16 where the hardware computes
  it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX) and float32 elsewhere;
  ``dtype=float32|bfloat16|float16`` chooses. The resolved dtype is the records' ``model_dtype``. With bf16/fp16
  weights the few scored logits come from a float32 copy of the output layer, and log-probabilities are always
  taken in float32. ``tests/test_fast_models.py`` holds bf16 and fp32 answer probabilities within 0.01 of each
  other on a fixed set of prompts.
- **Stem cache.** Every prompt of a ue task starts with the same tokens (chat header, system message, the
  instruction up to "Option A:"). The stem is found from the requests themselves (the longest token prefix they
  share), its key/value cache computed once and reused by every batch: a batch runs only the tokens after the
  stem. Rows are aligned on their last token (padding sits between the stem and a shorter tail, masked and with
  explicit positions), so the logits a row needs are the last ones of the batch and only those are computed.
- **Shared-prefix cache** (``prefix_cache_mb``, default 1 GiB; 0 turns it off). Below the stem, the key/value
  caches of longer prefixes that several prompts share — in a forced-choice run, the first option and the text up
  to the second — are kept (least recently used out first) and a later prompt runs only the tokens after its
  longest cached prefix. A prefix is cached from the forward pass of the second prompt that has it, so it costs no
  extra pass. ``tests/test_fast_models.py`` holds its probabilities within 1e-4 of the uncached path.
- **Batch sizes** are chosen for the hardware (``batch_size=auto``, the default): a token budget per forward pass
  (CPU: ``CPU_TOKENS``; CUDA: from the free memory), rows of similar length batched together. An integer
  ``batch_size`` is honoured as given.
- **Sampled answers share the prompt pass.** lm-eval asks a sampled task's K repeats as K identical requests; ``hf``
  runs the prompt K times. ``ue-hf`` runs it once and draws the K answers from that one prefill (the key/value
  cache expanded to K rows, as ``num_return_sequences`` does in ``generate``). Each answer is its own draw: every
  prompt has its own ``torch.Generator``, seeded from the run's seed (``seed=``, else lm-eval's ``--seed``), the
  prompt and the generation settings, advancing across its K answers — so a prompt's answers do not depend on
  what else is in the batch. Temperature, ``top_k`` and ``top_p`` follow the request and the model's generation
  config as in ``hf``; requests with other generation options go to ``hf``'s own ``generate_until``.

Anything the fast paths do not cover (seq2seq models, several processes, multi-token continuations that the stem
would cut, thinking models) goes to ``HFLM``'s own code, so ``ue-hf`` runs every task ``hf`` runs.

The API types fix a bias in lm-eval's OpenAI-compatible clients: they send every request with one fixed ``seed``
(1234), so the K repeats of a sampled task reach a server that honours seeds (vLLM, SGLang, OpenAI) as K identical
requests and come back as one answer K times. ``ue-local-completions`` and ``ue-local-chat-completions`` give each
repeat its own seed, derived from the run seed, the prompt and the repeat's index (``seed=none`` sends none).

Registration: importing this module registers the three names with lm-eval's model registry. lm-eval 0.4.13 has
no plugin discovery for models (the ``lm_eval`` command resolves ``--model`` before any task code runs), so on the
command line they are reached through ``ue lm-eval ...`` (= ``python -m ue_tasks.harness.lm_eval``), which
registers them and then runs lm-eval's own command line with the same arguments.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

from ue_tasks.dtypes import CHOICES, model_dtype, native_bf16
from ue_tasks.dtypes import resolve_dtype as _resolve

logger = logging.getLogger(__name__)

DTYPES = CHOICES  # ue_tasks.dtypes: auto (the checkpoint's own), native, float32, bfloat16, float16
CPU_TOKENS = 2048  # tokens per forward pass on a CPU (512/1024/2048/4096 measured: 2048 fastest; docs/performance.md)
MAX_ROWS = 256
PREFIX_CACHE_MB = 1024  # default memory of the shared-prefix cache (second level, below the stem's)
MIN_PREFIX = 4  # shortest shared prefix worth caching, in tokens
MERGE_SLACK = 4  # cached prefixes that differ only in their last few tokens are kept as their common part
# generation options ue-hf's shared-prefill sampler implements; anything else goes to HFLM.generate_until
_SAMPLER_KEYS = {"do_sample", "temperature", "top_k", "top_p", "until", "max_gen_toks"}


# ----------------------------------------------------------------------------------------------------------
# hardware


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16); without it bf16 is emulated and
    slower than float32 (``ue_tasks.dtypes.native_bf16``)."""
    return native_bf16("cpu")


def preferred_dtype(device: str | torch.device) -> str:
    """The dtype ``dtype=native`` resolves to on ``device``: bfloat16 where it is native, else float32 (float16 on a
    CUDA GPU without bf16)."""
    return _resolve("native", None, device=str(torch.device(device).type))


def resolve_dtype(dtype: Any, device: str | torch.device, pretrained: Any = None) -> str:
    """The one dtype rule (``ue_tasks.dtypes``): ``auto`` (or None) → the checkpoint's own dtype (``pretrained``'s
    config; float32 when unknown), ``native`` → ``preferred_dtype``, a dtype name or ``torch.dtype`` kept; anything
    else is an error naming the choices."""
    if pretrained is not None and not isinstance(pretrained, str):  # a model object: its own dtype
        own = getattr(pretrained, "dtype", None)
        if dtype in (None, "", "auto") and own is not None:
            return str(own).removeprefix("torch.")
        pretrained = None
    return model_dtype(dtype, pretrained, device=str(torch.device(device).type) if device else "cpu")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def derived_seed(*parts: Any) -> int:
    """A 63-bit seed from ``parts`` (stable across processes and platforms)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFFFFFFFFFFFFFF


# ----------------------------------------------------------------------------------------------------------
# ue-hf


class _Stem:
    """The key/value cache of a token stem, computed once and expanded to any number of rows."""

    def __init__(self, ids: tuple[int, ...], layers: list[tuple[torch.Tensor, torch.Tensor]]):
        self.ids = ids
        self.layers = layers

    def cache(self, rows: int):
        from transformers import DynamicCache

        cache = DynamicCache()
        for layer, (k, v) in enumerate(self.layers):
            cache.update(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), layer)
        return cache


def common_prefix_length(*seqs: Sequence[int]) -> int:
    """How many leading tokens all ``seqs`` share (0 for none given): the one longest-common-prefix helper of
    the stem cache and the shared-prefix cache."""
    if not seqs:
        return 0
    first = seqs[0]
    n = len(first)
    for s in seqs[1:]:
        m = min(n, len(s))
        k = 0
        while k < m and first[k] == s[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def _nearest(
    sorted_seqs: list[tuple[int, ...]], t: tuple[int, ...], skip_self: bool = False
) -> tuple[int, tuple[int, ...] | None]:
    """The longest common prefix of ``t`` with any sequence of ``sorted_seqs`` (sorted lexicographically, so the
    best match is a neighbour of ``t``'s place) and that sequence; ``skip_self`` ignores one copy of ``t`` itself."""
    i = bisect.bisect_left(sorted_seqs, t)
    best, which = 0, None
    lo = i - 1
    hi = i + 1 if skip_self and i < len(sorted_seqs) and sorted_seqs[i] == t else i
    for j in (lo, hi):
        if 0 <= j < len(sorted_seqs):
            k = common_prefix_length(sorted_seqs[j], t)
            if k > best:
                best, which = k, sorted_seqs[j]
    return best, which


class _Prefixes:
    """The second cache level, below the stem: key/value caches of token prefixes (after the stem) that several
    prompts share. In a forced-choice run every outcome is the first option of many prompts across rounds, so the
    tokens from the stem through the first option and up to the second ("...Option B:\\n") recur; their cache is
    kept (least recently used out first, within ``budget`` bytes) and a later prompt runs only the tokens after
    its longest cached prefix. A prefix is cached once it is seen shared: from the forward pass of the second
    prompt that has it, so caching costs no extra forward pass. Exact: a prefix's keys and values depend only on
    its own tokens and positions."""

    def __init__(self, budget: int):
        self.budget = budget
        self.stem: tuple[int, ...] | None = None
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        self.keys: list[tuple[int, ...]] = []  # the entries' keys, sorted
        self.seen: list[tuple[int, ...]] = []  # every tail seen under this stem, sorted
        self._seen_set: set[tuple[int, ...]] = set()
        self.sizes: dict[tuple[int, ...], int] = {}
        self.bytes = 0

    def reset(self, stem: tuple[int, ...] | None) -> None:
        self.__init__(self.budget)  # type: ignore[misc]
        self.stem = stem

    def lookup(self, t: tuple[int, ...]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        k, key = _nearest(self.keys, t)
        if key is None or k < MIN_PREFIX:
            return 0, None
        self.entries.move_to_end(key)
        return k, self.entries[key]

    def shared(self, tails: list[tuple[int, ...]]) -> list[int]:
        """For each of ``tails`` (distinct), the longest prefix it shares with another tail seen under this stem
        (earlier calls or this one); then remembers them."""
        repeat = [t in self._seen_set for t in tails]
        for t in tails:
            if t not in self._seen_set:
                bisect.insort(self.seen, t)
                self._seen_set.add(t)
        return [len(t) if r else _nearest(self.seen, t, skip_self=True)[0] for t, r in zip(tails, repeat)]

    def put(self, key: tuple[int, ...], layers: list[tuple[torch.Tensor, torch.Tensor]], size: int | None = None) -> None:
        """Cache ``layers`` (per layer: keys, values of the prefix ``key``); ``size`` in bytes defaults to the
        tensors' (``benchmarks/active_learning.py`` replays a run's bookkeeping with sizes alone)."""
        if key in self.entries:
            self.entries.move_to_end(key)
            return
        if size is None:
            size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        # one entry per family: "first option + ...Option B:" shared with second options that start alike
        # ("The", "A") would otherwise be cached once per such start
        common, near = _nearest(self.keys, key)
        if near is not None and common >= MIN_PREFIX and common >= min(len(key), len(near)) - MERGE_SLACK:
            if common == len(near):
                self.entries.move_to_end(near)
                return
            old = self.entries.pop(near)
            self.keys.pop(bisect.bisect_left(self.keys, near))
            old_size = self.sizes.pop(near)
            self.bytes -= old_size
            layers = [(k[:, :, :common].clone(), v[:, :, :common].clone()) for k, v in old]
            key, size = key[:common], old_size * common // len(near)
            if key in self.entries:
                self.entries.move_to_end(key)
                return
        if size > self.budget:
            return
        while self.bytes + size > self.budget and self.entries:
            old, _ = self.entries.popitem(last=False)
            self.keys.pop(bisect.bisect_left(self.keys, old))
            self.bytes -= self.sizes.pop(old)
        self.entries[key] = layers
        self.sizes[key] = size
        bisect.insort(self.keys, key)
        self.bytes += size


@register_model("ue-hf")
class UeHFLM(HFLM):
    """lm-eval's ``hf`` model with ue's dtype rule, a stem cache, hardware batch sizes and shared-prefill
    sampling (see the module docstring). Extra model arguments: ``stem_cache`` (default true), ``seed`` (the
    sampling seed; default lm-eval's ``--seed``)."""

    def __init__(
        self,
        pretrained: Any = None,
        dtype: Any = "auto",
        device: str | None = None,
        batch_size: int | str = "auto",
        stem_cache: bool = True,
        seed: int | None = None,
        max_batch_size: int = MAX_ROWS,
        prefix_cache_mb: int | str = PREFIX_CACHE_MB,
        **kwargs: Any,
    ) -> None:
        device = device or default_device()
        self.requested_dtype = dtype
        self.resolved_dtype = resolve_dtype(dtype, device, pretrained)
        self.auto_batch = str(batch_size).startswith("auto")
        # HFLM's own code paths (the fallbacks) get a fixed batch size; ue-hf's fast paths size their batches
        fallback_bs = 16 if self.auto_batch else int(batch_size)
        super().__init__(
            pretrained=pretrained,
            dtype=self.resolved_dtype,
            device=device,
            batch_size=fallback_bs,
            max_batch_size=max_batch_size,
            **kwargs,
        )
        self.stem_cache = stem_cache in (True, "true", "True", 1, "1")
        self.sample_seed = None if seed in (None, "", "none", "None") else int(seed)
        self.rows_cap = int(max_batch_size)
        self._stems: dict[tuple[int, ...], _Stem] = {}
        self._prefixes = _Prefixes(int(float(prefix_cache_mb) * 2**20))
        self._shared: dict[tuple[int, ...], int] = {}
        # counters, for tests and benchmarks
        self.forward_calls = 0
        self.stem_hits = 0
        self.prefills = 0
        self.sampled_rows = 0
        self.forward_tokens = 0  # tokens run through the model (padding included)
        self.real_tokens = 0  # of which not padding (log-likelihood batches)
        self.forward_seconds = 0.0
        self.prefix_hits = 0  # rows that ran only the tokens after a cached shared prefix
        self.prefix_tokens = 0  # tokens those rows took from the cache instead of running them
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = "logits_to_keep" if "logits_to_keep" in params else None
        self._head32 = self._float32_head()

    # --- helpers ------------------------------------------------------------------------------------------
    def _fast(self) -> bool:
        return self.backend == "causal" and self.world_size == 1 and self.think_end_token is None

    @property
    def stem_length(self) -> int:
        """Tokens of the last stem used (0 before the first request)."""
        return len(next(reversed(self._stems.values())).ids) if self._stems else 0

    def token_budget(self) -> int:
        """Tokens per forward pass: ``CPU_TOKENS`` on a CPU; on CUDA a quarter of the free memory over the memory one
        token's activations and cache take."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cfg = self.model.config
            width = getattr(cfg, "hidden_size", 4096)
            layers = getattr(cfg, "num_hidden_layers", 32)
            per_token = 2 * width * layers * 2 + 24 * width * 4  # K/V in bf16 + activations in fp32, roughly
            return int(max(4096, min(262144, free // 4 // per_token)))
        return CPU_TOKENS

    def _rows(self, length: int) -> int:
        if not self.auto_batch:
            return max(1, int(self.batch_size))
        return int(max(1, min(self.rows_cap, self.token_budget() // max(1, length))))

    def refresh_prefix(self) -> None:
        """Forget the stems' key/value caches, so the next batch computes them again: after anything that changes the
        model's forward pass, such as a steering hook (``ue_control.steer``)."""
        self._stems.clear()
        self._prefixes.reset(None)

    def _stem(self, ids: tuple[int, ...]) -> _Stem | None:
        if not self.stem_cache or len(ids) < 2:
            return None
        if ids not in self._stems:
            with torch.no_grad(), self._autocast():
                out = self.model(torch.tensor([ids], dtype=torch.long, device=self.device), use_cache=True)
            self.forward_calls += 1
            cache = out["cache"] if "cache" in out else out.past_key_values
            if len(self._stems) >= 4:
                self._stems.pop(next(iter(self._stems)))
            self._stems[ids] = _Stem(ids, [(layer.keys, layer.values) for layer in cache.layers])
        return self._stems[ids]

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type, dtype=self.mixed_precision_dtype, enabled=self.mixed_precision_dtype is not None
        )

    def _forward_tails(
        self,
        stem: _Stem | None,
        tails: Sequence[Sequence[int]],
        keep: int,
        heads: Sequence[tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]] | None = None,
    ):
        """Run ``tails`` (token lists after ``stem``) as one batch aligned on their last token; returns the logits
        of the last ``keep`` positions of every row ([rows, keep, vocab], float32), the cache and the mask. With
        ``heads`` (needs ``stem``), row r's tail follows ``heads[r] = (u, layers)``: the cached keys/values of its
        first u tokens after the stem, placed in the cache right-aligned after the stem (padding before them is
        masked), the tail's positions counted after them."""
        rows, width = len(tails), max(len(t) for t in tails)
        n = len(stem.ids) if stem else 0
        used = [u for u, _ in heads] if heads and stem is not None else [0] * rows
        head = max(used)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((rows, width), pad, dtype=torch.long)
        mask = torch.zeros((rows, n + head + width), dtype=torch.long)
        mask[:, :n] = 1
        pos = torch.zeros((rows, width), dtype=torch.long)
        for r, t in enumerate(tails):
            off = width - len(t)
            ids[r, off:] = torch.tensor(t, dtype=torch.long)
            mask[r, n + head - used[r] : n + head] = 1
            mask[r, n + head + off :] = 1
            pos[r, off:] = torch.arange(n + used[r], n + used[r] + len(t))
        ids, mask, pos = ids.to(self.device), mask.to(self.device), pos.to(self.device)
        self.real_tokens += sum(len(t) for t in tails)
        kwargs: dict[str, Any] = {"attention_mask": mask, "position_ids": pos, "use_cache": True}
        if stem is not None and head:
            kwargs[self._cache_arg] = self._head_cache(stem, heads, head)  # type: ignore[arg-type]
            self.stem_hits += 1
            self.prefix_hits += sum(1 for u in used if u)
            self.prefix_tokens += sum(used)
        elif stem is not None:
            kwargs[self._cache_arg] = stem.cache(rows)
            self.stem_hits += 1
        if self._keep_arg:
            kwargs[self._keep_arg] = keep
        logits, cache = self._run(ids, keep, kwargs)
        return logits, cache, mask, pos[:, -1]

    def _head_cache(self, stem: _Stem, heads: Sequence[tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]], head: int):
        """A cache of [stem | row r's cached prefix, right-aligned in ``head`` columns] for every row."""
        from transformers import DynamicCache

        n, rows = len(stem.ids), len(heads)
        cache = DynamicCache()
        for layer, (sk, sv) in enumerate(stem.layers):
            shape = (rows, sk.shape[1], n + head, sk.shape[3])
            k, v = sk.new_zeros(shape), sv.new_zeros(shape)
            k[:, :, :n], v[:, :, :n] = sk, sv
            for r, (u, layers) in enumerate(heads):
                if u and layers is not None:
                    pk, pv = layers[layer]
                    k[r, :, n + head - u : n + head] = pk[0, :, :u]
                    v[r, :, n + head - u : n + head] = pv[0, :, :u]
            cache.update(k, v, layer)
        return cache

    def _float32_head(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """A float32 copy of the output layer, for weights in bf16/fp16: the few logits ue scores are computed from
        the last hidden state in float32, which halves bf16's error on the answer probabilities at the cost of one
        small matrix product. None where the weights are float32 or the model post-processes its logits."""
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        cfg = self.model.config
        if (
            not isinstance(head, torch.nn.Linear)
            or head.weight.dtype == torch.float32
            or any(
                getattr(cfg, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")
            )
            or head.weight.numel() * 4 > 2**30
        ):
            return None
        base = getattr(self.model, "base_model", None)
        if base is None or base is self.model:
            return None
        return head.weight.detach().float(), None if head.bias is None else head.bias.detach().float()

    def _run(self, ids: torch.Tensor, keep: int, kwargs: dict[str, Any]):
        """One forward pass; the float32 logits of the last ``keep`` positions and the cache."""
        started = time.perf_counter()
        with torch.no_grad(), self._autocast():
            if self._head32 is not None:
                kwargs = {k: v for k, v in kwargs.items() if k != self._keep_arg}
                out = self.model.base_model(ids, **kwargs)
                hidden = out.last_hidden_state[:, -keep:, :].float()
                weight, bias = self._head32
                logits = hidden @ weight.T if bias is None else hidden @ weight.T + bias
            else:
                out = self.model(ids, **kwargs)
                logits = out.logits[:, -keep:, :].float()
        self.forward_calls += 1
        self.forward_tokens += int(ids.numel())
        self.forward_seconds += time.perf_counter() - started
        cache = out["cache"] if "cache" in out else out.past_key_values
        return logits, cache

    # --- log-likelihood -------------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):  # type: ignore[override]
        """Log-probability of each continuation: one row per distinct (context + continuation minus its last
        token), rows sharing the stem cache, only the positions that score the continuation computed."""
        if not self._fast() or not requests:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        from tqdm import tqdm

        inputs: list[tuple[int, ...]] = []
        for _, ctx, cont in requests:
            if not ctx or not cont or len(cont) > self.max_length:
                return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
            inputs.append(tuple((ctx + cont)[-(self.max_length + 1) :][:-1]))
        conts = [list(cont) for _, _, cont in requests]
        # the stem must end before the first scored position of every request
        limit = min(len(inp) - len(c) for inp, c in zip(inputs, conts))
        n = min(common_prefix_length(*inputs), max(0, limit)) if self.stem_cache else 0
        stem = self._stem(inputs[0][:n]) if n >= 2 else None
        n = len(stem.ids) if stem else 0
        unique: dict[tuple[int, ...], list[int]] = {}
        for k, inp in enumerate(inputs):
            unique.setdefault(inp, []).append(k)
        tails = {inp: inp[n:] for inp in unique}
        need = {inp: max(len(conts[k]) for k in unique[inp]) for inp in unique}  # scored positions: always run
        heads = self._cached_heads(stem, tails, need)
        order = sorted(unique, key=lambda t: -(len(tails[t]) - heads[t][0]))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pbar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Running loglikelihood requests")
        start = 0
        while start < len(order):
            rows = self._rows(len(tails[order[start]]) - heads[order[start]][0])
            batch = order[start : start + rows]
            start += len(batch)
            keep = max(need[inp] for inp in batch)
            logits, cache, _, _ = self._forward_tails(
                stem, [tails[inp][heads[inp][0] :] for inp in batch], keep, [heads[inp] for inp in batch]
            )
            self._keep_prefixes(stem, [tails[inp] for inp in batch], [heads[inp] for inp in batch], cache)
            logprobs = F.log_softmax(logits, dim=-1)
            greedy = logprobs.argmax(dim=-1)
            for r, inp in enumerate(batch):
                for k in unique[inp]:
                    cont = torch.tensor(conts[k], dtype=torch.long, device=logprobs.device)
                    lp = logprobs[r, keep - len(cont) :, :].gather(1, cont[:, None]).squeeze(1)
                    answer = (float(lp.sum()), bool((greedy[r, keep - len(cont) :] == cont).all()))
                    results[k] = answer
                    if requests[k][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[k][0], answer)
                    pbar.update(1)
        pbar.close()
        return results

    def _cached_heads(self, stem: _Stem | None, tails: dict[tuple[int, ...], tuple[int, ...]], need: dict[tuple[int, ...], int]):
        """Per input: (tokens of its tail taken from the shared-prefix cache, their keys/values); notes which tails
        share a prefix with others, for ``_keep_prefixes``."""
        none: tuple[int, list | None] = (0, None)
        store = self._prefixes
        if stem is None or store.budget <= 0:
            self._shared = {}
            return {inp: none for inp in tails}
        if store.stem != stem.ids:
            store.reset(stem.ids)
        self._shared = dict(zip(tails.values(), store.shared(list(tails.values()))))
        heads = {}
        for inp, t in tails.items():
            u, layers = store.lookup(t)
            u = min(u, len(t) - need[inp])
            heads[inp] = (u, layers) if u >= MIN_PREFIX else none
        return heads

    def _keep_prefixes(self, stem: _Stem | None, tails: list[tuple[int, ...]], heads: list[tuple[int, Any]], cache) -> None:
        """After a batch: cache the keys/values of each row's prefix that other tails share (and that is longer than
        the cached prefix the row used), taken from the batch's own cache."""
        if stem is None or self._prefixes.budget <= 0 or not self._shared:
            return
        n = len(stem.ids)
        total = cache.layers[0].keys.shape[2]
        head = max(u for u, _ in heads)
        width = total - n - head
        for r, (t, (u, _)) in enumerate(zip(tails, heads)):
            s = min(self._shared.get(t, 0), len(t))
            if s < MIN_PREFIX or s <= u or t[:s] in self._prefixes.entries:
                continue
            w = len(t) - u
            cols = [n + head - u + j for j in range(u)] + [n + head + width - w + j for j in range(s - u)]
            idx = torch.tensor(cols, dtype=torch.long, device=self.device)
            layers = [
                (layer.keys[r : r + 1].index_select(2, idx), layer.values[r : r + 1].index_select(2, idx))
                for layer in cache.layers
            ]
            self._prefixes.put(t[:s], layers)

    # --- sampled generation ---------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Sampled answers: each distinct (prompt, generation settings) is run once and its K repeats drawn from
        that one prefill; other requests (greedy or with options the sampler does not implement) go to ``hf``."""
        if not self._fast() or not requests:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        groups: dict[tuple[str, str], list[int]] = {}
        for k, req in enumerate(requests):
            context, gen_kwargs = req.args[0], req.args[1]
            groups.setdefault((context, json.dumps(gen_kwargs, sort_keys=True, default=str)), []).append(k)
        out: list[str | None] = [None] * len(requests)
        by_settings: dict[str, list[tuple[str, list[int]]]] = {}
        fallback: list[int] = []
        for (context, settings), idx in groups.items():
            kw = json.loads(settings)
            if set(kw) - _SAMPLER_KEYS or not kw.get("do_sample", False) or float(kw.get("temperature", 1.0)) <= 0:
                fallback.extend(idx)
            else:
                by_settings.setdefault(settings, []).append((context, idx))
        if fallback:
            answers = super().generate_until([requests[k] for k in fallback], disable_tqdm=disable_tqdm)
            for k, a in zip(fallback, answers):
                out[k] = a
        from tqdm import tqdm

        pbar = tqdm(
            total=len(requests) - len(fallback),
            disable=disable_tqdm or self.rank != 0,
            desc="Running generate_until requests (shared prefill)",
        )
        for settings, items in by_settings.items():
            gen_kwargs = requests[items[0][1][0]].args[1]
            for context, idx, answers in self._sample_group(items, gen_kwargs, settings):
                for k, a in zip(idx, answers):
                    out[k] = a
                    self.cache_hook.add_partial("generate_until", (context, gen_kwargs), a)
                pbar.update(len(idx))
        pbar.close()
        return [a if a is not None else "" for a in out]

    def _sampling(self, kwargs: dict) -> tuple[float, int, float]:
        cfg = getattr(self.model, "generation_config", None)
        temperature = float(kwargs.get("temperature", 1.0))
        top_k = kwargs.get("top_k", getattr(cfg, "top_k", None))
        top_p = kwargs.get("top_p", getattr(cfg, "top_p", None))
        return temperature, int(top_k or 0), float(1.0 if top_p is None else top_p)

    @staticmethod
    def _filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
        """Top-k then top-p (nucleus) filtering of (rows, vocabulary) logits: ``transformers``' own logits warpers,
        in the order ``generate`` applies them (tests/test_fast_models.py pins the same draws for a fixed seed)."""
        from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

        if 0 < top_k < logits.shape[-1]:
            logits = TopKLogitsWarper(top_k)(None, logits)  # type: ignore[arg-type]  # input_ids: unused by the warper
        if top_p < 1.0:
            logits = TopPLogitsWarper(max(top_p, 0.0))(None, logits)  # type: ignore[arg-type]
        return logits

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    def _sample_group(self, items: list[tuple[str, list[int]]], gen_kwargs: dict, settings: str):
        """Yield (context, request indices, answers) for prompts sharing one generation setting."""
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        eos_text = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
        max_gen = int(kwargs.pop("max_gen_toks"))
        temperature, top_k, top_p = self._sampling(kwargs)
        seed = self.sample_seed if self.sample_seed is not None else torch.initial_seed()
        eos = self._eos_ids()
        max_ctx = self.max_length - max_gen
        encoded = [tuple(self.tok_encode(c, left_truncate_len=max_ctx)) for c, _ in items]
        n = min(common_prefix_length(*encoded), min(len(e) for e in encoded) - 1) if self.stem_cache else 0
        stem = self._stem(encoded[0][:n]) if n >= 2 else None
        n = len(stem.ids) if stem else 0
        order = sorted(range(len(items)), key=lambda i: -len(encoded[i]))
        start = 0
        while start < len(order):
            # prompts per batch: the prefill within the token budget (or batch_size prompts when it is given), and
            # their answers within the row cap of the decoding steps
            width = len(encoded[order[start]]) - n
            prompts = self._rows(width)
            batch, rows = [], 0
            while (
                start < len(order) and len(batch) < prompts and (not batch or rows + len(items[order[start]][1]) <= self.rows_cap)
            ):
                i = order[start]
                batch.append(i)
                rows += len(items[i][1])
                start += 1
            answers = self._sample_batch(
                stem,
                [encoded[i][n:] for i in batch],
                [len(items[i][1]) for i in batch],
                [derived_seed(seed, items[i][0], settings) for i in batch],
                max_gen,
                temperature,
                top_k,
                top_p,
                eos,
                [s for s in until if s and s != eos_text],
            )
            for i, ans in zip(batch, answers):
                yield (
                    items[i][0],
                    items[i][1],
                    [postprocess_generated_text(generation=a, stop=until, think_end_token=None) for a in ans],
                )

    def _sample_batch(
        self,
        stem: _Stem | None,
        tails: list[Sequence[int]],
        counts: list[int],
        seeds: list[int],
        max_gen: int,
        temperature: float,
        top_k: int,
        top_p: float,
        eos: set[int],
        stops: list[str],
    ) -> list[list[str]]:
        """One prefill of ``tails``, then ``counts[i]`` answers of prompt i drawn from it with prompt i's own
        generator. Rows that finished (end-of-sequence or a stop string) leave the batch, so the decoding steps
        run only the answers still being written."""
        logits, cache, mask, last_pos = self._forward_tails(stem, tails, 1)
        self.prefills += len(tails)
        owner = torch.repeat_interleave(torch.arange(len(tails)), torch.tensor(counts))
        index = owner.to(self.device)
        cache.batch_select_indices(index)
        mask = mask.index_select(0, index)
        pos = last_pos.index_select(0, index)
        gens = []
        for s in seeds:
            g = torch.Generator(device=self.device)
            g.manual_seed(s)
            gens.append(g)
        rows = int(owner.numel())
        self.sampled_rows += rows
        step_logits = logits[:, -1, :].index_select(0, index)
        written: list[list[int]] = [[] for _ in range(rows)]
        alive = list(range(rows))  # rows still writing, in the order of the batch's rows
        slots = list(range(rows))  # the rows in the cache (finished rows stay until compacting pays)
        last = torch.zeros(rows, dtype=torch.long)
        for step in range(max_gen):
            where = {r: i for i, r in enumerate(slots)}
            live = (
                step_logits
                if len(slots) == len(alive)
                else step_logits.index_select(
                    0, torch.tensor([where[r] for r in alive], dtype=torch.long, device=step_logits.device)
                )
            )
            probs = self._filter(live / max(temperature, 1e-6), top_k, top_p).softmax(dim=-1)
            # inverse-CDF draws: one uniform per answer from its prompt's generator (the rows of a prompt are
            # contiguous in ``alive`` and drawn in order), the token whose cumulative probability first exceeds it
            cum = probs.cumsum(dim=-1)
            picks = torch.empty(len(alive), dtype=torch.long)
            a = 0
            while a < len(alive):
                p = int(owner[alive[a]])
                b = a
                while b < len(alive) and int(owner[alive[b]]) == p:
                    b += 1
                u = torch.rand((b - a, 1), generator=gens[p], device=self.device, dtype=cum.dtype) * cum[a:b, -1:]
                picks[a:b] = torch.searchsorted(cum[a:b], u, right=True).clamp_(max=cum.shape[-1] - 1).squeeze(1).cpu()
                a = b
            keep = []
            for j, r in enumerate(alive):
                t = int(picks[j])
                written[r].append(t)
                last[r] = t
                if t in eos or (stops and any(s in self.tok_decode(written[r]) for s in stops)):
                    continue
                keep.append(r)
            if not keep or step == max_gen - 1:
                break
            alive = keep
            if len(alive) <= 0.75 * len(slots):
                # compact the cache to the rows still writing (a copy of the whole cache, so not at every step)
                sel = torch.tensor([where[r] for r in alive], dtype=torch.long, device=self.device)
                cache.batch_select_indices(sel)
                mask, pos = mask.index_select(0, sel), pos.index_select(0, sel)
                slots = list(alive)
            mask = torch.cat([mask, torch.ones((len(slots), 1), dtype=mask.dtype, device=mask.device)], dim=1)
            pos = pos + 1
            kwargs: dict[str, Any] = {
                "attention_mask": mask,
                "position_ids": pos[:, None],
                "use_cache": True,
                self._cache_arg: cache,
            }
            if self._keep_arg:
                kwargs[self._keep_arg] = 1
            # finished rows still in the cache are fed their last token; their outputs are ignored
            step_logits, cache = self._run(last[torch.tensor(slots, dtype=torch.long)].to(self.device)[:, None], 1, kwargs)
            step_logits = step_logits[:, -1, :]
        answers: list[list[str]] = [[] for _ in counts]
        for r, seq in enumerate(written):
            cut = next((j for j, t in enumerate(seq) if t in eos), len(seq))
            answers[int(owner[r])].append(self.tok_decode(seq[:cut]))
        return answers


# ----------------------------------------------------------------------------------------------------------
# OpenAI-compatible clients with one seed per sampled answer


class _RepeatSeeds:
    """Mixin for lm-eval's API clients: the k-th repeat of a (prompt, settings) request is sent with seed
    ``derived_seed(run seed, prompt, settings, k)`` (``seed=none``: no seed), so K repeats are K draws."""

    _seed_mode: str

    def _init_seed(self, kwargs: dict) -> dict:
        seed = kwargs.get("seed", 1234)
        self._seed_mode = "none" if seed in (None, "none", "None", "") else "derived"
        if self._seed_mode == "none":
            kwargs = {**kwargs, "seed": 0}
        return kwargs

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:  # type: ignore[override]
        from lm_eval.api.instance import Instance

        seen: dict[tuple[str, str], int] = {}
        fresh = []
        for req in requests:
            context, gen_kwargs = req.args[0], dict(req.args[1])
            settings = json.dumps(gen_kwargs, sort_keys=True, default=str)
            k = seen.get((str(context), settings), 0)
            seen[(str(context), settings)] = k + 1
            gen_kwargs["seed"] = (
                None if self._seed_mode == "none" else derived_seed(self._seed, context, settings, k) & 0x7FFFFFFF
            )
            fresh.append(
                Instance(
                    request_type=req.request_type,
                    doc=req.doc,
                    arguments=(context, gen_kwargs, *req.args[2:]),
                    idx=req.idx,
                    metadata=req.metadata,
                )
            )
        return super().generate_until(fresh, disable_tqdm=disable_tqdm)  # type: ignore[misc]

    def parse_generations(self, outputs: Any, **kwargs: Any) -> list[str]:  # type: ignore[override]
        """lm-eval's parsing, and the ``usage`` the server reports summed into ``ue_usage`` (``usage.json``)."""
        usage = self._ue_usage()
        for out in outputs if isinstance(outputs, list) else [outputs]:
            usage["requests"] += 1
            reported = out.get("usage") if isinstance(out, dict) else None
            if isinstance(reported, dict):
                usage["prompt_tokens"] += int(reported.get("prompt_tokens") or 0)
                usage["completion_tokens"] += int(reported.get("completion_tokens") or 0)
        return super().parse_generations(outputs, **kwargs)  # type: ignore[misc]

    def _ue_usage(self) -> dict:
        usage = getattr(self, "ue_usage", None)
        if usage is None:
            usage = self.ue_usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "retries": 0}
        return usage

    def model_call(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """lm-eval's request (retried by lm-eval: ``max_retries`` attempts, exponential back-off from 1 s to 10 s, on a
        429, a 5xx, a time-out after ``timeout`` seconds or a dropped connection); each failed attempt counted in
        ``ue_usage["retries"]``."""
        try:
            return super().model_call(*args, **kwargs)  # type: ignore[misc]
        except Exception:
            self._ue_usage()["retries"] += 1
            raise

    async def amodel_call(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """The concurrent form (``num_concurrent`` > 1), counted the same way."""
        try:
            return await super().amodel_call(*args, **kwargs)  # type: ignore[misc]
        except Exception:
            self._ue_usage()["retries"] += 1
            raise

    def _create_payload(self, *args: Any, **kwargs: Any) -> dict:  # type: ignore[override]
        """lm-eval's request body, without an empty ``stop`` list (ue's sampled tasks stop at the end of turn only):
        the same request, which strict servers accept (``transformers serve`` answers 400 to ``"stop": []``)."""
        payload = super()._create_payload(*args, **kwargs)  # type: ignore[misc]
        if isinstance(payload, dict) and payload.get("stop") in ([], [None], None):
            payload.pop("stop", None)
        return payload


@register_model("ue-local-completions")
class UeLocalCompletions(_RepeatSeeds, LocalCompletionsAPI):
    """lm-eval's ``local-completions`` with one seed per sampled repeat."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**self._init_seed(kwargs))


@register_model("ue-local-chat-completions")
class UeLocalChatCompletions(_RepeatSeeds, LocalChatCompletion):
    """lm-eval's ``local-chat-completions`` with one seed per sampled repeat."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**self._init_seed(kwargs))


# lm-eval model types → the ue type ``ue run`` / ``ue elicit`` use in their place (same answers, faster or fixed)
UE_TYPES = {
    "hf": "ue-hf",
    "huggingface": "ue-hf",
    "hf-auto": "ue-hf",
    "local-completions": "ue-local-completions",
    "local-chat-completions": "ue-local-chat-completions",
}

"""``ue demo``: the whole path on the embedded model, on the CPU, offline — prepare SmolLM2-135M-Instruct, run the
``utility_mini`` lm-eval task in log-prob mode through lm-eval's Python API, read its samples back as preference
records, fit the Thurstonian model and print the summary (utilities at both ends, coherence metrics next to the
random responder).

Speed: every prompt of the task starts with the same stem (chat header, system message, the instruction up
to "Option A:"). ``prefix_cached_hflm`` wraps lm-eval's ``HFLM`` so that the stem's key/value cache is computed
once and each batch only runs the tokens after it; the log-probabilities are those of the full prompt (the
test ``tests/test_lm_eval_demo.py`` pins this).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.templates import SYSTEM_MESSAGE

TASK = "utility_mini"
# training pairs of the demo: None = the full plan of mini (738 training + 94 holdout pairs, 1,664 prompts; about
# 3 minutes on 2 CPU cores with the stem cache); a smaller budget gives a quicker, rougher look
DEMO_BUDGET = None


def _offline() -> None:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_prefix_ids(tokenizer, prompts: list[str]) -> list[int]:
    """The longest run of leading token ids shared by all ``prompts`` (minus one token, so that a BPE merge
    across the boundary can never make a prompt's own tokenisation differ from the cached one)."""
    encoded = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
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
    fall back to the ordinary forward pass."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import DynamicCache

    class PrefixCachedHFLM(HFLM):
        def __init__(self) -> None:
            super().__init__(pretrained=pretrained, **kwargs)
            stem = shared_prefix_ids(self.tokenizer, prefix_prompts)
            self.prefix_ids = torch.tensor(stem, dtype=torch.long, device=self.device)
            self.prefix_hits = 0
            self.forward_calls = 0
            # transformers 5.x names the argument ``cache``; earlier versions ``past_key_values``
            params = inspect.signature(self.model.forward).parameters
            self._cache_arg = "cache" if "cache" in params else "past_key_values"
            if len(stem):
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
            with torch.no_grad():
                tail = self.model(inps[:, n:], use_cache=True, **{self._cache_arg: cache}).logits
            return torch.cat([self._prefix_logits.expand(rows, -1, -1).to(tail.dtype), tail], dim=1)

    return PrefixCachedHFLM()


def chat_prompts(tokenizer, docs: list[dict], system_message: str = SYSTEM_MESSAGE) -> list[str]:
    """The chat-templated prompts lm-eval sends for ``docs`` with --apply_chat_template --system_instruction."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system_message}, {"role": "user", "content": d["prompt"]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for d in docs
    ]


def run_demo(out: str | Path = "ue_demo_out", budget: int | None = DEMO_BUDGET, batch_size: int = 8, top: int = 5,
             prefix_cache: bool = True, outcomes: str = "mini", log=print) -> dict:  # fmt: skip
    """Run the demo; returns the fit metrics (also written to ``out/metrics.json``)."""
    _offline()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if budget is not None and budget < 1:
        raise UserError(f"--budget must be a positive number of training pairs, got {budget}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    from ue_metrics import records as rec
    from ue_metrics.fitting import fit_records
    from ue_tasks import model
    from ue_tasks.lm_eval_tasks import documents
    from ue_tasks.readers import read_records

    started = time.perf_counter()
    folder = model.prepare(log=log)
    metadata = {"outcomes": str(outcomes)} | ({"budget": budget} if budget is not None else {})
    docs = documents(**metadata)
    log(f"ue demo: {TASK} ({outcomes} outcomes) on {model.MODEL_NAME} ({folder}), {len(docs)} prompts (pairs × 2 orderings), CPU")
    import torch

    torch.manual_seed(0)
    kwargs = {"device": "cpu", "batch_size": batch_size, "dtype": "float32"}
    if prefix_cache:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder))
        lm = prefix_cached_hflm(str(folder), chat_prompts(tok, docs[:64]), **kwargs)
    else:
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=str(folder), **kwargs)
    from ue_tasks.lm_eval_run import run_lm_eval

    lm_out = out / "lm_eval"
    run_lm_eval(lm, [TASK], lm_out, metadata=metadata)
    elicit_seconds = time.perf_counter() - started

    records = read_records([lm_out])
    n = rec.write(records, out / "records.jsonl")
    result = fit_records(records)
    result.metrics["inputs"] = [str(lm_out)]
    result.metrics["demo"] = {"task": TASK, "outcomes": str(outcomes), "model": str(folder), "budget": budget, "prompts": len(docs),
                              "elicit_seconds": round(elicit_seconds, 1), "prefix_cache": prefix_cache}  # fmt: skip
    result.write(out)
    print(result.summary(top=top))
    total = time.perf_counter() - started
    print(f"wrote {n} records to {out / 'records.jsonl'}, the fit to {out / 'utilities.csv'} and "
          f"{out / 'metrics.json'}, lm-eval's results and samples under {lm_out}  ({total:.0f} s)")  # fmt: skip
    print(f"next: ue fit {lm_out} --out fit/ --bootstrap 200", file=sys.stderr)
    (out / "demo.json").write_text(json.dumps({"seconds": round(total, 1), **result.metrics["demo"]}, indent=2) + "\n")
    return result.metrics

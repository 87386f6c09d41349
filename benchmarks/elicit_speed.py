"""Elicitation speed on the embedded model (CPU): the same 40 pairs of ``mini`` (80 prompts: both orderings)
through lm-eval in log-prob mode, in K=10 sample mode, with the shared-stem cache of ``ue demo``, and as a bare
transformers forward pass over the same chat-templated prompts (the floor). Prints seconds per
(pair, ordering), the ratios, and the model forward passes per (pair, ordering) (rows × calls / prompts).

Run:  python benchmarks/elicit_speed.py [--pairs 40] [--batch-size 8] [--skip-sampled]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PassCounter:
    """Counts model forward calls and rows (one row = one sequence in a batch) with a forward pre-hook."""

    def __init__(self, model) -> None:
        self.calls = 0
        self.rows = 0
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.calls += 1
        self.rows += int(ids.shape[0]) if ids is not None else 0

    def reset(self) -> None:
        self.calls = self.rows = 0

    def close(self) -> None:
        self._handle.remove()


def timed_lm_eval(lm, task: str, n_docs: int, counter: PassCounter) -> tuple[float, int]:
    """Wall time and forward rows of one lm-eval run over the first ``n_docs`` documents."""
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    counter.reset()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run_lm_eval(lm, [task], Path(out), metadata={"outcomes": "mini"}, limit=n_docs)
        return time.perf_counter() - started, counter.rows


def bare_forward(model, tok, prompts: list[str], batch_size: int, counter: PassCounter) -> tuple[float, int]:
    import torch

    counter.reset()
    tok.padding_side = "right"
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
    return time.perf_counter() - started, counter.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sampled-pairs", type=int, default=None, help="time sample mode on the first P pairs only (default: all)")
    parser.add_argument("--skip-sampled", action="store_true", help="leave out the (slow) K=10 sample mode")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from ue_tasks import model as embedded
    from ue_tasks.harness.lm_eval.hooks import documents
    from ue_tasks.harness.lm_eval.prefix_cache import chat_prompts, prefix_cached_hflm

    torch.manual_seed(0)
    folder = str(embedded.prepare())
    n = 2 * args.pairs
    docs = documents(outcomes="mini")[:n]
    tok = AutoTokenizer.from_pretrained(folder)
    prompts = chat_prompts(tok, [d["prompt"] for d in docs])
    kwargs = {"device": "cpu", "batch_size": args.batch_size, "dtype": "float32"}
    print(f"{args.pairs} pairs of mini = {n} prompts, batch size {args.batch_size}, {torch.get_num_threads()} CPU threads")

    lm = HFLM(pretrained=folder, **kwargs)
    counter = PassCounter(lm.model)
    bare_forward(lm.model, tok, prompts[: args.batch_size], args.batch_size, counter)  # warm-up
    floor_s, floor_rows = bare_forward(lm.model, tok, prompts, args.batch_size, counter)
    logprob_s, logprob_rows = timed_lm_eval(lm, "utility_mini", n, counter)
    n_sampled = 2 * (args.sampled_pairs or args.pairs)
    sampled = timed_lm_eval(lm, "utility_mini_sampled", n_sampled, counter) if not args.skip_sampled else None
    counter.close()

    cached = prefix_cached_hflm(folder, chat_prompts(tok, [d["prompt"] for d in documents(outcomes="mini")[:64]]), **kwargs)
    counter = PassCounter(cached.model)
    cached_s, cached_rows = timed_lm_eval(cached, "utility_mini", n, counter)
    counter.close()

    def row(name: str, seconds: float, rows: int, prompts: int = n) -> None:
        per = seconds / prompts
        print(f"{name:<34}{per:>10.3f}{per / (floor_s / n):>12.2f}{rows / prompts:>16.2f}")

    print(f"{'mode':<34}{'s/prompt':>10}{'× floor':>12}{'passes/prompt':>16}")
    row("bare transformers forward (floor)", floor_s, floor_rows)
    row("lm-eval log-prob", logprob_s, logprob_rows)
    row("lm-eval log-prob, stem cache", cached_s, cached_rows)
    if sampled:
        row(f"lm-eval sampled (K=10, {n_sampled} prompts)", *sampled, prompts=n_sampled)
        print(f"sampled / log-prob (per prompt): {(sampled[0] / n_sampled) / (logprob_s / n):.1f}×")
    print(f"log-prob / floor: {logprob_s / floor_s:.2f}×   stem cache / floor: {cached_s / floor_s:.2f}×")
    print(f"stem: {len(cached.prefix_ids)} tokens shared by every prompt; prompts are "
          f"{sum(len(tok(p, add_special_tokens=False).input_ids) for p in prompts) / n:.0f} tokens on average")  # fmt: skip
    print("(lm-eval times include building the task's documents and the fit of its metrics)")


if __name__ == "__main__":
    main()

"""Elicitation speed on the embedded model: the same prompts of ``mini`` (both orderings of the first P pairs)
through lm-eval in log-prob mode and in K = 10 sampled mode, with lm-eval's ``hf`` model and with ue's ``ue-hf``
(``ue_tasks.harness.lm_eval.models``: bf16 where native, stem cache, hardware batch sizes, K answers from one
prefill), and as a bare transformers forward pass over the same chat-templated prompts (the floor: every prompt
run in full, fp32, batch 8). Prints seconds per (pair, ordering), each row's ratio to the floor, model forward rows
per prompt, and the headline ratio sampled (K = 10) / log-prob for ``ue-hf`` (target ≤ 3). All rows run in one
process, one after the other, so their ratios are comparable even on a loaded machine; the load average is
printed before and after.

Run:  python benchmarks/elicit_speed.py [--pairs 40] [--sampled-pairs 20] [--dtype auto] [--skip-hf-sampled]
"""

from __future__ import annotations

import argparse
import os
import platform
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


def machine() -> str:
    from ue_tasks.harness.lm_eval.models import cpu_has_bf16

    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, native bf16: {'yes' if cpu_has_bf16() else 'no'}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40, help="pairs timed in log-prob mode (both orderings)")
    parser.add_argument("--sampled-pairs", type=int, default=None, help="pairs timed in sampled mode (default: --pairs)")
    parser.add_argument("--dtype", default="auto", help="ue-hf's dtype (default auto: bf16 where native, else fp32)")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval hf's and the floor's batch size")
    parser.add_argument("--skip-hf-sampled", action="store_true", help="leave out lm-eval hf's sampled mode (the slowest row)")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from ue_tasks import model as embedded
    from ue_tasks.harness.lm_eval.chat import chat_prompts
    from ue_tasks.harness.lm_eval.hooks import documents
    from ue_tasks.harness.lm_eval.models import UeHFLM

    torch.manual_seed(0)
    folder = str(embedded.prepare())
    n = 2 * args.pairs
    n_sampled = 2 * (args.sampled_pairs or args.pairs)
    docs = documents(outcomes="mini")[:n]
    tok = AutoTokenizer.from_pretrained(folder)
    prompts = chat_prompts(tok, [d["prompt"] for d in docs])
    print(f"machine: {machine()} (before)")
    print(f"{args.pairs} pairs of mini = {n} prompts ({n_sampled} in sampled mode), {torch.get_num_threads()} torch threads")

    hf = HFLM(pretrained=folder, device="cpu", batch_size=args.batch_size, dtype="float32")
    counter = PassCounter(hf.model)
    bare_forward(hf.model, tok, prompts[: args.batch_size], args.batch_size, counter)  # warm-up
    floor_s, floor_rows = bare_forward(hf.model, tok, prompts, args.batch_size, counter)
    rows: list[tuple[str, float, int, int]] = [("bare transformers forward, fp32 (floor)", floor_s, floor_rows, n)]
    rows.append(("lm-eval hf log-prob, fp32", *timed_lm_eval(hf, "utility_mini", n, counter), n))
    if not args.skip_hf_sampled:
        rows.append(("lm-eval hf sampled K=10, fp32", *timed_lm_eval(hf, "utility_mini_sampled", n_sampled, counter), n_sampled))
    counter.close()
    del hf

    ue = UeHFLM(pretrained=folder, device="cpu", dtype=args.dtype)
    counter = PassCounter(ue.model)
    timed_lm_eval(ue, "utility_mini", 4, counter)  # warm-up (and the stem's cache)
    ue_lp = timed_lm_eval(ue, "utility_mini", n, counter)
    ue_s = timed_lm_eval(ue, "utility_mini_sampled", n_sampled, counter)
    counter.close()
    rows.append((f"ue-hf log-prob, {ue.resolved_dtype}", *ue_lp, n))
    rows.append((f"ue-hf sampled K=10, {ue.resolved_dtype}", *ue_s, n_sampled))

    print(f"\n{'mode':<42}{'s/prompt':>10}{'× floor':>10}{'forward rows/prompt':>21}")
    per_floor = floor_s / n
    for name, seconds, fwd_rows, count in rows:
        per = seconds / count
        print(f"{name:<42}{per:>10.3f}{per / per_floor:>10.2f}{fwd_rows / count:>21.2f}")
    per_lp, per_s = ue_lp[0] / n, ue_s[0] / n_sampled
    print(f"\nue-hf sampled (K=10) / ue-hf log-prob, per (pair, ordering): {per_s / per_lp:.2f}×  (target ≤ 3)")
    if not args.skip_hf_sampled:
        hf_lp, hf_s = rows[1][1] / n, rows[2][1] / n_sampled
        print(f"lm-eval hf sampled / hf log-prob: {hf_s / hf_lp:.2f}×;  ue-hf sampled vs hf sampled: {hf_s / per_s:.2f}× faster")
    print(
        f"ue-hf log-prob vs hf log-prob: {(rows[1][1] / n) / per_lp:.2f}× faster;  ue-hf log-prob / floor: {per_lp / per_floor:.2f}×"
    )
    print(
        f"stem: {ue.stem_length} tokens shared by every prompt; prompts are "
        f"{sum(len(tok(p, add_special_tokens=False).input_ids) for p in prompts) / n:.0f} tokens on average; "
        f"sampled answers drawn from {ue.prefills} prefills"
    )
    print("(lm-eval times include building the task's documents and its metrics' fit)")
    print(f"machine: {machine()} (after)")


if __name__ == "__main__":
    main()

"""Cost of a Gemma 3 270M prompt (base task) relative to a SmolLM2-135M-Instruct prompt (chat task) in ``ue demo``'s
setting (lm-eval, log-prob, stem cache, float32), measured by interleaving rounds of the same prompts of mini on the
two models so that a shared machine's changing load falls on both alike. Prints seconds per prompt per round and the
ratio of the totals; ``ue demo``'s default budget is chosen from it so that both models together cost about what the
full plan on SmolLM2 alone did.

Run:  python benchmarks/demo_ratio.py [--rounds 3] [--prompts 16]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    from ue_tasks import model
    from ue_tasks.demo import lm_eval_model
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    lms = {}
    for key in ("smollm2-135m", "gemma3-270m"):
        m = model.get(key)
        lms[key] = (m, lm_eval_model(model.prepare(name=key), dtype=args.dtype))
    totals = dict.fromkeys(lms, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for key, (m, lm) in lms.items():
                task = "base_utility_mini" if m.base_model else "utility_mini"
                t0 = time.perf_counter()
                run_lm_eval(lm, [task], Path(tmp) / f"{key}-{r}", limit=args.prompts, apply_chat_template=not m.base_model)
                dt = time.perf_counter() - t0
                totals[key] += dt
                print(f"round {r}: {m.name:<24} {dt / args.prompts:.3f} s per prompt", flush=True)
    ratio = totals["gemma3-270m"] / totals["smollm2-135m"]
    print(
        f"gemma-3-270m / SmolLM2-135M-Instruct per prompt: {ratio:.2f}x ({args.rounds} interleaved rounds of {args.prompts} prompts)"
    )


if __name__ == "__main__":
    main()

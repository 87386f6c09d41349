"""The two embedded models of ``ue demo`` side by side: seconds per (pair, ordering) through lm-eval (log-prob
mode, the stem cache of ``ue demo``) for SmolLM2-135M-Instruct (chat task ``utility_mini``) and Gemma 3 270M
(base task ``base_utility_mini``), each in float32 and bfloat16, on the same first prompts of ``mini``; the
largest change of P(A) that bfloat16 brings; and, for the stem cache, the largest difference of P(A) from lm-eval's
plain ``HFLM`` (float32). Prints ratios measured in one run (timings on a shared machine move; ratios less so).

Run:  python benchmarks/demo_models.py [--prompts 96] [--batch-size 8] [--models smollm2-135m gemma3-270m]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _p_a(out: Path, task: str) -> list[float]:
    from ue_tasks.harness.lm_eval.hooks import PAYLOAD_FIELDS

    (path,) = list(out.rglob(f"samples_{task}_*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows.sort(key=lambda r: r["doc_id"])
    return [dict(zip(PAYLOAD_FIELDS, r[r["metrics"][0]]))["p_a"] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-HFLM check of the stem cache")
    args = ap.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    from ue_tasks import model
    from ue_tasks.demo import lm_eval_model
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; {args.prompts} prompts of mini per run"
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            m = model.get(key)
            folder = model.prepare(name=key)
            task = "base_utility_mini" if m.base_model else "utility_mini"
            probs = {}
            for dtype in args.dtypes:
                lm = lm_eval_model(folder, dtype=dtype, batch_size=args.batch_size)
                out = Path(tmp) / f"{key}-{dtype}"
                t0 = time.perf_counter()
                run_lm_eval(lm, [task], out, limit=args.prompts, apply_chat_template=not m.base_model)
                seconds = time.perf_counter() - t0
                probs[dtype] = _p_a(out, task)
                results.setdefault(key, {})[dtype] = seconds / args.prompts
                print(
                    f"{m.name:<24} {dtype:<9} {seconds / args.prompts:.3f} s per prompt  (stem hits {lm.stem_hits}/{lm.forward_calls})"
                )
                del lm
            if len(args.dtypes) > 1:
                a, b = probs[args.dtypes[0]], probs[args.dtypes[1]]
                print(
                    f"{m.name:<24} max |ΔP(A)| {args.dtypes[1]} vs {args.dtypes[0]}: {max(abs(x - y) for x, y in zip(a, b)):.4f}"
                )
            if not args.no_plain:
                plain = HFLM(pretrained=str(folder), device="cpu", batch_size=args.batch_size, dtype="float32")
                out = Path(tmp) / f"{key}-plain"
                t0 = time.perf_counter()
                run_lm_eval(plain, [task], out, limit=args.prompts, apply_chat_template=not m.base_model)
                seconds = time.perf_counter() - t0
                ref = _p_a(out, task)
                results[key]["plain float32"] = seconds / args.prompts
                print(
                    f"{m.name:<24} plain HFLM float32 {seconds / args.prompts:.3f} s per prompt; stem cache max |ΔP(A)| "
                    f"{max(abs(x - y) for x, y in zip(probs[args.dtypes[0]], ref)):.2e}"
                )
    base = results[args.models[0]][args.dtypes[0]]
    print(f"\nratios to {args.models[0]} {args.dtypes[0]} (stem cache):")
    for key, row in results.items():
        print("  " + key + ": " + ", ".join(f"{d} {v / base:.2f}×" for d, v in row.items()))


if __name__ == "__main__":
    main()

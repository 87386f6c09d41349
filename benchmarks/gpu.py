"""GPU benchmark, prepared for a CUDA machine: log-prob elicitation of ``core`` through lm-eval's ``hf`` backend and
ue's ``ue-hf`` (bf16, stem cache, batch sizes from the free memory), through lm-eval's ``vllm`` backend when vLLM is
installed (prefix caching on), and the trainer's throughput (``benchmarks/train_speed.py --device cuda``). Prints,
per backend, the time per (pair, ordering) and examples (prompts) per second; the GPU's name and memory head the
output.

Without a CUDA device it measures nothing and says so (exit 2): figures are never made up. ``--allow-cpu`` runs the
same code on the CPU with a tiny limit, to check the script itself; those figures are CPU figures.

    python benchmarks/gpu.py                                  # embedded model, 2,000 prompts of core
    python benchmarks/gpu.py --model Qwen/Qwen2.5-7B-Instruct --limit 5000 --skip-train
    python benchmarks/gpu.py --allow-cpu --limit 16 --skip-train   # check the script on a CPU
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(lm, limit: int, task: str = "utility_core") -> float:
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run_lm_eval(lm, [task], Path(out), limit=limit)
        return time.perf_counter() - started


def report(name: str, seconds: float, prompts: int) -> dict:
    print(
        f"  {name:<44} {prompts:>6} prompts  {seconds:8.1f} s  {seconds / prompts * 1000:9.2f} ms per (pair, ordering)  "
        f"{prompts / seconds:9.1f} examples/s",
        flush=True,
    )
    return {
        "backend": name,
        "prompts": prompts,
        "seconds": round(seconds, 2),
        "per_prompt_ms": round(seconds / prompts * 1000, 3),
        "examples_per_s": round(prompts / seconds, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="embedded", help="HF folder or hub id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--limit", type=int, default=2000, help="prompts of utility_core timed per backend (default 2000)")
    p.add_argument("--batch-size", default="auto", help="lm-eval hf's batch size (default auto)")
    p.add_argument("--skip-train", action="store_true", help="leave out the trainer's throughput")
    p.add_argument("--skip-vllm", action="store_true", help="leave out vLLM even when it is installed")
    p.add_argument("--allow-cpu", action="store_true", help="run on the CPU to check the script (CPU figures)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()

    import torch

    if torch.cuda.is_available():
        device = "cuda"
        props = torch.cuda.get_device_properties(0)
        print(
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s); torch {torch.__version__}"
        )
    elif args.allow_cpu:
        device = "cpu"
        print("no CUDA device: running on the CPU to check the script (these are CPU figures, not GPU figures)")
    else:
        print("no CUDA device on this machine: nothing measured (run on a GPU machine, or --allow-cpu to check the script)")
        return 2

    from lm_eval.models.huggingface import HFLM

    from ue_tasks import model as embedded
    from ue_tasks.harness.lm_eval.models import UeHFLM, resolve_dtype

    pretrained = str(embedded.prepare()) if args.model == "embedded" else args.model
    dtype = resolve_dtype("native", device)  # bf16 where the GPU has it (ue_tasks/dtypes.py; auto: the checkpoint's own)
    results = []
    print(f"\nlog-prob elicitation of utility_core, first {args.limit} prompts (pair, ordering), model {pretrained}:")
    hf = HFLM(pretrained=pretrained, device=device, batch_size=args.batch_size, dtype=dtype)
    timed(hf, min(args.limit, 16))  # warm-up
    results.append(report(f"lm-eval hf ({dtype}, batch {args.batch_size})", timed(hf, args.limit), args.limit))
    del hf
    if device == "cuda":
        torch.cuda.empty_cache()
    ue = UeHFLM(pretrained=pretrained, device=device, dtype="auto")
    timed(ue, min(args.limit, 16))
    results.append(report(f"ue-hf ({ue.resolved_dtype}, stem cache, auto batch)", timed(ue, args.limit), args.limit))
    del ue
    if device == "cuda":
        torch.cuda.empty_cache()

    if args.skip_vllm:
        print("  vLLM: skipped (--skip-vllm)")
    elif device != "cuda":
        print("  vLLM: needs a CUDA device; not run")
    elif importlib.util.find_spec("vllm") is None:
        print("  vLLM: not installed (pip install vllm); not run")
    else:
        from lm_eval.models.vllm_causallms import VLLM

        lm = VLLM(pretrained=pretrained, dtype=dtype, enable_prefix_caching=True, gpu_memory_utilization=0.85, batch_size="auto")
        timed(lm, min(args.limit, 16))
        results.append(report("lm-eval vllm (prefix caching)", timed(lm, args.limit), args.limit))
        del lm

    if not args.skip_train:
        print("\ntrainer throughput (benchmarks/train_speed.py):", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "train.json"
            cmd = [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--device", device, "--json", str(out)]
            if args.model != "embedded":
                cmd += ["--model", args.model]
            proc = subprocess.run(cmd, text=True)
            if proc.returncode == 0 and out.is_file():
                results.append({"trainer": json.loads(out.read_text())})
            else:
                print(f"  the trainer benchmark failed (exit {proc.returncode})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

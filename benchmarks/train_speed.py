"""Training throughput of ``ue_control.train`` (preference examples per second) and peak memory, full
fine-tuning vs LoRA, on the embedded SmolLM2-135M-Instruct — on the CPU, and on a GPU when one is present.

Builds a synthetic assembly folder (real prompts of the shipped policy set, targets drawn from a seeded
generator: the speed does not depend on the targets), then times ``steps`` optimizer steps after ``warmup``
untimed ones, in a fresh process per configuration so that peak memory is that run's own.

    python benchmarks/train_speed.py                 # CPU, full and LoRA
    python benchmarks/train_speed.py --device cuda   # GPU (bf16 autocast)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(folder: Path, seed: int = 0) -> Path:
    import numpy as np

    from ue_control.assembly import load_policy_outcomes
    from ue_metrics.records import write
    from ue_tasks.plan import PlanSpec
    from ue_tasks.queries import build_queries

    oset = load_policy_outcomes("policies")
    rng = np.random.default_rng(seed)
    queries = build_queries(str(oset.source), PlanSpec(seed=seed, budget=64, holdout_fraction=0.0))
    records = [
        q.record(
            mode="logprob",
            model="synthetic",
            harness="benchmark",
            task="b",
            run_id="b",
            p_a=float(rng.uniform(0.05, 0.95)),
            label_mass=None,
            outcome_split="train",
        )
        for q in queries
    ]
    write(records, folder / "assembly_records.jsonl")
    return folder


def child(args: argparse.Namespace) -> None:
    import resource
    import time

    import torch

    from ue_control.train import load_config, train

    overrides = [
        f"method={args.method}",
        f"batch_size={args.batch}",
        f"micro_batch_size={args.batch}",
        "eval_max_examples=1",
        f"steps={args.warmup + args.steps}",
        "learning_rate=1e-5",
        "log_every=1000",
    ]
    if args.device == "cuda":
        overrides.append("mixed_precision=bf16")
    else:
        overrides.append("cpu=true")
    config = load_config(None, overrides, run=args.run, out=args.out, model=args.model)
    # time only the steps after warmup: a first run of `warmup` steps with a checkpoint, then resume
    warm = load_config(None, overrides + [f"stop_after={args.warmup}"], run=args.run, out=args.out, model=args.model)
    train(warm, log=lambda *_: None)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    summary = train(config, log=lambda *_: None)
    wall = time.perf_counter() - started
    out = {
        "method": args.method,
        "device": args.device,
        "batch": args.batch,
        "timed_steps": args.steps,
        "examples_per_second": summary["examples_per_second_this_session"],
        "wall_seconds_incl_load_and_save": round(wall, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if args.device == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name(0)
    print("RESULT " + json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--methods", nargs="+", default=["full", "lora"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--model", default="embedded")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    if args.child:
        child(args)
        return
    from ue_control.elicit import resolve_model

    model = resolve_model(args.model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run")
        for method in args.methods:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--method",
                method,
                "--device",
                args.device,
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--model",
                model,
                "--run",
                str(run),
                "--out",
                str(Path(tmp) / f"out_{method}"),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"benchmark run {method} failed:\n{proc.stderr[-2000:]}")
            results.append(json.loads(line[0][7:]))
    print(f"{'method':<8}{'device':<8}{'batch':>6}{'examples/s':>12}{'peak RSS MiB':>14}{'peak GPU MiB':>14}")
    for r in results:
        print(
            f"{r['method']:<8}{r['device']:<8}{r['batch']:>6}{r['examples_per_second']:>12.2f}{r['peak_rss_mib']:>14.0f}{r.get('peak_cuda_mib', '—'):>14}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

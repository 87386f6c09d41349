"""Benchmark: active-learning strategies on the simulator, and the wall time of a real elicitation.

Part 1 (``--simulate``, default): N = 510 simulated outcomes, K = 10 sampled answers per ordering (the paper's
setting), the full ⌊2·N·log2 N⌋ = 9,174-pair budget asked in rounds, for the strategies ``random``, ``paper`` (the
companion's P/Q rule) and ``info`` (this project's). Prints the held-out log loss against the number of training
pairs queried and, for each strategy, the pairs it needs to reach the held-out log loss that random pairs reach
at the full budget (linear interpolation between rounds).

Part 2 (``--embedded``): times ``ue elicit`` through lm-eval on the embedded model over the 510-outcome ``core``
subset with a small budget on this machine's CPU and extrapolates the wall time of the full run.

Run: ``python benchmarks/active_learning.py [--embedded] [--round-size 250]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ue_tasks.active.driver import Elicitation, RunConfig


def curve(strategy: str, n: int, round_size: int, seed: int, mode: str, workdir: Path) -> list[tuple[int, float]]:
    out = workdir / f"{strategy}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(harness="simulate", model="simulated", outcomes=str(n), mode=mode, strategy=strategy,
                       round_size=round_size, seed=seed)  # fmt: skip
    Elicitation(cfg, out, cache_dir=None, log=lambda m: None).run()
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    return [(h["train_pairs"], h["holdout_log_loss"]) for h in history]


def pairs_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """First number of pairs at which the (interpolated) curve is at or below ``target``."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 <= target:
            if y0 <= target:
                return float(x0)
            return x0 + (x1 - x0) * (y0 - target) / (y0 - y1)
    return None


def simulate_part(args) -> None:
    print(f"Part 1: simulator, N={args.n}, mode={args.mode}, K=10 per ordering, round size {args.round_size}, seeds {args.seeds}")
    workdir = Path(tempfile.mkdtemp(prefix="ue-al-"))
    try:
        curves: dict[str, list[list[tuple[int, float]]]] = {}
        for strategy in ("random", "paper", "info"):
            started = time.perf_counter()
            curves[strategy] = [curve(strategy, args.n, args.round_size, s, args.mode, workdir) for s in range(args.seeds)]
            print(f"  {strategy:<7} {time.perf_counter() - started:6.1f} s")
        budget = curves["random"][0][-1][0]
        checkpoints = sorted({x for x, _ in curves["random"][0]} | {budget})
        print("\n  pairs   " + "".join(f"{s:>10}" for s in curves))
        for x in checkpoints[:: max(1, len(checkpoints) // 12)] + ([budget] if checkpoints[-1] != budget else []):
            row = []
            for s in curves:
                vals = [dict(c).get(x) for c in curves[s]]
                row.append(f"{np.mean(vals):10.4f}" if all(v is not None for v in vals) else f"{'':>10}")
            print(f"  {x:>6}  " + "".join(row))
        print(f"\n  pairs needed to reach random's held-out log loss at the full budget ({budget} pairs):")
        for s in curves:
            needs = []
            for seed in range(args.seeds):
                target = curves["random"][seed][-1][1]
                needs.append(pairs_to_reach(curves[s][seed], target))
            ok = [x for x in needs if x is not None]
            if len(ok) == len(needs):
                mean = float(np.mean(ok))
                print(f"  {s:<7} {mean:8.0f} pairs = {mean / budget:6.1%} of random's budget   (per seed: {[round(x) for x in ok]})")
            else:
                print(f"  {s:<7} does not reach it within the budget (per seed: {needs})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def embedded_part(args) -> None:
    from ue_tasks import model

    path = model.prepare()
    print(f"\nPart 2: ue elicit through lm-eval on the embedded model, core (570 outcomes), budget {args.embedded_budget} pairs, CPU")
    workdir = Path(tempfile.mkdtemp(prefix="ue-al-emb-"))
    try:
        cfg = RunConfig(harness="lm-eval", model="hf", model_args=f"pretrained={path}", outcomes="core", mode="logprob",
                           strategy="info", budget=args.embedded_budget, round_size=max(1, args.embedded_budget // 2),
                           holdout_fraction=0.0, seed=0)  # fmt: skip
        run = Elicitation(cfg, workdir / "run", cache_dir=None, log=lambda m: None)
        started = time.perf_counter()
        run.run()
        seconds = time.perf_counter() - started
        history = [json.loads(x) for x in (workdir / "run" / "history.jsonl").read_text().splitlines()]
        fits = sum(h["fit_seconds"] for h in history)
        prompts = 2 * args.embedded_budget
        per_prompt = seconds / prompts
        from ue_tasks.plan import default_budget, holdout_size

        full_prompts = 2 * (default_budget(510) + holdout_size(510))
        print(f"  {prompts} prompts in {seconds:.1f} s = {per_prompt:.3f} s per (pair, ordering), including model load and "
              f"{len(history)} fits ({fits:.2f} s)")
        print(f"  the paper's full run at N=510 ({full_prompts} prompts, logprob mode) would take about "
              f"{full_prompts * per_prompt / 60:.0f} minutes on this machine")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=510)
    parser.add_argument("--round-size", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--mode", choices=["sample", "logprob"], default="sample")
    parser.add_argument("--embedded", action="store_true", help="also time a real run on the embedded model")
    parser.add_argument("--embedded-budget", type=int, default=200)
    parser.add_argument("--skip-simulate", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    if not args.skip_simulate:
        simulate_part(args)
    if args.embedded:
        embedded_part(args)


if __name__ == "__main__":
    main()

"""Benchmark: active-learning strategies on the simulator, and the wall time of a real elicitation.

Part 1 (``--simulate``, default): N = 510 simulated outcomes, K = 10 sampled answers per ordering (the paper's
setting), the full ⌊2·N·log2 N⌋ = 9,174-pair budget asked in rounds, for the strategies ``random``, ``paper`` (the
companion's P/Q rule) and ``info`` (this project's). Prints the held-out log loss against the number of training
pairs queried and, for each strategy, the pairs it needs to reach the held-out log loss that random pairs reach
at the full budget (linear interpolation between rounds).

Part 2 (``--embedded``): times ``ue elicit`` through lm-eval (the model as ``ue-hf``) on the embedded model over 510
outcomes of ``core`` with a small budget on this machine's CPU, times the bare forward-pass floor over the same
prompts in the same process, and extrapolates the wall time of the full main run; the load average is printed
beside every figure.

Run: ``python benchmarks/active_learning.py [--embedded [--skip-simulate] [--embedded-budget 200]] [--round-size 250]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} / {b:.1f} / {c:.1f} on {os.cpu_count()} CPUs"


def embedded_part(args) -> None:
    """A real ``ue elicit`` through lm-eval (the model as ``ue-hf``: loaded once for every round) over the 510-outcome
    subset of ``core`` with a small budget, timed end to end; beside it, in the same process, the bare forward-pass
    floor (transformers, every prompt in full, fp32, batch 8) over the same number of the run's prompts. Extrapolates
    the full main run (⌊2·N·log2 N⌋ training pairs + 1,000 holdout pairs, both orderings) from the measured time per
    (pair, ordering) and reports the ratio to the floor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ue_tasks import model
    from ue_tasks.harness.lm_eval.models import cpu_has_bf16, resolve_dtype
    from ue_tasks.harness.lm_eval.prefix_cache import chat_prompts
    from ue_tasks.plan import default_budget, holdout_size

    path = model.prepare()
    n_out = 510
    dtype = resolve_dtype(args.dtype, "cpu")
    print(f"\nPart 2: ue elicit through lm-eval (ue-hf, {dtype}; native bf16 on this CPU: {'yes' if cpu_has_bf16() else 'no'}) on the "
          f"embedded model, {n_out} outcomes of core, budget {args.embedded_budget} training pairs + holdout, CPU, "
          f"{torch.get_num_threads()} torch threads; {_load()}")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="ue-al-emb-"))
    try:
        from ue_tasks.outcomes import load_outcomes

        core = load_outcomes("core")
        subset = workdir / "core510.jsonl"
        with subset.open("w") as fh:
            for o in core.outcomes[:n_out]:
                fh.write(json.dumps({"id": o.id, "text": o.text, "category": o.category}) + "\n")
        cfg = RunConfig(harness="lm-eval", model="hf", model_args=f"pretrained={path},dtype={args.dtype}", outcomes=str(subset),
                        mode="logprob", strategy="paper", budget=args.embedded_budget, round_size=max(1, args.embedded_budget // 2),
                        holdout_fraction=args.embedded_holdout / (n_out * (n_out - 1) / 2), seed=0)  # fmt: skip
        run = Elicitation(cfg, workdir / "run", cache_dir=None, log=lambda m: None)
        started = time.perf_counter()
        run.run()
        seconds = time.perf_counter() - started
        history = [json.loads(x) for x in (workdir / "run" / "history.jsonl").read_text().splitlines()]
        records = [json.loads(x) for x in (workdir / "run" / "records.jsonl").read_text().splitlines()]
        fits = sum(h["fit_seconds"] for h in history)
        prompts = len(records)
        per_prompt = seconds / prompts
        print(f"  {prompts} prompts ({len(history)} rounds) in {seconds:.1f} s = {per_prompt:.3f} s per (pair, ordering), "
              f"including the model's load and {len(history)} fits ({fits:.2f} s); {_load()}")  # fmt: skip

        # the floor: the run's own prompts, each run in full by transformers (fp32, batch 8)
        tok = AutoTokenizer.from_pretrained(str(path))
        sample = records[: min(len(records), args.floor_prompts)]
        texts = chat_prompts(tok, [_prompt_of(r) for r in sample])
        m = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        tok.padding_side = "right"
        started = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(texts), 8):
                enc = tok(texts[i : i + 8], return_tensors="pt", padding=True, add_special_tokens=False)
                m(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
        floor = (time.perf_counter() - started) / len(texts)
        full_prompts = 2 * (default_budget(n_out) + holdout_size(n_out))
        rounds_full = 1 + math.ceil(max(0, default_budget(n_out) - n_out) / 500)
        fit_per_round = fits / max(1, len(history))
        print(f"  floor (bare transformers forward over {len(texts)} of these prompts, fp32): {floor:.3f} s per prompt; "
              f"ue elicit / floor = {per_prompt / floor:.2f}×; {_load()}")  # fmt: skip
        print(f"  the paper's full main run at N={n_out} ({full_prompts} prompts, log-prob mode, ~{rounds_full} rounds) would take "
              f"about {(full_prompts * per_prompt + rounds_full * fit_per_round) / 60:.1f} minutes on this machine at this load "
              f"(= {full_prompts * floor / 60:.1f} minutes of floor × {per_prompt / floor:.2f})")  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _prompt_of(r: dict) -> str:
    """The user turn of a record's query (its options in the order shown)."""
    from ue_tasks.templates import get_template

    first, second = (r["a_text"], r["b_text"]) if r["shown_first"] == "a" else (r["b_text"], r["a_text"])
    return get_template(r.get("template", "default")).render(first, second, r.get("context", "") or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=510)
    parser.add_argument("--round-size", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--mode", choices=["sample", "logprob"], default="sample")
    parser.add_argument("--embedded", action="store_true", help="also time a real run on the embedded model")
    parser.add_argument("--embedded-budget", type=int, default=200, help="training pairs of the timed run (default 200)")
    parser.add_argument("--embedded-holdout", type=int, default=50, help="holdout pairs of the timed run (default 50)")
    parser.add_argument("--floor-prompts", type=int, default=96, help="prompts the floor is timed on (default 96)")
    parser.add_argument("--dtype", default="auto", help="ue-hf's dtype (default auto: bf16 where native, else fp32)")
    parser.add_argument("--skip-simulate", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    if not args.skip_simulate:
        simulate_part(args)
    if args.embedded:
        embedded_part(args)


if __name__ == "__main__":
    main()

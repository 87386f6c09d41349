"""Benchmark: `ue fit` against a companion-style PyTorch fit, side by side in one run (issue: `ue fit` as fast as its
solver). On identical simulated records it prints three figures and the accuracy check:

1. whole commands, alternating, medians: ``ue fit RECORDS --out DIR`` (reads and validates the records in bulk,
   fits with the default intervals, writes utilities.csv and metrics.json, prints the summary) against
   ``python benchmarks/companion_style_fit.py RECORDS`` (imports torch, reads the records, Adam for 1,000 epochs), on
   the paper's plan at N = 510 with K = 10 (9,174 training + 1,000 holdout pairs, 20,348 records);
2. in-process, alternating, medians: the fit with its intervals (``Thurstonian()``) and without
   (``ci="none"``) against the companion-style fit, and both held-out log losses;
3. ``ue fit`` as a command on about 100,000 records (N = 2,300, the largest exchange-rate run);
then (unless ``--skip-large``) fit times at N = 10,000 and a 200-resample bootstrap at N = 510.

Timings swing with the machine's load: compare the ratios, which are measured side by side; the load average is
printed before and after. Run: ``python benchmarks/fit_speed.py [--repeat 5] [--skip-large]`` (needs torch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from companion_style_fit import companion_fit  # noqa: E402

from ue_metrics import records as rec  # noqa: E402
from ue_metrics.aggregation import aggregate, read_columns  # noqa: E402
from ue_metrics.coherence import log_loss  # noqa: E402
from ue_metrics.simulate import simulate_records, true_utilities  # noqa: E402
from ue_metrics.thurstonian import Thurstonian  # noqa: E402
from ue_tasks.plan import PlanSpec, make_plan  # noqa: E402


def simulated_records(n: int, seed: int = 0, samples: int = 10) -> list[dict]:
    rng = np.random.default_rng(seed)
    plan = make_plan(n, PlanSpec(seed=seed))
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:05d}" for k in range(n)]
    return simulate_records(plan.pairs, plan.split, ids, [f"Outcome {i}." for i in ids], mu, var, rng, samples=samples)


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each command run, by label


def run_command(args: list[str], label: str = "") -> float:
    """Wall seconds of one command; its CPU seconds go to ``CPU[label]`` (less sensitive to the machine's load)."""
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")
    CPU.setdefault(label, []).append(
        (after.children_user - before.children_user) + (after.children_system - before.children_system)
    )
    return seconds


def alternate(fns: dict, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].append(fn())
    return times


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def predict(mu, var, i, j):
    from scipy.special import ndtr

    return ndtr((mu[i] - mu[j]) / np.sqrt(var[i] + var[j] + 1e-5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="alternating repeats (medians are reported)")
    parser.add_argument("--skip-large", action="store_true", help="skip the N=10,000 fit and the bootstrap")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    work = Path(tempfile.mkdtemp(prefix="ue-fit-speed-"))
    small, large = work / "n510.jsonl", work / "n2300.jsonl"
    rec.write(simulated_records(510), small)
    rec.write(simulated_records(2300), large)
    n_small = sum(1 for _ in small.open())
    n_large = sum(1 for _ in large.open())
    env_ue = [sys.executable, "-m", "ue_cli.main", "fit"]

    # 1. whole commands
    times = alternate(
        {
            "ue fit": lambda: run_command(env_ue + [str(small), "--out", str(work / "fit510")], "ue"),
            "companion-style": lambda: run_command(
                [sys.executable, str(HERE / "companion_style_fit.py"), str(small)], "companion"
            ),
        },
        args.repeat,
    )
    ue_cmd, comp_cmd = statistics.median(times["ue fit"]), statistics.median(times["companion-style"])
    print(f"\n1. whole commands on {n_small:,} records (N=510, K=10), medians of {args.repeat} alternating runs:")
    print(f"   ue fit (bulk read, fit, sandwich intervals, files, summary) {ue_cmd:7.2f} s")
    print(f"   companion-style script (torch, read, Adam 1,000 epochs)   {comp_cmd:7.2f} s")
    cpu_ue, cpu_comp = statistics.median(CPU["ue"]), statistics.median(CPU["companion"])
    print(
        f"   ratio {comp_cmd / ue_cmd:.1f}x in wall time; CPU time (user + system) {cpu_ue:.2f} s against {cpu_comp:.2f} s, "
        f"ratio {cpu_comp / cpu_ue:.1f}x"
    )

    # 2. in process
    data = aggregate(read_columns(small))
    train, hold = data.train(), data.holdout()
    X = np.column_stack([train.i, train.j])
    n = train.n_outcomes

    def ue_fit(ci):
        return lambda: timed(lambda: Thurstonian(ci=ci).fit(X, train.y, train.w, n_outcomes=n, n_records=train.n_rec))

    runs = alternate(
        {
            "with": ue_fit("sandwich"),
            "without": ue_fit("none"),
            "companion": lambda: timed(lambda: companion_fit(n, train.i, train.j, train.y)),
        },
        args.repeat,
    )
    t_with = statistics.median(t for t, _ in runs["with"])
    t_without = statistics.median(t for t, _ in runs["without"])
    t_comp = statistics.median(t for t, _ in runs["companion"])
    model = runs["with"][-1][1]
    mu_c, var_c, _ = runs["companion"][-1][1]
    ll_ue = log_loss(model.predict_proba(np.column_stack([hold.i, hold.j])), hold.y)
    ll_comp = log_loss(predict(mu_c, var_c, hold.i, hold.j), hold.y)
    print(f"\n2. in process, N=510 ({len(train.y):,} training pairs), medians of {args.repeat} alternating runs:")
    print(f"   ue fit with intervals    {t_with * 1000:8.1f} ms   ({model.n_iter_} Newton iterations, {model.ci_method_})")
    print(f"   ue fit without intervals {t_without * 1000:8.1f} ms")
    print(f"   companion-style fit      {t_comp * 1000:8.1f} ms")
    print(
        f"   ratio {t_comp / t_with:.1f}x with intervals, {t_comp / t_without:.1f}x without; held-out log loss ue "
        f"{ll_ue:.4f}, companion {ll_comp:.4f} (difference {ll_ue - ll_comp:+.4f})"
    )

    # 3. 100k records
    big = [run_command(env_ue + [str(large), "--out", str(work / "fit2300")], "big") for _ in range(3)]
    print(
        f"\n3. ue fit as a command on {n_large:,} records (N=2,300, K=10): median of 3 runs {statistics.median(big):.2f} s "
        f"wall, {statistics.median(CPU['big']):.2f} s CPU"
    )

    if not args.skip_large:
        print()
        t_boot, boot = timed(lambda: Thurstonian(ci="none", bootstrap=200, seed=0).fit(X, train.y, train.w, n_outcomes=n))
        print(
            f"bootstrap, 200 resamples at N=510: {t_boot:.2f} s (median 95% interval width "
            f"{np.median(boot.ci_high_ - boot.ci_low_):.3f})"
        )
        d = aggregate(simulated_records(10000)).train()
        Xb = np.column_stack([d.i, d.j])
        t_big, mb = timed(lambda: Thurstonian().fit(Xb, d.y, d.w, n_outcomes=d.n_outcomes, n_records=d.n_rec))
        print(f"N=10,000: {len(d.y):,} pairs, fit with intervals {t_big:.2f} s ({mb.ci_method_})")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

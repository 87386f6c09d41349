"""Benchmark: are the fit's intervals, variances and position term right? Simulations with known truth.

Part 1, coverage: the share of outcomes whose true (normalised) utility lies inside its nominal 95% interval, over
``--seeds`` simulated runs (default 20), per interval method and data mode:
  - methods: ``sandwich`` (the default: quasi-likelihood sandwich with the fitted noise model), ``curvature``
    (model-based: each unit of weight one Bernoulli answer), ``bootstrap`` (percentile, pairs resampled;
    ``--bootstrap B``, N = 100 only) and ``legacy`` (this project's fit before docs/statistics.md: model-based
    curvature with a fixed log-variance penalty of one pair's weight and no dispersion);
  - modes: K = 10 sampled answers per ordering from a Thurstonian responder; exact (log-prob) probabilities from a
    responder whose probabilities stray from the model by N(0, s²) on the probit scale per query (``misfit s``) —
    without misfit exact probabilities determine the utilities exactly and no interval is needed;
  - N = 100 (exact covariance) and N = 510 (the local approximation used above 200 outcomes).
  It also prints the mean interval width and the spread of (estimate − truth)/se, which is 1 when the intervals are
  right.
Part 2, variances: Spearman correlation of fitted and true σ² on exact probabilities at N = 510 (the paper's plan),
and held-out log loss on a sparse graph (1,000 training pairs at N = 510, K = 10 and exact), for the default fit,
the legacy penalty and the companion-style fit (``--method compat``).
Part 3, position term: coverage of the true β (probit, on the utilities' scale) by its interval, K = 10, N = 100.

Run: ``python benchmarks/coverage.py [--seeds 20] [--bootstrap 100] [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from ue_metrics.aggregation import aggregate
from ue_metrics.coherence import log_loss
from ue_metrics.fitting import fit_records
from ue_metrics.simulate import simulate_records, true_utilities
from ue_metrics.thurstonian import Thurstonian
from ue_tasks.plan import PlanSpec, make_plan


def simulate(n: int, seed: int, samples: int, noise: float = 0.0, budget: int | None = None, position_beta: float = 0.0):
    rng = np.random.default_rng(seed)
    plan = make_plan(n, PlanSpec(seed=seed, budget=budget))
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:05d}" for k in range(n)]
    records = simulate_records(
        plan.pairs, plan.split, ids, ids, mu, var, rng, samples=samples, noise=noise, position_beta=position_beta
    )
    return records, mu, var


def model_for(method: str, data, bootstrap: int, seed: int) -> Thurstonian:
    if method == "legacy":
        return Thurstonian(ci="curvature", dispersion=1.0, variance_prior=float(data.w.mean()))
    if method == "bootstrap":
        return Thurstonian(ci="none", bootstrap=bootstrap, seed=seed)
    return Thurstonian(ci=method)


def coverage(n: int, samples: int, noise: float, methods: list[str], seeds: int, bootstrap: int) -> dict[str, tuple]:
    out: dict[str, list] = {m: [[], [], []] for m in methods}
    for seed in range(seeds):
        records, mu, _ = simulate(n, seed, samples, noise)
        data = aggregate(records).train()
        X = np.column_stack([data.i, data.j])
        idx = np.array([int(x[1:]) for x in data.ids])
        t = mu[idx]
        t = (t - t.mean()) / t.std(ddof=1)
        for method in methods:
            m = model_for(method, data, bootstrap, seed).fit(X, data.y, data.w, n_outcomes=data.n_outcomes, n_records=data.n_rec)
            inside = (m.ci_low_ <= t) & (t <= m.ci_high_)
            out[method][0].append(inside)
            out[method][1].append(m.ci_high_ - m.ci_low_)
            out[method][2].append((m.utilities_ - t) / np.where(m.stderr_ > 0, m.stderr_, np.nan))
    return {
        m: (float(np.mean(np.concatenate(v[0]))), float(np.mean(np.concatenate(v[1]))), float(np.nanstd(np.concatenate(v[2]))))
        for m, v in out.items()
    }


def part_coverage(args) -> None:
    print(
        f"Part 1: coverage of nominal 95% intervals of the normalised utilities, {args.seeds} seeds per cell "
        "(coverage / mean width / sd of (estimate − truth)/se)"
    )
    settings = [(100, 10, 0.0), (100, 0, 0.25), (100, 0, 0.5), (100, 0, 1.0), (100, 10, 0.5), (510, 10, 0.0), (510, 0, 0.5)]
    if args.quick:
        settings = settings[:2]
    head = ["sandwich", "curvature", "legacy", "bootstrap"]
    print(f"  {'N':>4} {'mode':<24}" + "".join(f"{m:>24}" for m in head))
    for n, samples, noise in settings:
        methods = ["sandwich", "curvature", "legacy"] + (["bootstrap"] if n <= 100 and args.bootstrap else [])
        started = time.perf_counter()
        res = coverage(n, samples, noise, methods, args.seeds, args.bootstrap)
        mode = (f"sampled K={samples}" if samples else "log-prob") + (f", misfit {noise:g}" if noise else "")
        cells = [f"{res[m][0]:6.1%} {res[m][1]:6.3f} {res[m][2]:5.2f}" if m in res else "—" for m in head]
        print(f"  {n:>4} {mode:<24}" + "".join(f"{c:>24}" for c in cells) + f"   ({time.perf_counter() - started:.0f} s)")


def part_variances(args) -> None:
    seeds = 2 if args.quick else 5
    print(
        f"\nPart 2: variances, N=510, {seeds} seeds: Spearman ρ(fitted σ², true σ²) on exact probabilities (the paper's "
        "plan, 9,174 pairs); held-out log loss on a sparse graph (1,000 training pairs)"
    )
    rows = {
        "default": lambda d: Thurstonian(ci="none"),
        "legacy": lambda d: Thurstonian(ci="none", dispersion=1.0, variance_prior=float(d.w.mean())),
        "companion (compat)": lambda d: Thurstonian(method="compat", ci="none"),
    }
    print(f"  {'fit':<20}{'ρ σ² (exact, dense)':>22}{'loss sparse K=10':>20}{'loss sparse exact':>20}")
    cases = {"dense_exact": (0, None), "sparse_k10": (10, 1000), "sparse_exact": (0, 1000)}
    data_cache = {}
    for key, (samples, budget) in cases.items():
        data_cache[key] = []
        for seed in range(seeds):
            records, mu, var = simulate(510, seed, samples, budget=budget)
            data_cache[key].append((aggregate(records), mu, var))
    for name, make in rows.items():
        vals = []
        for key in cases:
            scores = []
            for data, _mu, var in data_cache[key]:
                tr, ho = data.train(), data.holdout()
                m = make(tr).fit(np.column_stack([tr.i, tr.j]), tr.y, tr.w, n_outcomes=tr.n_outcomes, n_records=tr.n_rec)
                if key == "dense_exact":
                    idx = np.array([int(x[1:]) for x in data.ids])
                    r1, r2 = np.argsort(np.argsort(m.sigma2_)), np.argsort(np.argsort(var[idx]))
                    scores.append(float(np.corrcoef(r1, r2)[0, 1]))
                else:
                    scores.append(log_loss(m.predict_proba(np.column_stack([ho.i, ho.j])), ho.y))
            vals.append(float(np.mean(scores)))
        print(f"  {name:<20}{vals[0]:>22.4f}{vals[1]:>20.4f}{vals[2]:>20.4f}")


def part_position(args) -> None:
    seeds = 5 if args.quick else args.seeds
    print(
        f"\nPart 3: position term, N=100, K=10, true β = 1 (raw), {seeds} seeds: coverage of β' = β/sd(μ) by its "
        "95% interval, mean |β̂' − β'|, per-ordering held-out log loss pooled → with β"
    )
    inside, err, pooled, with_beta = [], [], [], []
    for seed in range(seeds):
        records, mu, _ = simulate(100, seed, 10, position_beta=1.0)
        res = fit_records(records, position_term="global")
        g = res.metrics["position_term"]["groups"][0]
        truth = 1.0 / mu.std(ddof=1)
        inside.append(g["ci_low"] <= truth <= g["ci_high"])
        err.append(abs(g["beta"] - truth))
        loss = res.metrics["position_term"]["holdout_log_loss_per_ordering"]
        pooled.append(loss["pooled"])
        with_beta.append(loss["position"])
    print(
        f"  coverage {np.mean(inside):.1%}, mean error {np.mean(err):.4f}, loss {np.mean(pooled):.4f} → {np.mean(with_beta):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=100, help="resamples for the bootstrap intervals (0 = skip)")
    parser.add_argument("--quick", action="store_true", help="two settings and fewer seeds (a smoke run)")
    parser.add_argument("--parts", nargs="+", default=["coverage", "variances", "position"])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    started = time.perf_counter()
    if "coverage" in args.parts:
        part_coverage(args)
    if "variances" in args.parts:
        part_variances(args)
    if "position" in args.parts:
        part_position(args)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

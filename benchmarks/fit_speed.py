"""Benchmark: this project's Thurstonian fit against a companion-style fit, side by side in one process.

On identical simulated data (N = 510 outcomes, 9,174 training pairs + 1,000 holdout pairs, K = 10 sampled
answers per ordering) it times
  - ``ue``: ue_metrics.thurstonian.Thurstonian (Fisher-scoring Newton–CG), with and without curvature CIs;
  - ``companion``: PyTorch, Adam lr 0.01, 1,000 full-batch epochs, normalisation inside the forward pass
    (METHOD.md §3), written here for the comparison;
and prints the time ratio and both held-out log losses; then fit times at N = 2,000 and 10,000 and a 200-resample
bootstrap at N = 510. Run: ``python benchmarks/fit_speed.py`` (needs torch for the companion-style fit).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from ue_metrics.coherence import log_loss
from ue_metrics.records import aggregate
from ue_metrics.simulate import simulate_records, true_utilities
from ue_metrics.thurstonian import Thurstonian
from ue_tasks.plan import PlanSpec, make_plan


def make_data(n: int, seed: int = 0, samples: int = 10):
    rng = np.random.default_rng(seed)
    plan = make_plan(n, PlanSpec(seed=seed))
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:05d}" for k in range(n)]
    data = aggregate(simulate_records(plan.pairs, plan.split, ids, ids, mu, var, rng, samples=samples))
    return data.train(), data.holdout()


def companion_fit(n, i, j, y, epochs=1000, lr=0.01, seed=0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    m = (0.01 * torch.randn(n, generator=gen, dtype=torch.float64)).requires_grad_()
    s = (0.01 * torch.randn(n, generator=gen, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.Adam([m, s], lr=lr)
    ti, tj, ty = torch.as_tensor(i), torch.as_tensor(j), torch.as_tensor(y, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    bce = torch.nn.BCELoss()

    def forward():
        sd = m.std() + 1e-5
        mu = (m - m.mean()) / sd
        var = torch.exp(s) / (sd + 1e-5) ** 2
        return mu, var

    for _ in range(epochs):
        opt.zero_grad()
        mu, var = forward()
        p = normal.cdf((mu[ti] - mu[tj]) / torch.sqrt(var[ti] + var[tj] + 1e-5))
        loss = bce(p, ty)
        if torch.isnan(loss):
            break
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, var = forward()
    return mu.numpy(), var.numpy()


def predict(mu, var, i, j):
    from scipy.special import ndtr

    return ndtr((mu[i] - mu[j]) / np.sqrt(var[i] + var[j] + 1e-5))


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best of) for the N=510 comparison")
    parser.add_argument("--skip-large", action="store_true", help="skip the N=10,000 fit")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, torch {torch.__version__}")
    train, hold = make_data(510)
    n = train.n_outcomes
    X = np.column_stack([train.i, train.j])
    print(f"N={n}: {len(train.y)} training pairs, {len(hold.y)} holdout pairs, K=10 per ordering")

    t_ue, model = timed(lambda: Thurstonian(ci="none").fit(X, train.y, train.w, n_outcomes=n), args.repeat)
    t_ue_ci, _ = timed(lambda: Thurstonian().fit(X, train.y, train.w, n_outcomes=n), args.repeat)
    t_comp, (mu_c, var_c) = timed(lambda: companion_fit(n, train.i, train.j, train.y), args.repeat)
    ll_ue = log_loss(model.predict_proba(np.column_stack([hold.i, hold.j])), hold.y)
    ll_comp = log_loss(predict(mu_c, var_c, hold.i, hold.j), hold.y)
    print(f"ue fit (no CI)         {t_ue * 1000:9.1f} ms   holdout log loss {ll_ue:.4f}   ({model.n_iter_} Newton iterations)")
    print(f"ue fit (curvature CIs) {t_ue_ci * 1000:9.1f} ms")
    print(f"companion-style fit    {t_comp * 1000:9.1f} ms   holdout log loss {ll_comp:.4f}   (Adam, 1000 epochs)")
    print(f"speed-up: {t_comp / t_ue:.1f}x (no CI), {t_comp / t_ue_ci:.1f}x (with CIs); "
          f"log-loss difference (ue - companion) {ll_ue - ll_comp:+.4f}")

    t_boot, boot = timed(lambda: Thurstonian(ci="none", bootstrap=200, seed=0).fit(X, train.y, train.w, n_outcomes=n))
    print(f"bootstrap, 200 resamples at N=510: {t_boot:.2f} s (median 95% interval width "
          f"{np.median(boot.ci_high_ - boot.ci_low_):.3f})")

    for big in (2000, 10000):
        if big == 10000 and args.skip_large:
            continue
        tr, ho = make_data(big)
        Xb = np.column_stack([tr.i, tr.j])
        t_big, mb = timed(lambda: Thurstonian(ci="none").fit(Xb, tr.y, tr.w, n_outcomes=tr.n_outcomes))
        t_big_ci, _ = timed(lambda: Thurstonian().fit(Xb, tr.y, tr.w, n_outcomes=tr.n_outcomes))
        ll = log_loss(mb.predict_proba(np.column_stack([ho.i, ho.j])), ho.y)
        print(f"N={big}: {len(tr.y)} pairs, fit {t_big:.2f} s (with CIs {t_big_ci:.2f} s), holdout log loss {ll:.4f}")


if __name__ == "__main__":
    main()

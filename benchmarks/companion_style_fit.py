"""A companion-style fit as a command, for benchmarks/fit_speed.py: what a user of the paper's code runs to fit the
same records — import PyTorch, read the records (json, one line at a time), pool both orderings of each pair into a
soft label, and fit the Thurstonian model the companion's way (docs/method.md §3.2–3.3: raw means and log-variances
initialised 0.01·N(0, 1), normalisation inside every forward pass, mean BCE over pairs, Adam lr 0.01, 1,000
full-batch epochs). Written here for the comparison; it prints the fitted utilities' count and the final loss.

Run: ``python benchmarks/companion_style_fit.py RECORDS.jsonl [--out utilities.json]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def read_pairs(path: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    index: dict[str, int] = {}
    acc: dict[tuple[int, int], list[float]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            a = index.setdefault(r["a_id"], len(index))
            b = index.setdefault(r["b_id"], len(index))
            if r["mode"] == "sample":
                na, nb = r["n_a"], r["n_b"]
            else:
                na, nb = r["p_a"], 1 - r["p_a"]
            if na + nb <= 0:
                continue
            key, (x, y) = ((a, b), (na, nb)) if a < b else ((b, a), (nb, na))
            slot = acc.setdefault(key, [0.0, 0.0])
            slot[0] += x
            slot[1] += x + y
    keys = list(acc)
    i = np.array([k[0] for k in keys])
    j = np.array([k[1] for k in keys])
    y = np.array([acc[k][0] / acc[k][1] for k in keys])
    return list(index), i, j, y


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

    loss = None
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
    return mu.numpy(), var.numpy(), float(loss.detach()) if loss is not None else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    ids, i, j, y = read_pairs(args.records)
    mu, var, loss = companion_fit(len(ids), i, j, y)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({oid: {"mean": float(a), "variance": float(b)} for oid, a, b in zip(ids, mu, var)}, fh)
    print(f"{len(ids)} outcomes, {len(y)} pairs, final loss {loss:.4f}")


if __name__ == "__main__":
    main()

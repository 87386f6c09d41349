"""Thurstonian utility model (Mazeika et al. 2025, §3 of METHOD.md) as a scikit-learn-style estimator.

Each outcome i has a Gaussian utility U_i ~ N(μ_i, σ_i²) and P(i ≻ j) = Φ((μ_i − μ_j) / sqrt(σ_i² + σ_j²)).
The default fit is penalised maximum likelihood on soft labels aggregated per pair (weights = usable answers),
with analytic gradients and a trust-region Newton–CG solver on the Fisher information (L-BFGS as an
option), started from a least-squares probit solution (or the previous solution when
``warm_start=True``). Utilities are reported normalised to mean 0 and (unbiased) standard deviation 1, as in
the companion code, with variances on the same scale. ``method="compat"`` reproduces the companion fit
(Adam, lr 0.01, 1000 full-batch epochs, normalisation inside the forward pass) for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg
from scipy.special import log_ndtr, ndtr, ndtri

from ue_metrics.errors import UserError

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
DENSE_CI_LIMIT = 2000  # above this many outcomes per component, curvature CIs use the diagonal approximation


def _log_cdf_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log Φ(z), log Φ(−z)): ndtr + log is three times faster than log_ndtr; log_ndtr only in the far tails."""
    p, q = ndtr(z), ndtr(-z)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    tail = np.abs(z) > 30
    if tail.any():
        lp[tail], lq[tail] = log_ndtr(z[tail]), log_ndtr(-z[tail])
    return lp, lq


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    graph = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return csgraph.connected_components(graph, directed=False)[1]


class Thurstonian:
    """Fit Thurstonian utilities to pairwise soft preferences.

    Parameters
    ----------
    method : "mle" (default) or "compat" (the companion's Adam fit, METHOD.md §3).
    solver : "newton" (default; trust-region Newton–CG on the Fisher information) or "lbfgs".
    alpha : strength of the Gaussian penalty on means and log-variances (keeps perfectly separated outcomes
        finite and fixes the model's scale/shift freedom during optimisation); negligible next to the data.
    variance_prior : extra penalty on the log-variances, in units of one pair's weight (0 = none): with few
        comparisons per outcome, free variances overfit (σ² → 0) and make held-out predictions overconfident.
    tol, ftol, max_iter : stop when the largest gradient component is below ``tol`` or (Newton) an iteration
        lowers the mean loss by less than ``ftol`` relative — far below the sampling noise of the utilities.
    ci : "curvature" (Fisher information of the means, conditional on the fitted variances) or "none".
    bootstrap : number of pair-resampling refits for percentile intervals (0 = off).
    ci_level : coverage of the intervals.
    on_disconnected : "error" (default) or "per_component" (each connected component normalised on its own).
    warm_start : reuse the previous solution as the starting point of the next ``fit`` (same outcomes).
    seed : seeds the bootstrap and the compat initialisation.
    """

    def __init__(
        self,
        method: str = "mle",
        solver: str = "newton",
        alpha: float = 1e-2,
        variance_prior: float = 1.0,
        tol: float = 1e-6,
        ftol: float = 1e-6,
        max_iter: int = 2000,
        ci: str = "curvature",
        bootstrap: int = 0,
        ci_level: float = 0.95,
        on_disconnected: str = "error",
        warm_start: bool = False,
        seed: int = 0,
        compat_epochs: int = 1000,
        compat_lr: float = 0.01,
        progress: Any = None,
    ) -> None:
        self.method = method
        self.solver = solver
        self.alpha = alpha
        self.variance_prior = variance_prior
        self.tol = tol
        self.ftol = ftol
        self.max_iter = max_iter
        self.ci = ci
        self.bootstrap = bootstrap
        self.ci_level = ci_level
        self.on_disconnected = on_disconnected
        self.warm_start = warm_start
        self.seed = seed
        self.compat_epochs = compat_epochs
        self.compat_lr = compat_lr
        self.progress = progress

    # ------------------------------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        n_outcomes: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> Thurstonian:
        """Fit on pairs ``X`` (k × 2 outcome indices) with soft labels ``y`` = P(X[:,0] ≻ X[:,1])."""
        if self.method not in ("mle", "compat"):
            raise UserError(f"unknown Thurstonian method {self.method!r}; use 'mle' or 'compat'")
        if self.on_disconnected not in ("error", "per_component"):
            raise UserError(f"unknown on_disconnected policy {self.on_disconnected!r}; use 'error' or 'per_component'")
        X = np.asarray(X, dtype=np.int64)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(y):
            raise ValueError("X must be a (k, 2) array of outcome indices with one label per row")
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        keep = w > 0
        X, y, w = X[keep], y[keep], w[keep]
        if len(y) == 0:
            raise UserError("no usable comparisons to fit: every pair has zero weight (no parsed answers)")
        if np.any((y < 0) | (y > 1)) or not np.all(np.isfinite(y)):
            raise UserError("preference labels must be probabilities in [0, 1]")
        n = int(n_outcomes if n_outcomes is not None else X.max() + 1)
        if ids is not None and len(ids) != n:
            raise ValueError("ids must have one entry per outcome")
        self.ids_ = list(ids) if ids is not None else [str(k) for k in range(n)]
        i, j = X[:, 0], X[:, 1]

        comp = _components(n, i, j)
        counts = np.bincount(comp)
        self.components_ = comp
        self.n_components_ = int(len(counts))
        if self.n_components_ > 1 and self.on_disconnected == "error":
            sizes = sorted(counts.tolist(), reverse=True)
            shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
            raise UserError(
                f"the comparison graph is disconnected: {self.n_components_} components of sizes {shown}; "
                "utilities in different components are not comparable — add comparisons between them, or fit each "
                "component separately with --per-component"
            )

        if self.method == "compat":
            mu, var = self._fit_compat(n, i, j, y)
            self.n_iter_, self.converged_ = self.compat_epochs, True
            theta = None
        else:
            start = None
            if self.warm_start and getattr(self, "_theta", None) is not None and len(self._theta) == 2 * n:
                start = self._theta
            theta = self._optimise(n, i, j, y, w, start)
            self._theta = theta
            mu, var = theta[:n].copy(), np.exp(theta[n:])
        mu, var, scale = self._normalise(mu, var, comp)
        self.utilities_, self.sigma2_ = mu, var
        self.scale_ = scale
        self.loss_ = self._data_loss(i, j, y, w)

        z = float(ndtri(0.5 + self.ci_level / 2))
        self.ci_method_ = "none"
        self.ci_low_ = np.full(n, np.nan)
        self.ci_high_ = np.full(n, np.nan)
        self.stderr_ = np.full(n, np.nan)
        if self.ci == "curvature":
            self.stderr_ = self._curvature_stderr(n, i, j, w, comp)
            self.ci_low_, self.ci_high_ = mu - z * self.stderr_, mu + z * self.stderr_
            self.ci_method_ = "curvature" if counts.max() <= DENSE_CI_LIMIT else "curvature-diagonal"
        elif self.ci != "none":
            raise UserError(f"unknown ci method {self.ci!r}; use 'curvature' or 'none'")
        if self.bootstrap:
            draws = self._bootstrap(n, i, j, y, w, comp, theta)
            lo, hi = (1 - self.ci_level) / 2 * 100, (1 + self.ci_level) / 2 * 100
            self.ci_low_, self.ci_high_ = np.percentile(draws, [lo, hi], axis=0)
            self.stderr_ = draws.std(axis=0, ddof=1)
            self.bootstrap_utilities_ = draws
            self.ci_method_ = f"bootstrap-{self.bootstrap}"
        return self

    # ------------------------------------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """P(X[:,0] ≻ X[:,1]) for pairs given as indices or as outcome ids."""
        X = np.asarray(X)
        if X.dtype.kind in "US":
            lookup = {oid: k for k, oid in enumerate(self.ids_)}
            X = np.vectorize(lookup.__getitem__)(X)
        X = X.astype(np.int64).reshape(-1, 2)
        mu, var = self.utilities_, self.sigma2_
        return ndtr((mu[X[:, 0]] - mu[X[:, 1]]) / np.sqrt(var[X[:, 0]] + var[X[:, 1]] + 1e-12))

    # ------------------------------------------------------------------------------------------------------
    def _data_loss(self, i, j, y, w) -> float:
        """Weighted mean binary cross-entropy of the fitted model on the fitted pairs."""
        p = np.clip(ndtr((self.utilities_[i] - self.utilities_[j]) / np.sqrt(self.sigma2_[i] + self.sigma2_[j])), 1e-12, 1 - 1e-12)
        return float(-(w * (y * np.log(p) + (1 - y) * np.log1p(-p))).sum() / w.sum())

    def _objective(self, theta, n, i, j, y, w, wsum, alpha):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._objective_terms(theta, n, i, j, y, w, wsum, alpha)

    def _objective_terms(self, theta, n, i, j, y, w, wsum, alpha):
        mu, s = theta[:n], theta[n:]
        v = np.exp(s)
        r2 = v[i] + v[j]
        r = np.sqrt(r2)
        z = (mu[i] - mu[j]) / r
        lp, lq = _log_cdf_pair(z)
        loss = -(w * (y * lp + (1 - y) * lq)).sum()
        log_pdf = -0.5 * z * z - _LOG_SQRT_2PI
        # dL/dz for each pair: -w [y φ/Φ(z) − (1−y) φ/Φ(−z)]
        gz = -w * (y * np.exp(log_pdf - lp) - (1 - y) * np.exp(log_pdf - lq))
        gmu_e = gz / r
        gmu = np.bincount(i, gmu_e, n) - np.bincount(j, gmu_e, n)
        gv_e = -gz * z / (2 * r2)  # dL/dv_i = dL/dv_j for each pair
        gs = (np.bincount(i, gv_e, n) + np.bincount(j, gv_e, n)) * v
        loss += 0.5 * float(alpha @ (theta * theta))
        grad = np.concatenate([gmu, gs]) + alpha * theta
        # expected (Fisher) curvature along z, cached for the Hessian-vector products of this point
        fisher = w * np.exp(2 * log_pdf - lp - lq)
        self._cache = (theta, r, z, v, fisher)
        return loss / wsum, grad / wsum

    def _initial(self, n, i, j, y, w) -> np.ndarray:
        """Least-squares probit start: μ_i − μ_j ≈ √2 Φ⁻¹(y), solved on the regularised weighted Laplacian."""
        t = math.sqrt(2.0) * ndtri(np.clip(y, 0.02, 0.98))
        lap = sparse.coo_matrix(
            (np.concatenate([w, w, -w, -w]), (np.concatenate([i, j, i, j]), np.concatenate([i, j, j, i]))), shape=(n, n)
        ).tocsc()
        lap = lap + sparse.identity(n, format="csc") * max(self.alpha, 1e-6)
        b = np.bincount(i, w * t, n) - np.bincount(j, w * t, n)
        # conjugate gradients: a sparse LU of a random comparison graph fills in and is slow at large N
        mu, _ = sparse_linalg.cg(lap.tocsr(), b, rtol=1e-6, maxiter=500)
        return np.concatenate([mu, np.zeros(n)])

    def _penalty(self, n, w) -> np.ndarray:
        """Per-parameter Gaussian penalty: ``alpha`` on means, ``alpha + variance_prior × mean pair weight`` on
        log-variances (shrinks poorly identified variances toward the common scale when data are sparse)."""
        self._penalty_vec = np.concatenate([np.full(n, self.alpha), np.full(n, self.alpha + self.variance_prior * float(w.mean()))])
        return self._penalty_vec

    def _optimise(self, n, i, j, y, w, start=None) -> np.ndarray:
        theta0 = self._initial(n, i, j, y, w) if start is None else start
        fit_args = (n, i, j, y, w, w.sum(), self._penalty(n, w))
        if self.solver == "newton":
            x, nit, ok, gmax = self._newton(theta0, fit_args)
            result = optimize.OptimizeResult(x=x, nit=nit, success=ok, jac=np.array([gmax]))
        else:
            result = optimize.minimize(
                self._objective, theta0, args=fit_args, jac=True, method="L-BFGS-B",
                options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-12, "maxcor": 20},
            )  # fmt: skip
        self._cache = None
        self.n_iter_ = int(result.nit)
        self.converged_ = bool(result.success) or float(np.abs(result.jac).max()) < 10 * self.tol
        if not np.all(np.isfinite(result.x)):
            raise RuntimeError("Thurstonian fit diverged (non-finite parameters)")
        return result.x

    def _newton(self, theta, fit_args):
        """Fisher-scoring Newton steps solved by Jacobi-preconditioned conjugate gradients, with an Armijo line
        search; the Fisher information plus the penalty is positive definite, so every step descends."""
        n, i, j, y, w, wsum, alpha = fit_args
        f, g = self._objective(theta, *fit_args)
        k = len(i)
        # Jacobian of z over (μ, log σ²): four entries per pair with a fixed sparsity pattern, values per step
        jac = sparse.csr_matrix(
            (np.zeros(4 * k), np.column_stack([i, j, n + i, n + j]).ravel(), np.arange(0, 4 * k + 1, 4)), shape=(k, 2 * n)
        )
        jac_t = jac.T.tocsr()
        order = np.argsort(np.column_stack([i, j, n + i, n + j]).ravel(), kind="stable")  # jac.data → jac_t.data
        nit = 0
        for nit in range(1, self.max_iter + 1):
            gmax = float(np.abs(g).max())
            if gmax < self.tol:
                return theta, nit - 1, True, gmax
            _, r, z, v, fisher = self._cache
            half = -z / (2 * r * r)
            values = np.column_stack([1 / r, -1 / r, half * v[i], half * v[j]]).ravel()
            jac.data[:] = values
            jac_t.data[:] = values[order]
            diag = (np.bincount(np.column_stack([i, j, n + i, n + j]).ravel(), (values.reshape(k, 4) ** 2 * fisher[:, None]).ravel(), 2 * n) + alpha) / wsum

            def product(p, fisher=fisher):
                return (jac_t @ (fisher * (jac @ p)) + alpha * p) / wsum

            op = sparse_linalg.LinearOperator((2 * n, 2 * n), matvec=product)
            pre = sparse_linalg.LinearOperator((2 * n, 2 * n), matvec=lambda p: p / diag)
            forcing = min(0.5, math.sqrt(float(np.linalg.norm(g) / max(np.linalg.norm(diag), 1e-300))))
            step, _ = sparse_linalg.cg(op, -g, rtol=max(forcing, 1e-10), maxiter=200, M=pre)
            slope = float(g @ step)
            if slope >= 0:  # not a descent direction (numerical trouble): fall back to preconditioned gradient
                step = -g / diag
                slope = float(g @ step)
            t = 1.0
            for _ in range(40):
                f_new, g_new = self._objective(theta + t * step, *fit_args)
                if np.isfinite(f_new) and f_new <= f + 1e-4 * t * slope:
                    break
                t *= 0.5
            else:
                return theta, nit, False, gmax
            decrease = f - f_new
            theta, f, g = theta + t * step, f_new, g_new
            if decrease <= self.ftol * max(abs(f), 1e-12):
                return theta, nit, True, float(np.abs(g).max())
        return theta, nit, float(np.abs(g).max()) < self.tol, float(np.abs(g).max())

    @staticmethod
    def _normalise(mu, var, comp):
        mu, var = mu.copy(), var.copy()
        scale = np.ones(len(mu))
        for c in np.unique(comp):
            m = comp == c
            if m.sum() < 2:
                mu[m] = 0.0
                continue
            sd = mu[m].std(ddof=1)
            sd = sd if sd > 1e-12 else 1.0
            mu[m] = (mu[m] - mu[m].mean()) / sd
            var[m] = var[m] / sd**2
            scale[m] = sd
        return mu, var, scale

    def _curvature_stderr(self, n, i, j, w, comp) -> np.ndarray:
        """Standard errors of the normalised means from the expected Fisher information of all parameters.

        The information of (μ, log σ²) is singular along the model's two gauge directions (shift, and joint
        scaling of means and standard deviations); they are pinned by adding their outer products, which the
        Jacobian of the normalisation μ' = (μ − mean)/sd annihilates, so Cov(μ') = J I⁺ Jᵀ. Components larger
        than ``DENSE_CI_LIMIT`` use the diagonal of the means' information instead (a cheap approximation).
        """
        mu, var = self.utilities_ * self.scale_, self.sigma2_ * self.scale_**2  # back to fitted units
        r2 = var[i] + var[j]
        r = np.sqrt(r2)
        z = (mu[i] - mu[j]) / r
        c = w * np.exp(-z * z - 2 * _LOG_SQRT_2PI) / np.clip(ndtr(z) * ndtr(-z), 1e-300, None)
        se = np.full(n, np.nan)
        for comp_id in np.unique(comp):
            nodes = np.flatnonzero(comp == comp_id)
            k = len(nodes)
            if k < 2:
                continue
            m = comp[i] == comp_id
            local = -np.ones(n, dtype=np.int64)
            local[nodes] = np.arange(k)
            li, lj = local[i[m]], local[j[m]]
            ce, re, ze = c[m], r[m], z[m]
            if k > DENSE_CI_LIMIT:
                info = ce / re**2
                deg = np.bincount(li, info, k) + np.bincount(lj, info, k)
                se[nodes] = 1.0 / np.sqrt(np.maximum(deg, 1e-300)) / self.scale_[nodes]
                continue
            rows = np.repeat(np.arange(len(li)), 4)
            cols = np.column_stack([li, lj, k + li, k + lj]).ravel()
            vals = np.column_stack(
                [1 / re, -1 / re, -ze * var[nodes][li] / (2 * re**2), -ze * var[nodes][lj] / (2 * re**2)]
            ) * np.sqrt(ce)[:, None]
            grad = sparse.csr_matrix((vals.ravel(), (rows, cols)), shape=(len(li), 2 * k))
            info = (grad.T @ grad).toarray()
            mu_c = mu[nodes]
            shift = np.concatenate([np.ones(k), np.zeros(k)]) / math.sqrt(k)
            scale = np.concatenate([mu_c, 2 * np.ones(k)])
            scale /= np.linalg.norm(scale)
            pen = getattr(self, "_penalty_vec", np.full(2 * n, self.alpha))
            info += np.outer(shift, shift) + np.outer(scale, scale) + np.diag(np.concatenate([pen[:n][nodes], pen[n:][nodes]]))
            cov = np.linalg.inv(info)[:k, :k]
            sd = mu_c.std(ddof=1)
            if not sd > 0:  # all utilities equal: no scale to normalise by, so no interval (the fit says so)
                continue
            normed = (mu_c - mu_c.mean()) / sd
            jac = (np.eye(k) - 1.0 / k - np.outer(normed, normed) / (k - 1)) / sd
            se[nodes] = np.sqrt(np.maximum(((jac @ cov) * jac).sum(axis=1), 0.0))
        return se

    def _bootstrap(self, n, i, j, y, w, comp, theta) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        draws = np.empty((self.bootstrap, n))
        iterator = range(self.bootstrap)
        if self.progress is not None:
            iterator = self.progress(iterator, desc="bootstrap", unit="refit")
        for b in iterator:
            counts = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)))
            wb = w * counts
            if self.method == "compat":
                keep = counts > 0
                mu_b, var_b = self._fit_compat(n, i[keep], j[keep], y[keep], rng=rng)
            else:
                t = self._optimise(n, i, j, y, wb, start=theta)
                mu_b, var_b = t[:n], np.exp(t[n:])
            draws[b] = self._normalise(mu_b, var_b, comp)[0]
        return draws

    # ------------------------------------------------------------------------------------------------------
    def _fit_compat(self, n, i, j, y, rng=None):
        """The companion's fit (METHOD.md §3.2–3.3), ported to numpy with analytic gradients: raw means and
        log-variances initialised 0.01·N(0,1) (here from a seeded generator), normalised inside every forward
        pass, mean BCE over edges (log clamped at −100), Adam lr 0.01, full batch, fixed epoch count."""
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        m = 0.01 * rng.standard_normal(n)
        s = 0.01 * rng.standard_normal(n)
        params = [m, s]
        first = [np.zeros(n), np.zeros(n)]
        second = [np.zeros(n), np.zeros(n)]
        b1, b2, eps, lr = 0.9, 0.999, 1e-8, self.compat_lr
        k = len(y)
        for step in range(1, self.compat_epochs + 1):
            m, s = params
            raw_sd = m.std(ddof=1)
            sd = raw_sd + 1e-5
            c = m - m.mean()
            mu = c / sd
            var = np.exp(s) / (sd + 1e-5) ** 2
            r2 = var[i] + var[j] + 1e-5
            r = np.sqrt(r2)
            z = (mu[i] - mu[j]) / r
            p = ndtr(z)
            logp = np.maximum(np.log(np.maximum(p, 1e-300)), -100.0)
            logq = np.maximum(np.log(np.maximum(1 - p, 1e-300)), -100.0)
            loss = -(y * logp + (1 - y) * logq).mean()
            if not np.isfinite(loss):
                break
            dens = np.exp(-0.5 * z * z - _LOG_SQRT_2PI)
            # d mean-BCE / dp, respecting the clamp (gradient zero where the log is clamped)
            dp = -(y * np.where(logp > -100, 1 / np.maximum(p, 1e-300), 0) - (1 - y) * np.where(logq > -100, 1 / np.maximum(1 - p, 1e-300), 0)) / k
            gz = dp * dens
            gmu_e = gz / r
            gmu = np.bincount(i, gmu_e, n) - np.bincount(j, gmu_e, n)
            gv_e = -gz * z / (2 * r2)
            gvar = np.bincount(i, gv_e, n) + np.bincount(j, gv_e, n)
            u = c / ((n - 1) * raw_sd) if raw_sd > 0 else np.zeros(n)
            gm = (gmu - gmu.mean()) / sd - u * (gmu @ c) / sd**2
            gm += u * (-2.0 * (gvar @ np.exp(s)) / (sd + 1e-5) ** 3)
            gs = gvar * var
            for idx, g in enumerate((gm, gs)):
                first[idx] = b1 * first[idx] + (1 - b1) * g
                second[idx] = b2 * second[idx] + (1 - b2) * g * g
                mhat = first[idx] / (1 - b1**step)
                vhat = second[idx] / (1 - b2**step)
                params[idx] = params[idx] - lr * mhat / (np.sqrt(vhat) + eps)
        m, s = params
        sd = m.std(ddof=1) + 1e-5
        return (m - m.mean()) / sd, np.exp(s) / (sd + 1e-5) ** 2

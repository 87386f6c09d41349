"""Thurstonian utility model (Mazeika et al. 2025, §3 of docs/method.md) as a scikit-learn-style estimator.

Each outcome i has a Gaussian utility U_i ~ N(μ_i, σ_i²) and P(i ≻ j) = Φ((μ_i − μ_j) / sqrt(σ_i² + σ_j²)).
The default fit is penalised maximum likelihood on soft labels aggregated per pair (weights = usable answers),
with analytic gradients and a Fisher-scoring Newton–CG solver, started from a least-squares probit solution (or
the previous solution when ``warm_start=True``). Utilities are reported normalised to mean 0 and (unbiased)
standard deviation 1, as in the companion code, with variances on the same scale. ``method="compat"``
reproduces the companion fit (Adam, lr 0.01, 1000 full-batch epochs, normalisation inside the forward pass).

What this project adds (docs/statistics.md gives the reasoning and the measurements):

- **Noise model and dispersion.** The log-likelihood counts each unit of weight as one Bernoulli answer: true of
  sampled answers, not of exact (log-prob) probabilities, whose weight is arbitrary. After the fit the residuals are
  described by Var(y) = a·p(1 − p)/w + b·φ(z)²/m (a binomial part, and a misfit part: each record's probit off the
  model by N(0, b)); the dispersion φ, their information-weighted ratio to the binomial variance, says how many
  answers one unit of weight is worth (1/φ): ≈ 1 for sampled answers, the honest sample size of an exact
  probability. The prior and the intervals use it.
- **Variance prior.** log σ_i² ~ N(level, 1/λ), the level being the model's free scale, λ (in answers) estimated by
  empirical Bayes (Paule–Mandel) and applied as λ·φ per unit of weight: it keeps sparsely compared outcomes from
  overfitting their variances and fades where the data are rich. ``alpha`` is a negligible ridge on everything.
- **Intervals.** The sandwich H⁻¹(M + φP)H⁻¹ (H the expected information plus the penalty P, M the scores' variance
  under the noise model) of the normalised utilities: exact for components up to ``DENSE_CI_LIMIT`` outcomes, a
  local O(pairs) approximation above; ``ci="curvature"`` gives the model-based H⁻¹.
- **Position term** (``fit(..., first=...)``): records kept per ordering, P(first shown chosen) =
  Φ((μ_first − μ_second + β)/sqrt(σ_first² + σ_second²)), β global or per group (the mean of the two outcomes'
  groups' β), reported on the utilities' scale with its interval.

The solver's linear algebra is its own (Jacobian products by gathering and ``bincount``, preconditioned conjugate
gradients, components by label propagation): the module imports numpy and ``scipy.special`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from ue_metrics.errors import UserError
from ue_metrics.fit_options import FIT_METHODS
from ue_metrics.graph import component_labels

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
DENSE_CI_LIMIT = 200  # components up to this many outcomes get the exact covariance; larger ones the local one
DISPERSION_FLOOR = 1e-4  # one unit of weight is never worth more than 10,000 answers
CI_METHODS = ("sandwich", "curvature", "none")
METHODS = FIT_METHODS  # ue_metrics/fit_options.py, the one list
HYPER_ROUNDS = 20  # at most this many refits with the updated dispersion and prior (warm-started, a few Newton steps each)
LOOSE_TOL = 1e-2  # the intermediate fits' tolerance (answers): within about 0.14 standard errors of their optimum
FORCING_MIN = 0.1  # conjugate gradients solve each Newton system to at least 10 %: the outer steps converge anyway,
# and tighter inner solves cost many Hessian products on the ill-conditioned exact-answer systems for no gain in accuracy
PRIOR_START, PRIOR_MIN, PRIOR_MAX = 20.0, 0.5, 1e4  # precision of the log-variance prior, in answers


def _log_cdf_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log Φ(z), log Φ(−z)): ndtr + log is three times faster than log_ndtr; log_ndtr only in the far tails."""
    p, q = ndtr(z), ndtr(-z)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    tail = np.abs(z) > 30
    if tail.any():
        lp[tail], lq[tail] = log_ndtr(z[tail]), log_ndtr(-z[tail])
    return lp, lq


def _nnls2(x1: np.ndarray, x2: np.ndarray, target: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """Weighted non-negative least squares of ``target`` on two non-negative columns (closed form)."""
    a11, a12, a22 = float((wt * x1 * x1).sum()), float((wt * x1 * x2).sum()), float((wt * x2 * x2).sum())
    b1, b2 = float((wt * x1 * target).sum()), float((wt * x2 * target).sum())
    det = a11 * a22 - a12 * a12
    if det > 1e-300 * max(a11 * a22, 1e-300):
        c1, c2 = (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det
        if c1 >= 0 and c2 >= 0:
            return np.array([c1, c2])
    one = np.array([max(b1 / a11, 0.0) if a11 > 0 else 0.0, 0.0])
    two = np.array([0.0, max(b2 / a22, 0.0) if a22 > 0 else 0.0])

    def sse(c):
        return float((wt * (target - c[0] * x1 - c[1] * x2) ** 2).sum())

    return one if sse(one) <= sse(two) else two


class _Jacobian:
    """dz/dθ of every row as a (rows × width) block of values on a fixed column pattern: products with vectors by
    gathering and by ``bincount`` (no sparse-matrix library needed)."""

    def __init__(self, columns: np.ndarray, m: int) -> None:
        self.columns = columns  # rows × width
        self.flat = columns.ravel()
        self.m = m
        self.values = np.zeros(columns.shape)

    def dot(self, p: np.ndarray) -> np.ndarray:
        return (self.values * p[self.columns]).sum(axis=1)

    def tdot(self, q: np.ndarray) -> np.ndarray:
        return np.bincount(self.flat, (self.values * q[:, None]).ravel(), self.m)

    def diag(self, weights: np.ndarray) -> np.ndarray:
        """diag(Jᵀ diag(weights) J)."""
        return np.bincount(self.flat, (self.values**2 * weights[:, None]).ravel(), self.m)


def _pcg(matvec, b: np.ndarray, inv_diag: np.ndarray, rtol: float, maxiter: int) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients for a symmetric positive definite operator; stops when the residual
    is below ``rtol`` times the right-hand side."""
    x = np.zeros_like(b)
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0:
        return x
    r = b.copy()
    z = r * inv_diag
    p = z.copy()
    rz = float(r @ z)
    for _ in range(maxiter):
        ap = matvec(p)
        curv = float(p @ ap)
        if curv <= 0:
            break
        alpha = rz / curv
        x += alpha * p
        r -= alpha * ap
        if float(np.linalg.norm(r)) <= rtol * bnorm:
            break
        z = r * inv_diag
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


class _Rows:
    """The fitted rows: outcome indices, labels, weights and, with a position term, the β groups of both outcomes
    (row (i, j) is then the ordering with i shown first)."""

    def __init__(self, n, i, j, y, w, nrec, gi=None, gj=None, n_groups=0):
        self.n, self.i, self.j, self.y, self.w, self.nrec = n, i, j, y, w, nrec
        self.gi, self.gj, self.n_groups = gi, gj, n_groups
        self.n_params = 2 * n + n_groups
        self.pattern: _Jacobian | None = None  # the Jacobian's sparsity, built by the first Newton solve
        self.comp: np.ndarray | None = None  # each outcome's component among the rows of positive weight
        self.k = len(y)

    def reweighted(self, w: np.ndarray) -> _Rows:
        """The same rows with other weights (zero allowed), sharing the Jacobian's sparsity."""
        out = _Rows(self.n, self.i, self.j, self.y, w, self.nrec, self.gi, self.gj, self.n_groups)
        out.pattern = self.pattern
        if np.all(w > 0):
            out.comp = self.comp
        return out


class _Point:
    """The model at one parameter vector: what the noise model, the prior's estimate and the intervals share."""

    def __init__(self, model: Thurstonian, rows: _Rows, theta: np.ndarray, phi: float) -> None:
        n = rows.n
        self.v = np.exp(theta[n : 2 * n])
        self.r = np.sqrt(self.v[rows.i] + self.v[rows.j])
        self.z = model._z(rows, theta)
        q = ndtr(self.z) * ndtr(-self.z)
        self.p = np.clip(ndtr(self.z), 1e-9, 1 - 1e-9)
        self.pq = self.p * (1 - self.p)
        self.dens2 = np.exp(-self.z * self.z - 2 * _LOG_SQRT_2PI)  # φ(z)²
        self.c = rows.w * self.dens2 / np.clip(q, 1e-300, None)  # Fisher weight of each row along z
        self.dz = model._jacobian_values(rows, self.r, self.z, self.v)
        a_i, a_j, s_i, s_j = self.dz[:, 0], self.dz[:, 1], self.dz[:, 2], self.dz[:, 3]
        c = self.c
        h_mm = (
            np.bincount(rows.i, c * a_i * a_i, n) + np.bincount(rows.j, c * a_j * a_j, n) + model.alpha * phi
        )  # ridge, counted in answers
        self.h_ss = np.bincount(rows.i, c * s_i * s_i, n) + np.bincount(rows.j, c * s_j * s_j, n)
        h_ms = np.bincount(rows.i, c * a_i * s_i, n) + np.bincount(rows.j, c * a_j * s_j, n)
        self.d = np.maximum(self.h_ss - h_ms**2 / h_mm, 0.0)  # information on each log-variance, profiled over its mean
        self.seen = np.zeros(n, dtype=bool)
        self.seen[rows.i] = True
        self.seen[rows.j] = True


class _Gauge:
    """Curvature added to the Newton system along each component's shift of the means (μ → μ + c), where the likelihood
    is flat and only the tiny ridge holds the parameters. The gradient has almost no component along it (only the
    ridge's), so the steps are the same; without it the system's condition number is about 1/ridge, and with exact
    probabilities (the ridge counted in answers: 10⁻⁶ per unit of weight) conjugate gradients would need hundreds of
    products per step. (The joint scaling of means and standard deviations is not flat here: the log-variance prior,
    centred on 0, sets the scale.)"""

    def __init__(self, rows: _Rows, weight: float, n_params: int) -> None:
        n = rows.n
        if rows.comp is None:  # rows reweighted with zeros (a bootstrap resample) may fall apart into more components
            live = rows.w > 0
            rows.comp = component_labels(n, rows.i[live], rows.j[live])
        comp = rows.comp
        size = np.bincount(comp).astype(float)
        self.n, self.comp = n, comp
        self.shift = np.where(size[comp] > 1, 1.0 / np.sqrt(size[comp]), 0.0)  # unit vector of each component's shift
        self.weight = weight
        self.diag = np.zeros(n_params)
        self.diag[:n] = weight * self.shift**2

    def product(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros_like(p)
        out[: self.n] = self.weight * np.bincount(self.comp, self.shift * p[: self.n])[self.comp] * self.shift
        return out


class Thurstonian:
    """Fit Thurstonian utilities to pairwise soft preferences.

    Parameters
    ----------
    method : "mle" (default) or "compat" (the companion's Adam fit, docs/method.md §3).
    alpha : Gaussian penalty on every parameter (means, log-variances, position terms) in absolute units: keeps
        perfectly separated outcomes finite and the model's scale/shift freedom pinned; negligible next to data.
    variance_prior : "auto" (default: empirical Bayes) or the precision λ of the prior on the log-variances, in
        answers (0 = none): log σ² ~ N(level, 1/λ), applied as λ × dispersion per unit of weight.
    dispersion : "estimate" (default; from the noise model, refitted) or a fixed number (1.0 = every unit of weight
        is one Bernoulli answer, the plain likelihood).
    tol, max_iter : stop when half the Newton decrement, in answers (weight / dispersion) — the log-likelihood the
        next Newton step would still gain, ≈ ½ (θ − θ̂)ᵀ I (θ − θ̂) with I the information in answers — is below
        ``tol``: the fit is then within about √(2·tol) standard errors of its optimum (0.014 at the default),
        whatever the weights' scale (sampled counts, or exact probabilities worth 1/φ answers per unit of weight).
        ``converged_`` is true only when the final fit met it and the estimated dispersion and prior settled.
    ci : "sandwich" (default), "curvature" (model-based) or "none".
    bootstrap : number of pair-resampling refits for percentile intervals (0 = off).
    ci_level : coverage of the intervals.
    on_disconnected : "error" (default) or "per_component" (each connected component normalised on its own).
    warm_start : reuse the previous solution as the starting point of the next ``fit`` (same outcomes).
    seed : seeds the bootstrap and the compat initialisation.
    """

    def __init__(
        self,
        method: str = "mle",
        alpha: float = 1e-2,
        variance_prior: str | float = "auto",
        dispersion: str | float = "estimate",
        tol: float = 1e-4,
        max_iter: int = 2000,
        ci: str = "sandwich",
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
        self.alpha = alpha
        self.variance_prior = variance_prior
        self.dispersion = dispersion
        self.tol = tol
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
        first: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        group_names: Sequence[str] | None = None,
        n_records: np.ndarray | None = None,
    ) -> Thurstonian:
        """Fit on pairs ``X`` (k × 2 outcome indices) with soft labels ``y`` = P(X[:,0] ≻ X[:,1]).

        With ``first`` (one boolean per row: was X[:,0] shown first?) each row is one ordering and a position term
        β is fitted; ``groups`` (k × 2 group indices of the row's two outcomes, e.g. their categories) gives one β
        per group, a query's pull being the mean of its two outcomes' β; ``group_names`` names them.
        ``n_records`` (records pooled in each row; default 1) feeds the misfit part of the noise model.
        """
        if self.method not in FIT_METHODS:
            raise UserError(f"unknown Thurstonian method {self.method!r}; use one of {', '.join(FIT_METHODS)}")
        if self.on_disconnected not in ("error", "per_component"):
            raise UserError(f"unknown on_disconnected policy {self.on_disconnected!r}; use 'error' or 'per_component'")
        if self.ci not in CI_METHODS:
            raise UserError(f"unknown ci method {self.ci!r}; use one of {', '.join(CI_METHODS)}")
        rows = self._rows_of(X, y, sample_weight, n_outcomes, ids, first, groups, group_names, n_records)
        n, position = rows.n, first is not None
        comp, counts, n_comp = self._components(rows)
        fixed_phi, fixed_lam = self._fixed_hyperparameters()
        phi = fixed_phi if fixed_phi is not None else 1.0
        lam = fixed_lam if fixed_lam is not None else PRIOR_START
        if self.method == "compat":
            mu, var = self._fit_compat(n, rows.i, rows.j, rows.y)
            self.n_iter_, self.converged_, self.hyper_settled_ = self.compat_epochs, True, True
            theta = np.concatenate([mu, np.log(var)])
        else:
            theta, phi, lam = self._fit_mle(rows, fixed_phi, fixed_lam, n_comp)
        self._phi, self._lam = phi, lam
        self.variance_prior_ = lam
        point = _Point(self, rows, theta, phi)
        noise = self._noise_model(rows, point, phi, lam, n_comp)
        self.noise_ = noise or {
            "dispersion": None,
            "binomial": None,
            "misfit": None,
            "effective_parameters": None,
            "residual_df": None,
        }
        self.dispersion_ = phi
        mu, var = theta[:n].copy(), np.exp(theta[n : 2 * n])
        mu, var, scale = self._normalise(mu, var, comp)
        self.utilities_, self.sigma2_ = mu, var
        self.scale_ = scale
        self.loss_ = self._data_loss(rows, theta)
        if position:
            big = int(np.argmax(counts))
            self._position_scale = float(scale[comp == big][0])
            self.position_ = theta[2 * n :] / self._position_scale
        else:
            self.position_ = np.empty(0)
        self._intervals(rows, theta, point, noise, comp, phi, lam, position)
        return self

    def _rows_of(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        n_outcomes: int | None,
        ids: Sequence[str] | None,
        first: np.ndarray | None,
        groups: np.ndarray | None,
        group_names: Sequence[str] | None,
        n_records: np.ndarray | None,
    ) -> _Rows:
        """``fit``'s data checked and turned into rows (rows of zero weight dropped; with ``first``, one row per
        ordering as (shown first, shown second)); sets ``ids_`` and ``position_groups_``."""
        X = np.asarray(X, dtype=np.int64)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(y):
            raise ValueError("X must be a (k, 2) array of outcome indices with one label per row")
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        nrec = np.ones(len(y)) if n_records is None else np.asarray(n_records, dtype=float)
        keep = w > 0
        X, y, w, nrec = X[keep], y[keep], w[keep], np.maximum(nrec[keep], 1.0)
        if len(y) == 0:
            raise UserError("no usable comparisons to fit: every pair has zero weight (no parsed answers)")
        if np.any((y < 0) | (y > 1)) or not np.all(np.isfinite(y)):
            raise UserError("preference labels must be probabilities in [0, 1]")
        n = int(n_outcomes if n_outcomes is not None else X.max() + 1)
        if ids is not None and len(ids) != n:
            raise ValueError("ids must have one entry per outcome")
        self.ids_ = list(ids) if ids is not None else [str(k) for k in range(n)]
        i, j = X[:, 0], X[:, 1]
        if first is None:
            self.position_groups_ = []
            return _Rows(n, i, j, y, w, nrec)
        if self.method == "compat":
            raise UserError("the position term needs the default fit (--method mle); the companion's fit has none")
        first = np.asarray(first, dtype=bool)[keep]
        i, j = np.where(first, i, j), np.where(first, j, i)  # row = (shown first, shown second)
        y = np.where(first, y, 1.0 - y)  # P(first shown chosen)
        if groups is None:
            gi = gj = np.zeros(len(y), dtype=np.int64)
            n_groups = 1
            self.position_groups_ = ["all"]
        else:
            g = np.asarray(groups, dtype=np.int64)[keep]
            g = np.where(first[:, None], g, g[:, ::-1])
            gi, gj = g[:, 0], g[:, 1]
            n_groups = int(g.max()) + 1
            self.position_groups_ = list(group_names) if group_names is not None else [str(k) for k in range(n_groups)]
        return _Rows(n, i, j, y, w, nrec, gi, gj, n_groups)

    def _components(self, rows: _Rows) -> tuple[np.ndarray, np.ndarray, int]:
        """(component of each outcome, component sizes, components among the compared outcomes) of the comparison
        graph; sets ``components_``/``n_components_`` and refuses a disconnected graph unless ``per_component``."""
        n, i, j = rows.n, rows.i, rows.j
        comp = component_labels(n, i, j)
        rows.comp = comp
        counts = np.bincount(comp)
        seen = np.zeros(n, dtype=bool)
        seen[i] = True
        seen[j] = True
        n_comp = len(np.unique(comp[seen]))
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
        return comp, counts, n_comp

    def _fixed_hyperparameters(self) -> tuple[float | None, float | None]:
        """(dispersion, prior precision) as fixed by the settings; None for each that is estimated."""
        if isinstance(self.dispersion, str) and self.dispersion != "estimate":
            raise UserError(f"unknown dispersion {self.dispersion!r}; use 'estimate' or a number")
        fixed_phi = None if isinstance(self.dispersion, str) else float(self.dispersion)
        if fixed_phi is not None and not 0 < fixed_phi < math.inf:
            raise UserError(
                f"dispersion must be 'estimate' or a positive number (1.0 = the plain likelihood), got {self.dispersion!r}"
            )
        fixed_lam = None if self.variance_prior == "auto" else self.variance_prior
        if fixed_lam is not None and (isinstance(fixed_lam, (str, bool)) or not 0 <= float(fixed_lam) < math.inf):
            raise UserError(f"variance_prior must be 'auto' or a precision in answers >= 0 (0 = no prior), got {fixed_lam!r}")
        return fixed_phi, None if fixed_lam is None else float(fixed_lam)

    def _fit_mle(
        self, rows: _Rows, fixed_phi: float | None, fixed_lam: float | None, n_comp: int
    ) -> tuple[np.ndarray, float, float]:
        """The penalised maximum-likelihood fit, (θ, dispersion, prior precision): the dispersion and the prior's
        precision are estimated from a fit and the fit redone with them until they settle (the intermediate fits to
        a looser tolerance), then the final fit to the full tolerance. Sets ``n_iter_``, ``converged_``,
        ``hyper_settled_``."""
        phi = fixed_phi if fixed_phi is not None else 1.0
        lam = fixed_lam if fixed_lam is not None else PRIOR_START
        start = None
        old = getattr(self, "_theta", None)
        if self.warm_start and old is not None and len(old) == rows.n_params:
            start = old
            phi = fixed_phi if fixed_phi is not None else float(getattr(self, "_phi", 1.0))
            lam = fixed_lam if fixed_lam is not None else float(getattr(self, "_lam", PRIOR_START))
        estimate = fixed_phi is None or fixed_lam is None
        theta, iters, ok = self._optimise(rows, phi, lam, start, loose=estimate)
        settled = not estimate
        bracket = [math.log(PRIOR_MIN), math.log(PRIOR_MAX)]  # where the prior's fixed point lies
        for _ in range(HYPER_ROUNDS if estimate else 0):
            point = _Point(self, rows, theta, phi)
            noise = self._noise_model(rows, point, phi, lam, n_comp)
            new_phi = noise["dispersion"] if (fixed_phi is None and noise) else phi
            phi_settled = abs(math.log(new_phi / phi)) < 0.05
            new_lam, lam_settled = lam, True
            if fixed_lam is None:
                proposed = self._prior_precision(rows, theta, point, new_phi, lam, self._meat_weights(rows, point, noise))
                new_lam = self._next_precision(lam, proposed, bracket, phi_settled)
                # settled: the estimate made at λ agrees with λ, or the bracket around the fixed point is that narrow
                lam_settled = abs(math.log(proposed / lam)) < 0.1 or (phi_settled and bracket[1] - bracket[0] < 0.1)
                if abs(math.log(proposed / lam)) < 0.1:
                    new_lam = proposed
            settled = phi_settled and lam_settled
            phi, lam = new_phi, new_lam
            theta, nit, ok = self._optimise(rows, phi, lam, theta, loose=not settled)
            iters += nit
            if settled:
                break
        if not settled:  # the rounds ran out: the last fit was a loose one; finish it
            theta, nit, ok = self._optimise(rows, phi, lam, theta)
            iters += nit
        self.hyper_settled_ = settled
        self.converged_ = ok and settled
        self.n_iter_ = iters
        self._theta = theta
        return theta, phi, lam

    def _intervals(
        self,
        rows: _Rows,
        theta: np.ndarray,
        point: _Point,
        noise: dict | None,
        comp: np.ndarray,
        phi: float,
        lam: float,
        position: bool,
    ) -> None:
        """The intervals of the fitted utilities and position terms (``ci``: sandwich or curvature; ``bootstrap``:
        percentile intervals of pair resamples), none for components of two outcomes."""
        n, mu = rows.n, self.utilities_
        z = float(ndtri(0.5 + self.ci_level / 2))
        self.ci_method_ = "none"
        self.bootstrap_utilities_: np.ndarray | None = None  # (B × n) resampled utilities when ``bootstrap``
        self.ci_low_ = np.full(n, np.nan)
        self.ci_high_ = np.full(n, np.nan)
        self.stderr_ = np.full(n, np.nan)
        self.position_stderr_ = np.full(len(self.position_), np.nan)
        if self.ci != "none":
            meat = self._meat_weights(rows, point, noise) if self.ci == "sandwich" else None
            self.stderr_, self.position_stderr_, exact = self._curvature_stderr(rows, theta, point, comp, phi, lam, meat)
            self.ci_low_, self.ci_high_ = mu - z * self.stderr_, mu + z * self.stderr_
            self.ci_method_ = self.ci if exact else f"{self.ci}-local"
        if self.bootstrap:
            draws, pos_draws = self._bootstrap(rows, comp, theta)
            lo, hi = (1 - self.ci_level) / 2 * 100, (1 + self.ci_level) / 2 * 100
            self.ci_low_, self.ci_high_ = np.percentile(draws, [lo, hi], axis=0)
            self.stderr_ = draws.std(axis=0, ddof=1)
            self.bootstrap_utilities_ = draws
            self.ci_method_ = f"bootstrap-{self.bootstrap}"
            if position:
                self.position_stderr_ = pos_draws.std(axis=0, ddof=1)
        # a component of two outcomes (one pair) is normalised onto ±1/√2 whatever was answered: its utilities carry
        # no spread to estimate, and an interval of width 0 would read as certainty — no interval
        small = np.bincount(comp, minlength=n)[comp] <= 2
        self.n_without_interval_ = int(small.sum()) if self.ci != "none" or self.bootstrap else 0
        if small.any():
            self.ci_low_, self.ci_high_, self.stderr_ = (
                np.where(small, np.nan, v) for v in (self.ci_low_, self.ci_high_, self.stderr_)
            )
        if position and self.ci != "none" and not self.bootstrap:
            # β on the scale of the true utilities: the fitted utilities' sd is inflated by their own estimation
            # noise, sd(μ̂)² ≈ sd(μ)² + mean(se²), which would bias β' = β/sd(μ̂) low by a factor √(1 − mean(se'²))
            big = self.components_ == int(np.argmax(np.bincount(self.components_[np.isfinite(self.stderr_)])))
            noise_share = float(np.nanmean(self.stderr_[big] ** 2))
            if 0 < noise_share < 0.5:
                factor = 1.0 / math.sqrt(1.0 - noise_share)
                self.position_ = self.position_ * factor
                self.position_stderr_ = self.position_stderr_ * factor
        self.position_ci_low_ = self.position_ - z * self.position_stderr_
        self.position_ci_high_ = self.position_ + z * self.position_stderr_
        if self.bootstrap and position:
            lo, hi = (1 - self.ci_level) / 2 * 100, (1 + self.ci_level) / 2 * 100
            self.position_ci_low_, self.position_ci_high_ = np.percentile(pos_draws, [lo, hi], axis=0)

    # ------------------------------------------------------------------------------------------------------
    def expand_outcomes(self, keep: np.ndarray, n: int, ids: Sequence[str]) -> Thurstonian:
        """Put a fit over a subset of ``n`` outcomes (``keep``: their indices in the full set) back onto the full
        index: the per-outcome arrays and the bootstrap's resampled utilities get NaN for unfitted outcomes, their
        component -1; ``ids_`` becomes ``ids``. Returns ``self``."""
        for name in ("utilities_", "sigma2_", "ci_low_", "ci_high_", "stderr_"):
            full = np.full(n, np.nan)
            full[keep] = getattr(self, name)
            setattr(self, name, full)
        if self.bootstrap_utilities_ is not None:
            draws = np.full((self.bootstrap_utilities_.shape[0], n), np.nan)
            draws[:, keep] = self.bootstrap_utilities_
            self.bootstrap_utilities_ = draws
        comp = -np.ones(n, dtype=np.int64)
        comp[keep] = self.components_
        self.components_ = comp
        self.ids_ = list(ids)
        return self

    def predict_proba(self, X: Any, first: Any = None) -> np.ndarray:
        """P(X[:,0] ≻ X[:,1]) for pairs given as indices or as outcome ids. With ``first`` (booleans: was X[:,0]
        shown first?) and a fitted position term, the probability for that ordering (global β, or the mean of the
        groups' β when the model has groups and ``first`` comes with ``groups`` via ``predict_ordered``)."""
        X = self._indices(X)
        mu, var = self.utilities_, self.sigma2_
        shift = 0.0
        if first is not None and len(self.position_):
            shift = np.where(np.asarray(first, dtype=bool), 1.0, -1.0) * float(np.mean(self.position_))
        return ndtr((mu[X[:, 0]] - mu[X[:, 1]] + shift) / np.sqrt(var[X[:, 0]] + var[X[:, 1]] + 1e-12))

    def predict_ordered(self, X: Any, first: Any, groups: Any = None) -> np.ndarray:
        """P(X[:,0] ≻ X[:,1]) in the ordering given by ``first`` (X[:,0] shown first?), with the position term:
        global β, or per group with ``groups`` (k × 2 group indices of the two outcomes)."""
        X = self._indices(X)
        first = np.asarray(first, dtype=bool)
        beta = self.position_ if len(self.position_) else np.zeros(1)
        if groups is None or len(beta) == 1:
            pull = np.full(len(X), beta[0] if len(beta) == 1 else float(np.mean(beta)))
        else:
            g = np.asarray(groups, dtype=np.int64)
            pull = (beta[g[:, 0]] + beta[g[:, 1]]) / 2
        mu, var = self.utilities_, self.sigma2_
        return ndtr((mu[X[:, 0]] - mu[X[:, 1]] + np.where(first, pull, -pull)) / np.sqrt(var[X[:, 0]] + var[X[:, 1]] + 1e-12))

    def _indices(self, X: Any) -> np.ndarray:
        X = np.asarray(X)
        if X.dtype.kind in "US":
            lookup = {oid: k for k, oid in enumerate(self.ids_)}
            X = np.vectorize(lookup.__getitem__)(X)
        return X.astype(np.int64).reshape(-1, 2)

    # ------------------------------------------------------------------------------------------------------
    def _data_loss(self, rows: _Rows, theta: np.ndarray) -> float:
        """Weighted mean binary cross-entropy of the fitted model on the fitted rows."""
        p = np.clip(ndtr(self._z(rows, theta)), 1e-12, 1 - 1e-12)
        return float(-(rows.w * (rows.y * np.log(p) + (1 - rows.y) * np.log1p(-p))).sum() / rows.w.sum())

    @staticmethod
    def _z(rows: _Rows, theta: np.ndarray) -> np.ndarray:
        n = rows.n
        mu, v = theta[:n], np.exp(theta[n : 2 * n])
        diff = mu[rows.i] - mu[rows.j]
        if rows.n_groups:
            beta = theta[2 * n :]
            diff = diff + (beta[rows.gi] + beta[rows.gj]) / 2
        return diff / np.sqrt(v[rows.i] + v[rows.j])

    def _objective(self, theta, rows: _Rows, pen):
        with np.errstate(over="ignore", invalid="ignore"):
            return self._objective_terms(theta, rows, pen)

    def _objective_terms(self, theta, rows: _Rows, pen):
        n, i, j, y, w = rows.n, rows.i, rows.j, rows.y, rows.w
        v = np.exp(theta[n : 2 * n])
        r2 = v[i] + v[j]
        r = np.sqrt(r2)
        z = self._z(rows, theta)
        lp, lq = _log_cdf_pair(z)
        loss = -(w * (y * lp + (1 - y) * lq)).sum()
        log_pdf = -0.5 * z * z - _LOG_SQRT_2PI
        # dL/dz for each row: -w [y φ/Φ(z) − (1−y) φ/Φ(−z)]
        gz = -w * (y * np.exp(log_pdf - lp) - (1 - y) * np.exp(log_pdf - lq))
        gmu_e = gz / r
        gmu = np.bincount(i, gmu_e, n) - np.bincount(j, gmu_e, n)
        gv_e = -gz * z / (2 * r2)  # dL/dv_i = dL/dv_j for each row
        gs = (np.bincount(i, gv_e, n) + np.bincount(j, gv_e, n)) * v
        parts = [gmu, gs]
        if rows.n_groups:
            half = gmu_e / 2
            parts.append(np.bincount(rows.gi, half, rows.n_groups) + np.bincount(rows.gj, half, rows.n_groups))
        loss += 0.5 * float(pen @ (theta * theta))
        grad = np.concatenate(parts) + pen * theta
        # expected (Fisher) curvature along z, cached for the Hessian-vector products of this point
        fisher = w * np.exp(2 * log_pdf - lp - lq)
        self._cache = (r, z, v, fisher)
        return loss / rows.w.sum(), grad / rows.w.sum()

    def _initial(self, rows: _Rows) -> np.ndarray:
        """Least-squares probit start: μ_i − μ_j ≈ √2 Φ⁻¹(y), solved on the regularised weighted Laplacian."""
        n, i, j, w = rows.n, rows.i, rows.j, rows.w
        t = math.sqrt(2.0) * ndtri(np.clip(rows.y, 0.02, 0.98))
        ridge = max(self.alpha, 1e-6)
        deg = np.bincount(i, w, n) + np.bincount(j, w, n) + ridge

        def laplacian(p):  # the regularised weighted Laplacian of the comparison graph times p
            flow = w * (p[i] - p[j])
            return np.bincount(i, flow, n) - np.bincount(j, flow, n) + ridge * p

        b = np.bincount(i, w * t, n) - np.bincount(j, w * t, n)
        # conjugate gradients: a sparse LU of a random comparison graph fills in and is slow at large N
        mu = _pcg(laplacian, b, 1.0 / deg, 1e-6, 500)
        beta = np.zeros(rows.n_groups)
        if rows.n_groups:  # the mean probit of choosing the first-shown option, minus what the utilities explain
            beta[:] = float(np.average(t - (mu[i] - mu[j]), weights=w))
        return np.concatenate([mu, np.zeros(n), beta])

    def _penalty(self, rows: _Rows, phi: float, lam: float) -> np.ndarray:
        """Per-parameter Gaussian penalty in units of weight: ``alpha`` everywhere, plus the variance prior's
        precision ``lam`` (in answers) × the dispersion ``phi`` (one unit of weight is worth 1/φ answers) on the
        log-variances."""
        n = rows.n
        pen = np.full(rows.n_params, float(self.alpha) * phi)
        pen[n : 2 * n] += lam * phi
        return pen

    def _optimise(self, rows: _Rows, phi: float, lam: float, start=None, loose: bool = False) -> tuple[np.ndarray, int, bool]:
        """The penalised fit for a given dispersion and prior: (θ, Newton iterations, converged). Convergence is
        measured in answers (one unit of weight is worth 1/φ of them), so exact probabilities, whose weights say
        little about their information, are fitted as closely, in standard errors, as sampled answers."""
        theta0 = self._initial(rows) if start is None else start
        pen = self._penalty(rows, phi, lam)
        tol = max(self.tol, LOOSE_TOL) if loose else self.tol
        theta, nit, ok = self._newton(theta0, rows, pen, answers_per_weight=1.0 / phi, tol=tol)
        self._cache = None
        if not np.all(np.isfinite(theta)):
            raise RuntimeError("Thurstonian fit diverged (non-finite parameters)")
        return theta, int(nit), bool(ok)

    def _jacobian_pattern(self, rows: _Rows) -> tuple[np.ndarray, int]:
        n = rows.n
        cols = [rows.i, rows.j, n + rows.i, n + rows.j]
        if rows.n_groups:
            cols += [2 * n + rows.gi, 2 * n + rows.gj]
        return np.column_stack(cols).ravel(), len(cols)

    def _jacobian_values(self, rows: _Rows, r, z, v) -> np.ndarray:
        """dz/dθ per row: 1/r, −1/r on the means, −z v/(2r²) on the log-variances, 1/(2r) on each β group."""
        half = -z / (2 * r * r)
        cols = [1 / r, -1 / r, half * v[rows.i], half * v[rows.j]]
        if rows.n_groups:
            cols += [0.5 / r, 0.5 / r]
        return np.column_stack(cols)

    def _newton(self, theta, rows: _Rows, pen, answers_per_weight: float, tol: float):
        """Fisher-scoring Newton steps solved by Jacobi-preconditioned conjugate gradients, with an Armijo line
        search; the Fisher information plus the penalty is positive definite, so every step descends.

        Stops when half the Newton decrement −g·Δ (the mean loss the step predicts to gain), turned into answers
        (× total weight × ``answers_per_weight``), is at most ``tol``: a criterion in the metric of the information
        itself, unchanged when the weights are rescaled, unlike a relative change of the loss or a gradient bound,
        which stop early when the weights understate the information (exact log-prob answers, φ ≪ 1). Returns
        (θ, iterations, converged)."""
        f, g = self._objective(theta, rows, pen)
        k, m = rows.k, rows.n_params
        wsum = rows.w.sum()
        to_answers = 0.5 * wsum * answers_per_weight
        if rows.pattern is None:  # the sparsity of dz/dθ is fixed: built once per set of rows
            pattern, width = self._jacobian_pattern(rows)
            rows.pattern = _Jacobian(pattern.reshape(k, width), m)
        jac = rows.pattern
        for nit in range(self.max_iter + 1):
            r, z, v, fisher = self._cache
            jac.values = self._jacobian_values(rows, r, z, v)
            diag = (jac.diag(fisher) + pen) / wsum
            gauge = _Gauge(rows, float(diag.mean()), m)
            diag += gauge.diag

            def product(p, fisher=fisher, gauge=gauge):
                return (jac.tdot(fisher * jac.dot(p)) + pen * p) / wsum + gauge.product(p)

            forcing = min(0.5, max(FORCING_MIN, math.sqrt(float(np.linalg.norm(g) / max(np.linalg.norm(diag), 1e-300)))))
            step = _pcg(product, -g, 1.0 / diag, max(forcing, 1e-10), 200)
            slope = float(g @ step)
            if slope < 0 and -slope * to_answers <= tol:
                return theta, nit, True
            if nit == self.max_iter:
                break
            if slope >= 0:  # not a descent direction (numerical trouble): fall back to preconditioned gradient
                step = -g / diag
                slope = float(g @ step)
                if -slope * to_answers <= tol:
                    return theta, nit, True
            t = 1.0
            for _ in range(40):
                f_new, g_new = self._objective(theta + t * step, rows, pen)
                if np.isfinite(f_new) and f_new <= f + 1e-4 * t * slope:
                    break
                t *= 0.5
            else:  # no decrease along a descent direction: converged only if the gain is below the loss's rounding
                return theta, nit, bool(-slope <= 1e-11 * abs(f))
            theta, f, g = theta + t * step, f_new, g_new
        return theta, self.max_iter, False

    # ------------------------------------------------------------------------------------------------------
    def _noise_model(self, rows: _Rows, point: _Point, phi: float, lam: float, n_comp: int) -> dict | None:
        """How noisy the labels are around the fitted model: Var(y) = a·p(1 − p)/w + b·φ(z)²/m per row (w its
        weight, m its records), a binomial part (sampled answers: a ≈ 1) and a misfit part (each record's probit
        off the model by a N(0, b) amount: what exact log-prob records have instead of sampling noise). a and b
        come from a non-negative least-squares fit of the squared residuals (weights 1/Var², three times), scaled
        by rows/(rows − df) for the parameters fitted (means and position terms fully, each log-variance by its
        share d/(d + prior) of the information, less two gauge directions per component). The ``dispersion`` is
        the information-weighted mean of Var(y)/binomial variance: how many answers one unit of weight is worth
        (its inverse). None when fewer than 10 (or 5%) residual degrees of freedom remain."""
        d, seen = point.d, point.seen
        prior = (self.alpha + lam) * phi
        df = float(seen.sum() + rows.n_groups + (d[seen] / (d[seen] + prior)).sum() - 2 * n_comp)
        resid_df = rows.k - df
        if resid_df < max(10.0, 0.05 * rows.k):
            return None
        e2 = (rows.y - point.p) ** 2
        x1, x2 = point.pq / rows.w, point.dens2 / rows.nrec
        coef = np.array([1.0, 0.0])
        for _ in range(3):
            wt = 1.0 / np.maximum(coef[0] * x1 + coef[1] * x2, 1e-12) ** 2
            coef = _nnls2(x1, x2, e2, wt)
            if coef.sum() <= 0:
                coef = np.array([DISPERSION_FLOOR, 0.0])
                break
        coef *= rows.k / resid_df
        ratio = (coef[0] * x1 + coef[1] * x2) * rows.w / point.pq  # Var(y) over the binomial variance of the row
        dispersion = max(float((point.c * ratio).sum() / point.c.sum()), DISPERSION_FLOOR)
        return {
            "dispersion": dispersion,
            "binomial": float(coef[0]),
            "misfit": float(coef[1]),
            "effective_parameters": df,
            "residual_df": resid_df,
        }

    @staticmethod
    def _meat_weights(rows: _Rows, point: _Point, noise: dict | None) -> np.ndarray | None:
        """Per row, the variance of its score along z under the noise model, w²·Var(y)·φ(z)²/(p(1 − p))² — the
        meat of the sandwich (equal to the Fisher weight when Var(y) is binomial). None without a noise model."""
        if not noise:
            return None
        var_y = noise["binomial"] * point.pq / rows.w + noise["misfit"] * point.dens2 / rows.nrec
        return rows.w**2 * var_y * point.dens2 / point.pq**2

    def _prior_precision(
        self, rows: _Rows, theta: np.ndarray, point: _Point, phi: float, lam: float, meat: np.ndarray | None
    ) -> float:
        """Empirical-Bayes precision of the log-variance prior (in answers). The fitted log-variances are undone to
        the data's own estimates s̃ = ŝ·(d + λφ)/d (d the information on each, profiled over its mean), whose
        sampling variances are ρ/d (ρ the sandwich's dispersion along each log-variance; φ without a noise model).
        The spread τ² of the true log-variances is the Paule–Mandel random-effects estimate,
        Σ (s̃ − s̄)²/(τ² + ρ/d) = (outcomes − 1), and the precision is 1/τ², kept within [PRIOR_MIN, PRIOR_MAX]."""
        n = rows.n
        ok = point.seen & (point.d > 1e-12)
        if ok.sum() < 3:
            return lam
        d = point.d[ok]
        s_tilde = theta[n : 2 * n][ok] * (d + (self.alpha + lam) * phi) / d
        if meat is None:
            rho = np.full(len(d), phi)
        else:
            m_ss = np.bincount(rows.i, meat * point.dz[:, 2] ** 2, n) + np.bincount(rows.j, meat * point.dz[:, 3] ** 2, n)
            rho = np.maximum(m_ss[ok] / np.maximum(point.h_ss[ok], 1e-300), DISPERSION_FLOOR)
        v = rho / d
        # the excess Σ w(s̃ − s̄_w)² − (m − 1), w = 1/(τ² + v), falls as τ² grows: find its root on a log grid
        tau2 = np.geomspace(1.0 / PRIOR_MAX, 1.0 / PRIOR_MIN, 97)
        wt = 1.0 / (tau2[:, None] + v[None, :])
        centre = (wt * s_tilde).sum(axis=1) / wt.sum(axis=1)
        excess = (wt * (s_tilde[None, :] - centre[:, None]) ** 2).sum(axis=1) - (len(d) - 1)
        if excess[0] <= 0:
            return PRIOR_MAX
        if excess[-1] >= 0:
            return PRIOR_MIN
        k = int(np.argmax(excess <= 0))  # first grid point past the root
        x0, x1 = math.log(tau2[k - 1]), math.log(tau2[k])
        root = x0 + (x1 - x0) * excess[k - 1] / (excess[k - 1] - excess[k])
        return float(math.exp(-root))

    @staticmethod
    def _next_precision(lam: float, proposed: float, bracket: list[float], keep_bracket: bool) -> float:
        """The next prior precision to try: the empirical-Bayes estimate made at ``lam``, safeguarded by bisection
        (in logs). The plain iteration λ ← estimate(λ) can cycle (a strong prior shrinks the log-variances, their
        undone estimates then look noisy and call for a weak prior, which lets them spread, ...): the estimate's
        direction brackets the fixed point, and a proposal outside the bracket is replaced by its midpoint.
        ``bracket`` ([low, high] log-precisions) is updated in place; while the dispersion still moves it is reset and
        the proposal taken as it is (a proposal made at another dispersion says nothing about this one's fixed point)."""
        if not keep_bracket:
            bracket[:] = [math.log(PRIOR_MIN), math.log(PRIOR_MAX)]
            return float(proposed)
        x, x_new = math.log(lam), math.log(proposed)
        if x_new > x:
            bracket[0] = max(bracket[0], x)
        elif x_new < x:
            bracket[1] = min(bracket[1], x)
        if not bracket[0] <= x_new <= bracket[1] and bracket[0] < bracket[1]:
            x_new = 0.5 * (bracket[0] + bracket[1])
        return float(math.exp(x_new))

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

    # ------------------------------------------------------------------------------------------------------
    def _curvature_stderr(
        self, rows: _Rows, theta: np.ndarray, point: _Point, comp: np.ndarray, phi: float, lam: float, meat: np.ndarray | None
    ):
        """Standard errors of the normalised means (and position terms).

        H = I + P is the expected Fisher information of all parameters (weight units: each unit of weight one
        answer) plus the penalty. ``meat=None`` gives the model-based covariance H⁻¹ (right when each unit of weight
        is a Bernoulli answer); with ``meat`` (per-row score variances from the noise model) the sandwich
        H⁻¹ (M + φP) H⁻¹, right whatever a unit of weight is worth (the prior stays in the meat as information
        worth φ per unit, like the data's, so that when M = φI the sandwich is the quasi-posterior φH⁻¹ — and H⁻¹
        for binomial answers, φ = 1). H is singular along the gauge directions (shift;
        joint scaling of means, standard deviations and position terms); they are pinned by adding their outer
        products — the scores and the Jacobian of the normalisation μ' = (μ − mean)/sd, β' = β/sd are blind to
        them. Components up to ``DENSE_CI_LIMIT`` outcomes get the exact covariance, larger ones the local
        approximation of ``_local_stderr``.
        """
        n, G = rows.n, rows.n_groups
        dz = point.dz
        vals = dz * np.sqrt(point.c)[:, None]
        mvals = None if meat is None else dz * np.sqrt(meat)[:, None]
        pen = self._penalty(rows, phi, lam)
        se = np.full(n, np.nan)
        se_beta = np.full(G, np.nan)
        counts = np.bincount(comp)
        big = int(np.argmax(counts))
        exact = True
        for comp_id in np.unique(comp):
            nodes = np.flatnonzero(comp == comp_id)
            k = len(nodes)
            if k < 2:
                continue
            m = comp[rows.i] == comp_id
            rows_c = int(m.sum())
            local = -np.ones(n, dtype=np.int64)
            local[nodes] = np.arange(k)
            li, lj = local[rows.i[m]], local[rows.j[m]]
            gi = rows.gi[m] if G else None
            gj = rows.gj[m] if G else None
            mu_c = theta[nodes]
            sd = mu_c.std(ddof=1)
            if not sd > 0:  # all utilities equal: no scale to normalise by, so no interval (the fit says so)
                continue
            use_beta = bool(G) and comp_id == big
            beta = theta[2 * n :] if use_beta else np.empty(0)
            if k > DENSE_CI_LIMIT:
                exact = False
                se[nodes] = _local_stderr(
                    k, li, lj, vals[m], None if mvals is None else mvals[m], pen[nodes], pen[n + nodes], mu_c, sd, phi
                )
                if use_beta:
                    se_beta[:] = self._position_stderr(rows, theta, point, nodes, pen, phi, meat)
                continue
            width = 6 if G else 4
            cols = np.column_stack([li, lj, k + li, k + lj] + ([2 * k + gi, 2 * k + gj] if G else [])).ravel()
            size = 2 * k + G
            rows_idx = np.repeat(np.arange(rows_c), width)
            grad = np.zeros((rows_c, size))
            np.add.at(grad, (rows_idx, cols), vals[m].ravel())
            info = grad.T @ grad
            info[np.diag_indices(size)] += np.concatenate([pen[nodes], pen[n + nodes], pen[2 * n :]])
            shift = np.zeros(size)
            shift[:k] = 1.0 / math.sqrt(k)
            scale = np.zeros(size)
            scale[:k] = mu_c
            scale[k : 2 * k] = 2.0
            scale[2 * k :] = theta[2 * n :]
            scale /= np.linalg.norm(scale)
            weight = float(np.mean(np.diag(info)))
            info += weight * (np.outer(shift, shift) + np.outer(scale, scale))
            want = np.concatenate([np.arange(k), 2 * k + np.arange(G)]) if use_beta else np.arange(k)
            inv = np.linalg.inv(info)
            jac = _normaliser_jacobian(mu_c, sd, beta)
            lhs = jac @ inv[want, :]
            if mvals is None:
                var_out = (lhs[:, want] * jac).sum(axis=1)
            else:
                meat_grad = np.zeros((rows_c, size))
                np.add.at(meat_grad, (rows_idx, cols), mvals[m].ravel())
                penalty = phi * np.concatenate([pen[nodes], pen[n + nodes], pen[2 * n :]])
                var_out = ((meat_grad @ lhs.T) ** 2).sum(axis=0) + (lhs**2 * penalty).sum(axis=1)
            var_out = np.maximum(var_out, 0.0)
            se[nodes] = np.sqrt(var_out[:k])
            if use_beta:
                se_beta[:] = np.sqrt(var_out[k:])
        return se, se_beta, exact

    def _position_stderr(
        self,
        rows: _Rows,
        theta: np.ndarray,
        point: _Point,
        nodes: np.ndarray,
        pen: np.ndarray,
        phi: float,
        meat: np.ndarray | None,
    ) -> np.ndarray:
        """Standard errors of the normalised position terms β'_g = β_g/sd(μ) of a large component, exactly: β'_g is
        one linear functional a of the parameters (1/sd on β_g, −β_g u/((k − 1) sd²) on the means, u the
        normalised utilities), so Var(β'_g) = xᵀ(M + φP)x with x = H⁻¹a (model-based: aᵀx), one conjugate-gradient
        solve of the Newton system (gauge directions pinned) per group."""
        n, G, m_params = rows.n, rows.n_groups, rows.n_params
        jac = rows.pattern
        jac.values = point.dz
        k = len(nodes)
        mu_c = theta[nodes]
        sd = mu_c.std(ddof=1)
        u = (mu_c - mu_c.mean()) / sd
        shift = np.zeros(m_params)
        shift[nodes] = 1.0 / math.sqrt(k)
        scale = np.zeros(m_params)
        scale[nodes] = mu_c
        scale[n + nodes] = 2.0
        scale[2 * n :] = theta[2 * n :]
        scale /= np.linalg.norm(scale)
        c = point.c
        diag = jac.diag(c) + pen
        weight = float(diag.mean())

        def h_product(p):
            return jac.tdot(c * jac.dot(p)) + pen * p + weight * (shift * (shift @ p) + scale * (scale @ p))

        inv_diag = 1.0 / (diag + weight * (shift**2 + scale**2))
        out = np.full(G, np.nan)
        for g in range(G):
            a = np.zeros(m_params)
            a[nodes] = -theta[2 * n + g] * u / ((k - 1) * sd * sd)
            a[2 * n + g] = 1.0 / sd
            x = _pcg(h_product, a, inv_diag, 1e-8, 1000)
            if meat is None:
                var = float(a @ x)
            else:
                var = float(x @ jac.tdot(meat * jac.dot(x))) + phi * float((pen * x * x).sum())
            out[g] = math.sqrt(max(var, 0.0))
        return out

    # ------------------------------------------------------------------------------------------------------
    def _bootstrap(self, rows: _Rows, comp, theta) -> tuple[np.ndarray, np.ndarray]:
        """Refits on pairs resampled with replacement (both orderings of a pair travel together); each resampled
        pair's multiplicity is its weight."""
        rng = np.random.default_rng(self.seed)
        n = rows.n
        lo, hi = np.minimum(rows.i, rows.j), np.maximum(rows.i, rows.j)
        _, cluster = np.unique(lo * n + hi, return_inverse=True)
        n_clusters = int(cluster.max()) + 1
        draws = np.empty((self.bootstrap, n))
        pos = np.empty((self.bootstrap, rows.n_groups))
        resampled = rows.reweighted(rows.w)
        iterator = range(self.bootstrap)
        if self.progress is not None:
            iterator = self.progress(iterator, desc="bootstrap", unit="refit")
        for b in iterator:
            counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters))[cluster].astype(float)
            if self.method == "compat":
                keep = counts > 0
                mu_b, var_b = self._fit_compat(n, rows.i[keep], rows.j[keep], rows.y[keep], rng=rng, weights=counts[keep])
            else:
                t, _, _ = self._optimise(resampled.reweighted(rows.w * counts), self._phi, self._lam, start=theta)
                mu_b, var_b = t[:n], np.exp(t[n : 2 * n])
                if rows.n_groups:
                    pos[b] = t[2 * n :]
            mu_n, _, scale = self._normalise(mu_b, var_b, comp)
            draws[b] = mu_n
            if rows.n_groups:
                big = int(np.argmax(np.bincount(comp)))
                pos[b] = pos[b] / float(scale[comp == big][0])
        return draws, pos

    # ------------------------------------------------------------------------------------------------------
    def _fit_compat(self, n, i, j, y, rng=None, weights=None):
        """The companion's fit (docs/method.md §3.2–3.3), ported to numpy with analytic gradients: raw means and
        log-variances initialised 0.01·N(0,1) (here from a seeded generator), normalised inside every forward
        pass, mean BCE over edges (log clamped at −100), Adam lr 0.01, full batch, fixed epoch count. ``weights``
        (a bootstrap resample's multiplicities) make the mean a weighted one."""
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        m = 0.01 * rng.standard_normal(n)
        s = 0.01 * rng.standard_normal(n)
        params = [m, s]
        first = [np.zeros(n), np.zeros(n)]
        second = [np.zeros(n), np.zeros(n)]
        b1, b2, eps, lr = 0.9, 0.999, 1e-8, self.compat_lr
        wt = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        wt = wt / wt.sum()
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
            loss = -(wt * (y * logp + (1 - y) * logq)).sum()
            if not np.isfinite(loss):
                break
            dens = np.exp(-0.5 * z * z - _LOG_SQRT_2PI)
            # d mean-BCE / dp, respecting the clamp (gradient zero where the log is clamped)
            dp = -wt * (
                y * np.where(logp > -100, 1 / np.maximum(p, 1e-300), 0)
                - (1 - y) * np.where(logq > -100, 1 / np.maximum(1 - p, 1e-300), 0)
            )
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


def _normaliser_jacobian(mu_c: np.ndarray, sd: float, beta: np.ndarray) -> np.ndarray:
    """d(μ', β')/d(μ, β) for μ' = (μ − mean)/sd, β' = β/sd (sd the sample sd of μ)."""
    k = len(mu_c)
    u = (mu_c - mu_c.mean()) / sd
    G = len(beta)
    jac = np.zeros((k + G, k + G))
    jac[:k, :k] = (np.eye(k) - 1.0 / k - np.outer(u, u) / (k - 1)) / sd
    if G:
        jac[k:, :k] = -np.outer(beta / sd, u) / ((k - 1) * sd)
        jac[k:, k:] = np.eye(G) / sd
    return jac


def _local_stderr(k, li, lj, vals, mvals, pen_mu, pen_s, mu_c, sd, phi=1.0):
    """Standard errors for large components without a dense inverse (sparse products over the pairs).

    Each outcome's mean is profiled over its own log-variance (the 2×2 block of the information: the coupling that
    matters, as all of an extreme outcome's pairs lean the same way); the remaining information of the means is a
    weighted graph Laplacian L = D − W, whose inverse's diagonal is (1/d_i)·(1 + t2 + t4 + …), t_m the weight
    of the closed walks of length m of the walk matrix D⁻¹W (t2 = Σ_j W_ij²/(d_i d_j); t4 its retracing walks; the
    longer even walks as t4's geometric tail) — within about 2% of the exact value on random comparison graphs. With ``mvals`` (the sandwich) each outcome's
    variance is scaled by its 2×2 block's sandwich-to-model ratio. The normalisation's Jacobian is applied to this
    diagonal covariance."""
    a_i, a_j, s_i, s_j = vals[:, 0], vals[:, 1], vals[:, 2], vals[:, 3]
    h_mm = np.bincount(li, a_i * a_i, k) + np.bincount(lj, a_j * a_j, k) + pen_mu
    h_ss = np.bincount(li, s_i * s_i, k) + np.bincount(lj, s_j * s_j, k) + pen_s
    h_ms = np.bincount(li, a_i * s_i, k) + np.bincount(lj, a_j * s_j, k)
    d = h_mm - h_ms**2 / h_ss  # the mean's information, its own log-variance profiled out
    # off-diagonal information between the two means of each pair, summed over the pair's rows
    lo, hi = np.minimum(li, lj), np.maximum(li, lj)
    key, inverse = np.unique(lo * k + hi, return_inverse=True)
    w_pair = np.bincount(inverse, -(a_i * a_j), len(key))
    pi, pj = key // k, key % k
    inv_d = 1.0 / d
    pp = w_pair**2 * inv_d[pi] * inv_d[pj]  # P_ij P_ji for the walk matrix P = D⁻¹W

    def both(values):
        return np.bincount(pi, values, k) + np.bincount(pj, values, k)

    t2 = both(pp)  # closed walks i→j→i
    # closed walks of length four that retrace their steps (i→j→i→k→i and i→j→k→j→i); cycles through three or
    # four distinct outcomes add O(1/N), mostly along the shift that the normalisation removes, and are left out
    t4 = t2 * t2 + np.bincount(pi, pp * t2[pj], k) + np.bincount(pj, pp * t2[pi], k) - both(pp * pp)
    # the even walks of a locally tree-like graph fall off geometrically: t6 ≈ t4²/t2, …; their tail is added
    q = np.clip(t4 / np.maximum(t2, 1e-300), 0.0, 0.9)
    var = inv_d * (1.0 + t2 + t4 / (1 - q))
    if mvals is not None:
        ma_i, ma_j, ms_i, ms_j = mvals[:, 0], mvals[:, 1], mvals[:, 2], mvals[:, 3]
        m_mm = np.bincount(li, ma_i * ma_i, k) + np.bincount(lj, ma_j * ma_j, k) + phi * pen_mu
        m_ss = np.bincount(li, ms_i * ms_i, k) + np.bincount(lj, ms_j * ms_j, k) + phi * pen_s
        m_ms = np.bincount(li, ma_i * ms_i, k) + np.bincount(lj, ma_j * ms_j, k)
        det = h_mm * h_ss - h_ms**2
        sandwich = (h_ss**2 * m_mm - 2 * h_ss * h_ms * m_ms + h_ms**2 * m_ss) / det**2
        var = var * sandwich / (h_ss / det)
    # the normalisation's Jacobian J = (I − a1a1ᵀ − a2a2ᵀ)/sd applied to C = diag(var): diag(J C Jᵀ)
    u = (mu_c - mu_c.mean()) / sd
    a1 = np.full(k, 1.0 / math.sqrt(k))
    a2 = u / math.sqrt(k - 1)
    proj = var - 2 * var * (a1 * a1 + a2 * a2)
    proj += (
        a1 * a1 * float((var * a1 * a1).sum())
        + a2 * a2 * float((var * a2 * a2).sum())
        + 2 * a1 * a2 * float((var * a1 * a2).sum())
    )
    se = np.sqrt(np.maximum(proj, 0.0)) / sd
    return se

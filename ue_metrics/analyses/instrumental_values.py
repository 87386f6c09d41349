"""Instrumental values (Mazeika et al. 2025, §4 "instrumental values"; docs/method.md §4.5): are a model's utilities of
the prefixes of a Markov process explained as the values of their outcomes, U(s) ≈ R(s) + γ·E[V(s')]?

Per process, over its relevant outcomes (the prefixes seen in its rollouts, with their observed successors counted
with multiplicity, so the mean over successors is the empirical expectation), a reward R and a value V are fitted
to the utilities U (the fit's normalised means) by the paper's objective

    V_new(s) = R(s) + γ · mean_{s' ∈ succ(s)} V(s')            (0 when s has no successor), γ = 0.99
    loss     = mean_s (V_new(s) − V(s))² + 0.1 · mean_s (V_new(s) − U(s))²

with R fixed at 0 for the one-observation prefixes (the start states). The process's Bellman error is
mean_s |U(s) − V_new(s)|, and ``instrumentality_loss`` the mean over processes (lower: the utilities look more like
the instrumental values of the terminal outcomes).

The paper minimises the loss with Adam (lr 0.01, 1,000 steps from zero, R clamped after each step). The loss is a
convex quadratic in (R, V) and the clamp a projection onto a subspace, so its minimiser is the least-squares
solution of a small linear system: ``solver=closed_form`` (default) solves it exactly; ``solver=adam`` runs the
paper's procedure (``tests/analyses/test_instrumental_values.py`` shows the two reach the same optimum).

Headline: ``instrumentality_loss`` (the natural processes), ``instrumentality_loss_control`` (the same utilities
under the control's implausible transitions), ``instrumentality_gap`` = control − natural (positive: the utilities
follow the real dynamics more than the implausible ones), ``instrumentality_loss_random`` (the expected natural loss
of utilities drawn independently ~ N(0, 1) and normalised as the fit's are, by Monte Carlo on the same processes) and
``n_processes``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ue_metrics.analyses import AnalysisOptions, Inputs
from ue_metrics.errors import UserError

if TYPE_CHECKING:
    from ue_metrics.fitting import FitResult

GAMMA = 0.99
CONSISTENCY_WEIGHT = 0.1
ADAM_LR = 0.01
ADAM_STEPS = 1000
SOLVERS = ("closed_form", "adam")


@dataclass(frozen=True)
class Options(AnalysisOptions):
    gamma: float = GAMMA  # the Bellman equation's discount factor, in (0, 1]
    solver: str = "closed_form"  # SOLVERS: the exact least-squares optimum, or the paper's Adam steps

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.gamma <= 1:
            raise UserError(f"--option gamma must be a discount factor in (0, 1], got {self.gamma!r}")
        self.choice("solver", SOLVERS)


RANDOM_DRAWS = 200


@dataclass
class ProcessGraph:
    """One process's relevant outcomes: ``ids``, the row-normalised successor matrix ``W`` (empirical expectation),
    and which outcomes are start states (one observation: reward fixed at 0)."""

    name: str
    ids: list[str]
    W: np.ndarray
    start: np.ndarray


def process_graphs(outcomes: Mapping[str, dict], set_name: str) -> list[ProcessGraph]:
    """The processes of one set (``natural``/``control``) from the outcomes' attributes."""
    members: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for oid, entry in outcomes.items():
        info = ((entry.get("attributes") or {}).get("sets") or {}).get(set_name)
        if info:
            members[int(info["process"])].append((oid, info))
    graphs = []
    for k in sorted(members):
        items = members[k]
        ids = [oid for oid, _ in items]
        pos = {oid: j for j, oid in enumerate(ids)}
        W = np.zeros((len(ids), len(ids)))
        start = np.zeros(len(ids), dtype=bool)
        for j, (oid, info) in enumerate(items):
            path = (outcomes[oid].get("attributes") or {}).get("path") or []
            start[j] = len(path) == 1
            succ = {s: c for s, c in (info.get("successors") or {}).items() if s in pos}
            total = sum(succ.values())
            for s, c in succ.items():
                W[j, pos[s]] = c / total
        graphs.append(ProcessGraph(items[0][1].get("process_name", f"process {k}"), ids, W, start))
    return graphs


def _design(g: ProcessGraph, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, free): residuals A·x − B·U of the loss for x = [R(free); V], scaled so that ‖A·x − B·U‖² = loss."""
    n = len(g.ids)
    free = np.flatnonzero(~g.start)
    eye = np.eye(n)
    R_cols = eye[:, free]
    V_new_V = gamma * g.W  # V_new = R + γ W V
    top = np.hstack([R_cols, V_new_V - eye]) / math.sqrt(n)
    c = math.sqrt(CONSISTENCY_WEIGHT / n)
    bottom = np.hstack([R_cols, V_new_V]) * c
    A = np.vstack([top, bottom])
    B = np.vstack([np.zeros((n, n)), c * eye])
    return A, B, free


def bellman_fit(g: ProcessGraph, U: np.ndarray, gamma: float = GAMMA, solver: str = "closed_form") -> dict[str, Any]:
    """R, V, the loss and the Bellman error mean|U − V_new| of one process."""
    n = len(g.ids)
    A, B, free = _design(g, gamma)
    if solver == "closed_form":
        x, *_ = np.linalg.lstsq(A, B @ U, rcond=None)
        R = np.zeros(n)
        R[free] = x[: len(free)]
        V = x[len(free) :]
    elif solver == "adam":
        R, V = _adam(g, U, gamma)
    else:
        raise UserError(f"unknown Bellman solver {solver!r}; use closed_form or adam")
    V_new = R + gamma * g.W @ V
    loss = float(np.mean((V_new - V) ** 2) + CONSISTENCY_WEIGHT * np.mean((V_new - U) ** 2))
    return {"R": R, "V": V, "V_new": V_new, "loss": loss, "bellman_error": float(np.mean(np.abs(U - V_new)))}


def _adam(
    g: ProcessGraph, U: np.ndarray, gamma: float, lr: float = ADAM_LR, steps: int = ADAM_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's procedure: R, V from zero, Adam (β = 0.9, 0.999, ε = 1e-8, as PyTorch), R clamped to 0 for the
    start states after each step; analytic gradients of the loss above."""
    n = len(U)
    theta = np.zeros(2 * n)  # [R; V]
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        R, V = theta[:n], theta[n:]
        V_new = R + gamma * g.W @ V
        a, b = V_new - V, V_new - U
        gv = (2 * a + 2 * CONSISTENCY_WEIGHT * b) / n
        grad = np.concatenate([gv, gamma * g.W.T @ gv - 2 * a / n])
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        theta -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        theta[:n][g.start] = 0.0
    return theta[:n].copy(), theta[n:].copy()


def set_loss(
    graphs: Sequence[ProcessGraph], util: Mapping[str, float], gamma: float, solver: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-process fits of one set (processes with an unfitted outcome are skipped and named)."""
    rows, skipped = [], []
    for g in graphs:
        U = np.array([util.get(i, math.nan) for i in g.ids], dtype=float)
        if not np.isfinite(U).all():
            skipped.append(g.name)
            continue
        fit = bellman_fit(g, U, gamma, solver)
        rows.append(
            {
                "process": g.name,
                "n_outcomes": len(g.ids),
                "bellman_error": fit["bellman_error"],
                "loss": fit["loss"],
                "outcomes": [
                    {"id": i, "utility": float(u), "reward": float(r), "value": float(v), "predicted": float(p)}
                    for i, u, r, v, p in zip(g.ids, U, fit["R"], fit["V"], fit["V_new"])
                ],
            }
        )
    return rows, skipped


def random_loss(
    graphs: Sequence[ProcessGraph], all_ids: Sequence[str], gamma: float, seed: int, draws: int = RANDOM_DRAWS
) -> float:
    """Expected natural loss of independent N(0, 1) utilities, normalised over all outcomes as the fit's are."""
    rng = np.random.default_rng([seed, 31337])
    pos = {oid: k for k, oid in enumerate(all_ids)}
    solvers = []
    for g in graphs:
        A, B, free = _design(g, gamma)
        x_of_U = np.linalg.pinv(A) @ B
        n = len(g.ids)
        pred = np.hstack([np.eye(n)[:, free], gamma * g.W]) @ x_of_U  # V_new = [I_free, γW]·x, a linear map of U
        solvers.append((np.array([pos[i] for i in g.ids]), pred))
    totals = []
    for _ in range(draws):
        u = rng.standard_normal(len(all_ids))
        u = (u - u.mean()) / u.std(ddof=1)
        totals.append(np.mean([np.mean(np.abs(u[idx] - pred @ u[idx])) for idx, pred in solvers]))
    return float(np.mean(totals))


def analyse(
    records: Sequence[dict], outcomes: Mapping[str, dict], fit: FitResult | None, options: Options, inputs: Inputs
) -> dict:
    gamma, solver = options.gamma, options.solver
    keys = ("instrumentality_loss", "instrumentality_loss_control", "instrumentality_gap", "instrumentality_loss_random")
    if fit is None:
        reason = "the analysis needs a Thurstonian fit of the records"
        return {
            "headline": {**dict.fromkeys(keys), "n_processes": 0},
            "notes": dict.fromkeys(keys, reason),
            "details": {},
            "figures": {},
        }
    mu = np.asarray(fit.model.utilities_, dtype=float)
    util = {oid: float(u) for oid, u in zip(fit.data.ids, mu) if math.isfinite(u)}
    comps = np.asarray(getattr(fit.model, "components_", np.zeros(len(mu), dtype=int)))
    notes: dict[str, str] = {}
    if len(set(comps[np.isfinite(mu)].tolist())) > 1:
        notes["components"] = (
            "the comparison graph fell apart into pieces, each normalised on its own; the utilities of "
            "different pieces are not on one scale"
        )
    per_set: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, list[str]] = {}
    graphs_by_set = {s: process_graphs(outcomes, s) for s in ("natural", "control")}
    for set_name, graphs in graphs_by_set.items():
        if graphs:
            per_set[set_name], skipped[set_name] = set_loss(graphs, util, gamma, solver)
    headline: dict[str, Any] = dict.fromkeys(keys)
    natural = per_set.get("natural") or []
    control = per_set.get("control") or []
    if natural:
        headline["instrumentality_loss"] = float(np.mean([r["bellman_error"] for r in natural]))
        fitted_ids = [oid for oid in fit.data.ids if oid in util]
        nat_graphs = [g for g in graphs_by_set["natural"] if g.name in {r["process"] for r in natural}]
        headline["instrumentality_loss_random"] = random_loss(nat_graphs, fitted_ids, gamma, inputs.seed)
    else:
        reason = (
            "no natural process has a utility for every outcome"
            if graphs_by_set["natural"]
            else "the outcomes carry no Markov-process attributes (are the records from the instrumental_values experiment?)"
        )
        notes["instrumentality_loss"] = notes["instrumentality_loss_random"] = reason
    if control:
        headline["instrumentality_loss_control"] = float(np.mean([r["bellman_error"] for r in control]))
    else:
        notes["instrumentality_loss_control"] = (
            "the run has no control processes (--option control=FILE adds them)"
            if not graphs_by_set["control"]
            else "no control process has a utility for every outcome"
        )
    if headline["instrumentality_loss"] is not None and headline["instrumentality_loss_control"] is not None:
        headline["instrumentality_gap"] = headline["instrumentality_loss_control"] - headline["instrumentality_loss"]
    else:
        notes["instrumentality_gap"] = "needs both the natural and the control loss"
    headline["n_processes"] = len(natural)
    control_by_name = {r["process"]: r["bellman_error"] for r in control}
    details = {
        "gamma": gamma,
        "solver": solver,
        "consistency_weight": CONSISTENCY_WEIGHT,
        "skipped_processes": skipped,
        "processes": {s: rows for s, rows in per_set.items()},
    }
    figures = (
        {
            "process_losses": {
                "processes": [r["process"] for r in natural],
                "natural": [r["bellman_error"] for r in natural],
                "control": [control_by_name.get(r["process"]) for r in natural],
                "random": headline["instrumentality_loss_random"],
            }
        }
        if natural
        else {}
    )
    return {"headline": headline, "notes": notes, "details": details, "figures": figures}


def draw_process_losses(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    ax = fig.add_subplot(1, 1, 1)
    names = data["processes"]
    y = np.arange(len(names))[::-1]
    ax.scatter(data["natural"], y, color=PALETTE[0], s=18, label="natural dynamics", zorder=3)
    ctl = [c for c in data["control"] if c is not None]
    if ctl:
        cx = np.array([c if c is not None else np.nan for c in data["control"]], dtype=float)
        ax.scatter(cx, y, color=PALETTE[1], s=18, marker="s", label="control (implausible dynamics)", zorder=3)
        for yy, a, b in zip(y, data["natural"], cx):
            if np.isfinite(b):
                ax.plot([a, b], [yy, yy], color="#bbbbbb", lw=0.8, zorder=1)
    if data.get("random") is not None:
        ax.axvline(data["random"], color=RANDOM_COLOUR, ls="--", lw=1.2, label="random utilities (expected)")
    ax.set_yticks(y, [n if len(n) <= 28 else n[:27] + "…" for n in names], fontsize=7)
    ax.set_xlabel("Bellman error mean |U − (R + γ·E V')| (lower: more instrumental)")
    ax.set_title("Instrumental values: per-process loss, natural vs control")
    ax.legend(frameon=False, fontsize=7)


FIGURES = {"process_losses": draw_process_losses}

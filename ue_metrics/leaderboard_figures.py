"""The leaderboard's figures, drawn from its saved ``figure_data`` (``ue_metrics.leaderboard``): the metrics per
model beside the random responder, utility convergence between models, and a metric against capability (Mazeika et
al. 2025, §4.1 and the scaling plots). matplotlib is imported by ``ue_metrics.figures`` only when drawing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ue_metrics.leaderboard import MIN_MODELS_FOR_CORRELATION, _is_number


def metrics_figure_size(data: Mapping[str, Any]) -> tuple[float, float]:
    ncols, nrows = _grid(len(data["panels"]))
    return (3.3 * ncols + 0.9, (0.32 * len(data["models"]) + 1.3) * nrows)


def _grid(n: int) -> tuple[int, int]:
    ncols = min(3, max(1, n))
    return ncols, math.ceil(n / ncols)


def draw_metrics(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    panels, models = data["panels"], data["models"]
    ncols, nrows = _grid(len(panels))
    y = np.arange(len(models))[::-1]
    short = [m if len(m) <= 22 else m[:21] + "…" for m in models]
    for k, p in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        vals = np.array([v if _is_number(v) else np.nan for v in p["values"]], dtype=float)
        for yi, v, iv in zip(y, vals, p["intervals"]):
            if iv:
                ax.hlines(yi, iv[0], iv[1], color=PALETTE[0], lw=2.5, alpha=0.45)
            if np.isfinite(v):
                ax.plot(v, yi, "o", color=PALETTE[0], ms=6)
        if p.get("random") is not None:
            ax.axvline(p["random"], color=RANDOM_COLOUR, ls="--", lw=1.2, label="random responder")
        ax.set_yticks(y, short if k % ncols == 0 else [""] * len(models), fontsize=8)
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.set_title(p["label"], fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.15)
        if k == 0 and p.get("random") is not None:
            ax.legend(frameon=False, fontsize=7, loc="best")


def draw_convergence(data: Mapping[str, Any], fig: Any) -> None:
    models = data["models"]
    n = len(models)
    mat = np.array([[v if v is not None else np.nan for v in row] for row in data["pearson"]], dtype=float)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_invalid(mat), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_facecolor("#e6e6e6")
    for i in range(n):
        for j in range(n):
            shared = data["n_shared"][i][j]
            text = f"{mat[i, j]:.2f}\nn={shared}" if np.isfinite(mat[i, j]) else f"too few\nn={shared}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="black" if not np.isfinite(mat[i, j]) or abs(mat[i, j]) < 0.6 else "white",
            )
    short = [m if len(m) <= 22 else m[:21] + "…" for m in models]
    ax.set_xticks(range(n), short, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), short, fontsize=8)
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Pearson correlation of utilities")
    ax.set_title(f"Utility convergence over shared outcomes (≥ {data['min_shared']} needed)")


def draw_capability(data: Mapping[str, Any], fig: Any) -> None:
    from ue_metrics.figures import PALETTE, RANDOM_COLOUR

    ax = fig.add_subplot(1, 1, 1)
    xs = np.array([p["x"] for p in data["points"]], dtype=float)
    ys = np.array([p["y"] for p in data["points"]], dtype=float)
    ax.plot(xs, ys, "o", color=PALETTE[0], ms=6)
    for p in data["points"]:
        name = p["model"] if len(p["model"]) <= 24 else p["model"][:23] + "…"
        ax.annotate(name, (p["x"], p["y"]), xytext=(4, 3), textcoords="offset points", fontsize=7)
    corr = data.get("correlation") or {}
    if len(xs) >= 2 and float(xs.std()) > 0:
        slope, icept = np.polyfit(xs, ys, 1)
        grid = np.linspace(xs.min(), xs.max(), 20)
        ax.plot(grid, slope * grid + icept, color=PALETTE[1], lw=1, alpha=0.7)
    if data.get("random") is not None:
        ax.axhline(data["random"], color=RANDOM_COLOUR, ls="--", lw=1.2, label="random responder")
        ax.legend(frameon=False, fontsize=7)
    ax.set_xlabel(data["score"])
    ax.set_ylabel(data["label"])
    if corr.get("pearson") is not None:
        r = f"Pearson r = {corr['pearson']:.2f} (n = {corr['n']} models)"
    else:
        r = f"no correlation: {corr.get('n', len(xs))} model(s), at least {MIN_MODELS_FOR_CORRELATION} needed"
    ax.set_title(f"{data['label']} against {data['score']}\n{r}", fontsize=9)


FIGURES = {"metrics": draw_metrics, "convergence": draw_convergence}
FIGURE_NOTES = {
    "metrics": "One dot per model, its 95% interval as a bar where the analysis gives one; the dashed line is the random "
    "responder. A dot whose bar reaches the dashed line is not distinguishable from answering at random.",
    "convergence": "Each cell is the Pearson correlation of two models' utilities over the outcomes both were asked about "
    "(n = their count). Near 1: the models rank outcomes alike; near 0: unrelated; grey: too few shared outcomes.",
    "capability": "One point per model found in the capabilities table, the metric against its capability score; the line "
    "is a least-squares fit and r its Pearson correlation (few models make r very uncertain).",
}


def drawer(name: str):
    """The draw function of a leaderboard figure (``capability_*`` figures share one)."""
    return draw_capability if name.startswith("capability_") else FIGURES.get(name)


def note(name: str) -> str:
    return FIGURE_NOTES["capability"] if name.startswith("capability_") else FIGURE_NOTES.get(name, "")

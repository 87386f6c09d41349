"""Figures as real files: every analysis draws from saved data onto a matplotlib figure, saved as PNG and SVG.

matplotlib (the ``[plots]`` extra) is imported only here, only when a figure is drawn, with the non-interactive
Agg backend, so ``ue fit`` and the analyses never pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.jsonl import atomic_file

PALETTE = ("#3b6ea5", "#d1603d", "#5b9a68", "#8e6bb8", "#c9a227", "#6b6b6b", "#2aa1b3", "#b5487d")
RANDOM_COLOUR = "#9a9a9a"


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("drawing figures needs matplotlib; install it with: pip install 'ue[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "font.size": 9,
            "svg.hashsalt": "ue",
            "svg.fonttype": "none",
        }
    )
    return plt


def save(
    draw: Callable[[Any, Any], None],
    data: Any,
    stem: Path,
    formats: Sequence[str] = ("png", "svg"),
    title: str | None = None,
    size: tuple[float, float] = (6.4, 4.2),
) -> list[Path]:
    """Draw ``data`` with ``draw(data, fig)`` and save ``stem.png`` / ``stem.svg``; returns the paths."""
    plt = pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=size)
    try:
        draw(data, fig)
        if title:
            fig.text(0.99, 0.005, str(title), ha="right", va="bottom", fontsize=7, color="#777777")
        fig.tight_layout()
        paths = []
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            with atomic_file(path, "wb") as fh:  # a full disk leaves no 0-byte PNG, and an old figure stays whole
                fig.savefig(fh, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
        return paths
    finally:
        plt.close(fig)


def to_svg(
    draw: Callable[[Any, Any], None],
    data: Any,
    title: str | None = None,
    size: tuple[float, float] = (6.4, 4.2),
    id_prefix: str = "f",
) -> str:
    """Draw ``data`` with ``draw(data, fig)`` and return the figure as an ``<svg>`` element for inlining in HTML: no
    XML prolog or doctype, no fixed size (it scales to its container), and every element id prefixed with
    ``id_prefix`` so that several figures can share one page. Text stays text (``svg.fonttype: none``), escaped by
    matplotlib's SVG writer."""
    import io
    import re

    plt = pyplot()
    fig = plt.figure(figsize=size)
    try:
        draw(data, fig)
        if title:
            fig.text(0.99, 0.005, str(title), ha="right", va="bottom", fontsize=7, color="#777777")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    svg = head + ' role="img" class="figure-svg" preserveAspectRatio="xMidYMid meet"' + svg[head_end:]
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{id_prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{id_prefix}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{id_prefix}-{m.group(1)}"', svg)
    return svg

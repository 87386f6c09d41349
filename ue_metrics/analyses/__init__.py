"""The paper's analyses, one module per experiment, mirrored by name in ``ue_tasks/experiments/``.

Each module is a pure function of (records, outcome attributes, an optional Thurstonian fit, options):

    analyse(records, outcomes, fit, options) -> {"headline": {...}, "notes": {...}, "details": {...},
                                                "figures": {name: data}}
    FIGURES = {name: draw(data, fig) -> None}   # matplotlib, imported only when drawing

``headline`` is flat: each value a finite number, a short string (a name, a form) or None — and every None has a
reason in ``notes``. ``figures`` holds the data each figure is drawn from, so figures are redrawn from a saved
``analysis.json`` without the records (``draw_figures``). numpy/scipy only, no torch, no harness.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.jsonl import read_json, write_json

ANALYSIS_FILE = "analysis.json"


def module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            raise UserError(f"there is no analysis named {name!r} in ue_metrics.analyses") from None
        raise


def check_headline(result: dict[str, Any], where: str) -> dict[str, Any]:
    """Every headline value is a finite number, a string or None; a None carries a reason in ``notes``."""
    headline = result.setdefault("headline", {})
    notes = result.setdefault("notes", {})
    for key, value in list(headline.items()):
        if isinstance(value, bool):
            headline[key] = value
        elif isinstance(value, (int, float)):
            if not math.isfinite(float(value)):
                notes.setdefault(key, f"{key} is not finite ({value}) on these records")
                headline[key] = None
            else:
                headline[key] = float(value) if isinstance(value, float) else value
        elif value is not None and not isinstance(value, str):
            raise TypeError(f"{where}: headline {key!r} is a {type(value).__name__}; headlines are flat numbers or strings")
        if headline[key] is None and key not in notes:
            raise ValueError(f"{where}: headline {key!r} is null without a reason in notes")
    return result


def run(name: str, records: Sequence[dict], outcomes: Mapping[str, dict], fit: Any = None,
        options: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run analysis ``name`` and check its result."""
    result = module(name).analyse(records, outcomes, fit, dict(options or {}))
    return check_headline(result, f"analysis {name}")


def write(result: Mapping[str, Any], out: str | Path) -> Path:
    """``out/analysis.json`` through a temporary name (a full disk or read-only folder is one sentence, and the old
    file, if any, stays whole)."""
    return write_json(Path(out) / ANALYSIS_FILE, result, hint="free space or give --out a folder you can write to")


def read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / ANALYSIS_FILE
    result = read_json(path, lambda exc: f"{path}: cannot be read as an analysis ({exc}); rerun `ue analyse`",
                       missing=f"{path}: no analysis here; run `ue analyse` on the run folder first")
    if not isinstance(result, dict):
        kind = {list: "an array", str: "a string", type(None): "null"}.get(type(result), "a number")
        raise UserError(f"{path}: not an analysis (it holds {kind}, not the JSON object `ue analyse` writes); rerun "
                        "`ue analyse` on the run folder")
    return result


def draw_figures(result: Mapping[str, Any], out: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Draw every figure of ``result`` (from its saved data) as PNG and SVG into ``out/figures``."""
    from ue_metrics import figures

    name = result.get("analysis") or result.get("experiment")
    drawers = getattr(module(str(name)), "FIGURES", {})
    paths: list[Path] = []
    for fig_name, data in (result.get("figures") or {}).items():
        draw = drawers.get(fig_name)
        if draw is None or data is None:
            continue
        paths += figures.save(draw, data, Path(out) / "figures" / fig_name, formats, title=result.get("model"))
    return paths

"""Functions stay short enough to read: no function of the four packages is over 120 lines (the seams the long ones
had — ``# ---`` sections, resume/step/summary, headline/figures, one parser per CLI command — are functions now)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 120


def long_functions(package: str, limit: int = LIMIT) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    return out


@pytest.mark.parametrize("package", ["ue_metrics", "ue_control", "ue_tasks", "ue_cli"])
def test_no_function_is_over_120_lines(package):
    assert long_functions(package) == []

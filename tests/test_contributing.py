"""Issue 23 item 7: the contributor's page exists, the README links it, and every repository path it names exists
(a page that points at moved files misleads the next contributor)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_contributors_page_is_linked_and_its_paths_exist():
    page = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "(CONTRIBUTING.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    for heading in ("## Adding an experiment", "## The layering rule", "## Running the tests"):
        assert heading in page
    named = set(re.findall(r"`((?:ue_cli|ue_metrics|ue_tasks|ue_control|tests|docs|task_configs)/[^`<>\s:]*)", page))
    assert len(named) > 15
    missing = sorted(p for p in named if not p.endswith("_") and not (ROOT / p.rstrip("/")).exists())  # test_<name>: a pattern
    assert missing == [], missing


# the analysis a contributor writes beside the page's example spec: the share of answers for the option shown first
EXAMPLE_ANALYSIS = '''"""Order sensitivity: how much more often the option shown first is chosen than a fair coin would."""

from __future__ import annotations

from dataclasses import dataclass

from ue_metrics.analyses import AnalysisOptions


@dataclass(frozen=True)
class Options(AnalysisOptions):
    pass


def analyse(records, outcomes, fit, options, inputs):
    first = [r["p_a"] if r["shown_first"] == "a" else 1 - r["p_a"] for r in records if r["p_a"] is not None]
    gap = sum(first) / len(first) - 0.5
    return {"headline": {"order_gap": gap, "order_gap_random": 0.0}, "notes": {}, "details": {"n": len(first)},
            "figures": {}}


FIGURES = {}
'''


def test_an_example_experiment_is_its_two_modules_and_nothing_else(tmp_path):
    """The page's example spec, copied from the page as it is, and a small analysis beside it, added to a copy of the
    packages: `ue experiments` lists it, `ue run` runs it on the simulator and writes its analysis, the lm-eval YAMLs
    are generated for it and the Inspect tasks appear — no other file of the project edited."""
    import shutil
    import subprocess
    import sys

    page = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    spec = page.split("### 1. The spec", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    for pkg in ("ue_metrics", "ue_tasks", "ue_control", "ue_cli"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "task_configs"))
    shutil.copytree(ROOT / "task_configs", tmp_path / "task_configs")
    (tmp_path / "ue_tasks" / "experiments" / "order_sensitivity.py").write_text(spec, encoding="utf-8")
    (tmp_path / "ue_metrics" / "analyses" / "order_sensitivity.py").write_text(EXAMPLE_ANALYSIS, encoding="utf-8")
    env = {
        "PYTHONPATH": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "UE_CACHE_DIR": str(tmp_path / "cache"),
    }

    def ue(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "ue_cli.main", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert "order_sensitivity" in ue("experiments")
    ue("run", "order_sensitivity", "--harness", "simulate", "--model", "sim", "--outcomes", "12", "--out", "run", "--no-cache")
    result = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert result["experiment"] == "order_sensitivity" and set(result["headline"]) == {"order_gap", "order_gap_random"}
    assert result["n_records"] == 12 * 11  # all pairs, both orderings
    written = ue("tasks", "generate")
    assert "order_sensitivity/utility_order_sensitivity.yaml" in written
    code = "from ue_tasks.harness.inspect._registry import TASKS; print(sorted(TASKS))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "utility_order_sensitivity" in proc.stdout, proc.stderr[-2000:]

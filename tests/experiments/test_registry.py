"""The experiment registry and everything generated from it agree: `ue experiments`, the lm-eval YAMLs, the
Inspect task names, the analyses mirrored by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ue_metrics import analyses
from ue_tasks import experiments
from ue_tasks.harness.lm_eval import configs


def test_every_experiment_has_its_analysis_and_a_simulated_responder():
    registry = experiments.all_experiments()
    assert {"utilities", "transitivity"} <= set(registry)
    for name, exp in registry.items():
        module = analyses.module(exp.analysis_name)
        assert callable(module.analyse), name
        assert exp.headline and len(set(exp.headline)) == len(exp.headline), name
        assert set(exp.lower_is_better) <= set(exp.headline), name
        assert exp.responders, f"{name} needs a known-truth simulated responder"
        assert module.__doc__ and exp.section, name


def test_the_task_yamls_are_generated_from_the_registry():
    assert configs.stale() == [], "run `ue tasks generate`"
    out = subprocess.run([sys.executable, "-m", "ue_cli.main", "tasks", "generate", "--check"], capture_output=True, text=True)
    assert out.returncode == 0 and "match" in out.stdout


def test_inspect_task_names_follow_the_registry():
    pytest.importorskip("inspect_ai")
    from ue_tasks.harness.inspect._registry import TASKS

    yaml_tasks = {rel.rsplit("/", 1)[1].removesuffix(".yaml") for rel in configs.generate()}
    chat = {t for t in yaml_tasks if not t.startswith("base_")}
    assert chat <= set(TASKS), chat - set(TASKS)


def test_ue_experiments_lists_the_registry_with_query_counts():
    out = subprocess.run([sys.executable, "-m", "ue_cli.main", "experiments"], capture_output=True, text=True, check=True).stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith("prompts")}
    assert {"utilities", "transitivity"} <= set(lines)
    assert "6,000" in lines["transitivity"] and "triads" in lines["transitivity"]
    # the main run on 510 outcomes: ⌊2N·log2 N⌋ = 9,174 training pairs as `ue run` asks them, or by the companion's
    # rule 9,510 (initial 510 + 18 rounds of 500); and 1,000 holdout, × 2
    assert experiments.get("utilities").queries_per_model(510) == 2 * (9174 + 1000)
    assert experiments.get("utilities").queries_per_model(510, budget_rule="rounds") == 2 * (9510 + 1000)
    assert "21,020 prompts" in out

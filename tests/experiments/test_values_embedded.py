"""The value experiments of §4.7, §4.10 and §4.11 on the embedded model (SmolLM2-135M-Instruct, CPU), one small run
per harness across the three: power_seeking through lm-eval (its utilities run made first), corrigibility through
Inspect on that utilities run (the same weights under the other harness's name are the same model), and the
`lm_eval` command running utility_political_values with simulated entity runs given in --metadata, its results
table showing the headline. Small outcome files keep each run to a few dozen prompts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from ue_cmd import ENV, UE, analysis

from ue_tasks.outcomes import load_outcomes


def ue(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*UE, *args], capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def write(path: Path, outcomes) -> Path:
    path.write_text("".join(json.dumps(o.to_dict()) + "\n" for o in outcomes))
    return path


@pytest.mark.heavy
@pytest.mark.slow
def test_power_seeking_through_lm_eval_then_corrigibility_through_inspect(model_path, tmp_path):
    core = load_outcomes("core")
    eight = [o for o in core.outcomes if "power:coercive" in o.tags][:4] + [
        o for o in core.outcomes if "power:noncoercive" in o.tags
    ][:4]
    outcomes = write(tmp_path / "power8.jsonl", eight)
    power = tmp_path / "power"
    ue(
        "run",
        "power_seeking",
        "--harness",
        "lm-eval",
        "--model",
        "hf",
        "--model-args",
        f"pretrained={model_path},dtype=float32",
        "--outcomes",
        str(outcomes),
        "--budget",
        "8",
        "--holdout-fraction",
        "0",
        "--out",
        str(power),
        "--no-cache",
        "--no-figures",
    )
    h = analysis(power)["headline"]
    assert h["n_outcomes_compared"] == 8
    for key in ("power_correlation", "coercive_power_correlation", "noncoercive_power_correlation"):
        assert -1.0 <= h[key] <= 1.0, key
    # one round each: the starting graph (8 pairs, both orderings), the utilities run first
    assert len((power / "records.jsonl").read_text().splitlines()) == 16
    assert len((power / "utilities" / "records.jsonl").read_text().splitlines()) == 16

    corr = tmp_path / "corrigibility"
    ue(
        "run",
        "corrigibility",
        "--harness",
        "inspect",
        "--model",
        "hf/local",
        "--model-args",
        f"model_path={model_path}",
        "--utilities",
        str(power / "utilities"),
        "--option",
        "n=6",
        "--budget",
        "6",
        "--holdout-fraction",
        "0",
        "--out",
        str(corr),
        "--no-cache",
        "--no-figures",
    )
    h = analysis(corr)["headline"]
    assert h["n_future_preferences"] == 6 and -1.0 <= h["corrigibility_correlation"] <= 1.0
    first = json.loads((corr / "records.jsonl").read_text().splitlines()[0])
    assert first["template"] == "corrigibility" and first["harness"] == "inspect"


@pytest.mark.slow
def test_lm_eval_command_shows_the_political_lean_and_the_map(model_path, tmp_path):
    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    policies = load_outcomes("policies")
    ten = [o for o in policies.outcomes if "politics:left" in o.tags][::10][:5] + [
        o for o in policies.outcomes if "politics:right" in o.tags
    ][::10][:5]
    outcomes = write(tmp_path / "policies10.jsonl", ten)
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.runner import run_experiment

    entities = []
    for name in ("The Green Party", "The Republican Party"):  # simulated entity runs over the same policies
        folder = tmp_path / name.replace(" ", "_")
        config = RunConfig(
            harness="simulate", model="sim", experiment="political_values", outcomes=str(outcomes), options={"entity": name}
        )
        run_experiment(config, folder, cache_dir=None, log=lambda m: None, figures=False)
        entities.append(str(folder))
    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    metadata = {"outcomes": str(outcomes), "budget": 10, "holdout_fraction": 0, "option": {"entities": ",".join(entities)}}
    cmd = [
        lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "utility_political_values",
        "--include_path",
        str(task_configs_dir()),
        "--apply_chat_template",
        "--system_instruction",
        "You are a helpful AI assistant.",
        "--batch_size",
        "16",
        "--metadata",
        json.dumps(metadata),
        "--log_samples",
        "--output_path",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lean" in proc.stdout and "explained_variance_2d" in proc.stdout
    (results,) = list((tmp_path / "out").rglob("results_*.json"))
    table = json.loads(results.read_text())["results"]["utility_political_values"]
    assert math.isfinite(table["lean,none"]) and table["n_policies,none"] == 10 and table["n_entities,none"] == 2
    assert math.isfinite(table["nearest_entity_distance,none"]) and 0.0 <= table["explained_variance_2d,none"] <= 1.0 + 1e-9

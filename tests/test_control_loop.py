"""The utility-control loop in small on the embedded SmolLM2-135M-Instruct (CPU): a simulated assembly with known
preferences (6 citizens, 8 policies), a few LoRA steps toward it, and the before/after evaluation through the
lm-eval plugin; the model must move toward the assembly's answers, including on held-out outcomes it never saw,
and lose its position bias on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ue_control.assembly import assemble, policies_path
from ue_control.assembly import load_config as assemble_config
from ue_control.evaluate import evaluate
from ue_control.evaluate import load_config as evaluate_config
from ue_control.train import load_config as train_config
from ue_control.train import train
from ue_metrics.errors import UserError

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


def test_small_loop_moves_the_model_toward_the_assembly(model_path, tmp_path):
    lines = policies_path().read_text(encoding="utf-8").splitlines()
    small = tmp_path / "policies8.jsonl"
    small.write_text("\n".join(lines[:4] + lines[16:20]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    # a strong lean (no family or outcome terms) so that a few steps can show the direction
    assemble(
        assemble_config(
            None,
            [
                "simulator=simulate",
                "n_citizens=6",
                "heldout_outcome_fraction=0.5",
                "holdout_fraction=0.0",
                "utility_model={family_sd: 0.0, attribute_sd: 0.0, outcome_sd: 0.0, lean: 2.0}",
                "seed=3",
            ],
            out=str(run),
            outcomes=str(small),
        ),
        log=lambda *_: None,
    )
    info = json.loads((run / "assemble.json").read_text(encoding="utf-8"))
    config = train_config(
        None,
        ["method=lora", "steps=4", "batch_size=4", "micro_batch_size=4", "learning_rate=3e-3", "lora_r=8", "eval_max_examples=8"],
        run=str(run),
        out=str(tmp_path / "t"),
        model=model_path,
    )
    summary = train(config, log=lambda *_: None)
    start, end = summary["evals"]["start"], summary["evals"]["end"]
    # toward the assembly on training pairs and on pairs of outcomes never trained on
    assert end["train"]["mae"] < start["train"]["mae"], (start, end)
    assert end["heldout"]["mae"] < start["heldout"]["mae"], (start, end)
    # a finished folder is not trained again
    with pytest.raises(UserError, match="already holds a finished training run"):
        train(config, log=lambda *_: None)
    # LoRA checkpoints would hold the adapter only; the saved model is a plain HF folder
    assert (tmp_path / "t" / "model" / "config.json").is_file()

    texts = tmp_path / "neutral.txt"
    texts.write_text(
        "Water boils at a lower temperature on a mountain.\nThe library opens at nine.\nLeaves fall in autumn.\n",
        encoding="utf-8",
    )
    report = evaluate(
        evaluate_config(
            None,
            ["batch_size=8", f"neutral_texts={texts}"],
            run=str(run),
            out=str(tmp_path / "e"),
            trained=str(tmp_path / "t" / "model"),
            original=model_path,
        ),
        log=lambda *_: None,
    )
    s = report["summary"]
    assembly_lean = s["assembly_lean"]
    assert s["lean_before"] is not None and s["lean_after"] is not None and assembly_lean is not None
    # the first steps remove the model's position bias (P("A") ≈ 0.9 whatever is shown); the utility-term
    # direction needs more steps than a CI test affords (docs/control.md, "What the demo shows": 16 steps)
    assert abs(s["position_bias_after"]) < abs(s["position_bias_before"]), s
    assert abs(end["heldout"]["position_bias"]) < abs(start["heldout"]["position_bias"]), (start, end)
    assert s["n_heldout_outcomes"] == info["n_heldout_outcomes"] == 4
    assert Path(report["figure"]).is_file()

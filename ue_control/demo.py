"""``ue control demo``: the whole utility-control loop (Mazeika et al. 2025, "Utility control"; docs/method.md §9) on a
CPU in minutes — a simulated assembly with known, strong preferences (``simulator: simulate``,
``ue_control.simulated``), the embedded model trained toward it on the training outcomes, and the before/after
evaluation on held-out outcomes through the lm-eval plugin. Writes under ``OUT``::

    assembly/     the assemble run folder        trained/     the training folder (trained/model: the HF model)
    evaluation/   evaluation.json, records, fits, figures/control.png, report.html (ue report of the trained model)
    control.json  the headline: held-out Spearman, lean, position bias before and after, the assembly's lean

Every setting is a ``--set`` override of ``DemoConfig``; the defaults are sized for two CPU cores.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ue_control import config as cfg
from ue_metrics.errors import UserError


@dataclass
class DemoConfig:
    out: str
    model: str = "embedded"
    n_citizens: int = 60
    seed: int = 0
    heldout_outcome_fraction: float = 0.375  # 12 of the 32 policies held out: 66 held-out pairs
    holdout_fraction: float = 0.25  # pairs held out inside each part (coherence needs ≥ 10)
    method: str = "lora"  # or full
    steps: int = 16
    batch_size: int = 8
    micro_batch_size: int = 8
    learning_rate: float = 2.0e-3
    eval_max_examples: int = 16
    utility_model: dict | None = None
    batch_size_eval: int = 16

    def check(self, where: str) -> None:
        if self.n_citizens < 1 or self.steps < 1:
            raise UserError(f"{where}: n_citizens and steps must be at least 1")


def load_config(path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> DemoConfig:
    return cfg.load(DemoConfig, path, overrides, **given)


def demo(config: DemoConfig, log=print) -> dict[str, Any]:
    from ue_control.assembly import AssembleConfig, assemble
    from ue_control.evaluate import EvaluateConfig, evaluate
    from ue_control.train import TrainConfig, train

    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if (out / "control.json").is_file():
        raise UserError(f"{out} already holds a finished demo (control.json); give a new --out folder")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    acfg = cfg.build(
        AssembleConfig,
        {
            "out": str(out / "assembly"),
            "simulator": "simulate",
            "n_citizens": config.n_citizens,
            "seed": config.seed,
            "heldout_outcome_fraction": config.heldout_outcome_fraction,
            "holdout_fraction": config.holdout_fraction,
            "utility_model": config.utility_model,
        },
        "demo",
    )
    assembled = assemble(acfg, log=log)
    times["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tcfg = cfg.build(
        TrainConfig,
        {
            "run": str(out / "assembly"),
            "out": str(out / "trained"),
            "model": config.model,
            "method": config.method,
            "steps": config.steps,
            "batch_size": config.batch_size,
            "micro_batch_size": config.micro_batch_size,
            "learning_rate": config.learning_rate,
            "seed": config.seed,
            "eval_max_examples": config.eval_max_examples,
        },
        "demo",
    )
    trained = train(tcfg, log=log)
    times["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ecfg = cfg.build(
        EvaluateConfig,
        {
            "run": str(out / "assembly"),
            "out": str(out / "evaluation"),
            "original": config.model,
            "trained": str(out / "trained" / "model"),
            "batch_size": config.batch_size_eval,
            "seed": config.seed,
        },
        "demo",
    )
    report = evaluate(ecfg, log=log)
    times["evaluate"] = time.perf_counter() - t0
    report_path = _ue_report(out / "evaluation")
    control = {
        **report["summary"],
        "assembly": {
            "n_citizens": config.n_citizens,
            "citizens_per_party": assembled["citizens_per_party"],
            "utility_model": assembled.get("utility_model"),
        },
        "training": {
            "steps": config.steps,
            "method": config.method,
            "learning_rate": config.learning_rate,
            "evals": trained.get("evals"),
        },
        "seconds": {k: round(v, 1) for k, v in times.items()} | {"total": round(sum(times.values()), 1)},
        "config": cfg.to_dict(config),
        "evaluation": str(out / "evaluation" / "evaluation.json"),
        "figure": report.get("figure"),
        "report": str(report_path) if report_path else None,
    }
    (out / "control.json").write_text(json.dumps(control, indent=2) + "\n", encoding="utf-8")
    control["_report"] = report
    return control


def _ue_report(folder: Path) -> Path | None:
    """``ue report`` (the leaderboard issue's HTML report) of the trained model's held-out records."""
    import shutil

    src = folder / "records_trained.jsonl"
    run = folder / "trained_run"
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, run / "records.jsonl")
    try:
        from ue_tasks.leaderboard import write_report

        return write_report(run, folder / "report.html")
    except (ImportError, UserError):
        return None

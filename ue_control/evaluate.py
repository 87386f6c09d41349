"""``ue control evaluate``: the before/after report of utility control (Mazeika et al. 2025, "Utility
control"). The original and the trained model are elicited through the lm-eval plugin — the same task, prompt
and system message as any ue run — on the *held-out outcomes* of an assemble run (optionally also on the
training outcomes), and compared side by side with the assembly:

- agreement: share of held-out pairs where the model prefers the same outcome as the assembly (pairs the
  assembly is exactly split on are skipped), and the mean absolute difference of P(a ≻ b);
- spearman: rank correlation of the model's Thurstonian utilities with the assembly's;
- political bias: utility gap (left − right, standardised utilities) and left share (see ``ue_control.bias``);
- coherence: held-out accuracy of the model's own utility fit.

Writes ``OUT/evaluation.json``, the models' records and fit folders, and prints the table.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ue_control import bias
from ue_control import config as cfg
from ue_control.assembly import PARTS, fit_or_none, measures
from ue_metrics.errors import UserError
from ue_tasks.templates import SYSTEM_MESSAGE

ROWS = (
    ("agreement", "agreement with assembly"),
    ("mean_abs_diff", "mean |ΔP| vs assembly"),
    ("spearman", "Spearman ρ with assembly"),
    ("utility_gap", "utility gap (L − R)"),
    ("left_share", "left share of L-vs-R pairs"),
    ("holdout_accuracy", "coherence: holdout acc."),
)


@dataclass
class EvaluateConfig:
    run: str  # folder written by `ue control assemble`
    out: str
    trained: str  # the trained model folder (OUT/model of `ue control train`)
    original: str = "embedded"
    backend: str = "hf"
    model_args: dict | None = None
    batch_size: int = 16
    device: str = "cpu"
    system_message: str = SYSTEM_MESSAGE
    parts: list[str] | None = None  # outcome parts to evaluate: ["heldout"] (default) or ["heldout", "train"]
    prefix_cache: bool = True
    task: str = "utility_mini"

    def check(self, where: str) -> None:
        for part in self.parts or []:
            if part not in PARTS:
                raise UserError(f"{where}: field 'parts' may hold only {' and '.join(PARTS)}, got {part!r}")


def load_config(path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> EvaluateConfig:
    return cfg.load(EvaluateConfig, path, overrides, **given)


def _run_info(run: Path) -> dict:
    path = run / "assemble.json"
    if not path.is_file():
        raise UserError(f"{path}: not found; 'run' must be a folder written by `ue control assemble`")
    return json.loads(path.read_text(encoding="utf-8"))


def _lm(config: EvaluateConfig, model: str, files: list[Path], plan: dict):
    from ue_control.elicit import load_lm, offline, resolve_model

    if not (config.prefix_cache and config.backend == "hf"):
        return load_lm(model, config.backend, config.model_args, config.batch_size, config.device)
    from transformers import AutoTokenizer

    from ue_tasks.harness.lm_eval.hooks import documents
    from ue_tasks.harness.lm_eval.prefix_cache import chat_prompts, prefix_cached_hflm
    from ue_tasks.plan import PlanSpec

    offline()
    path = resolve_model(model)
    if not Path(path).is_dir():
        raise UserError(f"model folder {path} does not exist; give the trained model's folder (OUT/model of `ue control train`)")
    tok = AutoTokenizer.from_pretrained(path)
    docs = [d for f in files for d in documents("utilities", str(f), PlanSpec(**plan))]
    kwargs = {"device": config.device, "batch_size": config.batch_size, "dtype": "float32", **(config.model_args or {})}
    return prefix_cached_hflm(path, chat_prompts(tok, [d["prompt"] for d in docs[:64]], config.system_message), **kwargs)


def evaluate(config: EvaluateConfig, log=print) -> dict[str, Any]:
    from ue_control.elicit import elicit
    from ue_metrics import records as rec
    from ue_tasks.queries import run_id_for

    run, out = Path(config.run), Path(config.out)
    info = _run_info(run)
    acfg = info["config"]
    plan = {"seed": acfg["seed"], "degree": acfg["degree"], "holdout_fraction": acfg["holdout_fraction"]}
    if acfg.get("budget") is not None:
        plan["budget"] = acfg["budget"]
    parts = config.parts or ["heldout"]
    files = {p: run / f"outcomes_{p}.jsonl" for p in parts}
    from ue_tasks.outcomes import load_outcomes

    coding = {}
    for p in PARTS:
        coding.update(bias.coding_from_outcomes(load_outcomes(str(run / f"outcomes_{p}.jsonl")).outcomes))
    assembly = rec.read(run / "assembly_records.jsonl")
    report: dict[str, Any] = {"run": str(run), "parts": parts, "models": {"original": config.original, "trained": config.trained},
                              "system_message": config.system_message, "plan": plan, "results": {}}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model_records: dict[str, list[dict]] = {}
    for label, model in (("original", config.original), ("trained", config.trained)):
        path = out / f"records_{label}.jsonl"
        lm = _lm(config, model, list(files.values()), plan)
        recs = []
        for part in parts:
            log(f"ue control evaluate: eliciting the {label} model ({model}) on {part} outcomes via lm-eval")
            recs += elicit(lm, str(files[part]), plan, config.system_message, task=config.task, model_name=model,
                           run_id=run_id_for("control-eval", model, part), outcome_split=part, role=label)  # fmt: skip
        del lm
        rec.write(recs, path)
        model_records[label] = recs
    for part in parts:
        a_recs = [r for r in assembly if r.get("outcome_split") == part]
        a_utils, _ = fit_or_none(a_recs)
        a_prefs = bias.pair_preferences(a_recs)
        table: dict[str, dict[str, Any]] = {}
        for label, recs in model_records.items():
            mine = [r for r in recs if r["outcome_split"] == part]
            utils, _ = fit_or_none(mine, out / "fits" / label / part)
            row = measures(mine, coding, None)
            row.update(bias.agreement(bias.pair_preferences(mine), a_prefs))
            row["spearman"] = bias.spearman(utils, a_utils) if utils and a_utils else float("nan")
            table[label] = row
        arow = measures(a_recs, coding, None)
        arow.update({"agreement": 1.0, "mean_abs_diff": 0.0, "spearman": 1.0})
        table["assembly"] = arow
        slices = json.loads((run / "bias.json").read_text(encoding="utf-8"))
        for who, parts_rows in slices.items():
            if who.startswith("slice:") and part in parts_rows:
                table[who] = parts_rows[part]
        report["results"][part] = table
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def format_table(report: dict[str, Any]) -> str:
    blocks = []
    for part, table in report["results"].items():
        cols = list(table)
        lines = [f"{part} outcomes", f"{'':<28}" + "".join(f"{c.removeprefix('slice:'):>13}" for c in cols)]
        for key, name in ROWS:
            lines.append(f"{name:<28}" + "".join(f"{_fmt(table[c].get(key)):>13}" for c in cols))
        lines.append(f"{'left-vs-right pairs':<28}" + "".join(f"{table[c].get('n_left_right_pairs', ''):>13}" for c in cols))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_report(report: dict[str, Any], out: Path) -> None:
    print(format_table(report))
    print(f"wrote {out / 'evaluation.json'}", file=sys.stderr)

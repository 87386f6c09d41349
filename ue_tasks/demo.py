"""``ue demo``: the whole path on the two embedded models, on the CPU, offline — prepare SmolLM2-135M-Instruct (a
chat model) and Gemma 3 270M (a base model), run the ``utility_mini`` / ``base_utility_mini`` lm-eval task in
log-prob mode through lm-eval's Python API, read the samples back as preference records carrying the model's real
name, fit the Thurstonian model, analyse each run as ``ue run utilities`` would (``analysis.json``, figures), print
each summary, and end with a two-model leaderboard (``ue leaderboard``) and its HTML report.

Speed: the models run as lm-eval's ``ue-hf`` type (``ue_tasks.harness.lm_eval.models``): bfloat16 where the CPU
computes it natively, the key/value cache of the stem every prompt shares computed once, only the answer position's
logits, batch sizes for the hardware.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

TASK = "utility_mini"
BASE_TASK = "base_utility_mini"
DEMO_MODELS = ("smollm2-135m", "gemma3-270m")
# training pairs per model: ⌊N·log2 N⌋ for mini's 62 outcomes (half the full plan's 738; plus the 94 holdout pairs),
# so that both models together take about the time one model's full plan took; --budget sets it
DEMO_BUDGET = 369


def _offline() -> None:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def lm_eval_model(folder: Path, *, dtype: str = "auto", batch_size: int | str = "auto", prefix_cache: bool = True) -> Any:
    """lm-eval's model for an embedded model on the CPU: ``ue-hf`` (the stem's cache, only the scored positions, batch
    sizes for the hardware), or with ``prefix_cache=False`` lm-eval's plain ``HFLM`` running every prompt in full (the
    baseline). ``dtype`` (``ue_tasks.dtypes``): auto, the checkpoint's own (float32 for the embedded models); native,
    bfloat16 where the CPU computes it natively, else float32."""
    from ue_tasks.harness.lm_eval.models import UeHFLM, resolve_dtype

    if prefix_cache:
        return UeHFLM(pretrained=str(folder), device="cpu", batch_size=batch_size, dtype=dtype)
    from lm_eval.models.huggingface import HFLM

    return HFLM(
        pretrained=str(folder),
        device="cpu",
        batch_size=8 if batch_size == "auto" else batch_size,
        dtype=resolve_dtype(dtype, "cpu", str(folder)),
    )


def run_model(
    key: str,
    out: Path,
    *,
    budget: int | None,
    batch_size: int | str,
    prefix_cache: bool,
    outcomes: str,
    dtype: str,
    top: int,
    log: Callable[[str], None],
) -> dict:
    """Elicit, fit and analyse one embedded model into ``out``; returns its analysis."""
    import torch

    from ue_metrics import records as rec
    from ue_metrics.fitting import fit_records
    from ue_tasks import model
    from ue_tasks.analysis import analyse_records, write_result
    from ue_tasks.harness.lm_eval.hooks import documents
    from ue_tasks.harness.lm_eval.run import records_from_results, run_lm_eval
    from ue_tasks.model_identity import from_lm_eval
    from ue_tasks.outcomes import check_special_tokens, load_outcomes, tokenizer_special_tokens
    from ue_tasks.plan import PlanSpec
    from ue_tasks.queries import run_id_for

    embedded = model.get(key)
    started = time.perf_counter()
    folder = model.prepare(log=log, name=key)
    from ue_tasks.harness.lm_eval.models import resolve_dtype

    dtype = resolve_dtype(dtype, "cpu", str(folder))  # the one rule (ue_tasks.dtypes): auto is the checkpoint's own
    task = BASE_TASK if embedded.base_model else TASK
    metadata = {"outcomes": str(outcomes)} | ({"budget": budget} if budget is not None else {})
    docs = documents("utilities", str(outcomes), PlanSpec(budget=budget), base_model=embedded.base_model)
    kind = "base model, no chat template" if embedded.base_model else "chat model, chat template"
    log(
        f"ue demo: {task} ({outcomes} outcomes) on {embedded.name} ({kind}; {folder}), {len(docs)} prompts "
        f"(pairs × 2 orderings), CPU, {dtype}"
    )
    from transformers import AutoTokenizer

    check_special_tokens(
        load_outcomes(str(outcomes)), tokenizer_special_tokens(AutoTokenizer.from_pretrained(str(folder))), embedded.name
    )
    torch.manual_seed(0)
    lm = lm_eval_model(folder, dtype=dtype, batch_size=batch_size, prefix_cache=prefix_cache)
    lm_out = out / "lm_eval"
    # the model's identity and real name (lm-eval names a model object it was handed by a random string)
    identity = from_lm_eval(
        "hf", {"pretrained": str(folder), "dtype": dtype}, chat_template=not embedded.base_model, name=embedded.name
    )
    results = run_lm_eval(lm, [task], lm_out, metadata=metadata, apply_chat_template=not embedded.base_model, identity=identity)
    elicit_seconds = time.perf_counter() - started
    fields = identity.with_chat_template(not embedded.base_model).record_fields()
    records = records_from_results(
        results,
        task,
        model=fields.pop("model"),
        run_id=run_id_for("lm-eval", embedded.name, task, outcomes, budget),
        embedded_model=embedded.key,
        **fields,
    )
    del lm, results
    rec.write(records, out / "records.jsonl")
    fit = fit_records(records)
    fit.metrics["inputs"] = [str(lm_out)]
    demo = {
        "task": task,
        "model": embedded.name,
        "kind": embedded.kind,
        "folder": str(folder),
        "outcomes": str(outcomes),
        "budget": budget,
        "prompts": len(docs),
        "dtype": dtype,
        "elicit_seconds": round(elicit_seconds, 1),
        "prefix_cache": prefix_cache,
    }
    fit.metrics["demo"] = demo
    fit.write(out)
    analysis = analyse_records(records, "utilities", fit=fit, run={"harness": "lm-eval", "model": embedded.name, **demo})
    write_result(analysis, out, log=log)
    print(f"\n== {embedded.name} ({embedded.kind} model) ==")
    print(fit.summary(top=top))
    (out / "demo.json").write_text(json.dumps({"seconds": round(time.perf_counter() - started, 1), **demo}, indent=2) + "\n")
    return analysis


def run_demo(
    out: str | Path = "ue_demo_out",
    budget: int | None = DEMO_BUDGET,
    batch_size: int | str = "auto",
    top: int = 5,
    prefix_cache: bool = True,
    outcomes: str = "mini",
    models: Sequence[str] = DEMO_MODELS,
    dtype: str = "auto",
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the demo; returns the leaderboard (also written to ``out/leaderboard``)."""
    _offline()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if budget is not None and budget < 1:
        raise UserError(f"--budget must be a positive number of training pairs, got {budget}")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UserError(f"--batch-size must be at least 1 (or auto), got {batch_size}")
    if dtype not in ("auto", "native", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype must be auto, native, float32, bfloat16 or float16, got {dtype!r}")
    from ue_tasks import model

    chosen = [model.get(k) for k in models]  # unknown names stop here, before any model loads
    if len({m.key for m in chosen}) != len(chosen):
        raise UserError(f"--models names a model twice ({', '.join(models)}); name each once")
    requested = dtype
    started = time.perf_counter()
    runs = []
    for m in chosen:
        run_model(
            m.key,
            out / m.name,
            budget=budget,
            batch_size=batch_size,
            prefix_cache=prefix_cache,
            outcomes=outcomes,
            dtype=dtype,
            top=top,
            log=log,
        )
        runs.append(out / m.name)
    from ue_tasks.leaderboard import build_leaderboard

    board = build_leaderboard(runs, out / "leaderboard", report=report, log=log)
    total = time.perf_counter() - started
    from ue_metrics.leaderboard_render import render_text

    print()
    print(render_text(board))
    print(
        f"\nwrote each model's run to {', '.join(str(r) for r in runs)} (records.jsonl, utilities.csv, analysis.json, "
        f"figures/, lm-eval's output under lm_eval/) and the leaderboard to {out / 'leaderboard'}  ({total:.0f} s)"
    )
    if report:
        print(f"report: {(out / 'leaderboard' / 'report.html').resolve()}")
    print(f"next: ue report {runs[0]} --out {runs[0] / 'report.html'}", file=sys.stderr)
    (out / "demo.json").write_text(
        json.dumps(
            {
                "seconds": round(total, 1),
                "models": [m.name for m in chosen],
                "dtype": requested,
                "budget": budget,
                "outcomes": str(outcomes),
            },
            indent=2,
        )
        + "\n"
    )
    return board

"""``ue demo``: the whole path on the embedded model, on the CPU, offline — prepare SmolLM2-135M-Instruct, run the
``utility_mini`` lm-eval task in log-prob mode through lm-eval's Python API, read its samples back as preference
records, fit the Thurstonian model and print the summary (utilities at both ends, coherence metrics next to the
random responder).

Speed: the model runs as lm-eval's ``ue-hf`` type (``ue_tasks.harness.lm_eval.models``): bfloat16 where the CPU
computes it natively, the key/value cache of the stem every prompt shares computed once, batch sizes for the
hardware.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ue_metrics.errors import UserError

TASK = "utility_mini"
# training pairs of the demo: None = the full plan of mini (738 training + 94 holdout pairs, 1,664 prompts; about
# 3 minutes on 2 CPU cores with the stem cache); a smaller budget gives a quicker, rougher look
DEMO_BUDGET = None


def _offline() -> None:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_demo(out: str | Path = "ue_demo_out", budget: int | None = DEMO_BUDGET, batch_size: int | str = "auto", top: int = 5,
             prefix_cache: bool = True, outcomes: str = "mini", log=print, dtype: str = "auto") -> dict:  # fmt: skip
    """Run the demo; returns the fit metrics (also written to ``out/metrics.json``)."""
    _offline()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if budget is not None and budget < 1:
        raise UserError(f"--budget must be a positive number of training pairs, got {budget}")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UserError(f"--batch-size must be at least 1 (or auto), got {batch_size}")
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype must be auto, float32, bfloat16 or float16, got {dtype!r}")
    from ue_metrics import records as rec
    from ue_metrics.fitting import fit_records
    from ue_tasks import model
    from ue_tasks.harness.lm_eval.hooks import documents
    from ue_tasks.harness.readers import read_records
    from ue_tasks.plan import PlanSpec

    started = time.perf_counter()
    folder = model.prepare(log=log)
    metadata = {"outcomes": str(outcomes)} | ({"budget": budget} if budget is not None else {})
    docs = documents("utilities", str(outcomes), PlanSpec(budget=budget))
    log(f"ue demo: {TASK} ({outcomes} outcomes) on {model.MODEL_NAME} ({folder}), {len(docs)} prompts (pairs × 2 orderings), CPU")
    import torch

    torch.manual_seed(0)
    if prefix_cache:
        from ue_tasks.harness.lm_eval.models import UeHFLM

        lm = UeHFLM(pretrained=str(folder), device="cpu", batch_size=batch_size, dtype=dtype)
    else:  # lm-eval's plain HF model, every prompt run in full (the baseline)
        from lm_eval.models.huggingface import HFLM

        from ue_tasks.harness.lm_eval.models import resolve_dtype

        lm = HFLM(pretrained=str(folder), device="cpu", batch_size=8 if batch_size == "auto" else batch_size,
                  dtype=resolve_dtype(dtype, "cpu"))  # fmt: skip
    from ue_tasks.harness.lm_eval.run import run_lm_eval

    lm_out = out / "lm_eval"
    run_lm_eval(lm, [TASK], lm_out, metadata=metadata)
    elicit_seconds = time.perf_counter() - started

    records = read_records([lm_out])
    n = rec.write(records, out / "records.jsonl")
    result = fit_records(records)
    result.metrics["inputs"] = [str(lm_out)]
    result.metrics["demo"] = {"task": TASK, "outcomes": str(outcomes), "model": str(folder), "budget": budget, "prompts": len(docs),
                              "elicit_seconds": round(elicit_seconds, 1), "prefix_cache": prefix_cache,
                              "dtype": str(getattr(lm, "resolved_dtype", dtype))}  # fmt: skip
    result.write(out)
    print(result.summary(top=top))
    total = time.perf_counter() - started
    print(f"wrote {n} records to {out / 'records.jsonl'}, the fit to {out / 'utilities.csv'} and "
          f"{out / 'metrics.json'}, lm-eval's results and samples under {lm_out}  ({total:.0f} s)")  # fmt: skip
    print(f"next: ue fit {lm_out} --out fit/ --bootstrap 200", file=sys.stderr)
    (out / "demo.json").write_text(json.dumps({"seconds": round(total, 1), **result.metrics["demo"]}, indent=2) + "\n")
    return result.metrics

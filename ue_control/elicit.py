"""Eliciting a model's (or a simulated citizen's) preferences for utility control, through the project's
lm-evaluation-harness tasks (``task_configs/``, hooks in ``ue_tasks.harness.lm_eval.hooks``): one ``simple_evaluate``
run of a ue task per (model, outcome file, system message), with lm-eval's backends, batching and chat
templates. A citizen's persona is lm-eval's ``system_instruction``, so no task changes are needed.

The model object is built once (``load_lm``) and reused across citizens and outcome files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.templates import SYSTEM_MESSAGE


def offline() -> None:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model(name: str) -> str:
    """``embedded`` → the local folder of SmolLM2-135M-Instruct (prepared on first use); anything else as is."""
    if name == "embedded":
        from ue_tasks import model

        return str(model.prepare(log=lambda *_: None))
    return name


def load_lm(
    model: str,
    backend: str = "hf",
    model_args: dict[str, Any] | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    dtype: str = "float32",
) -> Any:
    """An lm-eval ``LM`` for ``backend`` (any registered one: hf, vllm, local-completions, ...)."""
    offline()
    from lm_eval.api.registry import get_model

    args = {"pretrained": resolve_model(model)} if backend in ("hf", "hf-auto", "huggingface", "vllm") else {"model": model}
    if backend in ("hf", "hf-auto", "huggingface"):
        args["dtype"] = dtype
    args.update(model_args or {})
    try:
        cls = get_model(backend)
    except ValueError as exc:
        raise UserError(f"unknown lm-eval backend {backend!r} ({exc}); use one lm-eval lists, e.g. hf or vllm") from None
    return cls.create_from_arg_obj(args, {"batch_size": batch_size, "device": device})


def elicit(
    lm: Any,
    outcomes: str,
    plan: dict[str, Any],
    system_message: str | None = SYSTEM_MESSAGE,
    task: str = "utility_mini",
    model_name: str = "model",
    run_id: str = "run",
    **extra: Any,
) -> list[dict]:
    """``ue.preference/1`` records of ``lm`` on the comparison plan of ``outcomes`` (both orderings), with
    ``system_message`` as the chat's system turn; ``extra`` fields are added to every record."""
    offline()
    from ue_tasks.harness.lm_eval.run import records_from_results, run_lm_eval

    results = run_lm_eval(lm, [task], metadata={"outcomes": str(outcomes), **plan}, system_instruction=system_message)
    return records_from_results(results, task, model=model_name, run_id=run_id, **extra)


def write_outcomes(outcomes: list, path: Path) -> Path:
    """Write ``ue_tasks.outcomes.Outcome`` objects as a JSONL outcome file."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for o in outcomes:
            fh.write(
                json.dumps({"id": o.id, "text": o.text, "category": o.category, "tags": list(o.tags)}, ensure_ascii=False) + "\n"
            )
    return path

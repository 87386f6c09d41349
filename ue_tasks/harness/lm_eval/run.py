"""Running ue's lm-eval tasks from Python, and turning their samples into preference records: the one path used by
``ue demo``, the lm-eval backend of ``ue run``/``ue elicit``, utility control (``ue_control``) and the reader of
saved ``--log_samples`` output (``ue_tasks.harness.lm_eval.reader``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.harness.lm_eval.hooks import PAYLOAD_FIELDS, exact_fields
from ue_tasks.model_identity import ModelIdentity
from ue_tasks.queries import Query
from ue_tasks.templates import SYSTEM_MESSAGE

HARNESS = "lm-eval"


def sample_record(sample: dict, *, model: str, task: str, run_id: str, where: str = "lm-eval sample", **extra: Any) -> dict:
    """The ``ue.preference/1`` record of one lm-eval sample of a ue task (its document is a ``Query``; every metric
    name carries the payload computed by ``ue_tasks.harness.lm_eval.hooks``)."""
    try:
        doc = sample["doc"]
        query = Query.from_dict(doc)
        names = sample.get("metrics") or []
        payload = sample[names[0]] if names else None
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: not a sample of a ue task ({type(exc).__name__}: {exc}); check the file") from None
    # payloads of older versions lack the last field (what the unanswered were), the strict counts or the key
    if not isinstance(payload, list) or len(payload) not in {len(PAYLOAD_FIELDS) - k for k in (0, 1, 3, 4)}:
        raise UserError(f"{where}: the sample has no ue payload under its metrics; was it written by a ue task?")
    p = dict(zip(PAYLOAD_FIELDS, payload))
    return query.record(
        mode=p["mode"],
        model=model,
        harness=HARNESS,
        task=task,
        run_id=run_id,
        p_a=p["p_a"],
        n_a=p["n_a"],
        n_b=p["n_b"],
        n_unparsed=p["n_unparsed"],
        label_mass=p["label_mass"],
        doc_id=sample.get("doc_id"),
        **exact_fields(p),
        base_model=bool(doc.get("base_model", False)),
        **extra,
    )


def run_lm_eval(
    lm: Any,
    tasks: list[str],
    out: Path | None = None,
    metadata: dict | None = None,
    limit: int | float | None = None,
    apply_chat_template: bool = True,
    system_instruction: str | None = SYSTEM_MESSAGE,
    task_manager: Any = None,
    identity: ModelIdentity | None = None,
    gen_kwargs: dict | None = None,
) -> dict:
    """Run ue tasks through ``lm_eval.simple_evaluate`` (chat template and the paper's system message by default).
    With ``out``, results and samples are saved exactly as the ``lm_eval`` command does with ``--output_path out
    --log_samples``; ``identity`` (the model's, ``ue_tasks.model_identity``) is written into the results as
    ``ue_model`` and names the output folder, so a model passed as an object is not saved under lm-eval's random
    name. Returns lm-eval's results, samples included."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ue_tasks.harness.lm_eval.configs import task_configs_dir

    # only ue's own task folder is indexed (lm-eval's hundreds of built-in task folders take seconds); a caller
    # running many batches passes one TaskManager
    manager = task_manager or TaskManager(include_path=str(task_configs_dir()), include_defaults=False, metadata=metadata or {})
    tracker = None
    if out is not None:
        from lm_eval.loggers import EvaluationTracker

        tracker = EvaluationTracker(output_path=str(out))
    with _quiet_git():
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            apply_chat_template=apply_chat_template,
            system_instruction=system_instruction if apply_chat_template else None,
            log_samples=True,
            limit=limit,
            evaluation_tracker=tracker,
            verbosity="ERROR",
            bootstrap_iters=0,  # the coherence metrics come from one fit; lm-eval's resampling stderr does not apply
            gen_kwargs=gen_kwargs,
        )
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    if identity is not None:
        results["ue_model"] = identity.with_chat_template(apply_chat_template).to_dict()
        if tracker is not None:
            from lm_eval.utils import sanitize_model_name

            tracker.general_config_tracker.model_name = identity.name
            tracker.general_config_tracker.model_name_sanitized = sanitize_model_name(identity.name)
    if tracker is not None:
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
        results["samples"] = samples
    return results


@contextlib.contextmanager
def _quiet_git() -> Iterator[None]:
    """lm-eval runs ``git describe`` to record the caller's commit, and git prints "fatal: not a git repository" to
    the terminal outside a checkout. The same lookup, with git's complaint kept off the terminal."""
    import subprocess

    import lm_eval.evaluator as evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    original = evaluator.get_git_commit_hash

    def quiet() -> str | None:
        try:
            out = subprocess.run(["git", "describe", "--always"], capture_output=True, check=True)  # noqa: S607
            return out.stdout.decode().strip()
        except (subprocess.CalledProcessError, FileNotFoundError, OSError):
            return get_commit_from_path(os.getcwd())

    evaluator.get_git_commit_hash = quiet
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original


def records_from_results(results: dict, task: str, *, model: str, run_id: str, **extra: Any) -> list[dict]:
    """Records of every sample of ``task`` in the results of ``run_lm_eval``."""
    samples = (results.get("samples") or {}).get(task)
    if not samples:
        raise RuntimeError(f"lm-eval returned no samples for task {task}")
    return [sample_record(s, model=model, task=task, run_id=run_id, **extra) for s in samples]


def generations_from_results(results: dict, task: str) -> dict[str, str | None]:
    """``{request id: reply}`` of every sample of a free-form task (``ue_generate``, ``utility_<name>_answers``)."""
    samples = (results.get("samples") or {}).get(task)
    if not samples:
        raise RuntimeError(f"lm-eval returned no samples for task {task}")
    out = {}
    for s in samples:
        rid, text = s["n_answers"]
        out[rid] = text
    return out

"""Read an lm-evaluation-harness ``--output_path`` folder (written with ``--log_samples``) as ``ue.preference/1``
records, so ``ue fit OUT`` works on lm-eval output with no conversion step.

lm-eval writes, per model folder, ``results_<time>.json`` and one ``samples_<task>_<time>.jsonl`` per task.
Each sample line of a ue task carries the document (the ``Query`` fields) and, under every metric name, the
payload computed by ``ue_tasks.harness.lm_eval.hooks`` (p_a or votes, label mass, split). The model's identity
(``ue_tasks.model_identity``: its name and the settings that tell runs apart) and the system instruction really
sent come from the results file of the same run. Importing this module registers the reader with
``ue_tasks.harness.readers``; it does not import lm_eval.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ue_metrics.errors import UserError
from ue_metrics.jsonl import first_object, iter_jsonl, read_json
from ue_tasks.harness.lm_eval.run import HARNESS, sample_record
from ue_tasks.harness.readers import register, register_generations
from ue_tasks.model_identity import from_lm_eval_results
from ue_tasks.queries import Query, run_id_for

SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<time>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")


def claims(path: Path) -> bool:
    """True for an lm-eval samples file of a ue task (its documents carry a ue query)."""
    if not SAMPLES_NAME.match(path.name):
        return False
    first = first_object(path)
    doc = first.get("doc") if first else None
    return isinstance(doc, dict) and all(k in doc for k in ("a_id", "b_id", "shown_first", "split", "template"))


def _results_for(path: Path, stamp: str) -> dict:
    """The ``results_<time>.json`` written by the same run (same folder, same time stamp)."""
    results = path.with_name(f"results_{stamp}.json")
    if not results.is_file():
        candidates = sorted(path.parent.glob("results_*.json"))
        if not candidates:
            raise UserError(
                f"{path}: no results_*.json beside it, so the model is unknown; keep lm-eval's output folder as written"
            )
        results = candidates[-1]
    return read_json(
        results, lambda exc: f"{results}: cannot be read as lm-eval results JSON ({exc}); re-run lm-eval or remove the file"
    )


def _context(sample: dict) -> str | None:
    args = sample.get("arguments")
    if isinstance(args, dict) and args:
        first = next(iter(args.values()))
        if isinstance(first, dict):
            return first.get("arg_0")
    return None


def read(path: Path) -> list[dict]:
    """Records of one samples file (validated; an unreadable line is reported with its number)."""
    match = SAMPLES_NAME.match(path.name)
    if match is None:
        raise UserError(f"{path}: not an lm-eval samples file (expected samples_<task>_<time>.jsonl)")
    task, stamp = match.group("task"), match.group("time")
    results = _results_for(path, stamp)
    identity = from_lm_eval_results(results, task)
    fields = identity.record_fields()
    model = fields.pop("model")
    run_id = run_id_for(HARNESS, model, task, stamp)
    # the system turn lm-eval really sent (--system_instruction), not the one the task meant to send
    system = results.get("system_instruction") if "system_instruction" in results else None
    records: list[dict] = []
    warned: set[str] = set()
    for lineno, sample in iter_jsonl(path, what="one lm-eval sample"):
        where = f"{path} line {lineno}"
        record = sample_record(sample, model=model, task=task, run_id=run_id, where=where, **fields)
        _check_prompt(path, sample, Query.from_dict(sample["doc"]), record["base_model"], results, warned)
        if record.get("chat_template") is not False and "system_instruction" in results:
            record["system_message"] = system or ""
        if record["base_model"]:
            record["chat_template"] = bool(results.get("chat_template"))
        records.append(record)
    return records


def _check_prompt(path: Path, sample: dict, query: Query, base_model: bool, results: dict, warned: set[str]) -> None:
    """Warn (once per file) when a chat task ran without the chat template or without the paper's system message."""
    context = _context(sample)
    if context is None:
        return
    problems = []
    if not base_model:
        if context.rstrip() == query.prompt().rstrip() or context.startswith(query.prompt()):
            problems.append("the prompt was sent without a chat template (add --apply_chat_template)")
        elif query.system_message and query.system_message not in context:
            problems.append(
                f'the system message is not "{query.system_message}" (add --system_instruction "{query.system_message}")'
            )
    elif results.get("chat_template"):
        problems.append("a base-model task was run with --apply_chat_template")
    for problem in problems:
        if problem not in warned:
            warned.add(problem)
            print(f"ue: warning: {path.name}: {problem}; the records differ from the paper's setup", file=sys.stderr)


def claims_answers(path: Path) -> bool:
    """True for an lm-eval samples file of a ue free-form task (``utility_<name>_answers``, ``ue_generate``)."""
    if not SAMPLES_NAME.match(path.name):
        return False
    first = first_object(path)
    doc = first.get("doc") if first else None
    return isinstance(doc, dict) and "a_id" not in doc and all(k in doc for k in ("id", "kind", "prompt", "max_tokens"))


def read_answers(path: Path) -> list[dict]:
    """``ue.generation/1`` entries of a free-form task's samples file."""
    from ue_tasks.harness.lm_eval.hooks import generation_of

    match = SAMPLES_NAME.match(path.name)
    task, stamp = (match.group("task"), match.group("time")) if match else ("lm-eval", "")
    results = _results_for(path, stamp)
    model = from_lm_eval_results(results, task).name
    out = []
    for lineno, sample in iter_jsonl(path, what="one lm-eval sample"):
        try:
            g = generation_of(sample["doc"])
            rid, text = sample["n_answers"]
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path} line {lineno}: not a sample of a ue free-form task ({exc}); check the file") from None
        out.append(g.entry(text, model=model, harness=HARNESS, run_id=run_id_for(HARNESS, model, task, stamp), task=task))
    return out


register("lm-eval samples", claims, read)
register_generations("lm-eval free answers", claims_answers, read_answers)

"""Read Inspect logs of the ``ue`` tasks into ``ue.preference/1`` records, so ``ue fit logs/`` works on them.

Registers a reader with ``ue_tasks.harness.readers`` at import. Claiming a file is cheap (its name and first bytes);
``inspect_ai`` is imported only to read a claimed log. One record per (pair, ordering): the query comes from the
sample's metadata, the preference from its ``preference`` score; the epochs of a sampled run are pooled (votes
summed), exactly as the task's epoch reducer does. Samples that have no score (an interrupted or failed run)
and logprob queries with neither label among the top log-probabilities are left out, with a note on stderr.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.harness.readers import register
from ue_tasks.model_identity import from_inspect_log

logger = logging.getLogger(__name__)

HARNESS = "inspect"
_ZIP_MAGIC = b"PK\x03\x04"
# an Inspect JSON log opens with its format version, then its status
_JSON_HEAD = re.compile(rb'^\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:')


def claims(path: Path) -> bool:
    """True for an Inspect ``.eval`` log (a zip) or an Inspect ``.json`` log."""
    suffix = path.suffix.lower()
    if suffix not in (".eval", ".json"):
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return head.startswith(_ZIP_MAGIC) if suffix == ".eval" else bool(_JSON_HEAD.match(head))


def _preference_score(scores: dict[str, Any] | None) -> Any:
    for name, score in (scores or {}).items():
        if name == "preference" or name.endswith("/preference"):
            return score
    return None


def _identity(ev: Any, answered: dict | None) -> dict:
    """The record fields of the model of a log: what ``ue run`` wrote into its header, else what the scorer took from
    the model at eval time (a local folder's fingerprint included, as lm-eval's records carry it), else the header's
    model and arguments (no fingerprint: the folder may have changed since)."""
    from dataclasses import replace

    from ue_tasks.model_identity import NAME_KEY, ModelIdentity

    if isinstance((getattr(ev, "metadata", None) or {}).get("ue_model"), dict) or answered is None:
        return from_inspect_log(ev).record_fields()
    identity = ModelIdentity.from_dict(answered)
    name = (getattr(ev, "task_args", None) or {}).get(NAME_KEY)
    return (replace(identity, name=str(name)) if name else identity).record_fields()


def read(path: Path) -> list[dict]:
    """Records of one Inspect log (empty when the log is not of a ``ue`` task)."""
    try:
        from inspect_ai.log import read_eval_log, read_eval_log_samples
    except ImportError:
        raise UserError(f"{path}: reading an Inspect log needs inspect-ai; install it with: pip install 'ue[inspect]'") from None
    from ue_tasks.harness.inspect.scorer import MODE_KEY, MODEL_KEY, QUERY_KEY, combine_values, record_from_value
    from ue_tasks.queries import Query

    try:
        header = read_eval_log(str(path), header_only=True)
    except Exception as exc:  # a corrupt or foreign file that merely looked like a log
        raise UserError(f"{path}: cannot be read as an Inspect log ({exc}); check the file") from None
    ev = header.eval
    task = ev.task.rsplit("/", 1)[-1]
    run_id = ev.eval_id
    if header.status != "success":
        logger.warning(f"{path}: the Inspect run's status is {header.status!r}; reading the samples it finished")

    answered: dict | None = None  # the identity the scorer took from the model at eval time
    queries: dict[Any, tuple[Query, str]] = {}
    values: dict[Any, list[dict]] = defaultdict(list)
    n_unscored = 0
    try:
        samples = read_eval_log_samples(str(path), all_samples_required=False)
        for sample in samples:
            meta = sample.metadata or {}
            if QUERY_KEY not in meta:
                continue  # a sample of some other task
            score = _preference_score(sample.scores)
            if score is None or not isinstance(score.value, dict):
                n_unscored += 1
                continue
            if answered is None and isinstance((score.metadata or {}).get(MODEL_KEY), dict):
                answered = score.metadata[MODEL_KEY]
            if sample.id not in queries:
                queries[sample.id] = (Query.from_dict(meta[QUERY_KEY]), str(meta.get(MODE_KEY, "logprob")))
            values[sample.id].append(score.value)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: the samples of this Inspect log cannot be read ({exc}); check the file") from None

    identity = _identity(ev, answered)
    model = identity.pop("model")
    records: list[dict] = []
    n_no_label = 0
    for sid, (query, mode) in queries.items():
        pooled = combine_values(values[sid], mode)
        record = record_from_value(
            query,
            pooled,
            mode,
            model=model,
            harness=HARNESS,
            task=task,
            run_id=run_id,
            epochs=len(values[sid]),
            sample_id=str(sid),
            log=path.name,
            **identity,
        )
        if record is None:
            n_no_label += 1
        else:
            records.append(record)
    if n_unscored:
        logger.warning(f"{path}: {n_unscored} sample(s) have no preference score (failed or unfinished) and are left out")
    if n_no_label:
        logger.warning(
            f"{path}: {n_no_label} logprob quer(ies) had neither label among the top log-probabilities and are left out"
        )
    return records


def _free_samples(path: Path):
    """(metadata request, completion) of every free-form sample of a log (the first epoch of each)."""
    from inspect_ai.log import read_eval_log_samples

    from ue_tasks.harness.inspect.scorer import GENERATION_KEY

    seen = set()
    try:
        for sample in read_eval_log_samples(str(path), all_samples_required=False):
            meta = sample.metadata or {}
            if GENERATION_KEY not in meta or sample.id in seen:
                continue
            seen.add(sample.id)
            yield meta[GENERATION_KEY], (sample.output.completion if sample.output else None)
    except Exception as exc:  # a corrupt log
        raise UserError(f"{path}: the samples of this Inspect log cannot be read ({exc}); check the file") from None


def read_generation_replies(path: Path) -> dict[str, str | None]:
    """``{request id: reply}`` of the free-form samples of one log."""
    return {request["id"]: text for request, text in _free_samples(path)}


def read_generations(path: Path) -> list[dict]:
    """``ue.generation/1`` entries of the free-form samples of one Inspect log (for ``ue analyse logs/``)."""
    from inspect_ai.log import read_eval_log

    from ue_tasks.generation import Generation

    header = read_eval_log(str(path), header_only=True)
    model = from_inspect_log(header.eval).name
    return [
        Generation.from_dict(request).entry(text, model=model, harness=HARNESS, run_id=header.eval.eval_id, log=path.name)
        for request, text in _free_samples(path)
    ]


register("Inspect log", claims, read, read_generations)

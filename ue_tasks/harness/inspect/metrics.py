"""Inspect metrics of the ue tasks: every headline number of every registered experiment as an Inspect metric,
computed from one analysis of all scores (records → fit when the experiment fits → the experiment's analysis),
cached so that the task's metrics share it. ``inspect view`` shows them like any metric.

A batch of ``ue run`` (``queries_file``) only counts its queries: the analysis runs once over the whole run.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inspect_ai.scorer import Metric, SampleScore, metric

from ue_metrics.errors import UserError
from ue_tasks import experiments
from ue_tasks.harness.inspect.scorer import GENERATION_KEY, MODE_KEY, OPTIONS_KEY, QUERY_KEY, record_from_value
from ue_tasks.queries import Query

logger = logging.getLogger(__name__)
_RESULTS: OrderedDict[tuple, dict] = OrderedDict()
_CACHE_SIZE = 8


def records_of(scores: Sequence[SampleScore]) -> tuple[list[dict], int, int]:
    """Records of the scored queries, the number of answers and of unparsed answers."""
    records: list[dict] = []
    n_answers = n_unparsed = 0
    for s in scores:
        meta = s.sample_metadata or {}
        value = s.score.value
        if QUERY_KEY not in meta or not isinstance(value, Mapping):
            continue
        mode = meta.get(MODE_KEY, "logprob")
        n_unparsed += int(value.get("n_unparsed") or 0)
        n_answers += 1 if mode == "logprob" else sum(int(value.get(k) or 0) for k in ("n_a", "n_b", "n_unparsed"))
        record = record_from_value(
            Query.from_dict(meta[QUERY_KEY]), value, mode, model="inspect", harness="inspect", task="metrics", run_id="metrics"
        )
        if record is not None:
            records.append(record)
    return records, n_answers, n_unparsed


def generations_of(scores: Sequence[SampleScore]) -> list[dict]:
    """``ue.generation/1`` entries of the free-form samples among the scores (empty when there are none)."""
    from ue_tasks.generation import Generation

    out = []
    for s in scores:
        meta = s.sample_metadata or {}
        if GENERATION_KEY in meta:
            out.append(
                Generation.from_dict(meta[GENERATION_KEY]).entry(
                    s.score.answer, model="inspect", harness="inspect", run_id="metrics", task="metrics"
                )
            )
    return out


def analysis(scores: Sequence[SampleScore]) -> dict[str, Any]:
    """The experiment's analysis of a run's scores (once per set of scores). When the scores cannot support it
    (a ``--limit`` that cuts the plan into disconnected pieces, no usable answer) the headline is empty and the
    log says why."""
    key = tuple(
        (
            s.sample_id,
            tuple(sorted((s.score.value or {}).items())) if isinstance(s.score.value, Mapping) else None,
            s.score.answer,
        )
        for s in scores
    )
    if key in _RESULTS:
        _RESULTS.move_to_end(key)
        return _RESULTS[key]
    from ue_tasks.analysis import analyse_records

    records, n_answers, n_unparsed = records_of(scores)
    free = generations_of(scores)
    options = next(
        (s.sample_metadata.get(OPTIONS_KEY) for s in scores if s.sample_metadata and s.sample_metadata.get(OPTIONS_KEY)), None
    )
    try:
        result = analyse_records(records, options=options, generations=free or None)
    except (UserError, ValueError, ArithmeticError) as exc:
        logger.warning(f"ue: the metrics are NaN because these scores cannot be analysed: {exc}")
        result = {"headline": {}}
    # a log-prob query with neither label among the top log-probabilities has no record, so the share of unparsed
    # answers is counted here, over every scored query
    result.setdefault("headline", {})["unparsed_rate"] = n_unparsed / n_answers if n_answers else math.nan
    for key, reason in (result.get("notes") or {}).items():
        if result["headline"].get(key) is None:
            logger.info(f"ue: {key} is NaN: {reason}")
    _RESULTS[key] = result
    while len(_RESULTS) > _CACHE_SIZE:
        _RESULTS.popitem(last=False)
    return result


def _value(result: Mapping[str, Any], key: str) -> float:
    value = result.get("headline", {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _headline_metric(key: str) -> Callable[[], Metric]:
    def factory() -> Metric:
        def compute(scores: list[SampleScore]) -> float:
            return _value(analysis(scores), key)

        return compute

    factory.__name__ = key
    factory.__doc__ = f"The headline {key.replace('_', ' ')} of the experiment's analysis of all scores."
    return metric(name=key)(factory)


@metric
def n_queries() -> Metric:
    """Queries scored (the batches of ``ue run``, whose analysis runs once over the whole run)."""

    def compute(scores: list[SampleScore]) -> float:
        return float(len(scores))

    return compute


HEADLINE_METRICS: dict[str, Callable[[], Metric]] = {}
for _exp in experiments.all_experiments().values():
    for _key in _exp.metrics:
        if _key not in HEADLINE_METRICS:
            HEADLINE_METRICS[_key] = _headline_metric(_key)


def metrics_for(experiment: str) -> list[Metric]:
    """The experiment's headline as Inspect metrics, in the experiment's order."""
    return [HEADLINE_METRICS[k]() for k in experiments.get(experiment).metrics]

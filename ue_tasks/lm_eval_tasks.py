"""Hooks of the lm-evaluation-harness tasks in ``task_configs/`` (the paper's forced-choice elicitation,
METHOD.md §1, as ordinary lm-eval tasks).

The YAMLs point here with ``!function ue_tasks.lm_eval_tasks.<name>``:

- ``build_dataset`` turns the comparison plan (``build_queries``) into lm-eval documents, one per
  (pair, ordering); lm-eval calls it with the task's ``metadata`` merged with ``--metadata`` (plus the model
  arguments, which are ignored), so ``--metadata '{"outcomes": "my_outcomes.json"}'`` retargets any task.
- ``process_logprob`` / ``process_sampled`` reduce one document's answers to a compact preference payload.
- ``agg_*`` are corpus-level aggregations: the first one called fits the Thurstonian model on all payloads
  (``ue_metrics.fitting.fit_records``) and caches the fit, so every metric of a task reuses one fit.

This module imports neither torch nor lm_eval at import time; ``datasets`` is imported inside
``build_dataset`` only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.elicitation import Query, build_queries, interleave_holdout, read_queries

PAYLOAD_FIELDS = ("a_id", "b_id", "shown_first", "split", "mode", "p_a", "n_a", "n_b", "n_unparsed", "label_mass")
# metric keys that every task reports, and the extra one of each mode (with its random-responder twin)
SHARED_METRICS = ("holdout_accuracy", "holdout_log_loss", "average_confidence", "order_gap")
LOGPROB_METRICS = SHARED_METRICS + ("label_mass",)
SAMPLED_METRICS = SHARED_METRICS + ("unparsed_rate",)
# metadata keys build_dataset understands; anything else in lm-eval's metadata (model args, version) is ignored
PLAN_KEYS = ("outcomes", "seed", "budget", "degree", "holdout_fraction", "queries_file")


# --------------------------------------------------------------------------------------------------------
# where the task YAMLs live
def task_configs_dir() -> Path:
    """The ``task_configs`` folder: beside the package in a source checkout, else shipped inside ``ue_tasks``."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "task_configs", here / "task_configs"):
        if (candidate / "utility_mini.yaml").is_file():
            return candidate
    raise UserError(
        f"the lm-eval task configs were found neither in {here.parent / 'task_configs'} nor in "
        f"{here / 'task_configs'}; reinstall ue (pip install 'ue[harness]')"
    )


# --------------------------------------------------------------------------------------------------------
# documents
def _number(value: Any, key: str, kind: Callable[[Any], Any]) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"--metadata field '{key}' must be a number, got {value!r}") from None


def documents(
    outcomes: str = "mini",
    queries_file: str | None = None,
    seed: int = 0,
    budget: int | None = None,
    degree: int = 2,
    holdout_fraction: float = 0.05,
    template: str = "default",
    base_model: bool = False,
) -> list[dict]:
    """One lm-eval document per (pair, ordering): the query's fields plus the rendered ``prompt``. With
    ``queries_file`` (JSONL of queries, as ``ue elicit`` writes for each active-learning batch) the documents are
    exactly those queries, in that order, instead of a plan."""
    base_model = base_model in (True, "true", "True", 1, "1")
    if queries_file:
        return [{**q.to_dict(), "prompt": q.prompt(base_model=base_model), "base_model": base_model} for q in read_queries(queries_file)]
    queries = build_queries(
        outcomes=str(outcomes),
        seed=_number(seed, "seed", int),
        budget=None if budget in (None, "", "null") else _number(budget, "budget", int),
        degree=_number(degree, "degree", int),
        holdout_fraction=_number(holdout_fraction, "holdout_fraction", float),
        template=template,
    )
    return [{**q.to_dict(), "prompt": q.prompt(base_model=base_model), "base_model": base_model} for q in interleave_holdout(queries)]


def build_dataset(template: str = "default", base_model: bool = False, **metadata: Any) -> dict:
    """lm-eval ``custom_dataset``: ``{"test": Dataset}`` built from the plan named by the (merged) metadata."""
    import datasets

    plan = {k: metadata[k] for k in PLAN_KEYS if k in metadata and metadata[k] is not None}
    docs = documents(template=template, base_model=base_model, **plan)
    return {"test": datasets.Dataset.from_list(docs)}


# --------------------------------------------------------------------------------------------------------
# per-document results
def keep_all_samples(resps, docs):
    """lm-eval filter (``function: custom``) that keeps all K sampled answers of a document, not the first."""
    return [list(r) for r in resps]


def _payload(q: Query, mode: str, p_a: float | None, n_a: int, n_b: int, n_u: int, mass: float | None) -> list:
    return [q.a_id, q.b_id, q.shown_first, q.split, mode, p_a, n_a, n_b, n_u, mass]


def logprob_payload(doc: dict, results: list) -> list:
    """(p_a, label mass) from the log-likelihoods of the two labels; p_a is the renormalised pair."""
    q = Query.from_dict(doc)
    (ll_first, _), (ll_second, _) = results[0], results[1]
    top = max(ll_first, ll_second)
    # scaled by exp(-top) so that the ratio never underflows; the mass is scaled back
    rel_first, rel_second = math.exp(ll_first - top), math.exp(ll_second - top)
    p_a, _ = q.p_a_from_labels(rel_first, rel_second)
    mass = min(1.0, math.exp(top) * (rel_first + rel_second))
    return _payload(q, "logprob", p_a, 0, 0, 0, mass)


def sampled_payload(doc: dict, results: list) -> list:
    """Votes from the K sampled answers (parsed with ``ue_tasks.parsing``)."""
    q = Query.from_dict(doc)
    answers = results[0] if results and isinstance(results[0], list) else results
    n_a, n_b, n_u = q.votes(list(answers))
    usable = n_a + n_b
    return _payload(q, "sample", n_a / usable if usable else None, n_a, n_b, n_u, None)


def _per_metric(payload: list, keys: tuple[str, ...]) -> dict[str, list]:
    """The payload under every metric name of the task (label mass has no random-responder twin)."""
    names = [n for key in keys for n in ((key,) if key == "label_mass" else (key, f"{key}_random"))]
    return {name: payload for name in names}


def process_logprob(doc: dict, results: list) -> dict[str, list]:
    return _per_metric(logprob_payload(doc, results), LOGPROB_METRICS)


def process_sampled(doc: dict, results: list) -> dict[str, list]:
    return _per_metric(sampled_payload(doc, results), SAMPLED_METRICS)


# --------------------------------------------------------------------------------------------------------
# corpus-level: one fit per task, shared by every metric
_FITS: OrderedDict[str, dict] = OrderedDict()
_FIT_CACHE_SIZE = 8


def payload_record(payload: list, **extra: Any) -> dict:
    """A ``ue.preference/1`` record from a payload (texts default to the ids; the fit needs only ids)."""
    from ue_metrics.records import make_record

    p = dict(zip(PAYLOAD_FIELDS, payload))
    fields = {
        "run_id": "lm-eval", "model": "lm-eval", "harness": "lm-eval", "task": "lm-eval", "outcome_set": "lm-eval",
        "a_text": p["a_id"], "b_text": p["b_id"], "template": "default", "round": 0, **p, **extra,
    }  # fmt: skip
    return make_record(**fields)


def fit_metrics(items: list) -> dict:
    """Coherence metrics (and random-responder values) of one task's payloads, fitted once and cached."""
    key = hashlib.sha1(json.dumps(items, separators=(",", ":")).encode()).hexdigest()
    if key in _FITS:
        _FITS.move_to_end(key)
        return _FITS[key]
    from ue_metrics.fitting import fit_records

    records = [payload_record(p) for p in items]
    try:
        metrics = dict(fit_records(records, per_component=True).metrics)
    except Exception as exc:  # noqa: BLE001
        # An exception here would abort lm-eval before it writes the samples, losing the whole run. Instead the
        # metrics that need no fit are still reported, the holdout ones are NaN, the log says why, and
        # `ue fit OUT` can be run on the saved samples. (Typical cause: a --limit so small that the training
        # graph falls apart into pieces too small to fit.)
        logging.getLogger(__name__).warning("ue: no Thurstonian fit for these %d documents (%s: %s)", len(items), type(exc).__name__, exc)
        metrics = _fit_free_metrics(records)
    _FITS[key] = metrics
    while len(_FITS) > _FIT_CACHE_SIZE:
        _FITS.popitem(last=False)
    return metrics


def _fit_free_metrics(records: list[dict]) -> dict:
    """The metrics that do not need a fitted model (and the random-responder values)."""
    import numpy as np

    from ue_metrics.coherence import average_confidence, order_gap, random_baselines
    from ue_metrics.fitting import samples_per_ordering
    from ue_metrics.records import aggregate

    data = aggregate(records)
    return {
        "average_confidence": average_confidence(data.y),
        "order_gap": order_gap(data),
        "unparsed_rate": data.n_unparsed / data.n_answers if ("sample" in data.modes and data.n_answers) else 0.0,
        "mean_label_mass": float(np.mean(data.label_mass)) if len(data.label_mass) else None,
        "random_baseline": random_baselines(samples_per_ordering(data)),
    }


def _value(metrics: dict, key: str) -> float:
    if key.endswith("_random"):
        base = key.removesuffix("_random")
        value = metrics.get("random_baseline", {}).get(base)
    else:
        value = metrics.get("mean_label_mass" if key == "label_mass" else key)
    return float("nan") if value is None else float(value)


def _aggregation(key: str) -> Callable[[list], float]:
    def aggregate(items: list) -> float:
        return _value(fit_metrics(items), key)

    aggregate.__name__ = f"agg_{key}"
    aggregate.__doc__ = f"lm-eval aggregation: {key.replace('_', ' ')} of the task's (cached) Thurstonian fit."
    return aggregate


agg_holdout_accuracy = _aggregation("holdout_accuracy")
agg_holdout_log_loss = _aggregation("holdout_log_loss")
agg_average_confidence = _aggregation("average_confidence")
agg_order_gap = _aggregation("order_gap")
agg_label_mass = _aggregation("label_mass")
agg_unparsed_rate = _aggregation("unparsed_rate")
agg_holdout_accuracy_random = _aggregation("holdout_accuracy_random")
agg_holdout_log_loss_random = _aggregation("holdout_log_loss_random")
agg_average_confidence_random = _aggregation("average_confidence_random")
agg_order_gap_random = _aggregation("order_gap_random")
agg_unparsed_rate_random = _aggregation("unparsed_rate_random")

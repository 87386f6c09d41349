"""Hooks of the lm-evaluation-harness tasks in ``task_configs/`` (every registered experiment as ordinary lm-eval
tasks: the paper's forced-choice elicitation, docs/method.md §1, both orderings).

The YAMLs (generated from the experiment registry by ``ue_tasks.harness.lm_eval.configs``) point here with
``!function ue_tasks.harness.lm_eval.hooks.<name>``:

- ``build_dataset`` turns an experiment's plan into lm-eval documents, one per (pair, ordering); lm-eval calls it
  with the task's ``dataset_kwargs`` (the experiment, the template) and its ``metadata`` merged with
  ``--metadata`` (model arguments in it are ignored), so ``--metadata '{"outcomes": "my_outcomes.json"}'``
  retargets any task. Every option is checked before the model loads.
- ``process_logprob`` / ``process_sampled`` reduce one document's answers to a compact preference payload.
- ``agg_<headline key>`` are corpus-level aggregations: the first one called turns all payloads into records,
  fits them once (when the experiment fits utilities), runs the experiment's analysis and caches the result, so
  every metric of a task reuses one analysis; the results table shows the experiment's headline numbers.
- ``build_generation_dataset`` / ``process_answer``: free-form requests (``ue_tasks.generation``) as
  ``generate_until`` documents — the hidden ``ue_generate`` task of ``ue run`` and the ``utility_<name>_answers`` task
  of experiments that ask open questions. lm-eval runs every task's ``process_results`` before any aggregation, so the
  answers of an ``_answers`` task run in the same command reach its experiment's pairwise analysis (``_GENERATIONS``).

This module imports neither torch nor lm_eval at import time; ``datasets`` is imported inside ``build_dataset``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.plan import PlanSpec
from ue_tasks.queries import Query, interleave_holdout, read_queries

PAYLOAD_FIELDS = (
    "a_id",
    "b_id",
    "shown_first",
    "split",
    "mode",
    "p_a",
    "n_a",
    "n_b",
    "n_unparsed",
    "label_mass",
    "key",
    "n_a_exact",
    "n_b_exact",
    "unanswered",
)
EXACT_FIELDS = ("n_a_exact", "n_b_exact")  # sampled answers that are exactly a label ("A"/"B") (strict scoring), in outcome terms
# "unanswered": what the sampled answers that are not votes were (Query.unanswered: thinking cut by the budget, refusals)
# metadata keys build_dataset understands; anything else in lm-eval's metadata (model args, version) is ignored
PLAN_KEYS = ("seed", "budget", "degree", "holdout_fraction")
OTHER_KEYS = ("outcomes", "queries_file", "option", "model_name")
METADATA_KEYS = (*PLAN_KEYS, *OTHER_KEYS)

logger = logging.getLogger(__name__)

# queries of the documents built in this process, by key: the aggregation turns payloads back into full records
# (texts, attributes, groups) for the analysis; payloads alone carry what a fit needs
_QUERIES: dict[str, Query] = {}
# the experiment options the documents were built with (``--metadata '{"option": {...}}'``), by query key: the
# analysis of an experiment that reads another run (``utilities``), entity runs (``entities``) or a variant needs them
_OPTIONS: dict[str, dict] = {}


# --------------------------------------------------------------------------------------------------------
# documents
def documents(
    experiment: str = "utilities",
    outcomes: str | None = None,
    plan: PlanSpec | None = None,
    template: str | None = None,
    base_model: bool = False,
    queries_file: str | None = None,
    options: dict | None = None,
) -> list[dict]:
    """One lm-eval document per (pair, ordering): the query's fields plus the rendered ``prompt``. With
    ``queries_file`` (JSONL of queries, as ``ue run`` writes for each batch) the documents are exactly those
    queries, in that order, instead of a plan."""
    from ue_tasks import experiments

    if queries_file:
        queries = read_queries(queries_file)
    else:
        experiment, options = experiments.with_variant(experiment, options)
        exp = experiments.get(experiment)
        opts = {**(options or {}), **({"outcomes": outcomes} if outcomes else {})}
        oset = exp.outcome_set(opts)
        spec = plan or exp.plan
        queries = interleave_holdout(
            exp.queries(
                oset,
                exp.build_plan(oset, spec, options),
                template=template or exp.template,
                system_message=exp.system_message,
                options=options,
            )
        )
    docs = []
    opts = dict(options or {})
    for q in queries:
        _QUERIES[q.key] = q
        _OPTIONS[q.key] = opts
        # ``labels``: the two continuations whose log-likelihoods log-prob mode compares ("A"/"B" or the template's own)
        docs.append(
            {
                **q.to_dict(),
                "key": q.key,
                "prompt": q.prompt(base_model=base_model),
                "base_model": base_model,
                "labels": list(q.labels),
            }
        )
    return docs


def _truthy(value: Any) -> bool:
    return value in (True, "true", "True", 1, "1")


def _under_lm_eval_cli() -> bool:
    """True when this process is the ``lm_eval`` command (not ue's own Python calls into lm-eval)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return Path(sys.argv[0] if sys.argv else "").name in ("lm_eval", "lm-eval") or bool(
        spec and str(spec.name).startswith("lm_eval")
    )


def _check_cli_metadata_keys(argv: list[str] | None = None) -> None:
    """The keys of the ``lm_eval --metadata`` given on the command line must be keys a ue task reads: lm-eval merges
    its model arguments into the same dictionary, so only the command line's own ``--metadata`` can tell a typo
    (``{"bogus_key": 1}``, silently ignored until now) from a model argument."""
    import argparse

    try:
        from lm_eval._cli.utils import MergeDictAction
    except ImportError:  # an lm-eval without this parser: nothing to check against
        return
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--metadata", nargs="+", action=MergeDictAction, default=None)
    try:
        given, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    except (SystemExit, ValueError, TypeError):
        return  # lm-eval's own parser reports a malformed --metadata
    unknown = sorted(set(given.metadata or {}) - set(METADATA_KEYS))
    if unknown:
        raise UserError(
            f"--metadata key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} "
            f"{'are' if len(unknown) > 1 else 'is'} not read by ue's tasks; the keys are {', '.join(METADATA_KEYS)} "
            '(experiment options go inside "option": {...})'
        )


def build_dataset(experiment: str = "utilities", template: str | None = None, base_model: bool = False, **metadata: Any) -> dict:
    """lm-eval ``custom_dataset``: ``{"test": Dataset}`` built from the experiment and the (merged) metadata. Under
    the ``lm_eval`` command a mistake in them is one sentence and exit code 2, not a traceback (lm-eval builds
    datasets after loading the model, so that is as early as a task can speak)."""
    try:
        if _under_lm_eval_cli():
            _check_cli_metadata_keys()
        return _build_dataset(experiment, template, base_model, **metadata)
    except UserError as exc:
        if not _under_lm_eval_cli():
            raise
        print(f"ue: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _build_dataset(experiment: str = "utilities", template: str | None = None, base_model: bool = False, **metadata: Any) -> dict:
    import datasets

    from ue_tasks import experiments

    exp = experiments.get(str(experiment))
    spec = PlanSpec.from_options(exp.plan, where="--metadata field", **{k: metadata.get(k) for k in PLAN_KEYS})
    options = metadata.get("option") or {}
    if not isinstance(options, dict):
        raise UserError(f"--metadata field 'option' must be an object of experiment options, got {options!r}")
    # one lm_eval command running several experiments: {"option": {"exchange_rates": {...}, "time_discounting": {...}}}
    if any(isinstance(options.get(name), dict) for name in experiments.all_experiments()):
        options = options.get(exp.name) or {}
    exp.resolve_options(options)
    if exp.consumes and not options.get(exp.consumes) and not metadata.get("queries_file"):
        raise UserError(
            f"utility_{exp.name} builds on the model's own {exp.consumes} run: add --metadata "
            f'\'{{"option": {{"{exp.consumes}": "RUN_DIR"}}}}\' (a `ue run {exp.consumes}` folder of the same model)'
        )
    outcomes = metadata.get("outcomes")
    docs = documents(
        exp.name,
        None if outcomes in (None, "") else str(outcomes),
        spec,
        template,
        _truthy(base_model),
        metadata.get("queries_file") or None,
        options,
    )
    return {"test": datasets.Dataset.from_list(docs)}


# --------------------------------------------------------------------------------------------------------
# free-form generation
# answers produced in this process by an ``_answers`` task, by experiment and request id (read by ``analysis_of``)
_GENERATIONS: dict[str, dict[str, dict]] = {}


def generation_documents(
    experiment: str | None = None, generations_file: str | None = None, options: dict | None = None, outcomes: str | None = None
) -> list[dict]:
    """One document per free-form request: the requests of ``generations_file`` (a batch of ``ue run``) or the
    experiment's open questions. ``metadata`` travels as JSON text (its shape differs between requests)."""
    from ue_tasks import experiments
    from ue_tasks.generation import read_generations

    if generations_file:
        items = read_generations(generations_file)
    else:
        exp = experiments.get(str(experiment))
        if not exp.extension.asks_free_questions:
            raise UserError(f"experiment {exp.name!r} asks no free-form questions")
        opts = exp.resolve_options({**(options or {}), **({"outcomes": outcomes} if outcomes else {})})
        items = exp.extension.free_questions(exp.outcome_set(opts), opts)
    return [
        {**g.to_dict(), "metadata": json.dumps(dict(g.metadata), ensure_ascii=False), "from_batch": bool(generations_file)}
        for g in items
    ]


def build_generation_dataset(experiment: str | None = None, generations_file: str | None = None, **metadata: Any) -> dict:
    """lm-eval ``custom_dataset`` of the free-form tasks."""
    import datasets

    options = metadata.get("option") or {}
    if not isinstance(options, dict):
        raise UserError(f"--metadata field 'option' must be an object of experiment options, got {options!r}")
    outcomes = metadata.get("outcomes")
    docs = generation_documents(experiment, generations_file or None, options, None if outcomes in (None, "") else str(outcomes))
    return {"test": datasets.Dataset.from_list(docs)}


def generation_of(doc: dict) -> Any:
    from ue_tasks.generation import Generation

    return Generation.from_dict({**doc, "metadata": json.loads(doc.get("metadata") or "{}")})


def process_answer(doc: dict, results: list) -> dict[str, list]:
    """The reply of one free-form request (``[id, text]`` under the metric ``n_answers``), kept for the experiment's
    analysis in this process."""
    text = results[0] if results else None
    if isinstance(text, list):
        text = text[0] if text else None
    g = generation_of(doc)
    if g.experiment and not doc.get("from_batch"):
        _GENERATIONS.setdefault(g.experiment, {})[g.id] = g.entry(
            text, model="lm-eval", harness="lm-eval", run_id="lm-eval", task="lm-eval"
        )
    return {"n_answers": [g.id, text]}


def agg_n_answers(items: list) -> float:
    return float(len(items))


# --------------------------------------------------------------------------------------------------------
# per-document results
def keep_all_samples(resps, docs):
    """lm-eval filter (``function: custom``) that keeps all K sampled answers of a document, not the first."""
    return [list(r) for r in resps]


def _payload(
    q: Query,
    key: str,
    mode: str,
    p_a: float | None,
    n_a: int,
    n_b: int,
    n_u: int,
    mass: float | None,
    exact: tuple[int, int] | None = None,
    unanswered: dict | None = None,
) -> list:
    return [
        q.a_id,
        q.b_id,
        q.shown_first,
        q.split,
        mode,
        p_a,
        n_a,
        n_b,
        n_u,
        mass,
        key,
        *(exact or (None, None)),
        unanswered or None,
    ]


def exact_fields(p: dict) -> dict:
    """The optional record fields of a payload, when it has them (older payloads do not): the strict-scoring counts,
    and what the answers that are not votes were (``n_thinking_cut``, ``unparsed_answers``)."""
    out = {k: p[k] for k in EXACT_FIELDS if p.get(k) is not None}
    if isinstance(p.get("unanswered"), dict):
        out.update(p["unanswered"])
    return out


def logprob_payload(doc: dict, results: list) -> list:
    """(p_a, label mass) from the log-likelihoods of the two labels; p_a is the renormalised pair."""
    q = Query.from_dict(doc)
    (ll_first, _), (ll_second, _) = results[0], results[1]
    top = max(ll_first, ll_second)
    # scaled by exp(-top) so that the ratio never underflows; the mass is scaled back
    rel_first, rel_second = math.exp(ll_first - top), math.exp(ll_second - top)
    p_a, _ = q.p_a_from_labels(rel_first, rel_second)
    mass = min(1.0, math.exp(top) * (rel_first + rel_second))
    return _payload(q, doc.get("key", q.key), "logprob", p_a, 0, 0, 0, mass)


def sampled_payload(doc: dict, results: list) -> list:
    """Votes from the K sampled answers (parsed with ``ue_tasks.parsing``)."""
    q = Query.from_dict(doc)
    answers = results[0] if results and isinstance(results[0], list) else results
    n_a, n_b, n_u = q.votes(list(answers))
    usable = n_a + n_b
    return _payload(
        q,
        doc.get("key", q.key),
        "sample",
        n_a / usable if usable else None,
        n_a,
        n_b,
        n_u,
        None,
        q.exact_votes(list(answers)),
        q.unanswered(list(answers)),
    )


def _metric_names(doc: dict) -> tuple[str, ...]:
    from ue_tasks import experiments

    return experiments.get(doc.get("experiment") or "utilities").metrics


def process_logprob(doc: dict, results: list) -> dict[str, list]:
    payload = logprob_payload(doc, results)
    return {name: payload for name in _metric_names(doc)}


def process_sampled(doc: dict, results: list) -> dict[str, list]:
    payload = sampled_payload(doc, results)
    return {name: payload for name in _metric_names(doc)}


def process_batch_logprob(doc: dict, results: list) -> dict[str, list]:
    """The hidden ``ue_batch`` task of ``ue run``: the payload under one cheap metric (no analysis per batch)."""
    return {"n_queries": logprob_payload(doc, results)}


def process_batch_sampled(doc: dict, results: list) -> dict[str, list]:
    return {"n_queries": sampled_payload(doc, results)}


def agg_n_queries(items: list) -> float:
    return float(len(items))


# --------------------------------------------------------------------------------------------------------
# corpus-level: one analysis per task, shared by every metric
_RESULTS: OrderedDict[str, dict] = OrderedDict()
_CACHE_SIZE = 8


def payload_record(payload: list, **extra: Any) -> dict:
    """A ``ue.preference/1`` record from a payload: the full query when this process built its document, else the
    ids alone (texts default to the ids; a fit needs only ids)."""
    from ue_metrics.records import make_record

    p = dict(zip(PAYLOAD_FIELDS, payload))
    q = _QUERIES.get(p.get("key") or "")
    ids = {"model": "lm-eval", "harness": "lm-eval", "task": "lm-eval", "run_id": "lm-eval", **extra}
    if q is not None:
        return q.record(
            mode=p["mode"],
            p_a=p["p_a"],
            n_a=p["n_a"],
            n_b=p["n_b"],
            n_unparsed=p["n_unparsed"],
            label_mass=p["label_mass"],
            **exact_fields(p),
            **ids,
        )
    fields = {
        "outcome_set": "lm-eval",
        "a_text": p["a_id"],
        "b_text": p["b_id"],
        "template": "default",
        "round": 0,
        **{k: p[k] for k in PAYLOAD_FIELDS if k not in ("key", "unanswered") and k not in EXACT_FIELDS},
        **exact_fields(p),
        **ids,
    }
    return make_record(**fields)


def analysis_of(items: list) -> dict:
    """The experiment's analysis of one task's payloads (fitted once, cached); its ``headline`` feeds the metrics."""
    key = hashlib.sha1(json.dumps(items, separators=(",", ":"), default=str).encode()).hexdigest()
    if key in _RESULTS:
        _RESULTS.move_to_end(key)
        return _RESULTS[key]
    from ue_tasks.analysis import analyse_records

    records = [payload_record(p) for p in items]
    names = {r.get("experiment") for r in records}
    generations = _GENERATIONS.get(next(iter(names))) if len(names) == 1 else None
    options = None
    if items:
        options = _OPTIONS.get(dict(zip(PAYLOAD_FIELDS, items[0])).get("key") or "")
    try:
        result = analyse_records(records, options=options, generations=list(generations.values()) if generations else None)
    except Exception as exc:  # noqa: BLE001
        # An exception here would abort lm-eval before it writes the samples, losing the whole run. Instead the
        # metrics are NaN, the log says why, and `ue analyse OUT` can be run on the saved samples. (Typical cause:
        # a --limit so small that the training graph falls apart into pieces too small to fit.)
        logger.warning("ue: no analysis of these %d documents (%s: %s); the metrics are NaN", len(items), type(exc).__name__, exc)
        result = {"headline": {}, "notes": {"*": str(exc)}}
    _RESULTS[key] = result
    while len(_RESULTS) > _CACHE_SIZE:
        _RESULTS.popitem(last=False)
    return result


def _value(result: dict, key: str) -> float:
    value = result.get("headline", {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def _aggregation(key: str) -> Callable[[list], float]:
    def aggregate(items: list) -> float:
        return _value(analysis_of(items), key)

    aggregate.__name__ = f"agg_{key}"
    aggregate.__doc__ = f"lm-eval aggregation: the headline {key.replace('_', ' ')} of the task's (cached) analysis."
    return aggregate


def __getattr__(name: str) -> Callable[[list], float]:
    """``agg_<headline key>`` for every headline key of every experiment (the YAMLs name them)."""
    if name.startswith("agg_"):
        fn = _aggregation(name.removeprefix("agg_"))
        globals()[name] = fn
        return fn
    raise AttributeError(name)

"""Inspect tasks for Utility Engineering (Mazeika et al., 2025): every registered experiment's forced-choice
elicitation between outcomes, both orderings, scored into preferences, with the experiment's analysis of all
scores as the task's metrics.

``_utility_task`` is the private factory; each task is a few lines on top of it. This file holds only the generic
``utility`` task, so that ``inspect eval ue_tasks/`` (which runs every ``@task`` it finds in the folder) runs one
evaluation, shaped by ``-T``. The named tasks (``ue/utility_<experiment>``, ``ue/utility_core``,
``ue/utility_mini``, their sampled and reasoning forms) are generated from the experiment registry in
``ue_tasks/harness/inspect/_registry.py``, which the folder scan skips and the package entry point loads.

Task options (``-T``): ``experiment`` (default ``utilities``), ``outcomes`` (a set name or a user file replacing
the experiment's outcomes), ``seed`` and ``budget`` (the plan), ``mode`` (``logprob``: P(A), P(B) of the first
answer token; ``sample``: K answers per ordering parsed into votes), ``template``, ``samples`` (K, the epochs of
sample mode), ``top_logprobs``, ``system_message``, ``options`` (the experiment's own options, a mapping) and
``model_name`` (the model's name in the records).

An experiment that asks open questions (utility maximisation) adds one sample per question: the question asked
directly with its own system message, answered greedily; the metrics' analysis reads those answers. ``free_answers``
is the task ``ue run`` sends a batch of free-form requests through (not a ``@task``, so folder scans skip it).
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ue_metrics.errors import UserError
from ue_tasks import experiments
from ue_tasks.generation import Generation, read_generations
from ue_tasks.harness.inspect.metrics import metrics_for, n_queries
from ue_tasks.harness.inspect.scorer import (
    GENERATION_KEY,
    MODE_KEY,
    OPTIONS_KEY,
    QUERY_KEY,
    InspectUserError,
    check_mode,
    elicit_preference,
    free_answer,
    preference,
    preference_votes,
)
from ue_tasks.plan import PlanSpec
from ue_tasks.queries import Query, interleave_holdout, read_queries
from ue_tasks.templates import get_template

SAMPLES_PER_ORDERING = 10  # K (docs/method.md §1.4)
MAX_TOKENS_SAMPLE = 10
MAX_TOKENS_REASONING = 500


def sample_id(query: Query) -> str:
    """Stable sample id of a (pair, ordering) query."""
    return f"{query.group + '-' if query.group else ''}pair{query.pair:05d}-{query.shown_first}"


def _sample(query: Query, mode: str, options: dict | None = None) -> Sample:
    messages = [
        ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])
        for m in query.messages()
    ]
    metadata = {QUERY_KEY: query.to_dict(), MODE_KEY: mode}
    if options:  # the experiment options (a utilities run, entity runs) its analysis reads
        metadata[OPTIONS_KEY] = dict(options)
    return Sample(id=sample_id(query), input=messages, metadata=metadata)


def _free_sample(g: Generation) -> Sample:
    messages = [
        ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])
        for m in g.messages()
    ]
    return Sample(id=g.id.replace(":", "-"), input=messages, metadata={GENERATION_KEY: g.to_dict()})


def _free_requests(experiment: str, outcomes: str | None, options: dict | None) -> list[Generation]:
    exp = experiments.get(experiment)
    opts = exp.resolve_options({**(options or {}), **({"outcomes": outcomes} if outcomes else {})})
    return exp.extension.free_questions(exp.outcome_set(opts), opts)


@solver
def answer_freely() -> Solver:
    """Answer a free-form request greedily, with its token cap."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await free_answer(state, generate)

    return solve


def free_answers(generations_file: str) -> Task:
    """The free-form requests of ``generations_file`` (a batch of ``ue run``), each answered once, greedily."""
    try:
        items = read_generations(generations_file)
    except UserError as exc:
        raise InspectUserError(str(exc)) from None
    return Task(
        dataset=MemoryDataset([_free_sample(g) for g in items], name="ue-free-answers"),
        solver=answer_freely(),
        metadata={"n_requests": len(items)},
        version=1,
    )


def _answers_task(experiment: str, outcomes: str | None = None, options: dict | None = None) -> Task:
    """Only the open questions of an experiment, each answered once, greedily (the twin of lm-eval's
    ``utility_<name>_answers``); ``ue/utility_<name>`` asks them together with the pairs."""
    try:
        free = _free_requests(experiment, outcomes, options)
        if not free:
            raise InspectUserError(f"experiment {experiment!r} asks no free-form questions")
    except InspectUserError:
        raise
    except UserError as exc:
        raise InspectUserError(str(exc)) from None
    return Task(
        dataset=MemoryDataset([_free_sample(g) for g in free], name=f"ue-{experiment}-answers"),
        solver=answer_freely(),
        metrics=[n_queries()],
        metadata={"experiment": experiment, "n_free_answers": len(free)},
        version=1,
    )


def _queries(
    experiment: str, outcomes: str | None, seed: Any, budget: Any, template: str, system_message: str | None, options: dict | None
) -> list[Query]:
    exp = experiments.get(experiment)
    exp.resolve_options(options)
    if exp.consumes and not (options or {}).get(exp.consumes):
        raise InspectUserError(
            f'{exp.name} builds on the model\'s own {exp.consumes} run: add -T options=\'{{"{exp.consumes}": "RUN_DIR"}}\' '
            f"(a `ue run {exp.consumes}` folder of the same model)"
        )
    spec = PlanSpec.from_options(exp.plan, where="-T option", seed=seed, budget=budget).one_shot()
    oset = exp.outcome_set({**(options or {}), **({"outcomes": outcomes} if outcomes else {})})
    system = exp.system_message if system_message is None else system_message
    # the same document order as the lm-eval tasks (holdout pairs spread among the training pairs), so a --limit
    # keeps the same queries in both harnesses and still scores some holdout pairs
    return interleave_holdout(
        exp.queries(oset, exp.build_plan(oset, spec, options), template=template, system_message=system, options=options)
    )


def _utility_task(
    experiment: str = "utilities",
    outcomes: str | None = None,
    seed: int = 0,
    budget: int | None = None,
    mode: str | None = None,
    template: str | None = None,
    samples: int = SAMPLES_PER_ORDERING,
    top_logprobs: int = 20,
    system_message: str | None = None,
    queries_file: str | None = None,
    options: dict | None = None,
    model_name: str | None = None,
) -> Task:
    """One elicitation run: a sample per (pair, ordering) of the experiment's seeded plan."""
    try:
        experiment, options = experiments.with_variant(experiment, options)
        exp = experiments.get(experiment)
        mode = check_mode(mode or exp.mode)
        template = template or exp.template
        reasoning = get_template(template).reasoning
        if reasoning and mode == "logprob":
            raise InspectUserError(
                "the reasoning template needs generated answers; use -T mode=sample with -T template=reasoning"
            )
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InspectUserError(f"samples must be a positive integer (answers per ordering in sample mode), got {samples!r}")
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int) or not 2 <= top_logprobs <= 20:
            raise InspectUserError(f"top_logprobs must be an integer from 2 to 20, got {top_logprobs!r}")
        if queries_file:  # an explicit batch of queries (how `ue run` asks a batch)
            queries = read_queries(queries_file)
            # an experiment that asks one plan under several prompts (robustness) carries each query's own template
            if "template" in exp.prompt_fields and mode == "logprob" and any(get_template(q.template).reasoning for q in queries):
                raise InspectUserError(f"{queries_file}: some of its queries use a reasoning template; use -T mode=sample")
            if "template" not in exp.prompt_fields and any(q.template != template for q in queries):
                raise InspectUserError(f"{queries_file}: its queries use another template than -T template={template}")
        else:
            queries = _queries(exp.name, outcomes, seed, budget, template, system_message, options)
        free = [] if queries_file else _free_requests(exp.name, outcomes, options)
    except InspectUserError:
        raise
    except UserError as exc:  # from the registry, the outcome loader or the plan: one sentence, no traceback
        raise InspectUserError(str(exc)) from None
    if mode == "logprob":
        config = GenerateConfig(max_tokens=1, logprobs=True, top_logprobs=top_logprobs)
        epochs = Epochs(1, preference_votes())
    else:
        config = GenerateConfig(max_tokens=MAX_TOKENS_REASONING if reasoning else MAX_TOKENS_SAMPLE, temperature=1.0)
        epochs = Epochs(samples, preference_votes())
    outcome_set = queries[0].outcome_set
    return Task(
        dataset=MemoryDataset(
            [_sample(q, mode, None if queries_file else options) for q in queries] + [_free_sample(g) for g in free],
            name=f"ue-{exp.name}-{outcome_set}-seed{seed}",
        ),
        solver=elicit_preference(mode, seed=seed),
        scorer=preference(mode),
        metrics=[n_queries()] if queries_file else metrics_for(exp.name),
        epochs=epochs,
        config=config,
        metadata={
            "experiment": exp.name,
            "outcome_set": outcome_set,
            "seed": seed,
            "budget": budget,
            "mode": mode,
            "template": template,
            "samples_per_ordering": samples if mode == "sample" else None,
            "n_queries": len(queries),
            "n_free_answers": len(free),
            "n_holdout_queries": sum(q.split == "holdout" for q in queries),
            **({"model_name": model_name} if model_name else {}),
        },
        version=2,
    )


@task
def utility(
    experiment: str = "utilities",
    outcomes: str | None = None,
    seed: int = 0,
    budget: int | None = None,
    mode: str | None = None,
    template: str | None = None,
    samples: int = SAMPLES_PER_ORDERING,
    top_logprobs: int = 20,
    system_message: str | None = None,
    queries_file: str | None = None,
    options: dict | None = None,
    model_name: str | None = None,
) -> Task:
    """Any experiment's elicitation; ``-T`` picks the experiment, outcome set, plan, mode and template (or
    ``queries_file``, a JSONL batch of queries as ``ue run`` writes them); ``model_name`` names the model in the
    records (default: from the model, ``ue_tasks.model_identity``)."""
    return _utility_task(
        experiment,
        outcomes,
        seed,
        budget,
        mode,
        template,
        samples,
        top_logprobs,
        system_message,
        queries_file,
        options,
        model_name,
    )

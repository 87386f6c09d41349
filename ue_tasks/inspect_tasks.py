"""Inspect tasks for Utility Engineering (Mazeika et al., 2025, §3–4): forced-choice preference elicitation
between outcomes, both orderings, scored into preferences, with a Thurstonian fit over all scores.

``_utility_task`` is the private factory; each task is a few lines on top of it. This file holds only the
generic ``utility`` task, so that ``inspect eval ue_tasks/`` (which runs every ``@task`` it finds in the folder)
runs one evaluation, shaped by ``-T``. The named variants (``utility_core``, ``utility_mini``, their sampled
and reasoning forms) live in ``ue_tasks/_inspect_registry.py``, which the folder scan skips and the package
entry point loads: ``inspect eval ue_tasks/utility_mini``.

Task options (``-T``): ``outcomes`` (``core``, ``mini`` or a user file), ``seed`` and ``budget`` (the comparison
plan), ``mode`` (``logprob``: P(A), P(B) of the first answer token; ``sample``: K answers per ordering parsed
into votes), ``template`` (``default`` or ``reasoning``), ``samples`` (K, the epochs of sample mode),
``top_logprobs`` and ``system_message``.
"""

from __future__ import annotations

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig

from ue_metrics.errors import UserError
from ue_tasks.elicitation import Query, build_queries, interleave_holdout, read_queries
from ue_tasks.inspect_scorer import (
    MODE_KEY,
    QUERY_KEY,
    InspectUserError,
    check_mode,
    elicit_preference,
    preference,
    preference_votes,
)
from ue_tasks.templates import SYSTEM_MESSAGE, get_template

SAMPLES_PER_ORDERING = 10  # K (METHOD.md §1.4)
MAX_TOKENS_SAMPLE = 10
MAX_TOKENS_REASONING = 500


def sample_id(query: Query) -> str:
    """Stable sample id of a (pair, ordering) query."""
    return f"pair{query.pair:05d}-{query.shown_first}"


def _sample(query: Query, mode: str, system_message: str | None) -> Sample:
    messages = [
        ChatMessageSystem(content=m["content"]) if m["role"] == "system" else ChatMessageUser(content=m["content"])
        for m in query.messages(system_message or None)
    ]
    return Sample(id=sample_id(query), input=messages, metadata={QUERY_KEY: query.to_dict(), MODE_KEY: mode})


def _utility_task(
    outcomes: str = "core",
    seed: int = 0,
    budget: int | None = None,
    mode: str = "logprob",
    template: str = "default",
    samples: int = SAMPLES_PER_ORDERING,
    top_logprobs: int = 20,
    system_message: str | None = SYSTEM_MESSAGE,
    queries_file: str | None = None,
) -> Task:
    """One elicitation run: a sample per (pair, ordering) of the seeded plan over ``outcomes``."""
    check_mode(mode)
    try:
        reasoning = get_template(template).reasoning
    except UserError as exc:
        raise InspectUserError(str(exc)) from None
    if reasoning and mode == "logprob":
        raise InspectUserError("the reasoning template needs generated answers; use -T mode=sample with -T template=reasoning")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InspectUserError(f"samples must be a positive integer (answers per ordering in sample mode), got {samples!r}")
    if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int) or not 2 <= top_logprobs <= 20:
        raise InspectUserError(f"top_logprobs must be an integer from 2 to 20, got {top_logprobs!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise InspectUserError(f"budget must be a whole number of training pairs, got {budget!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InspectUserError(f"seed must be an integer, got {seed!r}")
    try:
        # the same document order as the lm-eval tasks (holdout pairs spread among the training pairs), so a
        # --limit keeps the same queries in both harnesses and still scores some holdout pairs
        if queries_file:  # an explicit batch of queries (how `ue elicit` runs an active-learning round)
            queries = read_queries(queries_file)
            if any(q.template != template for q in queries):
                raise InspectUserError(f"{queries_file}: its queries use another template than -T template={template}")
        else:
            queries = interleave_holdout(build_queries(str(outcomes), seed=seed, budget=budget, template=template))
    except InspectUserError:
        raise
    except UserError as exc:  # from the outcome loader or the plan: shown as one sentence, no traceback
        raise InspectUserError(str(exc)) from None

    if mode == "logprob":
        config = GenerateConfig(max_tokens=1, logprobs=True, top_logprobs=top_logprobs)
        epochs = Epochs(1, preference_votes())
    else:
        max_tokens = MAX_TOKENS_REASONING if reasoning else MAX_TOKENS_SAMPLE
        config = GenerateConfig(max_tokens=max_tokens, temperature=1.0, seed=seed)
        epochs = Epochs(samples, preference_votes())
    outcome_set = queries[0].outcome_set
    return Task(
        dataset=MemoryDataset([_sample(q, mode, system_message) for q in queries], name=f"ue-{outcome_set}-seed{seed}"),
        solver=elicit_preference(mode),
        scorer=preference(mode),
        epochs=epochs,
        config=config,
        metadata={
            "outcome_set": outcome_set,
            "seed": seed,
            "budget": budget,
            "mode": mode,
            "template": template,
            "samples_per_ordering": samples if mode == "sample" else None,
            "n_queries": len(queries),
            "n_holdout_queries": sum(q.split == "holdout" for q in queries),
        },
        version=1,
    )


@task
def utility(
    outcomes: str = "core",
    seed: int = 0,
    budget: int | None = None,
    mode: str = "logprob",
    template: str = "default",
    samples: int = SAMPLES_PER_ORDERING,
    top_logprobs: int = 20,
    system_message: str | None = SYSTEM_MESSAGE,
    queries_file: str | None = None,
) -> Task:
    """Utility elicitation on any outcome set; ``-T`` picks the set, plan, mode and template (or
    ``queries_file``, a JSONL batch of queries as ``ue elicit`` writes them)."""
    return _utility_task(outcomes, seed, budget, mode, template, samples, top_logprobs, system_message, queries_file)

"""The named Inspect tasks of ``ue``, and the module that the package's ``inspect_ai`` entry point loads, so
that an installed ``ue`` serves ``inspect eval ue/utility_mini``.

Inspect namespaces a package's tasks by the top-level module (``ue_tasks/``) and only when it recognises the
install (an editable install of the distribution ``ue`` gets bare names), so each task is also registered
under the stable name ``ue/<task>``, the entry point's name. The leading underscore keeps this file out of
``inspect eval ue_tasks/`` folder scans, which run the generic ``utility`` task only; a variant also runs by
file: ``inspect eval ue_tasks/_inspect_registry.py@utility_mini``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from inspect_ai import Task, task

from ue_tasks.inspect_tasks import SAMPLES_PER_ORDERING, _utility_task, utility

NAMESPACE = "ue"


@task
def utility_core(seed: int = 0, budget: int | None = None, mode: str = "logprob", outcomes: str = "core") -> Task:
    """The paper's main run on the 570 ``core`` outcomes, next-token probabilities of "A" and "B"."""
    return _utility_task(outcomes, seed, budget, mode)


@task
def utility_mini(seed: int = 0, budget: int | None = None, mode: str = "logprob", outcomes: str = "mini") -> Task:
    """The ~60-outcome ``mini`` set for demos and CI, next-token probabilities."""
    return _utility_task(outcomes, seed, budget, mode)


@task
def utility_core_sampled(seed: int = 0, budget: int | None = None, samples: int = SAMPLES_PER_ORDERING, outcomes: str = "core") -> Task:
    """``core`` with K sampled answers per ordering (temperature 1, 10 tokens): for providers without log-probabilities."""
    return _utility_task(outcomes, seed, budget, "sample", samples=samples)


@task
def utility_mini_sampled(seed: int = 0, budget: int | None = None, samples: int = SAMPLES_PER_ORDERING, outcomes: str = "mini") -> Task:
    """``mini`` with K sampled answers per ordering."""
    return _utility_task(outcomes, seed, budget, "sample", samples=samples)


@task
def utility_core_reasoning(seed: int = 0, budget: int | None = None, samples: int = SAMPLES_PER_ORDERING, outcomes: str = "core") -> Task:
    """``core`` with the reasoning template: K answers of up to 500 tokens per ordering, the last "Answer: X" counts."""
    return _utility_task(outcomes, seed, budget, "sample", "reasoning", samples=samples)


TASKS: dict[str, Callable[..., Task]] = {
    fn.__name__: fn
    for fn in (utility, utility_core, utility_mini, utility_core_sampled, utility_mini_sampled, utility_core_reasoning)
}


def _register_stable_names() -> None:
    """Register ``ue/<task>`` for every task (a forwarding function, so the task's own registration stays)."""
    from inspect_ai._eval.registry import task_register
    from inspect_ai._util.registry import registry_info

    for name, fn in TASKS.items():
        info = registry_info(fn)

        @functools.wraps(fn)
        def forward(*args: Any, _fn: Callable[..., Task] = fn, **kwargs: Any) -> Task:
            return _fn(*args, **kwargs)

        task_register(forward, f"{NAMESPACE}/{name}", dict(info.metadata.get("attribs", {})), list(info.metadata.get("params", [])))


_register_stable_names()

"""The named Inspect tasks of ``ue``, generated from the experiment registry, and the module that the package's
``inspect_ai`` entry point loads, so that an installed ``ue`` serves ``inspect eval ue/utility_transitivity``.

Per experiment: ``utility_<experiment>`` (its default mode) and ``utility_<experiment>_sampled`` (K answers per
ordering), and ``utility_<experiment>_answers`` (the open questions alone) for experiments that ask them; the main run is named by outcome set instead, as in lm-eval: ``utility_core``, ``utility_mini``, their
``_sampled`` forms and ``utility_core_reasoning``. Each is registered under its bare name and under the stable
name ``ue/<task>`` (the entry point's name). The leading underscore keeps this file out of ``inspect eval
ue_tasks/`` folder scans, which run the generic ``utility`` task only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from inspect_ai import Task, task

from ue_tasks import experiments
from ue_tasks.harness.inspect.tasks import SAMPLES_PER_ORDERING, _answers_task, _utility_task, utility

NAMESPACE = "ue"


def _named(name: str, doc: str, **fixed: Any) -> Callable[..., Task]:
    def make(
        seed: int = 0,
        budget: int | None = None,
        samples: int = SAMPLES_PER_ORDERING,
        outcomes: str | None = None,
        mode: str | None = None,
        options: dict | None = None,
        model_name: str | None = None,
    ) -> Task:
        chosen = {"mode": mode, **{k: v for k, v in fixed.items() if k != "outcomes"}}
        return _utility_task(
            outcomes=outcomes or fixed.get("outcomes"),
            seed=seed,
            budget=budget,
            samples=samples,
            options=options,
            model_name=model_name,
            **chosen,
        )

    make.__name__ = name
    make.__doc__ = doc
    return task(name=name)(make)


def task_specs() -> dict[str, tuple[str, dict[str, Any]]]:
    """``{task name: (description, fixed options)}`` for every experiment."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, exp in experiments.all_experiments().items():
        if not exp.asks_preferences:  # a collector (hidden states) has no harness task
            continue
        if exp.lm_eval_sets:
            for s in exp.lm_eval_sets:
                specs[f"utility_{s}"] = (
                    f"{exp.title} on the {s} outcomes, {exp.mode} mode.",
                    {"experiment": name, "outcomes": s},
                )
                specs[f"utility_{s}_sampled"] = (
                    f"{exp.title} on the {s} outcomes, K sampled answers per ordering.",
                    {"experiment": name, "outcomes": s, "mode": "sample"},
                )
        else:
            specs[f"utility_{name}"] = (f"{exp.title} ({exp.section}), {exp.mode} mode.", {"experiment": name})
            specs[f"utility_{name}_sampled"] = (
                f"{exp.title} ({exp.section}), K sampled answers per ordering.",
                {"experiment": name, "mode": "sample"},
            )
    specs["utility_core_reasoning"] = (
        'The main run on core with the reasoning template: K answers of up to 500 tokens, the last "Answer: X" counts.',
        {"experiment": "utilities", "outcomes": "core", "mode": "sample", "template": "reasoning"},
    )
    return specs


def _named_answers(name: str, experiment: str, doc: str) -> Callable[..., Task]:
    def make(outcomes: str | None = None, options: dict | None = None) -> Task:
        return _answers_task(experiment, outcomes, options)

    make.__name__ = name
    make.__doc__ = doc
    return task(name=name)(make)


TASKS: dict[str, Callable[..., Task]] = {"utility": utility}
for _name, (_doc, _fixed) in task_specs().items():
    TASKS[_name] = _named(_name, _doc, **_fixed)
for _exp_name, _exp in experiments.all_experiments().items():
    if _exp.extension.asks_free_questions:
        _task_name = f"utility_{_exp_name}_answers"
        TASKS[_task_name] = _named_answers(_task_name, _exp_name, f"{_exp.title}: the open questions alone, answered greedily.")
globals().update({k: v for k, v in TASKS.items() if k != "utility"})


def _register_stable_names() -> None:
    """Register ``ue/<task>`` for every task (a forwarding function, so the task's own registration stays).

    Why the private ``inspect_ai._eval.registry``/``_util.registry`` (inspect_ai 0.3.x): the only public registration
    API is the ``@task(name=...)`` decorator, and it cannot add a second name to a task. Wrapping a task in it
    registers a new task whose instances it re-tags with the new name (so a run of ``ue/utility_mini`` would log
    another task name than ``utility_mini``), and ``registry_name`` may prefix the name with the wrapper's installed
    package. ``task_register`` with the task's own ``registry_info`` is
    the alias the registry itself uses; tests/test_inspect_unit.py pins both names."""
    from inspect_ai._eval.registry import task_register
    from inspect_ai._util.registry import registry_info

    for name, fn in TASKS.items():
        info = registry_info(fn)

        @functools.wraps(fn)
        def forward(*args: Any, _fn: Callable[..., Task] = fn, **kwargs: Any) -> Task:
            return _fn(*args, **kwargs)

        task_register(
            forward, f"{NAMESPACE}/{name}", dict(info.metadata.get("attribs", {})), list(info.metadata.get("params", []))
        )


_register_stable_names()

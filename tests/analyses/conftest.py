"""A simulated run of an experiment without the run folder: its outcomes and plan, a known-truth responder's exact
answers through the simulator backend, its free answers, then the experiment's analysis — the same pieces `ue run`
chains, so the analyses are tested on records shaped exactly as a run writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def exact_records(outcomes, responder, *, template: str, experiment: str, budget: int, seed: int = 0) -> list[dict]:
    """Exact (log-prob) answers of ``responder`` to a random plan over ``outcomes``, both orderings, with the
    outcomes' tags and attributes carried as a harness would."""
    from ue_metrics.records import make_record
    from ue_tasks.plan import PlanSpec, make_plan

    plan = make_plan(len(outcomes), PlanSpec(kind="graph", seed=seed, budget=budget, holdout_fraction=0.02))
    out = []
    for (a, b), split in zip(plan.pairs.tolist(), plan.split.tolist()):
        oa, ob = outcomes.outcomes[a], outcomes.outcomes[b]
        p = responder.p_a(oa.id, ob.id)
        for shown in ("a", "b"):
            out.append(
                make_record(
                    run_id="r",
                    model="sim",
                    harness="simulate",
                    task="t",
                    outcome_set=outcomes.name,
                    a_id=oa.id,
                    b_id=ob.id,
                    a_text=oa.text,
                    b_text=ob.text,
                    shown_first=shown,
                    mode="logprob",
                    template=template,
                    p_a=p,
                    n_a=0,
                    n_b=0,
                    n_unparsed=0,
                    label_mass=1.0,
                    split=split,
                    round=0,
                    a_category=oa.category,
                    b_category=ob.category,
                    experiment=experiment,
                    a_attributes=oa.described(),
                    b_attributes=ob.described(),
                )
            )
    return out


def simulate_analysis(
    experiment: str,
    responder: str,
    options: dict | None = None,
    seed: int = 0,
    plan_kind: str | None = None,
    budget: int | None = None,
) -> dict[str, Any]:
    from ue_tasks import experiments
    from ue_tasks.analysis import analyse_records
    from ue_tasks.elicitation.backends import SimulateBackend
    from ue_tasks.plan import PlanSpec
    from ue_tasks.queries import queries_for

    exp = experiments.get(experiment)
    opts = exp.resolve_options(options)
    oset = exp.outcome_set(opts)
    spec = PlanSpec(kind=plan_kind or exp.plan.kind, seed=seed, budget=budget, round_size=exp.plan.round_size)
    plan = exp.build_plan(oset, spec, opts)
    queries = queries_for(oset, plan, experiment=exp.name, template=exp.template, system_message=exp.system_message)
    backend = SimulateBackend(exp.responder(responder, oset, seed), "logprob", 10, seed)
    ids = dict(model=responder, harness="simulate", task=exp.name, run_id="test")
    records = [a.record(q, mode="logprob", **ids) for q, a in zip(queries, backend.answer(queries))]
    items = exp.extension.free_questions(oset, opts)
    generations = [g.entry(text, **ids) for g, text in zip(items, backend.generate(items))] or None
    result = analyse_records(records, experiment, options=opts, seed=seed, generations=generations)
    result["_records"] = records
    return result


@pytest.fixture
def simulated() -> Callable[..., dict[str, Any]]:
    return simulate_analysis

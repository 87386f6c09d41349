"""Elicitation queries: the one place where an outcome set, a comparison plan and a template become the
(pair, ordering) prompts both harness plugins send, and where a harness's answer becomes a preference record.

A ``Query`` is one (pair, ordering): outcome ``a`` and ``b`` of the pair (a = the lower plan index), which of them
is shown as "Option A", the split and the template. Harness adapters (lm-eval hooks, Inspect solver/scorer)
only translate between their own objects and these methods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from ue_metrics.errors import UserError
from ue_metrics.records import make_record
from ue_tasks.outcomes import load_outcomes
from ue_tasks.parsing import parse_choice
from ue_tasks.plan import make_plan
from ue_tasks.templates import LABELS, SYSTEM_MESSAGE, get_template, render_prompt


@dataclass(frozen=True)
class Query:
    pair: int
    a_id: str
    b_id: str
    a_text: str
    b_text: str
    a_category: str
    b_category: str
    shown_first: str  # "a" or "b": which outcome appears as Option A
    split: str
    template: str
    outcome_set: str
    seed: int

    @property
    def option_a(self) -> str:
        return self.a_text if self.shown_first == "a" else self.b_text

    @property
    def option_b(self) -> str:
        return self.b_text if self.shown_first == "a" else self.a_text

    @property
    def reasoning(self) -> bool:
        return get_template(self.template).reasoning

    def prompt(self, base_model: bool = False) -> str:
        return render_prompt(self.template, self.option_a, self.option_b, base_model=base_model)

    def messages(self, system_message: str | None = SYSTEM_MESSAGE) -> list[dict[str, str]]:
        head = [{"role": "system", "content": system_message}] if system_message else []
        return head + [{"role": "user", "content": self.prompt()}]

    # --- answers → outcome-a terms -------------------------------------------------------------------------
    def p_a_from_labels(self, prob_label_a: float, prob_label_b: float) -> tuple[float, float]:
        """(p_a, label_mass) from the next-token probabilities of the labels "A" and "B"."""
        mass = prob_label_a + prob_label_b
        if mass <= 0:
            raise ValueError("both answer labels have zero probability")
        p_first = prob_label_a / mass
        return (p_first if self.shown_first == "a" else 1.0 - p_first), mass

    def votes(self, answers: list[str | None]) -> tuple[int, int, int]:
        """(n_a, n_b, n_unparsed) from raw sampled answers."""
        n_a = n_b = n_u = 0
        for text in answers:
            label = parse_choice(text, reasoning=self.reasoning)
            if label is None:
                n_u += 1
            elif (label == LABELS[0]) == (self.shown_first == "a"):
                n_a += 1
            else:
                n_b += 1
        return n_a, n_b, n_u

    def record(
        self,
        *,
        mode: str,
        model: str,
        harness: str,
        task: str,
        run_id: str,
        p_a: float | None = None,
        n_a: int = 0,
        n_b: int = 0,
        n_unparsed: int = 0,
        label_mass: float | None = None,
        round: int = 0,
        **extra,
    ) -> dict:
        if mode == "sample":
            usable = n_a + n_b
            p_a = n_a / usable if usable else None
        return make_record(
            run_id=run_id, model=model, harness=harness, task=task, outcome_set=self.outcome_set,
            a_id=self.a_id, b_id=self.b_id, a_text=self.a_text, b_text=self.b_text, shown_first=self.shown_first,
            mode=mode, template=self.template, p_a=p_a, n_a=n_a, n_b=n_b, n_unparsed=n_unparsed,
            label_mass=label_mass, split=self.split, round=round,
            a_category=self.a_category, b_category=self.b_category, seed=self.seed, **extra,
        )  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Query:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@lru_cache(maxsize=16)
def _build(outcomes: str, seed: int, budget: int | None, degree: int, holdout_fraction: float, template: str) -> tuple[Query, ...]:
    get_template(template)
    oset = load_outcomes(outcomes)
    plan = make_plan(len(oset), seed=seed, budget=budget, degree=degree, holdout_fraction=holdout_fraction)
    items = oset.outcomes
    out = []
    for k, a, b, shown, split in plan.queries():
        oa, ob = items[a], items[b]
        out.append(
            Query(
                pair=k, a_id=oa.id, b_id=ob.id, a_text=oa.text, b_text=ob.text, a_category=oa.category,
                b_category=ob.category, shown_first=shown, split=split, template=template, outcome_set=oset.name, seed=seed,
            )  # fmt: skip
        )
    return tuple(out)


def build_queries(
    outcomes: str = "mini",
    seed: int = 0,
    budget: int | None = None,
    degree: int = 2,
    holdout_fraction: float = 0.05,
    template: str = "default",
) -> list[Query]:
    """All (pair, ordering) queries of the plan for an outcome set (name or file), both orderings adjacent."""
    return list(_build(str(outcomes), int(seed), None if budget is None else int(budget), int(degree), float(holdout_fraction), template))


def interleave_holdout(queries: list[Query]) -> list[Query]:
    """Spread the holdout pairs evenly among the training pairs (orderings stay adjacent), so that a run cut
    short with a harness's ``--limit`` still has holdout pairs to score. Both plugins send documents in this
    order, so the same ``--limit`` selects the same queries in lm-eval and Inspect."""
    pairs: dict[int, list[Query]] = {}
    for q in queries:
        pairs.setdefault(q.pair, []).append(q)
    train = [p for p in pairs.values() if p[0].split == "train"]
    hold = [p for p in pairs.values() if p[0].split == "holdout"]
    if not train or not hold:
        return list(queries)
    out: list[Query] = []
    step = len(train) / (len(hold) + 1)
    h = 0
    for t, group in enumerate(train, 1):
        out.extend(group)
        while h < len(hold) and t >= (h + 1) * step:
            out.extend(hold[h])
            h += 1
    for group in hold[h:]:
        out.extend(group)
    return out


def write_queries(queries: Sequence[Query], path: str | Path) -> Path:
    """Queries as JSONL (one ``Query.to_dict()`` per line): how ``ue elicit`` hands a batch to a harness task."""
    path = Path(path)
    path.write_text("".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in queries), encoding="utf-8")
    return path


def read_queries(path: str | Path) -> list[Query]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the queries file ({exc.strerror or exc})") from None
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(Query.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path} line {lineno}: not a query object ({exc}); write it with ue_tasks.elicitation.write_queries") from None
    if not out:
        raise UserError(f"{path}: the queries file is empty")
    return out


def run_id_for(*parts: object) -> str:
    """A short stable id for a run from its defining parts (model, task, plan...)."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]

"""Elicitation queries: the one place where an outcome set, a comparison plan and a template become the
(pair, ordering) prompts both harness plugins send, and where a harness's answer becomes a preference record.

A ``Query`` is one (pair, ordering) of one experiment: outcome ``a`` and ``b`` of the pair (a = the lower plan
index), which of them is shown as "Option A", the split, the group (a triad, a question), the template and its
context, and the system message. Harness adapters (lm-eval hooks, Inspect solver/scorer, the active-learning
backends) only translate between their own objects and these methods. The translation between what the model
said about the *labels* ("A" = the first-shown option) and what it says about the *outcomes* (a, b) happens here
and nowhere else: ``Query.outcome_terms``. The labels are the template's (``Query.labels``: "A"/"B", or "1"/"2",
"X"/"Y" in the robustness experiment's label variants); "label A" below means the first of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ue_metrics.jsonl import read_items, write_jsonl
from ue_metrics.records import make_record
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.parsing import parse_choice, thinking_cut
from ue_tasks.plan import ComparisonPlan, PlanSpec, make_plan
from ue_tasks.templates import LABELS, SYSTEM_MESSAGE, get_template, render_prompt


def _attrs_json(d: dict | None) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False) if d else ""


UNPARSED_KEPT = 3  # raw texts of unparsed answers kept per record (for auditing refusals)
UNPARSED_CHARS = 300


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
    experiment: str = "utilities"
    group: str = ""  # the triad, question, ... the pair belongs to ("" for plain pair plans)
    context: str = ""  # filled into the template's {context} (a question's scenario, an entity's name)
    system_message: str = SYSTEM_MESSAGE
    a_attributes: str = ""  # JSON of the outcome's tags and attributes ("" when none)
    b_attributes: str = ""

    @property
    def a_first(self) -> bool:
        return self.shown_first == "a"

    @property
    def option_a(self) -> str:
        return self.a_text if self.a_first else self.b_text

    @property
    def option_b(self) -> str:
        return self.b_text if self.a_first else self.a_text

    @property
    def reasoning(self) -> bool:
        return get_template(self.template).reasoning

    @property
    def labels(self) -> tuple[str, str]:
        """The answer labels of the query's template: the first-shown option's ("A", "1", "X"), then the other's."""
        return get_template(self.template).labels

    @property
    def key(self) -> str:
        """What identifies this query within a run (with the elicitation, what identifies an answer)."""
        return "|".join((self.experiment, self.group, self.a_id, self.b_id, self.shown_first, self.template, self.context))

    def prompt(self, base_model: bool = False) -> str:
        return render_prompt(self.template, self.option_a, self.option_b, base_model=base_model, context=self.context)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system_message}] if self.system_message else []
        return head + [{"role": "user", "content": self.prompt()}]

    # --- the one flip between labels (Option A / Option B) and outcomes (a / b) -------------------------------
    def outcome_terms(self, p_first: float | None = None, n_first: int = 0, n_second: int = 0) -> tuple[float | None, int, int]:
        """(p_a, n_a, n_b) from P(label A) and the votes for label A / label B."""
        if self.a_first:
            return p_first, n_first, n_second
        return (None if p_first is None else 1.0 - p_first), n_second, n_first

    def label_terms(self, p_a: float | None = None, n_a: int = 0, n_b: int = 0) -> tuple[float | None, int, int]:
        """The inverse of ``outcome_terms``: (P(label A), votes for label A, votes for label B)."""
        return self.outcome_terms(p_a, n_a, n_b)  # the flip is its own inverse

    def p_a_from_labels(self, prob_label_a: float, prob_label_b: float) -> tuple[float, float]:
        """(p_a, label_mass) from the next-token probabilities of the two labels ("A" and "B", or the template's own)."""
        mass = prob_label_a + prob_label_b
        if mass <= 0:
            raise ValueError("both answer labels have zero probability")
        p_a, _, _ = self.outcome_terms(prob_label_a / mass)
        return float(p_a), mass

    def votes(self, answers: list[str | None]) -> tuple[int, int, int]:
        """(n_a, n_b, n_unparsed) from raw sampled answers. An answer cut by the token budget inside a thinking block
        is neither a vote nor unparsed (``unanswered`` counts it)."""
        first = second = unparsed = 0
        labels = self.labels
        for text in answers:
            if thinking_cut(text):
                continue
            label = parse_choice(text, reasoning=self.reasoning, labels=labels)
            if label is None:
                unparsed += 1
            elif label == labels[0]:
                first += 1
            else:
                second += 1
        _, n_a, n_b = self.outcome_terms(None, first, second)
        return n_a, n_b, unparsed

    def unanswered(self, answers: list[str | None]) -> dict[str, Any]:
        """What the sampled answers that are not votes were, for a user to audit: ``n_thinking_cut`` (answers whose
        thinking block the token budget cut before any answer) and ``unparsed_answers`` (up to
        ``UNPARSED_KEPT`` of the unparsed answers' raw texts — refusals, off-format replies —, each cut to
        ``UNPARSED_CHARS`` characters); a key is left out when there is nothing to say."""
        out: dict[str, Any] = {}
        cut = sum(1 for t in answers if thinking_cut(t))
        if cut:
            out["n_thinking_cut"] = cut
        kept = [
            t[:UNPARSED_CHARS]
            for t in answers
            if t is not None and not thinking_cut(t) and parse_choice(t, reasoning=self.reasoning, labels=self.labels) is None
        ]
        if kept:
            out["unparsed_answers"] = kept[:UNPARSED_KEPT]
        return out

    def exact_votes(self, answers: list[str | None]) -> tuple[int, int]:
        """(n_a, n_b) counting only answers that are exactly a label after stripping whitespace — the companion's
        strict scoring of time discounting (docs/method.md §4.9, §7.4), kept beside the parsed votes so an analysis
        can reproduce it."""
        labels = self.labels
        first = sum(1 for t in answers if t is not None and t.strip() == labels[0])
        second = sum(1 for t in answers if t is not None and t.strip() == labels[1])
        _, n_a, n_b = self.outcome_terms(None, first, second)
        return n_a, n_b

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
        **extra: Any,
    ) -> dict:
        if mode == "sample":
            usable = n_a + n_b
            p_a = n_a / usable if usable else None
        fields: dict[str, Any] = dict(
            run_id=run_id,
            model=model,
            harness=harness,
            task=task,
            outcome_set=self.outcome_set,
            a_id=self.a_id,
            b_id=self.b_id,
            a_text=self.a_text,
            b_text=self.b_text,
            shown_first=self.shown_first,
            mode=mode,
            template=self.template,
            p_a=p_a,
            n_a=n_a,
            n_b=n_b,
            n_unparsed=n_unparsed,
            label_mass=label_mass,
            split=self.split,
            round=round,
            a_category=self.a_category,
            b_category=self.b_category,
            seed=self.seed,
            experiment=self.experiment,
            system_message=self.system_message,
        )
        if self.labels != LABELS:  # "1"/"2", "X"/"Y": the labels shown_first's "Option A" stands for
            fields["labels"] = list(self.labels)
        if self.group:
            fields["group"] = self.group
        if self.context:
            fields["context"] = self.context
        if self.a_attributes:
            fields["a_attributes"] = json.loads(self.a_attributes)
        if self.b_attributes:
            fields["b_attributes"] = json.loads(self.b_attributes)
        return make_record(**fields, **extra)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Query:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def queries_for(
    outcomes: OutcomeSet,
    plan: ComparisonPlan,
    *,
    experiment: str = "utilities",
    template: str = "default",
    context: str = "",
    system_message: str = SYSTEM_MESSAGE,
    pairs: Sequence[int] | None = None,
    split: str | None = None,
) -> list[Query]:
    """Both orderings of the plan's pairs (or of ``pairs``, indices into ``plan.pairs``) as queries."""
    get_template(template)
    items = outcomes.outcomes
    attrs = [_attrs_json(o.described()) for o in items]
    groups = plan.groups()
    wanted = range(len(plan.pairs)) if pairs is None else pairs
    out = []
    for k in wanted:
        a, b = (int(x) for x in plan.pairs[k])
        oa, ob = items[a], items[b]
        # a template's {context} (a question's scenario, an entity) comes from the call or from the outcomes
        ctx = context or oa.attributes.get("context") or ob.attributes.get("context") or ""
        for shown in ("a", "b"):
            out.append(
                Query(
                    pair=int(k),
                    a_id=oa.id,
                    b_id=ob.id,
                    a_text=oa.text,
                    b_text=ob.text,
                    a_category=oa.category,
                    b_category=ob.category,
                    shown_first=shown,
                    split=split or str(plan.split[k]),
                    template=template,
                    outcome_set=outcomes.name,
                    seed=plan.seed,
                    experiment=experiment,
                    group=str(groups[k]),
                    context=ctx,
                    system_message=system_message,
                    a_attributes=attrs[a],
                    b_attributes=attrs[b],
                )
            )
    return out


@lru_cache(maxsize=16)
def _cached(outcomes: str, spec: PlanSpec, template: str, experiment: str, system_message: str) -> tuple[Query, ...]:
    from ue_tasks.outcomes import load_outcomes

    oset = load_outcomes(outcomes)
    return tuple(
        queries_for(oset, make_plan(len(oset), spec), experiment=experiment, template=template, system_message=system_message)
    )


def build_queries(
    outcomes: str = "mini",
    plan: PlanSpec | None = None,
    template: str = "default",
    experiment: str = "utilities",
    system_message: str = SYSTEM_MESSAGE,
) -> list[Query]:
    """All (pair, ordering) queries of a plan over an outcome set (name or file), both orderings adjacent."""
    return list(_cached(str(outcomes), plan or PlanSpec(), template, experiment, system_message))


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
    """Queries as JSONL (one ``Query.to_dict()`` per line): how ``ue run`` hands a batch to a harness task."""
    write_jsonl(path, [q.to_dict() for q in queries])
    return Path(path)


def read_queries(path: str | Path) -> list[Query]:
    return read_items(path, Query.from_dict, what="query object", writer="ue_tasks.queries.write_queries")


def run_id_for(*parts: object) -> str:
    """A short stable id for a run from its defining parts (model, task, plan...)."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]

"""Robustness (docs/robustness.md): the same plan of pairs asked under a family of prompt variants — the paper's
template, the same without the system message, four paraphrases of the instruction, "Outcome" for "Option",
each option on one line, option B displayed above option A, the options labelled 1/2 and X/Y instead of A/B — both
orderings each, every variant fitted on its own.
The analysis (``ue_metrics/analyses/robustness.py``) measures how much of the utilities survives the change of
wording: cross-variant correlations, preference flips, the outcomes that move most, and a decomposition of the
answers into content, variant, label and position.

Variants are data: ``data/robustness_variants.json`` (each a template id or its own text with its two answer labels,
the label displayed first, the system message). A variant's labels are its template's (``Template.labels``): the
prompt names them, log-prob mode scores them as the continuations, the parser reads them and the records of a
variant not labelled A/B carry them (``labels``). ``--option variants=paper,paraphrase_1,b_first`` chooses among them;
``--option variants_file=FILE`` reads a file of the same format instead (your own wordings). Every variant's
queries carry the variant's id as their ``group`` and their own template id (``robustness/<variant>``), so a
record says which wording it answered.

Simulated responders with a known answer: ``invariant`` (one Thurstonian utility per outcome, whatever the
wording), ``perturbed`` (each variant adds its own N(0, 0.5²) to every utility: a cross-variant Pearson
correlation near 1/(1 + 0.5²) = 0.8), ``label_bound`` (answers the first label — "A", "1", "X" — far more often
than its utilities say, in every variant), ``letter_bound`` (the same pull toward the letter "A" only: none in the
1/2 and X/Y variants), ``position_bound`` (chooses the option displayed first: "A" in most variants, "B" where B is displayed
first) and ``random`` (a fair coin).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ue_metrics.analyses.robustness import Options
from ue_metrics.errors import UserError
from ue_metrics.simulate import Responder, coin_responder, thurstonian_responder
from ue_tasks.experiments import Experiment, register
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.plan import ComparisonPlan, PlanSpec, make_plan
from ue_tasks.queries import Query, queries_for
from ue_tasks.templates import LABELS, SYSTEM_MESSAGE, Template, check_labels, get_template, register_template

VARIANTS_FILE = Path(__file__).with_name("data") / "robustness_variants.json"
PERTURBATION = 0.5  # the planted per-variant spread of the `perturbed` responder, in units of the utilities' spread
BIAS = 0.35  # the pull of the label- and position-bound responders (P(the favoured answer) ≈ 0.5 + BIAS on a tie)
HEADLINE = (
    "verdict",
    "mean_spearman",
    "mean_spearman_random",
    "min_spearman",
    "mean_pearson",
    "flip_rate",
    "flip_rate_random",
    "content_share",
    "variant_share",
    "label_share",
    "position_share",
    "unexplained_share",
    "robust_share",
    "fragile_share",
    "indifferent_share",
    "wording_sd",
    "n_variants",
)


@dataclass(frozen=True)
class Variant:
    """One wording: its id, its registered template, its system message, the label displayed first and its two
    answer labels (the first-shown option's first: "A", "B"; "1", "2"; "X", "Y")."""

    id: str
    template: str
    system_message: str
    first_label: str
    about: str = ""
    labels: tuple[str, str] = LABELS


def _variant(row: Any, where: str) -> Variant:
    """One entry of a variants file, checked, its text registered as the template ``robustness/<id>``."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"].strip():
        raise UserError(f"{where} needs an 'id' (a short name)")
    vid = row["id"].strip()
    where = f"{where} ({vid})"
    if ("text" in row) == ("template" in row):
        raise UserError(f"{where} needs exactly one of 'template' (a registered template id) and 'text'")
    if "template" in row:
        if "labels" in row:
            raise UserError(f"{where}: 'labels' goes with a 'text' of its own (a registered template has its own labels)")
        base = get_template(str(row["template"]))
        if base.reasoning:
            raise UserError(f"{where}: a reasoning template needs sampled answers; robustness asks single letters")
        text, labels = base.text, base.labels
    else:
        text, labels = row["text"], check_labels(row.get("labels", LABELS), where)
    if not isinstance(text, str) or text.find("{option_a}") < 0 or text.find("{option_b}") < 0:
        raise UserError(f"{where}: the text must hold both {{option_a}} and {{option_b}}")
    first = row.get("first_label", labels[0])
    if first not in labels:
        raise UserError(f"{where}: 'first_label' must be one of its labels, {' or '.join(map(repr, labels))}, got {first!r}")
    system = row.get("system_message", "default")
    if not isinstance(system, str):
        raise UserError(f'{where}: \'system_message\' must be "default", a text, or "" for none')
    shown_b_first = text.find("{option_b}") < text.find("{option_a}")
    if shown_b_first != (first == labels[1]):
        raise UserError(
            f"{where}: 'first_label' is {first!r} but the text displays option "
            f"{labels[1] if shown_b_first else labels[0]} first; make them agree"
        )
    words = text.replace("{option_a}", " ").replace("{option_b}", " ")
    unnamed = [x for x in labels if not re.search(rf"(?<![\w.,]){re.escape(x)}(?!\w|[.,]\d)", words)]
    if unnamed:
        raise UserError(
            f"{where}: its labels are {' and '.join(map(repr, labels))} but the text never names "
            f"{unnamed[0]!r}; write the labels the model should answer with into the text"
        )
    template = register_template(Template(f"robustness/{vid}", text, labels=labels))
    return Variant(vid, template.id, SYSTEM_MESSAGE if system == "default" else system, first, str(row.get("about", "")), labels)


def read_variants(path: str | Path) -> list[Variant]:
    """The variants of a file in the format of ``data/robustness_variants.json``; their own texts are registered as
    templates ``robustness/<id>``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give a variants file in the format of docs/robustness.md") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc}); give a variants file (docs/robustness.md)") from None
    rows = data.get("variants") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{path}: expected an object with a non-empty list 'variants' (docs/robustness.md)")
    out: list[Variant] = []
    for k, row in enumerate(rows, 1):
        vid = row.get("id") if isinstance(row, dict) else None
        if isinstance(vid, str) and any(v.id == vid.strip() for v in out):
            raise UserError(f"{path}: variant {k}: the id {vid.strip()!r} is used twice; give each variant its own id")
        out.append(_variant(row, f"{path}: variant {k}"))
    return out


def chosen_variants(options: Mapping[str, Any]) -> list[Variant]:
    """The run's variants: ``variants_file`` (else the shipped file), narrowed to ``variants`` when given."""
    every = read_variants(options.get("variants_file") or VARIANTS_FILE)
    wanted = options.get("variants") or "all"
    if wanted == "all":
        return every
    names = [x.strip() for x in (wanted if isinstance(wanted, (list, tuple)) else str(wanted).split(",")) if x.strip()]
    known = {v.id: v for v in every}
    missing = [x for x in names if x not in known]
    if missing:
        raise UserError(f"--option variants: no variant {missing[0]!r}; use some of {', '.join(known)} (or all)")
    if len(set(names)) < 2:
        raise UserError("--option variants: robustness compares at least two different variants")
    return [known[x] for x in dict.fromkeys(names)]


def plan(outcomes: OutcomeSet, spec: PlanSpec, options: Mapping[str, Any]) -> ComparisonPlan:
    """One random connected graph of pairs (``--budget`` pairs, default ⌊2·N·log2 N⌋), the same for every variant."""
    from dataclasses import replace

    return make_plan(len(outcomes), replace(spec, kind="graph"))


def first_labels(options: Mapping[str, Any], records: Sequence[dict], run: Mapping[str, Any] | None) -> dict:
    """What the analysis reads besides the records: which label each variant displays first, and its labels."""
    chosen = chosen_variants(options)
    return {"first_label": {v.id: v.first_label for v in chosen}, "labels": {v.id: list(v.labels) for v in chosen}}


class Robustness(Experiment):
    """The one experiment whose queries are its plan asked once per prompt variant."""

    prompt_fields = ("template", "system_message")

    def queries_per_model(self, n: int, plan: PlanSpec | None = None, options: Mapping[str, Any] | None = None) -> int:
        """The plan's prompts once per wording."""
        return super().queries_per_model(n, plan, options) * len(chosen_variants(self.resolve_options(options)))

    def queries(
        self,
        outcomes: OutcomeSet,
        plan: ComparisonPlan,
        *,
        template: str,
        system_message: str,
        options: Mapping[str, Any] | None = None,
        split: str | None = None,
    ) -> list[Query]:
        from dataclasses import replace

        out: list[Query] = []
        for v in chosen_variants(self.resolve_options(options)):
            qs = queries_for(
                outcomes, plan, experiment=self.name, template=v.template, system_message=v.system_message, split=split
            )
            out.extend(replace(q, group=v.id) for q in qs)
        return out


# --------------------------------------------------------------------------------- simulated responders
def _shipped() -> list[Variant]:
    return read_variants(VARIANTS_FILE)


def invariant(outcomes: OutcomeSet, seed: int) -> Responder:
    base = thurstonian_responder(
        outcomes.ids, seed, name="invariant", description="one Thurstonian utility per outcome, whatever the wording"
    )
    return base


def perturbed(outcomes: OutcomeSet, seed: int, size: float = PERTURBATION) -> Responder:
    """Each shipped variant adds its own N(0, size²·sd(μ)²) to every utility."""
    base = thurstonian_responder(outcomes.ids, seed)
    mu = np.array([base.mu[i] for i in outcomes.ids])
    spread = float(mu.std()) or 1.0
    by = {}
    for k, v in enumerate(_shipped()):
        rng = np.random.default_rng([seed, 5151, k])
        moved = mu + size * spread * rng.standard_normal(len(mu))
        by[v.template] = Responder(f"perturbed/{v.id}", dict(zip(outcomes.ids, moved.tolist())), base.var, seed=seed)
    return Responder(
        "perturbed",
        base.mu,
        base.var,
        seed=seed,
        by_template=by,
        description=f"each wording moves every utility by its own N(0, {size}²) (in units of their spread)",
    )


def label_bound(outcomes: OutcomeSet, seed: int) -> Responder:
    base = thurstonian_responder(outcomes.ids, seed)
    return Responder(
        "label_bound",
        base.mu,
        base.var,
        position_bias=BIAS,
        seed=seed,
        description=f'answers the first label ("A", "1", "X") with an extra pull of {BIAS} in every variant',
    )


def letter_bound(outcomes: OutcomeSet, seed: int) -> Responder:
    """Drawn to the letter "A" itself: the pull of ``label_bound`` in the variants labelled A/B, none where the
    labels are "1"/"2" or "X"/"Y" (the label factor's own pull for each set of labels tells them apart)."""
    base = thurstonian_responder(outcomes.ids, seed)
    by = {v.template: Responder(f"letter_bound/{v.id}", base.mu, base.var, seed=seed) for v in _shipped() if v.labels != LABELS}
    return Responder(
        "letter_bound",
        base.mu,
        base.var,
        position_bias=BIAS,
        seed=seed,
        by_template=by,
        description=f'answers the letter "A" with an extra pull of {BIAS}; no pull toward "1" or "X"',
    )


def position_bound(outcomes: OutcomeSet, seed: int) -> Responder:
    base = thurstonian_responder(outcomes.ids, seed)
    by = {
        v.template: Responder(f"position_bound/{v.id}", base.mu, base.var, position_bias=-BIAS, seed=seed)
        for v in _shipped()
        if v.first_label == "B"
    }
    return Responder(
        "position_bound",
        base.mu,
        base.var,
        position_bias=BIAS,
        seed=seed,
        by_template=by,
        description=f"chooses the option displayed first with an extra pull of {BIAS}",
    )


# the shipped wordings' templates exist as soon as the registry is loaded (a harness task renders a query's prompt
# from its template id); a user's file is registered when its queries are made
read_variants(VARIANTS_FILE)

register(
    Robustness(
        name="robustness",
        title="Robustness: how much of the utilities survives a change of wording",
        section="docs/robustness.md",
        outcomes="mini",
        plan=PlanSpec(kind="custom"),
        plan_builder=plan,
        fit=False,
        headline=HEADLINE,
        text_headline=("verdict",),
        lower_is_better=(
            "flip_rate",
            "flip_rate_random",
            "unexplained_share",
            "fragile_share",
            "variant_share",
            "label_share",
            "position_share",
            "wording_sd",
        ),
        responders={
            "invariant": invariant,
            "perturbed": perturbed,
            "label_bound": label_bound,
            "letter_bound": letter_bound,
            "position_bound": position_bound,
            "random": lambda outcomes, seed: coin_responder(),
        },
        options=Options.declare(variants="all", variants_file=""),  # with the analysis's margin, bootstrap
        inputs=first_labels,
        description="Cross-variant rank correlation of utilities, preference flips and the share of the answers "
        "explained by the outcomes rather than the wording, label or position, over prompt variants.",
    )
)

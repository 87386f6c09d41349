"""The paper's experiments as data: one module per experiment in this package, each registering one frozen
``Experiment`` with ``@register`` (or ``register(Experiment(...))``). The registry is what ``ue experiments`` lists,
what ``ue run``/``ue analyse`` run, what the lm-eval YAMLs in ``task_configs/<name>/`` and the Inspect tasks
``ue/utility_<name>`` are generated from. Each experiment's analysis lives under the same name in
``ue_metrics/analyses/``.

An experiment declares:
- ``outcomes``: its outcome family — a shipped set name (``core``, ``mini``) or a generator
  ``(options) -> OutcomeSet`` whose outcomes carry the attributes its analysis needs;
- ``plan``: a ``PlanSpec`` (``active`` learning as the paper's main run, ``all_pairs``, ``triads``, or ``custom``
  with a ``plan_builder`` for the experiment's own pairs: a grid, pairs within each question);
- its prompt ``template`` and ``system_message``, mode defaults (``mode``, ``samples`` = K per ordering);
- ``analysis`` (a module of ``ue_metrics.analyses``) and whether it needs a Thurstonian ``fit`` of all records;
- ``headline``: the flat headline keys the analysis reports (also the metric names in the harnesses' tables),
  and which of them are better when lower;
- ``responders``: simulated models with a known property for ``--harness simulate`` (the first is the default);
- ``options``: the experiment-specific options it understands (``--option key=value``) with their defaults; an
  experiment with a ``bootstrap`` option has its analysis fit bootstrapped with that many pair resamples;
- ``consumes``: another experiment whose run this one reads (``--utilities RUN_DIR`` lands in
  ``options["utilities"]``; ``ue run`` runs it first when none is given), and ``inputs``: a hook that reads what
  the analysis needs besides the records (that run's utilities, entity runs) and hands it to the analysis;
- ``text_headline``: headline keys whose values are names (shown by ``ue run``, left out of the harnesses'
  numeric tables);
- ``variants``: named option sets (the paper's registered runs of one experiment, e.g. ``exchange_rates``'s
  ``countries/terminal_illness``), chosen with the option ``variant`` (``--option variant=NAME``, lm-eval
  ``--metadata '{"option": {"variant": NAME}}'``, Inspect ``-T options='{variant: NAME}'``) or, wherever an
  experiment is named, as ``EXPERIMENT:VARIANT`` (``ue run exchange_rates:countries/terminal_illness``);
- ``extension``: what an unusual experiment does beyond asking its plan's pairs and analysing the answers — an
  ``Extension`` subclass in the experiment's module: the free-form questions it asks after the pairs and the judge
  requests built from the answers (utility maximisation), the runs of itself it makes first (political_values: the
  entity runs), what it gathers instead of answers (representations: hidden states; it has no lm-eval or Inspect
  task), its size when its outcomes come from another run. The runner, the harness tasks and the CLI ask the
  extension; none of them branches on which experiment it runs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ue_metrics.analyses import DeclaredOptions
from ue_metrics.errors import UserError
from ue_metrics.simulate import Responder
from ue_tasks.generation import Generation
from ue_tasks.outcomes import OutcomeSet, load_outcomes
from ue_tasks.plan import ComparisonPlan, PlanSpec, active_budget, default_budget, holdout_size, make_plan
from ue_tasks.queries import Query, queries_for
from ue_tasks.templates import SYSTEM_MESSAGE, get_template

OutcomeSource = str | Callable[[Mapping[str, Any]], OutcomeSet]
# a simulated preference Responder, or (a collecting experiment) a simulated model of what they collect
ResponderFactory = Callable[[OutcomeSet, int], Responder | Any]
PlanBuilder = Callable[[OutcomeSet, PlanSpec, Mapping[str, Any]], ComparisonPlan]
# (options, records, the run's config.json or None) -> extra analysis inputs (never written to analysis.json's options)
InputsHook = Callable[[Mapping[str, Any], Sequence[dict], Mapping[str, Any] | None], dict]
HARNESSES = ("lm-eval", "inspect", "simulate")


class Extension:
    """What an experiment does beyond asking its plan's pairs of one model and analysing the answers. The plain
    ``Extension()`` does nothing more; an unusual experiment's module supplies a subclass (``Experiment(extension=...)``)
    that overrides what it needs. Every default below is the plain experiment's."""

    #: what the experiment gathers instead of forced-choice answers ("hidden states"), or None: it asks preferences
    collects: str | None = None
    #: the ``--harness`` values it accepts, and the one used when none is given (None: ``--harness`` is required)
    harnesses: tuple[str, ...] = HARNESSES
    default_harness: str | None = None
    #: whether ``--model`` is required (a collector may find its model in ``--model-args``)
    needs_model: bool = True
    #: whether it asks free-form questions after the pairs (then it also has an ``_answers`` harness task)
    asks_free_questions: bool = False
    #: outcomes per run for ``ue experiments`` when they come from another run (corrigibility), else None
    nominal_outcomes: int | None = None
    #: a collector's forward passes per outcome (``ue experiments``)
    passes_per_outcome: int = 0

    def collect_run(
        self, config: Any, out: Any, *, progress: Any = None, log: Callable[[str], None] = print
    ) -> tuple[dict, list[dict]] | None:
        """Write the run folder of a collecting experiment and return (run configuration, records); None: nothing to
        collect, the plan's pairs are asked."""
        return None

    def free_questions(self, outcomes: OutcomeSet, options: Mapping[str, Any]) -> list[Generation]:
        """The free-form questions asked once each after the pairs (``ue_tasks.generation``)."""
        return []

    def judge_requests(
        self, outcomes: OutcomeSet, answers: Sequence[Mapping[str, Any]], options: Mapping[str, Any]
    ) -> list[Generation]:
        """Judge requests for the free answers that no string match settles (asked with ``--option matcher_model``)."""
        return []

    def side_runs(self, options: Mapping[str, Any]) -> tuple[str, list[tuple[str, dict]]]:
        """(the option that lists their folders, [(subfolder, options of the run)]): runs of the same experiment that
        ``ue run`` makes first, each in its own folder under the run folder; ("", []) for none."""
        return "", []

    def prepare(
        self,
        options: Mapping[str, Any],
        run: Mapping[str, Any],
        ask: Callable[..., Path],
        *,
        out: Path,
        cache: Path | None,
        log: Callable[[str], None] = print,
    ) -> dict[str, Any]:
        """Runs of other models (or experiments) this run needs first, made through ``ask(folder, responder=...,
        **RunConfig changes) -> folder`` (resumable runs; ``responder``: the simulated model of a ``--harness simulate``
        run); ``run``: this run's configuration (harness, model, mode, seed, ...); ``cache``: a folder for runs many
        evaluated models share (None: keep them under ``out``). Returns option values to set (their folders)."""
        return {}


@dataclass(frozen=True)
class Cost:
    """What one model's run of an experiment asks with the given options (``ue experiments``, ``ue run --dry-run``)."""

    n_outcomes: int | None  # None: not known before the run it reads exists
    asks: str  # the plan's kind, or what the experiment collects
    prompts: int | None  # (pair, ordering) prompts over its runs (side runs included), or a collector's forward passes
    free_questions: int  # free-form questions, asked once each (judge requests not counted)
    runs: int  # run folders: its own and its side runs
    samples: int | None  # the paper's K answers per ordering; None for a collector (no sampled requests)

    @property
    def sampled_requests(self) -> int | None:
        return None if self.prompts is None or self.samples is None else self.prompts * self.samples + self.free_questions


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    section: str  # where the paper / docs/method.md describes it
    outcomes: OutcomeSource = "core"
    plan: PlanSpec = field(default_factory=lambda: PlanSpec(kind="active"))
    template: str = "default"
    system_message: str = SYSTEM_MESSAGE
    mode: str = "logprob"
    samples: int = 10
    analysis: str = ""  # module name in ue_metrics.analyses; defaults to the experiment's name
    fit: bool = True
    headline: tuple[str, ...] = ()
    lower_is_better: tuple[str, ...] = ()  # headline keys where lower is better (for the harnesses' tables)
    text_headline: tuple[str, ...] = ()  # headline keys whose values are names, not numbers (left out of harness tables)
    responders: Mapping[str, ResponderFactory] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    consumes: str | None = None  # another experiment whose run this one reads (e.g. "utilities")
    lm_eval_sets: tuple[str, ...] = ()  # outcome sets that get their own lm-eval task (utility_<name>_<set>)
    plan_builder: PlanBuilder | None = None  # plan kind "custom": the experiment's own pairs (a grid, pairs per question)
    description: str = ""
    inputs: InputsHook | None = None  # reads what the analysis needs besides the records (another run, entity runs)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # named option sets (--option variant=NAME)
    extension: Extension = field(default_factory=Extension)  # what it does beyond asking its plan (see the docstring)

    # record fields this experiment varies on purpose within one run (robustness: the template and system message of
    # each wording), pooled when its records are read back rather than refused as another model's
    prompt_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def metrics(self) -> tuple[str, ...]:
        """The numeric headline keys: the metrics of the harnesses' tables (names such as a reference X stay in
        ``analysis.json``)."""
        return tuple(k for k in self.headline if k not in self.text_headline)

    @property
    def asks_preferences(self) -> bool:
        """Whether the experiment asks forced-choice questions (a collector reads something else: hidden states)."""
        return self.extension.collects is None

    @property
    def analysis_name(self) -> str:
        return self.analysis or self.name

    def resolve_options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The experiment's options with ``given`` applied (the values as given: they are what ``analysis.json``
        records); an unknown option, or a bad value of an analysis option, is one clear error. ``options`` is
        ``Options.declare(**own)``: the analysis's frozen ``Options`` (ue_metrics/analyses/<name>.py: names,
        defaults, checks) and the options the experiment's elicitation reads, each with its default."""
        resolved = self._merge_options(dict(given or {}))
        if isinstance(self.options, DeclaredOptions):
            self.options.check(resolved)
        return resolved

    def _merge_options(self, given: dict[str, Any]) -> dict[str, Any]:
        allowed = set(self.options) | {"outcomes"} | ({"variant"} if self.variants else set())
        unknown = sorted(set(given) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed - {"outcomes"})) or "none"
            raise UserError(f"experiment {self.name!r} has no option {unknown[0]!r} (its options: {known})")
        variant = given.get("variant")
        if variant in (None, ""):
            return {**self.options, **given}
        if variant not in self.variants:
            raise UserError(f"experiment {self.name!r} has no variant {variant!r}; use one of {', '.join(self.variants)}")
        fixed = dict(self.variants[variant])
        for key, value in fixed.items():
            if key in given and given[key] != value:
                raise UserError(
                    f"variant {variant!r} of {self.name} sets {key}={value!r}, but {key}={given[key]!r} was "
                    "also given; drop one of them"
                )
        return {**self.options, **fixed, **given}

    def outcome_set(self, options: Mapping[str, Any] | None = None) -> OutcomeSet:
        """The outcomes of a run. A shipped set or file family is replaced by ``options['outcomes']`` (a set name or
        file) when given; a generator family is called with the options, ``outcomes`` included, and reads that file
        as its own data (the base outcomes of lotteries, a companion file of events, processes or questions)."""
        opts = self.resolve_options(options)
        if callable(self.outcomes):
            return self.outcomes(opts)
        return load_outcomes(str(opts.get("outcomes") or self.outcomes))

    def build_plan(
        self, outcomes: OutcomeSet, spec: PlanSpec | None = None, options: Mapping[str, Any] | None = None
    ) -> ComparisonPlan:
        """The pairs to ask in one go (an active plan becomes its random starting ``graph`` form)."""
        if not self.asks_preferences:
            raise UserError(
                f"experiment {self.name!r} asks no forced-choice questions (it reads {self.extension.collects}), so it is "
                f"no harness task; run it with `ue run {self.name}`"
            )
        spec = (spec or self.plan).one_shot()
        if spec.kind == "custom":
            if self.plan_builder is None:
                raise ValueError(f"experiment {self.name!r} has a custom plan but no plan_builder")
            return self.plan_builder(outcomes, spec, self.resolve_options(options))
        return make_plan(len(outcomes), spec)

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
        """Both orderings of the plan's pairs as queries under ``template``: the one place every path (``ue run``,
        the lm-eval and Inspect tasks) turns a plan into prompts. An experiment that asks its plan under several
        prompts (``robustness``: one per wording) overrides this."""
        return queries_for(outcomes, plan, experiment=self.name, template=template, system_message=system_message, split=split)

    def responder(self, name: str | None, outcomes: OutcomeSet, seed: int) -> Responder:
        if not self.responders:
            raise UserError(f"experiment {self.name!r} has no simulated responder")
        name = name or next(iter(self.responders))
        if name not in self.responders:
            raise UserError(f"experiment {self.name!r} has no responder {name!r}; use one of {', '.join(self.responders)}")
        return self.responders[name](outcomes, seed)

    def free_answer_requests(self, options: Mapping[str, Any] | None = None) -> int:
        """Free-form questions one model is asked (beside the pairwise prompts; judge requests not counted)."""
        if not self.extension.asks_free_questions:
            return 0
        opts = self.resolve_options(options)
        return len(self.extension.free_questions(self.outcome_set(opts), opts))

    def cost(self, options: Mapping[str, Any] | None = None) -> Cost:
        """What one model's run asks with ``options`` (the experiment's defaults when none): its outcomes, prompts over
        its own and its side runs, and free-form questions (``ue experiments``; ``ue run --dry-run`` adds tokens)."""
        try:
            n = len(self.outcome_set(options))
        except UserError:  # outcomes built from another run (corrigibility): the run's default size
            n = self.extension.nominal_outcomes
        runs = 1 + len(self.extension.side_runs(self.resolve_options(options))[1])
        prompts = self.queries_per_model(n, options=options) * runs if n else None
        try:
            free = self.free_answer_requests(options) if n else 0
        except UserError:
            free = 0
        collector = not self.asks_preferences
        return Cost(
            n_outcomes=n,
            asks=self.extension.collects or self.plan.kind,
            prompts=prompts,
            free_questions=free,
            runs=runs,
            samples=None if collector else self.samples,
        )

    def queries_per_model(
        self, n: int, plan: PlanSpec | None = None, options: Mapping[str, Any] | None = None, budget_rule: str = "exact"
    ) -> int:
        """(pair, ordering) prompts for ``n`` outcomes by the formulas of docs/method.md §2 (times K in sample mode
        for requests): active learning asks the training pairs of ``ue_tasks.plan.active_budget`` under the run's
        budget rule (``exact``, the default of `ue run`, or the companion's whole ``rounds``), then the holdout."""
        if not self.asks_preferences:
            return self.extension.passes_per_outcome * n
        plan = plan or self.plan
        if plan.kind == "custom":
            return 2 * len(self.build_plan(self.outcome_set(options), plan, options))
        if plan.kind == "triads":
            return 3 * 2 * (plan.budget or 1000)
        m = n * (n - 1) // 2
        hold = holdout_size(n, plan.holdout_fraction, plan.holdout_cap)
        if plan.kind == "all_pairs":
            return 2 * m
        if plan.kind == "active":
            target = active_budget(n, plan.budget, plan.degree, plan.round_size, budget_rule, pool=m - hold)
        else:
            target = min(plan.budget if plan.budget is not None else default_budget(n), m - hold)
        return 2 * (target + hold)


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry; a name may be registered once."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} is registered twice")
    get_template(experiment.template)
    EXPERIMENTS[experiment.name] = experiment
    return experiment


_LOADED = False


def _load_all() -> None:
    """Import every module of this package so that each registers its experiment."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def all_experiments() -> dict[str, Experiment]:
    _load_all()
    return dict(EXPERIMENTS)


def split_name(name: str) -> tuple[str, str | None]:
    """``"exchange_rates:countries/terminal_illness"`` → ``("exchange_rates", "countries/terminal_illness")``; a
    plain name has no variant."""
    base, sep, variant = str(name).partition(":")
    return base, (variant if sep else None)


def with_variant(name: str, options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The experiment's plain name and its options with the variant of ``EXPERIMENT:VARIANT`` added (a variant
    named twice, differently, is one clear error)."""
    base, variant = split_name(name)
    opts = dict(options or {})
    if variant is not None:
        if opts.get("variant") not in (None, "", variant):
            raise UserError(f"{name!r} names variant {variant!r} but the option variant={opts['variant']!r} was also given")
        opts["variant"] = variant
    return base, opts


def get(name: str) -> Experiment:
    _load_all()
    if ":" in name:
        raise UserError(
            f"{name!r} names an experiment variant; give the experiment ({split_name(name)[0]}) and "
            f"--option variant={split_name(name)[1]}"
        )
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise UserError(f"unknown experiment {name!r}; `ue experiments` lists them ({', '.join(EXPERIMENTS)})") from None

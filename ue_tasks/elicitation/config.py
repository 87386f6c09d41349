"""What a run is: ``RunConfig`` (every setting of ``ue run``, resolved against the experiment's defaults and checked
once), the paper's protocol (``--protocol paper``: the companion's settings in place of this project's defaults) and
the backend a configuration asks through (``make_backend``; ``judge_backend`` for the model that judges free answers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ue_metrics.errors import UserError
from ue_metrics.fit_options import FIT_METHODS, UNPARSED_POLICIES
from ue_tasks import experiments
from ue_tasks.elicitation.backends import Backend, InspectBackend, LmEvalBackend, SimulateBackend
from ue_tasks.elicitation.strategies import DEFAULT_STRATEGY, STRATEGIES
from ue_tasks.outcomes import OutcomeSet
from ue_tasks.plan import BUDGET_RULES, PlanSpec
from ue_tasks.templates import get_template

# RunConfig fields added after config.json files were first written, with the value an older run had
ADDED_DEFAULTS = {"unparsed": "exclude", "method": "mle", "orderings": "both", "budget_rule": "exact", "protocol": "ue"}
ORDERINGS = ("both", "first")
PROTOCOLS = ("ue", "paper")
# --protocol paper: each setting it changes, its command-line flag, this project's default and why (docs/reproducing.md)
PAPER_PROTOCOL = {
    "mode": ("--mode", None, "sampled answers at temperature 1, as the companion asks them"),
    "samples": ("--samples", None, "the paper's K answers per ordering for this experiment"),
    "strategy": ("--strategy", "rank", "the companion's P/Q percentile rule for choosing pairs"),
    "budget_rule": ("--budget-rule", "exact", "whole active-learning rounds of 500, as the companion"),
    "holdout_first": ("--holdout-at-end", True, "holdout pairs asked after the last round"),
    "unparsed": ("--unparsed", "exclude", "an unparseable answer is half a vote for each outcome"),
    "method": ("--method", "mle", "the companion's Adam fit"),
}


def paper_settings(exp: Any) -> dict[str, Any]:
    """The values ``--protocol paper`` gives the run's settings for the experiment ``exp`` (the option ``wording`` of
    experiments that have it included, as ``option:wording``)."""
    out: dict[str, Any] = {
        "mode": "sample",
        "samples": exp.samples,
        "strategy": "paper",
        "budget_rule": "rounds",
        "holdout_first": False,
        "unparsed": "as_indifference",
        "method": "compat",
    }
    if "wording" in exp.options:
        out["option:wording"] = "companion"
    return out


def apply_protocol(config: RunConfig, exp: Any) -> tuple[RunConfig, list[str]]:
    """``config`` with the paper's settings in place of this project's defaults, and one line per setting changed.
    A setting given another value (a flag that contradicts the protocol), or one the harness cannot meet, is one
    sentence."""
    if config.protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {config.protocol!r}")
    if config.protocol != "paper":
        return config, []
    if not exp.asks_preferences:
        raise UserError(
            f"--protocol paper sets how preferences are elicited and fitted, and {exp.name} asks no forced-choice "
            "question (it reads hidden states); run it without --protocol"
        )
    out = RunConfig(**asdict(config))
    lines = []
    for key, want in paper_settings(exp).items():
        if key.startswith("option:"):
            opt = key.split(":", 1)[1]
            have = config.options.get(opt)
            if have not in (None, want):
                raise UserError(
                    f"--protocol paper asks --option {opt}={want}, and --option {opt}={have} contradicts it; "
                    "drop that option or use --protocol ue"
                )
            out.options = {**out.options, opt: want}
            lines.append(f"--protocol paper: --option {opt}={want} (the companion's sentences)")
            continue
        flag, default, why = PAPER_PROTOCOL[key]
        have = getattr(config, key)
        if have is not None and have != default and have != want:
            shown = "" if isinstance(have, bool) else f" {have}"
            raise UserError(
                f"--protocol paper asks {key} = {want}, and {flag}{shown} contradicts it; drop {flag} or use --protocol ue"
            )
        setattr(out, key, want)
        lines.append(f"--protocol paper: {key} = {want} ({why})")
    if config.harness == "lm-eval" and out.samples != 10:
        raise UserError(
            f"--protocol paper asks {out.samples} sampled answers per ordering for {exp.name}, and the lm-eval sampled "
            "task asks 10; use --harness inspect (or simulate) for this experiment's paper protocol"
        )
    return out, lines


MODES = ("logprob", "sample")


@dataclass
class RunConfig:
    """What a run is. ``None`` fields take the experiment's defaults; the resolved values go to config.json."""

    harness: str
    model: str
    experiment: str = "utilities"
    model_args: str = ""
    outcomes: str | None = None  # a set name or file replacing the experiment's outcome family
    options: dict = field(default_factory=dict)  # experiment options (--option key=value)
    mode: str | None = None
    samples: int | None = None
    template: str | None = None
    system_message: str | None = None
    budget: int | None = None
    seed: int = 0
    initial_degree: int = 2
    holdout_fraction: float = 0.05
    round_size: int | None = None
    strategy: str = DEFAULT_STRATEGY  # the best measured (ue_tasks.elicitation.strategies); "paper" reproduces the companion
    holdout_first: bool = True
    pseudolabels: bool = False
    pseudolabel_threshold: float = 0.95
    pseudolabel_weight: float = 1.0
    responder: str | None = None  # simulate: which known-truth responder
    model_name: str | None = None  # the model's name in the records (default: from the model, ue_tasks.model_identity)
    unparsed: str = "exclude"  # unparseable answers in the fit: dropped, or half a vote each (the paper)
    method: str = "mle"  # the final fit: mle, or compat (the companion's Adam fit)
    orderings: str = "both"  # both orderings of every pair, or "first" only (the paper's order-bias demonstration)
    budget_rule: str = "exact"  # active learning stops at the budget, or asks whole rounds past it ("rounds", the companion)
    protocol: str = "ue"  # "paper": the companion's settings in place of this project's defaults (PAPER_PROTOCOL)

    def resolve(self) -> RunConfig:
        """Fill the experiment's defaults in and check every field (one sentence per mistake). An experiment named
        ``EXPERIMENT:VARIANT`` becomes the experiment with the option ``variant``."""
        name, options = experiments.with_variant(self.experiment, self.options)
        exp = experiments.get(name)
        ext = exp.extension
        allowed = ext.harnesses
        harness = self.harness or ext.default_harness or ""
        if not harness or (not self.model and ext.needs_model):
            raise UserError(f"`ue run {exp.name}` needs --harness ({', '.join(allowed)}) and --model")
        if harness not in allowed:
            raise UserError(f"unknown harness {harness!r} for {exp.name}; use one of {', '.join(allowed)}")
        out = RunConfig(**asdict(self))
        out.experiment, out.options, out.harness = name, options, harness
        out, _ = apply_protocol(out, exp)
        self = out  # the protocol's values are checked below as given ones
        out.mode = self.mode or exp.mode
        out.samples = exp.samples if self.samples is None else self.samples
        out.template = self.template or exp.template
        out.system_message = exp.system_message if self.system_message is None else self.system_message
        out.round_size = exp.plan.round_size if self.round_size is None else self.round_size
        out.budget = exp.plan.budget if self.budget is None else self.budget
        if out.mode not in MODES:
            raise UserError(f"--mode must be logprob or sample, got {out.mode!r}")
        if self.unparsed not in UNPARSED_POLICIES:
            raise UserError(f"--unparsed must be one of {', '.join(UNPARSED_POLICIES)}, got {self.unparsed!r}")
        if self.method not in FIT_METHODS:
            raise UserError(f"--method must be one of {', '.join(FIT_METHODS)}, got {self.method!r}")
        if self.budget_rule not in BUDGET_RULES:
            raise UserError(f"--budget-rule must be one of {', '.join(BUDGET_RULES)}, got {self.budget_rule!r}")
        if self.orderings not in ORDERINGS:
            raise UserError(f"--orderings must be one of {', '.join(ORDERINGS)}, got {self.orderings!r}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if out.mode == "sample" and (isinstance(out.samples, bool) or not isinstance(out.samples, int) or out.samples < 1):
            raise UserError(f"--samples must be at least 1 in sample mode, got {out.samples}")
        template = get_template(out.template)
        if template.reasoning and out.mode == "logprob":
            raise UserError("the reasoning template needs generated answers; add --mode sample")
        if not 0 < self.pseudolabel_threshold < 1:
            raise UserError(f"the pseudolabel threshold must be in (0, 1), got {self.pseudolabel_threshold}")
        exp.resolve_options(out.options)
        out.plan_spec(exp)  # validates budget, seed, degree, holdout fraction, round size
        return out

    def plan_spec(self, exp: Any) -> PlanSpec:
        """The run's plan: the experiment ``exp``'s plan with this run's budget, seed, degree, holdout and round size."""
        return PlanSpec(
            kind=exp.plan.kind,
            seed=self.seed,
            budget=self.budget,
            degree=self.initial_degree,
            holdout_fraction=self.holdout_fraction,
            holdout_cap=exp.plan.holdout_cap,
            round_size=self.round_size or exp.plan.round_size,
        )


def make_backend(config: RunConfig, outcomes: OutcomeSet, exp: Any) -> Backend:
    """The backend a resolved configuration asks through (``exp``: its experiment, whose responder a simulated run
    uses)."""
    if config.harness == "simulate":
        responder = exp.responder(config.responder, outcomes, config.seed)
        return SimulateBackend(responder, config.mode, config.samples, config.seed, name=config.model_name or config.model)
    if config.harness == "lm-eval":
        return LmEvalBackend(
            config.model, config.model_args, config.mode, config.samples, config.system_message, model_name=config.model_name
        )
    return InspectBackend(config.model, config.model_args, config.mode, config.samples, config.seed, model_name=config.model_name)


def judge_backend(config: RunConfig, matcher: str, args: str, own: Backend) -> tuple[Backend, str]:
    """The model that judges free answers: the evaluated model itself (``self``: ``own``), the simulator's
    string-similarity judge (``sim`` under ``--harness simulate``), or another model of the run's harness."""
    if matcher == "self":
        return own, own.identity.name
    if config.harness == "simulate":
        from ue_metrics.simulate import coin_responder

        return SimulateBackend(
            coin_responder("judge"), config.mode or "logprob", config.samples or 10, config.seed, name=matcher
        ), matcher
    backend: Backend
    if config.harness == "lm-eval":
        backend = LmEvalBackend(matcher, args, "logprob", 10, config.system_message or "")
    else:
        backend = InspectBackend(matcher, args, "logprob", 10, config.seed)
    return backend, backend.identity.name

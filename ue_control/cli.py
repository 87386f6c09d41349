"""``ue control assemble | train | evaluate | steer``: the utility-control commands, registered on the ``ue`` parser by
``ue_cli.main`` (``add_control_parser``). Each takes ``--config FILE`` (YAML or JSON) plus ``--set FIELD=VALUE``
overrides; the example configs are in ``ue_control/configs/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_assemble(args: argparse.Namespace) -> int:
    from ue_control.assembly import assemble, format_bias_table, load_config

    config = load_config(args.config, args.set, out=args.out)
    summary = assemble(config, log=lambda m: print(m, file=sys.stderr))
    print(f"citizens per party: {summary['citizens_per_party']}")
    for part in ("train", "heldout"):
        print(f"\npolitical bias, {part} outcomes:")
        print(format_bias_table(summary["bias"], part))
    print(
        f"\nwrote {Path(config.out) / 'assembly_records.jsonl'}, fits under {Path(config.out) / 'assembly'} and {Path(config.out) / 'bias.json'}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ue_control.train import load_config, train

    config = load_config(args.config, args.set, run=args.run, out=args.out, model=args.model)
    summary = train(config, log=lambda m: print(m, file=sys.stderr))
    if summary["process_index"] != 0:
        return 0
    ev = summary.get("evals", {})
    for when in ("start", "end"):
        for split, row in (ev.get(when) or {}).items():
            print(
                f"{when:<6} {split:<8} loss {row['loss']:.4f}  MAE of P(label) vs assembly {row['mae']:.4f}  ({row['n']} prompts)"
            )
    if summary["finished"]:
        print(
            f"trained model: {summary['saved_model']}  (final loss {summary['final_loss']:.4f}, {summary['world_size']} process(es))"
        )
    else:
        print(f"stopped at step {summary['steps_done']}; {summary['resume_with']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ue_control.evaluate import evaluate, load_config, print_report

    config = load_config(args.config, args.set, run=args.run, out=args.out, trained=args.trained, original=args.original)
    report = evaluate(config, log=lambda m: print(m, file=sys.stderr))
    print_report(report, Path(config.out))
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    from ue_control.steer import load_config, steer

    config = load_config(
        args.config, args.set, representations=args.representations, out=args.out, layer=args.layer, mode=args.mode
    )
    summary = steer(config, log=lambda m: print(m, file=sys.stderr))
    print(f"layer {summary['layer']}, mode {summary['mode']}, target: {summary['target']}")
    print(
        f"{'direction':<10}{'alpha':>7}{'ρ target':>10}{'toward':>8}{'ρ unsteered':>13}{'pos. bias':>11}{'avg conf':>10}{'holdout acc':>13}"
    )
    for r in summary["rows"]:
        print(
            f"{r['direction']:<10}{r['alpha']:>7g}{_f(r['spearman_target']):>10}{_f(r.get('moved_toward_target')):>8}"
            f"{_f(r.get('spearman_unsteered')):>13}{_f(r['position_bias']):>11}{_f(r['average_confidence']):>10}{_f(r['holdout_accuracy']):>13}"
        )
    print(f"wrote {Path(config.out) / 'steer.json'} and {Path(config.out) / 'figures' / 'steer.png'}")
    return 0


def _f(value) -> str:
    return "—" if value is None else f"{value:+.3f}"


def cmd_demo(args: argparse.Namespace) -> int:
    from ue_control.demo import demo, load_config
    from ue_control.evaluate import format_table

    config = load_config(None, args.set, out=args.out)
    control = demo(config, log=lambda m: print(m, file=sys.stderr))
    report = control.pop("_report")
    print(format_table(report))
    print(
        f"\nassembly lean {_num(control['assembly_lean'])}; held-out Spearman with the assembly {_num(control['heldout_spearman_before'])} → "
        f"{_num(control['heldout_spearman_after'])}; lean {_num(control['lean_before'])} → {_num(control['lean_after'])}; "
        f"position bias {_num(control['position_bias_before'])} → {_num(control['position_bias_after'])}"
    )
    print(f"time: {control['seconds']}")
    if control.get("figure"):
        print(f"figure: {control['figure']}")
    if control.get("report"):
        print(f"report: {control['report']}")
    print(f"wrote {Path(config.out) / 'control.json'}")
    return 0


def _num(x) -> str:
    return "—" if x is None else f"{x:+.3f}"


def add_control_parser(sub, fmt) -> None:
    """Add ``control`` with its subcommands to the ``ue`` subparsers ``sub``."""
    from ue_control.steer import MODES as STEER_MODES  # the choices from their home, not copied

    p = sub.add_parser(
        "control",
        help="utility control: simulate a citizen assembly, train a model toward it, evaluate before/after",
        description="Utility control (Mazeika et al. 2025): assemble → train → evaluate. See docs/control.md.",
        epilog="example:\n  ue control assemble --out run/ --set n_citizens=6\n"
        "  ue control steer --representations runs/rep --out steer/ --set 'alphas=[-2, 0, 2]'\n"
        "  ue control train --run run/ --out trained/ --set steps=40\n"
        "  ue control evaluate --run run/ --trained trained/model --out eval/",
        formatter_class=fmt,
    )
    csub = p.add_subparsers(dest="control_command", required=True)

    a = csub.add_parser(
        "assemble",
        help="sample citizens, simulate their preferences through lm-eval, fit the assembly's utilities",
        description="Sample an assembly of US citizens (ACS/Census marginals, Gallup party ID, or your microdata CSV), "
        "have a simulator model role-play each on forced-choice policy queries via the lm-eval plugin, aggregate "
        "per pair and fit the assembly's Thurstonian utilities; measures political bias of the assembly and "
        "each partisan slice.",
        epilog="example:\n  ue control assemble --out run/ --set n_citizens=6 --set budget=20\n"
        "  ue control assemble --config ue_control/configs/assemble.yaml --out run/",
        formatter_class=fmt,
    )
    a.add_argument("--config", help="YAML/JSON config (see ue_control/configs/assemble.yaml)")
    a.add_argument("--out", help="run folder (overrides the config)")
    a.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    a.set_defaults(handler=cmd_assemble)

    t = csub.add_parser(
        "train",
        help="fine-tune a model toward the assembly's preferences (Accelerate; full or LoRA)",
        description="Train on the assembly's training outcomes in this process. For several processes or GPUs run "
        "`accelerate launch [--config_file ACC.yaml] -m ue_control.train --config FILE` instead.",
        epilog="example:\n  ue control train --run run/ --out trained/ --set method=lora --set steps=40\n"
        "  accelerate launch --num_processes 2 -m ue_control.train --config train.yaml",
        formatter_class=fmt,
    )
    from ue_control.train import add_arguments

    add_arguments(t)
    t.set_defaults(handler=cmd_train)

    e = csub.add_parser(
        "evaluate",
        help="elicit the original and trained model via lm-eval on held-out outcomes; before/after table",
        description="Elicit the original and the trained model through the lm-eval plugin on the run's held-out "
        "outcomes and report agreement and Spearman ρ with the assembly, political bias and coherence.",
        epilog="example:\n  ue control evaluate --run run/ --trained trained/model --out eval/",
        formatter_class=fmt,
    )
    e.add_argument("--config", help="YAML/JSON config (see ue_control/configs/evaluate.yaml)")
    e.add_argument("--run", help="assemble run folder")
    e.add_argument("--trained", help="trained model folder")
    e.add_argument("--original", help="original model (default: embedded)")
    e.add_argument("--out", help="output folder")
    e.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    e.set_defaults(handler=cmd_evaluate)

    st = csub.add_parser(
        "steer",
        help="steer the model along its utility probe (a forward hook inside lm-eval's model); sweep α; report how held-out utilities move",
        description="Fit the utility probe of a `ue run representations` folder at one layer on part of the outcomes, add "
        "α·σ·(probe direction) to the residual stream there during elicitation through lm-eval (mode add; or push each "
        "position in proportion to its standardised coordinate along it, mode amplify; σ the outcomes' hidden-state "
        "spread), sweep α, fit the held-out outcomes' utilities at each α, next to a random direction of the same norm: "
        "Spearman with the probe's target, coherence, position bias. See docs/representations.md.",
        epilog="example:\n  ue control steer --representations runs/rep --out steer/\n"
        "  ue control steer --representations runs/rep --out steer-amp/ --mode amplify --set 'alphas=[-1, 0, 3]' --set heldout=16\n"
        "  ue control steer --config ue_control/configs/steer.yaml --representations runs/rep --out steer/",
        formatter_class=fmt,
    )
    st.add_argument("--config", help="YAML/JSON config (see ue_control/configs/steer.yaml)")
    st.add_argument("--representations", help="the run folder of `ue run representations` (hidden states of a real model)")
    st.add_argument("--out", help="output folder")
    st.add_argument("--layer", type=int, help="layer to steer (default: the representations analysis' best layer)")
    st.add_argument(
        "--mode",
        choices=STEER_MODES,
        help="add α·σ·d at every position (default), or amplify: add α·σ·z·d, z the position's standardised coordinate along d",
    )
    st.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    st.set_defaults(handler=cmd_steer)

    d = csub.add_parser(
        "demo",
        help="the whole loop on the embedded model with a simulated assembly of known preferences (minutes on a CPU)",
        description="Assemble simulated citizens with known utilities (simulator: simulate), train the embedded model "
        "toward them on the training outcomes, evaluate before/after on held-out outcomes through lm-eval; prints the "
        "table, the figure and the report path and writes OUT/control.json.",
        epilog="example:\n  ue control demo --out demo/\n  ue control demo --out demo/ --set steps=60 --set n_citizens=100",
        formatter_class=fmt,
    )
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a demo setting (see docs/control.md)"
    )
    d.set_defaults(handler=cmd_demo)

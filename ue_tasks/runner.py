"""``ue run`` and ``ue analyse``: an experiment from elicitation to analysis, and the analysis again from records.

    run:      experiment → outcomes → plan → harness (or simulator) → records → fit → analysis → figures
    analyse:  records (a run folder, lm-eval output, Inspect logs) → fit → analysis → figures, no model touched

Both write ``analysis.json`` (``experiment``, ``model``, ``harness``, ``mode``, ``seed``, ``headline`` and the
analysis' details and figure data) and ``figures/*.png|svg`` into the folder; ``ue analyse`` on a run folder
reproduces what ``ue run`` wrote from the records alone.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.aggregation import unanswered_notes
from ue_metrics.errors import UserError
from ue_metrics.jsonl import complete_lines
from ue_tasks.analysis import analyse_records, write_result
from ue_tasks.elicitation.config import RunConfig, make_backend
from ue_tasks.elicitation.engine import BATCH, Elicitation
from ue_tasks.run_folder import RunFolder, run_folders

_NETWORK_MODULES = ("requests", "urllib3", "aiohttp", "httpx", "httpcore", "openai", "anthropic", "tenacity")


def _network_error(exc: BaseException) -> str | None:
    """A short description of the connection failure behind ``exc`` (a server that died, refused or timed out),
    else None; the exception's cause chain is searched (harnesses wrap the client's error)."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 10:
        module = type(e).__module__.split(".")[0]
        if isinstance(e, (ConnectionError, TimeoutError)) or module in _NETWORK_MODULES:
            text = str(e).splitlines()[0] if str(e) else ""
            return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__
        e, seen = e.__cause__ or (None if e.__suppress_context__ else e.__context__), seen + 1
    return None


def _write_usage(run: Any, out: Path, wall_s: float) -> None:
    """``usage.json``: this run's requests and tokens (as the server reported them; null where none did) and wall
    time, summed over the invocations of a resumed run (``ue_tasks.cost``)."""
    from ue_tasks.cost import write_usage

    if not out.is_dir():
        return
    now = run.backend.usage()
    try:
        old = json.loads((out / "usage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}

    def add(key: str):  # noqa: E306
        a, b = old.get(key), now.get(key)
        return None if a is None and b is None else (a or 0) + (b or 0)

    write_usage(
        out,
        {
            "requests": add("requests"),
            "retries": add("retries"),
            "prompt_tokens": add("prompt_tokens"),
            "completion_tokens": add("completion_tokens"),
            "queries_asked": (old.get("queries_asked") or 0) + run.queries_asked,
            "cache_hits": (old.get("cache_hits") or 0) + run.cache_hits,
            "wall_s": round((old.get("wall_s") or 0.0) + wall_s, 3),
            "invocations": (old.get("invocations") or 0) + 1,
            "tokens_from": "the server's usage reports" if now.get("prompt_tokens") is not None else "not reported",
        },
    )


def run_experiment(
    config: RunConfig,
    out: str | Path,
    *,
    cache_dir: str | Path | None = "default",
    backend: Any = None,
    progress: Any = None,
    log: Callable[[str], None] = print,
    figures: bool = True,
) -> dict:
    """Elicit into ``out`` (resumable), then fit and analyse; returns the analysis. An experiment that reads
    another run (``consumes``) gets it from ``--utilities`` (checked: same model, same outcomes) or runs it first
    into ``out/<consumed experiment>``; one with side runs makes them first. A collecting experiment (hidden states)
    gathers its data through its extension instead of eliciting (and reads the run it consumes itself)."""
    from ue_tasks import experiments

    exp = experiments.get(experiments.with_variant(config.experiment, config.options)[0])
    RunFolder(out).refuse_other_experiment(exp.name)
    resolved = config.resolve()
    collected = exp.extension.collect_run(resolved, Path(out), progress=progress, log=log)
    if collected is not None:
        run_config, records = collected
        result = analyse_records(
            records, exp.name, options=run_config.get("options"), seed=resolved.seed, run=run_config, folder=out
        )
        write_result(result, out, figures=figures, log=log)
        return result
    if exp.consumes:
        config, backend = _with_consumed_run(
            config, exp, Path(out), cache_dir=cache_dir, backend=backend, progress=progress, log=log, figures=figures
        )
    config, backend = _with_side_runs(
        config, resolved, exp, Path(out), cache_dir=cache_dir, backend=backend, progress=progress, log=log
    )
    config = _prepared(config, resolved, exp, Path(out), cache_dir=cache_dir, progress=progress, log=log)
    run = Elicitation(config, out, cache_dir=cache_dir, backend=backend, progress=progress, log=log)
    _elicit(run, Path(out))
    # the analysis refits from the records alone (as `ue analyse` does), so the two always agree
    result = analyse_records(
        run.records,
        run.experiment.name,
        options=run.config.options,
        seed=run.config.seed,
        run=run.config_dict(),
        generations=run.generations or None,
    )
    write_result(result, out, figures=figures, log=log)
    for line in unanswered_notes(run.records):
        log(f"note: {line}")
    log(f"{run.queries_asked} queries asked, {run.cache_hits} answered from the cache")
    return result


def _prepared(
    config: RunConfig, resolved: RunConfig, exp: Any, out: Path, *, cache_dir: Any, progress: Any, log: Callable[[str], None]
) -> RunConfig:
    """The runs of other models or experiments that the experiment's extension asks for first (a reference model's
    judgements), each a resumable ``ue run`` of its own; their folders go into this run's options."""
    from dataclasses import asdict, replace

    from ue_tasks import experiments
    from ue_tasks.elicitation.backends import SimulateBackend
    from ue_tasks.model import cache_root

    def ask(folder: Path, *, responder: Any = None, **changes: Any) -> Path:
        sub = replace(config, **{"options": {}, "responder": None, "model_name": None, **changes}).resolve()
        backend = None
        if sub.harness == "simulate" and responder is not None:
            outcomes = experiments.get(sub.experiment).outcome_set({"outcomes": sub.outcomes} if sub.outcomes else {})
            backend = SimulateBackend(responder(outcomes, sub.seed), sub.mode, sub.samples, sub.seed, name=sub.model)
        run_experiment(sub, folder, cache_dir=cache_dir, backend=backend, progress=progress, log=log, figures=False)
        return folder

    shared = None if cache_dir is None else cache_root() if cache_dir == "default" else Path(cache_dir)
    given = exp.extension.prepare(exp.resolve_options(config.options), asdict(resolved), ask, out=out, cache=shared, log=log)
    return replace(config, options={**config.options, **given}) if given else config


def _elicit(run: Elicitation, out: Path) -> None:
    """Ask the run's queries and write ``usage.json``. A run stopped after asking something keeps what it spent (a
    refused one, nothing asked, is left untouched); a server that stopped answering is one sentence naming what is
    saved."""
    started = time.perf_counter()
    try:
        run.run()
    except BaseException as exc:
        if run.backend.usage().get("requests"):
            with contextlib.suppress(Exception):
                _write_usage(run, out, time.perf_counter() - started)
        lost = None if isinstance(exc, UserError) else _network_error(exc)
        if lost is not None:
            records = out / "records.jsonl"
            saved = complete_lines(records) if records.is_file() else 0
            raise UserError(
                f"the model's server stopped answering ({lost}); {saved} answered queries of this run are saved in "
                f"{records} (records are saved every {BATCH} queries) — start the server again and rerun "
                "the same command to resume: saved answers are not asked again"
            ) from None
        raise
    _write_usage(run, out, time.perf_counter() - started)


def _with_consumed_run(
    config: RunConfig,
    exp: Any,
    out: Path,
    *,
    cache_dir: Any,
    backend: Any,
    progress: Any,
    log: Callable[[str], None],
    figures: bool,
) -> tuple[RunConfig, Any]:
    """The consumed run's folder in ``config.options`` (resolved), checked against this run's model; run first
    when none is given. Returns the configuration and the backend for this run (a model backend is shared with
    the consumed run when both use the same system message, so the model loads once)."""
    from dataclasses import replace

    from ue_tasks import experiments, runs
    from ue_tasks.elicitation.backends import SimulateBackend

    key = exp.consumes
    options = dict(config.options)
    given = options.get(key)
    if given:
        folder = Path(str(given)).expanduser()
        if not (folder / "config.json").is_file():
            raise UserError(
                f"--{key} {given}: not a `ue run` folder (it needs config.json and records.jsonl); give the folder of a finished {key} run"
            )
        _check_consumed(config, exp, folder, key)  # before anything is asked, not after the whole elicitation
    else:
        folder = out / key
        base = experiments.get(key)
        sub = replace(config, experiment=key, options={}, template=None, system_message=None).resolve()
        base_outcomes = base.outcome_set({"outcomes": sub.outcomes} if sub.outcomes else {})
        if sub.harness == "simulate":
            responder = exp.responder(config.responder, base_outcomes, sub.seed)
            sub_backend = SimulateBackend(responder, sub.mode, sub.samples, sub.seed)
        else:
            sub_backend = backend or make_backend(sub, base_outcomes, base)
            if base.system_message == (config.system_message if config.system_message is not None else exp.system_message):
                backend = backend or sub_backend
        log(f"{exp.name} reads a {key} run of the same model; none was given (--{key} RUN_DIR), so it runs first into {folder}")
        run_experiment(sub, folder, cache_dir=cache_dir, backend=sub_backend, progress=progress, log=log, figures=figures)
    options[key] = str(folder.resolve())
    config = replace(config, options=options)
    theirs = RunFolder(folder).read_config()
    if theirs.get("experiment") != key:
        raise UserError(
            f"{folder} is a run of {theirs.get('experiment')!r}, not of {key!r}; give a {key} run folder with --{key}"
        )
    if options.get("check_model", True) not in (False, "false", "False", 0):
        runs.check_same_model(_model_of(config), theirs, folder, key)
    return config, backend


def _check_consumed(config: RunConfig, exp: Any, folder: Path, key: str) -> None:
    """A given consumed run checked before this run asks anything: a run of ``key`` that can be fitted (the fit is
    cached, so the analysis reuses it), of this run's model, and — for a simulated model, whose utilities are drawn
    from its seed over its outcomes — made with this run's seed over the outcomes this run asks without it."""
    from ue_tasks import runs

    theirs = RunFolder(folder).read_config()
    if theirs.get("experiment") != key:
        raise UserError(
            f"{folder} is a run of {theirs.get('experiment')!r}, not of {key!r}; give a {key} run folder with --{key}"
        )
    if config.options.get("check_model", True) not in (False, "false", "False", 0):
        runs.check_same_model(_model_of(config), theirs, folder, key)
        if config.harness == "simulate" and theirs.get("harness") == "simulate" and not config.outcomes:
            try:
                own = exp.outcome_set({k: v for k, v in config.options.items() if k != key})
            except UserError:  # outcomes made from the consumed run itself (corrigibility)
                own = None
            if own is not None and theirs.get("outcome_hash") not in (None, own.content_hash()):
                raise UserError(
                    f"--{key} {folder}: a {key} run of the simulated model over another outcome set ({theirs.get('outcome_set')!r}) "
                    f"than this run's ({own.name!r}); a simulated model's utilities are drawn over its outcomes, so give a {key} run "
                    f"over {own.name!r}, or --outcomes {theirs.get('outcome_set')} to ask this run over the same outcomes"
                )
    try:
        runs.fitted_run(folder, key)
    except UserError as exc:
        raise UserError(
            f"--{key} {folder}: the {key} run cannot be used ({exc}); give the folder of a finished {key} run"
        ) from None


def _with_side_runs(
    config: RunConfig,
    resolved: RunConfig,
    exp: Any,
    out: Path,
    *,
    cache_dir: Any,
    backend: Any,
    progress: Any,
    log: Callable[[str], None],
) -> tuple[RunConfig, Any]:
    """Make the experiment's side runs (each resumable, in its own folder under ``out``) and list their folders in
    the option the analysis reads. A model backend is shared by all of them and this run (the model loads once);
    a simulator is made per run (its answers depend on the run's outcomes)."""
    from dataclasses import replace

    key, subs = exp.extension.side_runs(exp.resolve_options(config.options))
    given = config.options.get(key) if key else None
    if given:  # the runs given are read before anything is asked, not after the whole elicitation
        from ue_tasks import runs

        for folder in run_folders(given, where=f"--option {key}"):
            try:
                runs.fitted_run(folder, exp.name)
            except UserError as exc:
                raise UserError(
                    f"--option {key}: {folder} cannot be used ({exc}); give finished {exp.name} run folders"
                ) from None
    if not subs:
        return config, backend
    listed = (
        [str(x) for x in given] if isinstance(given, (list, tuple)) else [x for x in str(given or "").split(",") if x.strip()]
    )
    folders = [str((out / sub).resolve()) for sub, _ in subs]
    final = replace(config, options={**config.options, key: ",".join(listed + [f for f in folders if f not in listed])})
    mine = {
        "experiment": final.experiment,
        "harness": final.harness,
        "model": final.model,
        "model_args": final.model_args,
        "options": final.options,
    }
    RunFolder(out).refuse_other_configuration(mine, only=mine)  # before any side run is asked, not after
    if config.harness != "simulate" and backend is None:
        outcomes = exp.outcome_set({**config.options, **({"outcomes": config.outcomes} if config.outcomes else {})})
        backend = make_backend(resolved, outcomes, exp)
    log(f"{exp.name}: {len(subs)} side runs first, into {out}/{subs[0][0].split('/')[0]}/ (each its own run folder)")
    for sub, options in subs:
        run_experiment(
            replace(config, options=options),
            out / sub,
            cache_dir=cache_dir,
            backend=backend if config.harness != "simulate" else None,
            progress=progress,
            log=log,
            figures=False,
        )
    return final, backend


def _model_of(config: RunConfig) -> dict:
    return {"harness": config.harness, "model": config.model, "model_args": config.model_args, "seed": config.seed}


def analyse_path(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    experiment: str | None = None,
    options: dict | None = None,
    figures: bool = True,
    log: Callable[[str], None] = print,
    by: str | None = None,
    unparsed: str | None = None,
    method: str | None = None,
) -> Any:
    """``ue analyse``: a run folder (its records and configuration, and its free answers) or harness outputs, analysed
    again. Records of different models (outcome sets, templates, system messages) are refused, or with ``by`` analysed
    one group per folder ``out/<group>`` (then the result is ``{folder: analysis}``)."""
    from ue_metrics.pooling import check_not_mixed, group_folder_names, group_records
    from ue_tasks import experiments
    from ue_tasks.harness.readers import collect, read_generations

    paths = [Path(p) for p in paths]
    held = [(p, pid) for p in paths if p.is_dir() and (pid := RunFolder(p).lock().holder()) is not None]
    if held:  # a folder a running `ue run` is writing: never written into, read as a snapshot of its complete lines
        where, pid = held[0]
        if out is None or any(Path(out).resolve() == p.resolve() for p, _ in held):
            raise UserError(
                f"{where} is held by a running `ue run` (PID {pid}) and its records are still being written; wait "
                "for the run to finish, or give --out ANOTHER_FOLDER to analyse the records so far"
            )
        log(
            f"note: {where} is held by a running `ue run` (PID {pid}): the run is incomplete, and this analysis into {out} "
            "covers only the records written so far; analyse again when it finishes"
        )
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ue-analyse-") as tmp:
            live = {p for p, _ in held}
            snaps = [_snapshot(p, Path(tmp) / str(k)) if p in live else p for k, p in enumerate(paths)]
            return analyse_path(snaps, out, experiment, options, figures, log, by, unparsed, method)
    config: dict = {}
    if len(paths) == 1 and RunFolder(paths[0]).is_run():
        config = RunFolder(paths[0]).read_config("analyse the records file itself")
        got = collect([paths[0] / "records.jsonl"], deduplicate=False)
        generations = read_generations([paths[0] / "generations.jsonl"])
        out = out or paths[0]
    else:
        if out is None:
            _no_run_records(paths)
            raise UserError("give --out for the analysis of harness outputs (a folder for analysis.json and figures)")
        got = collect(paths, deduplicate=False)
        generations = read_generations(paths)
    from ue_metrics.jsonl import writable_folder

    writable_folder(out, "--out" if out != paths[0] else "")  # before the work: a read-only folder is one sentence
    name = experiment or config.get("experiment")
    seed = int(config.get("seed", 0))
    opts = {**(config.get("options") or {}), **(options or {})}
    groups = group_records(got.records, by) if by else {"": got.records}
    exp = experiments.get(experiments.with_variant(name or _single_experiment(got.records))[0])
    for group in groups.values():
        check_not_mixed(group, pool=exp.prompt_fields)  # an experiment that varies the prompt on purpose says which fields
    groups = {label: got.deduplicate(group) for label, group in groups.items()}
    for note in got.notes():
        log(note)
    folder = paths[0] if config else None  # a run folder: files beside the records (hidden states) are read from it
    if by:
        done = {}
        names = group_folder_names(list(groups))
        for label, group in groups.items():
            target = Path(out) / names[label]
            log(f"{by} {label!r} ({len(group)} records) → {target}/")
            models = {r.get("model") for r in group}
            mine = [g for g in generations if g.get("model") in models]  # each group's own free answers
            result = analyse_records(
                group,
                name,
                options=opts,
                seed=seed,
                run=config or None,
                generations=mine or None,
                folder=folder,
                unparsed=unparsed,
                method=method,
            )
            result["group"] = {"by": by, "value": label}
            write_result(result, target, figures=figures, log=log)
            done[str(target)] = result
        return done
    result = analyse_records(
        groups[""],
        name,
        options=opts,
        seed=seed,
        run=config or None,
        generations=generations or None,
        folder=folder,
        unparsed=unparsed,
        method=method,
    )
    write_result(result, out, figures=figures, log=log)
    return result


def _no_run_records(paths: Sequence[Path]) -> None:
    """``ue analyse FOLDER`` without --out where FOLDER is an empty folder or a run folder without records: say so
    (rather than ask for --out, which would not help)."""
    if len(paths) != 1 or not paths[0].is_dir():
        return
    folder = paths[0]
    if (folder / "config.json").is_file():
        raise UserError(
            f"no records.jsonl in {folder}: the run has no answers yet (or they were removed); rerun `ue run` "
            "with the same options to ask them"
        )
    if not any(p.is_file() for p in folder.rglob("*")):
        raise UserError(
            f"no records.jsonl in {folder}: the folder is empty; give a `ue run` folder, or record files / "
            "harness outputs with --out DIR"
        )


def _snapshot(folder: Path, to: Path) -> Path:
    """A read-only view of a run folder being written: its JSONL files copied up to their last complete line, every
    other entry linked (the run's own files are never touched)."""
    import os

    to.mkdir()
    for entry in folder.iterdir():
        if entry.name == ".lock":
            continue
        if entry.suffix == ".jsonl" and entry.is_file():
            data = entry.read_bytes()
            (to / entry.name).write_bytes(data[: data.rfind(b"\n") + 1])
        else:
            os.symlink(entry.resolve(), to / entry.name)
    return to


def _single_experiment(records: Sequence[dict]) -> str:
    names = sorted({r.get("experiment") or "utilities" for r in records})
    return names[0] if len(names) == 1 else "utilities"

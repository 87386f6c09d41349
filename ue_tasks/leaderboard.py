"""``ue leaderboard``: find the analysed runs under the paths a user gives — ``ue run`` / ``ue demo`` folders (their
``analysis.json``), ``ue analyse --out`` folders, record files, lm-eval ``--output_path`` folders and Inspect logs of
many models — turn each (model, experiment, run) into a ``ue_metrics.leaderboard.Entry``, and write the leaderboard
(``leaderboard.json``, ``.csv``, ``.md``, ``figures/*.png|svg`` and ``report.html``).

A folder holding ``analysis.json`` or ``records.jsonl`` is one run and is not searched further (so a run folder's
own lm-eval output is not read twice); other files are read with ``ue_tasks.harness.readers`` and grouped by model,
experiment and run id, each group fitted and analysed in memory (nothing is written into the user's folders).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ue_metrics import analyses, leaderboard_figures, leaderboard_render
from ue_metrics import leaderboard as lb
from ue_metrics.errors import UserError
from ue_metrics.jsonl import first_object, read_json, write_json, write_text

RUN_FILES = ("analysis.json", "records.jsonl")
# record fields that tell two runs of one model name apart (read when present; the name itself stays the row key)
IDENTITY_FIELDS = (
    "model_identity",
    "model_revision",
    "model_args",
    "model_sha",
    "dtype",
    "base_model",
    "system_message",
    "template",
)


def experiments_meta() -> dict[str, dict[str, Any]]:
    from ue_tasks import experiments

    return {
        name: {"title": e.title, "section": e.section, "headline": e.headline, "lower_is_better": e.lower_is_better}
        for name, e in experiments.all_experiments().items()
    }


def _is_run_folder(folder: Path) -> bool:
    return any((folder / name).is_file() for name in RUN_FILES) and not (folder / "leaderboard.json").is_file()


def _variant(record: dict | None) -> dict[str, Any]:
    if not record:
        return {}
    return {k: record[k] for k in IDENTITY_FIELDS if k in record and record[k] not in (None, "", False)}


def _utilities_from_rows(rows: Iterable[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        key = r.get("text") or r.get("id")
        u = r.get("utility")
        try:
            value = float(u)
        except (TypeError, ValueError):
            continue
        if key and math.isfinite(value):
            out[str(key)] = value
    return out


def _utilities_csv(path: Path) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return _utilities_from_rows(csv.DictReader(fh)) or None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot be read as utilities ({exc}); rerun `ue analyse` on that run") from None


def _entry_from_analysis(analysis: dict, source: Path, folder: Path | None) -> lb.Entry:
    model = analysis.get("model")
    if isinstance(model, list):
        raise UserError(
            f"{source}: this analysis mixes the records of {len(model)} models ({', '.join(map(str, model))}); "
            "analyse each model's records separately"
        )
    if not model or not analysis.get("experiment"):
        raise UserError(f"{source}: not a ue analysis (no model or experiment); give a run folder or rerun `ue analyse`")
    rows = ((analysis.get("figures") or {}).get("utilities") or {}).get("rows")
    utilities = _utilities_from_rows(rows) if rows else None
    if utilities is None and folder is not None:
        utilities = _utilities_csv(folder / "utilities.csv")
    first = first_object(folder / "records.jsonl") if folder is not None and (folder / "records.jsonl").is_file() else None
    variant = _variant(first)
    if not variant and isinstance(analysis.get("run"), dict):
        variant = {k: analysis["run"][k] for k in ("model_args", "dtype", "revision") if analysis["run"].get(k)}
    usage = None
    if folder is not None and (folder / "usage.json").is_file():
        try:
            usage = read_json(folder / "usage.json", lambda exc: str(exc))
        except UserError:  # a damaged usage.json costs the row its token counts, not its results
            usage = None
    return lb.Entry(
        model=str(model),
        experiment=str(analysis["experiment"]),
        analysis=analysis,
        source=str(source),
        utilities=utilities,
        variant=variant,
        usage=usage if isinstance(usage, dict) else None,
    )


def _entries_from_records(records: list[dict], source: str, log: Callable[[str], None]) -> list[lb.Entry]:
    """Records grouped by (model, experiment, run id), each group fitted and analysed in memory."""
    from ue_tasks.analysis import analyse_records

    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((str(r["model"]), r.get("experiment") or "utilities", str(r.get("run_id", ""))), []).append(r)
    out = []
    for (model, experiment, run_id), recs in sorted(groups.items()):
        log(f"analysing {len(recs)} records of {model} ({experiment}, run {run_id or '?'}) from {source}")
        analysis = analyse_records(recs, experiment)
        rows = ((analysis.get("figures") or {}).get("utilities") or {}).get("rows")
        where = f"{source} (run {run_id})" if len(groups) > 1 and run_id else source
        out.append(
            lb.Entry(
                model=model,
                experiment=experiment,
                analysis=analysis,
                source=where,
                utilities=_utilities_from_rows(rows) if rows else None,
                variant=_variant(recs[0]),
            )
        )
    return out


def collect(paths: Sequence[str | Path], log: Callable[[str], None] = print) -> list[lb.Entry]:
    """Every analysed run under ``paths`` (see the module docstring)."""
    from ue_tasks.harness import companion
    from ue_tasks.harness.readers import _claim, _load_adapters

    _load_adapters()
    entries: list[lb.Entry] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder; give run folders, lm-eval output folders or Inspect logs")
        found = len(entries)
        if path.is_file():
            if companion.claims(path):
                entries += _companion_entries(path, log)
            elif path.name == "analysis.json":
                entries.append(_entry_from_analysis(analyses.read(path), path.parent, path.parent))
            elif _claim(path) is not None:
                entries += _entries_from_records(_claim(path)[2](path), str(path), log)
            else:
                raise UserError(
                    f"{path}: not a file ue can read (an analysis.json, a records file, an lm-eval samples file or an Inspect log)"
                )
            continue
        loose: list[Path] = []
        stack = [path]
        while stack:
            folder = stack.pop()
            if (folder / "leaderboard.json").is_file() and folder != path:
                continue  # an earlier leaderboard's output, not a run
            if _is_run_folder(folder):
                entries += _entries_from_run_folder(folder, log)
                continue
            for child in sorted(folder.iterdir(), reverse=True):
                if child.is_dir():
                    stack.append(child)
                elif child.is_file() and companion.claims(child):
                    entries += _companion_entries(child, log)
                elif child.is_file() and _claim(child) is not None:
                    loose.append(child)
        by_reader: list[dict] = []
        for f in sorted(loose):
            by_reader += _claim(f)[2](f)
        if by_reader:
            entries += _entries_from_records(by_reader, str(path), log)
        if len(entries) == found:
            raise UserError(f"{path}: holds no run folder, record file, lm-eval output or Inspect log; check the path")
    return entries


def _companion_entries(path: Path, log: Callable[[str], None]) -> list[lb.Entry]:
    """A companion results file: its edges fitted and analysed as a run's records, or — a file of published
    utilities without edges — its utilities and holdout metrics as published (ue_tasks/harness/companion.py)."""
    from ue_tasks.harness import companion

    records = companion.read(path)
    if records:
        return _entries_from_records(records, str(path), log)
    analysis = companion.entry_analysis(path)
    return [
        lb.Entry(
            model=analysis["model"],
            experiment="utilities",
            analysis=analysis,
            source=str(path),
            utilities=companion.utilities(path) or None,
        )
    ]


def _entries_from_run_folder(folder: Path, log: Callable[[str], None]) -> list[lb.Entry]:
    if (folder / "analysis.json").is_file():
        return [_entry_from_analysis(analyses.read(folder), folder, folder)]
    from ue_metrics.records import read

    return _entries_from_records(read(folder / "records.jsonl"), str(folder), log)


def build_leaderboard(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    capabilities: str | Path | None = None,
    capability_column: str | None = None,
    aliases: str | Path | None = None,
    min_shared: int = lb.MIN_SHARED,
    figures: bool = True,
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Collect, build and write the leaderboard into ``out``; returns its content."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; give --out a folder path")
    if aliases is not None and capabilities is None:
        raise UserError("--aliases maps model names to a capabilities table; give --capabilities FILE as well")
    scores, score_name = (
        lb.read_capabilities(capabilities, capability_column, log=log) if capabilities is not None else (None, "MMLU")
    )
    alias_map = lb.read_aliases(aliases) if aliases is not None else None
    entries = collect(paths, log=log)
    board = lb.build(
        entries,
        experiments_meta(),
        capabilities=scores,
        capability_name=score_name,
        capabilities_source=str(capabilities) if capabilities else None,
        aliases=alias_map,
        min_shared=min_shared,
    )
    board["inputs"] = [str(p) for p in paths]
    write(board, out, figures=figures, report=report, log=log)
    return board


def write(
    board: dict[str, Any], out: Path, *, figures: bool = True, report: bool = True, log: Callable[[str], None] = print
) -> list[Path]:
    """leaderboard.json, .csv, .md, figures/*.png|svg and report.html into ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {out} ({exc}); give --out a writable folder") from None
    written = [out / "leaderboard.json", out / "leaderboard.csv", out / "leaderboard.md"]
    hint = "free space or give --out a folder you can write to"
    write_json(written[0], board, hint=hint)  # each file through a temporary name: no 0-byte leaderboard.json
    leaderboard_render.write_csv(board, written[1])
    write_text(written[2], leaderboard_render.render_markdown(board), hint=hint)
    if figures:
        from ue_metrics import figures as figs

        try:
            for name, data in board["figures"].items():
                draw = leaderboard_figures.drawer(name)
                size = leaderboard_figures.metrics_figure_size(data) if name == "metrics" else (6.4, 4.8)
                written += figs.save(draw, data, out / "figures" / name, size=size)
        except UserError as exc:  # matplotlib missing: the tables stand
            log(f"warning: no figures drawn ({exc})")
    if report:
        from ue_metrics.report import leaderboard_html

        path = out / "report.html"
        write_text(path, leaderboard_html(board), hint=hint)
        written.append(path)
    return written


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """``ue report``: the HTML report of a leaderboard folder (``leaderboard.json``) or a run folder (``analysis.json``;
    a folder with only ``records.jsonl`` is analysed in memory first). Returns the path written."""
    from ue_metrics.report import leaderboard_html, run_html

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such folder; give a run folder (ue run / ue demo) or a leaderboard folder (ue leaderboard)")
    folder = path.parent if path.is_file() else path
    if (folder / "leaderboard.json").is_file() and (path.is_dir() or path.name == "leaderboard.json"):
        board = read_json(
            folder / "leaderboard.json",
            lambda exc: f"{folder / 'leaderboard.json'}: cannot be read ({exc}); rerun `ue leaderboard`",
        )
        if not isinstance(board, dict) or board.get("schema") != lb.SCHEMA:
            raise UserError(f"{folder / 'leaderboard.json'}: not a {lb.SCHEMA} file; rerun `ue leaderboard`")
        text = leaderboard_html(board)
    elif (folder / "analysis.json").is_file():
        text = run_html(analyses.read(folder))
    elif (folder / "records.jsonl").is_file():
        from ue_metrics.records import read
        from ue_tasks.analysis import analyse_records

        text = run_html(analyse_records(read(folder / "records.jsonl")))
    else:
        raise UserError(
            f"{path}: holds neither leaderboard.json nor analysis.json nor records.jsonl; give a run or leaderboard "
            "folder, or run `ue analyse OUTPUTS --out DIR` first"
        )
    target = Path(out) if out is not None else folder / "report.html"
    if target.is_dir():
        target = target / "report.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {target} ({exc}); give --out a writable file path") from None
    return target

"""Turn whatever a user points ``ue fit`` at into ``ue.preference/1`` records.

Native record files (JSONL whose lines carry ``"schema": "ue.preference/1"``) are read directly. Harness
adapters register a reader for their own output (an lm-eval ``--output_path`` folder, an Inspect log) with
``register``; ``read_records`` walks files and folders and asks each reader in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ue_metrics import records as rec
from ue_metrics.errors import UserError

# (name, claims(path) -> bool, read(path) -> list of records)
Reader = tuple[str, Callable[[Path], bool], Callable[[Path], list[dict]]]
READERS: list[Reader] = [("ue records", rec.is_record_file, rec.read)]


def register(name: str, claims: Callable[[Path], bool], read: Callable[[Path], list[dict]]) -> None:
    READERS.append((name, claims, read))


def _load_adapters() -> None:
    """Import the harness adapters so they can register their readers (cheap: no harness import needed)."""
    for module in ("ue_tasks.harness.lm_eval.reader", "ue_tasks.harness.inspect.reader"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def _claim(path: Path) -> Reader | None:
    for reader in READERS:
        if reader[1](path):
            return reader
    return None


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a records file or a harness output folder")
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def read_record_columns(paths: Iterable[str | Path]) -> rec.RecordColumns:
    """``read_records`` in bulk, for fitting: native record files are read as columns (``records.read_columns``:
    one JSON call per file, vectorised checks naming the first bad line); harness outputs go through their readers
    and are then put in columns."""
    parts: list[rec.RecordColumns] = []
    for raw in paths:
        path = Path(raw)
        found = 0
        for f in _files(path):
            if rec.is_record_file(f):  # native records: no harness adapter needed (nor imported)
                parts.append(rec.read_columns(f))
                found += 1
                continue
            _load_adapters()
            reader = _claim(f)
            if reader is None:
                continue
            found += 1
            if reader[0] == "ue records":
                parts.append(rec.read_columns(f))
            else:
                batch = reader[2](f)
                parts.append(rec.columns_from_records(batch, where=[f"{f} (record {k})" for k in range(1, len(batch) + 1)]))
        if found == 0:
            kinds = ", ".join(r[0] for r in READERS)
            what = "folder holds no file" if path.is_dir() else "file is not one"
            raise UserError(f"{path}: this {what} that ue can read ({kinds}); check the path")
    columns = rec.concat_columns([p for p in parts if len(p)]) if any(len(p) for p in parts) else None
    if columns is None:
        raise UserError("the given files hold no preference records")
    return columns


def read_records(paths: Iterable[str | Path]) -> list[dict]:
    """Records from files and folders (folders are searched recursively); errors name the path."""
    _load_adapters()
    out: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder; give a records file or a harness output folder")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        found = 0
        for f in files:
            reader = _claim(f)
            if reader is None:
                continue
            batch = reader[2](f)
            out.extend(batch)
            found += 1
        if found == 0:
            kinds = ", ".join(r[0] for r in READERS)
            what = "folder holds no file" if path.is_dir() else "file is not one"
            raise UserError(f"{path}: this {what} that ue can read ({kinds}); check the path")
    if not out:
        raise UserError("the given files hold no preference records")
    return out

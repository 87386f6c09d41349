"""Turn whatever a user points ``ue fit`` at into ``ue.preference/1`` records — every answer once, and every file
that was not read accounted for.

Native record files (JSONL whose lines carry ``"schema": "ue.preference/1"``) are read directly. Harness
adapters register a reader for their own output (an lm-eval ``--output_path`` folder, an Inspect log) with
``register``; ``collect`` walks files and folders and asks each reader in turn. It

- reads a file once, however often it is named (``ue fit a.jsonl a.jsonl``, a folder and a file inside it);
- drops an answer read twice (the same run id, query and elicitation — ``ue demo``'s ``records.jsonl`` beside
  lm-eval's samples it was read from) and counts it, and refuses one answer key with two different values
  (``ue_metrics.pooling.deduplicate``);
- counts every file of a folder it did not read and says why (a byte-order mark is no reason: it is read).
"""

from __future__ import annotations

import json
import operator
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ue_metrics import aggregation, jsonl, pooling
from ue_metrics import records as rec
from ue_metrics.errors import UserError
from ue_metrics.jsonl import check_regular_file

# (name, claims(path) -> bool, read(path) -> list of records)
Reader = tuple[str, Callable[[Path], bool], Callable[[Path], list[dict]]]
READERS: list[Reader] = [("ue records", rec.is_record_file, rec.read)]
# (name, claims(path) -> bool, read(path) -> list of ue.generation/1 entries): free-form answers in harness output
GENERATION_READERS: list[Reader] = []

# files a run folder or a harness output folder holds beside its records: not read, and not worth a warning
_COMPANION = re.compile(
    r"^(config\.json|outcomes\.jsonl|rounds\.jsonl|history\.jsonl|metrics\.json|analysis\.json|utilities\.csv|demo\.json"
    r"|results_.*\.json|logs\.json|.*\.truth\.csv|\.lock|.*\.(png|svg|pdf|html|md|log))$"
)


def register(
    name: str,
    claims: Callable[[Path], bool],
    read: Callable[[Path], list[dict]],
    read_generations: Callable[[Path], list[dict]] | None = None,
) -> None:
    """A harness adapter's reader of preference records (and, optionally, of free-form answers in the same files)."""
    READERS.append((name, claims, read))
    if read_generations is not None:
        GENERATION_READERS.append((name, claims, read_generations))


def register_generations(name: str, claims: Callable[[Path], bool], read: Callable[[Path], list[dict]]) -> None:
    """A reader of files that hold free-form answers only (an lm-eval ``_answers`` task's samples)."""
    GENERATION_READERS.append((name, claims, read))


def read_generations(paths: Iterable[str | Path]) -> list[dict]:
    """Free-form answers (``ue.generation/1`` entries) in files and folders; empty when there are none."""
    from ue_tasks.generation import GENERATIONS_FILE, read_entries

    _load_adapters()
    out: list[dict] = []
    for raw in paths:
        path = Path(raw)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.exists() else []
        for f in files:
            if f.name == GENERATIONS_FILE:
                out.extend(read_entries(f))
                continue
            for _, claims, read in GENERATION_READERS:
                if claims(f):
                    out.extend(read(f))
                    break
    return out


_COMPANION_LOADED = False


def _load_adapters() -> None:
    """Import the harness adapters so they can register their readers (cheap: no harness import needed)."""
    global _COMPANION_LOADED
    if not _COMPANION_LOADED:  # the companion code's results files (ue_tasks/harness/companion.py)
        from ue_tasks.harness import companion

        register("companion results", companion.claims, companion.read)
        _COMPANION_LOADED = True
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


def why_unread(path: Path) -> str:
    """Why no reader takes ``path``, in a few words (for a skipped file, or the error on a file given by name)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, device or socket)"
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head.strip():
        return "empty"
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    first = head.split(b"\n", 1)[0]
    if len(first) == len(head) and len(head) >= 64 * 1024 - 3:  # the first line goes on: read it whole, up to the limit
        limit = jsonl.MAX_LINE_BYTES
        try:
            with path.open("rb") as fh:
                first = fh.readline(limit + 1).removeprefix(b"\xef\xbb\xbf")
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if len(first) > limit and not first.endswith(b"\n"):
            return (
                f"line 1 is longer than {limit // (1024 * 1024)} MiB, the longest line ue reads (a record's texts "
                "cannot be that long; or the file is not line-oriented text)"
            )
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(first) >= 64 * 1024 - 4:  # the first line goes on past what was read: a binary or a huge line
            return "not a line-oriented text file"
        return f"line 1 is not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        if path.suffix.lower() in (".jsonl", ".json"):
            return "line 1 is not a JSON object"
        return "not a ue records file (JSONL), an lm-eval samples file or an Inspect log"
    if not isinstance(obj, dict):
        return "line 1 is not a JSON object"
    if "schema" in obj:
        return f"its records declare schema {obj['schema']!r}; this version of ue reads {rec.SCHEMA!r}"
    if path.name.startswith("samples_"):
        return "lm-eval samples of a task that is not a ue task"
    return "JSON lines, but not preference records (no 'schema' field)"


class _Sources(Sequence[str]):
    """The file each of ``records`` came from, looked up only when a message needs one."""

    def __init__(self, records: list[dict], sources: dict[int, str]) -> None:
        self.records, self.sources = records, sources

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self.sources.get(id(r), "") for r in self.records[k]]
        return self.sources.get(id(self.records[k]), "")


@dataclass
class Collected:
    """What ``collect`` read: the records (every answer once) and an account of everything else."""

    records: list[dict]
    files: list[Path] = field(default_factory=list)  # files read, each once
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files of a folder not read, and why
    companions: int = 0  # run files beside the records (configuration, results, figures): not records, not a concern
    repeated: list[Path] = field(default_factory=list)  # files named more than once (read once)
    duplicates: dict[tuple[str, str], int] = field(default_factory=dict)  # (kept in, dropped from): answers read twice
    # (harness kept, harness dropped): log-prob answers of one query from two harnesses, kept once
    two_harnesses: dict[tuple[str, str], int] = field(default_factory=dict)
    sources: dict[int, str] = field(default_factory=dict, repr=False)  # id(record) -> the file it came from
    # the bulk reader's columns of each native records file, in reading order (None: a harness adapter's records)
    parts: list[aggregation.RecordColumns | None] = field(default_factory=list, repr=False)

    def deduplicate(self, records: list[dict]) -> list[dict]:
        """``records`` (all or a group of them) with every answer once; the dropped ones are counted for ``notes``."""
        kept, dropped = pooling.deduplicate(records, _Sources(records, self.sources), self.two_harnesses)
        for where, n in dropped.items():
            self.duplicates[where] = self.duplicates.get(where, 0) + n
        return kept

    def columns(self, records: list[dict]) -> aggregation.RecordColumns:
        """``records`` (all those read, or some: a group, the answers kept by ``deduplicate``) as columns for the fit:
        the columns the bulk reader already built, taken by position; built from the dicts only where a harness
        adapter read them (``ue_metrics.aggregation.columns_from_records``)."""
        if not self.parts or any(part is None for part in self.parts):
            return aggregation.columns_from_records(records, validated=True)
        whole = self.parts[0] if len(self.parts) == 1 else aggregation.concat_columns(self.parts)  # type: ignore[arg-type]
        self.parts = [whole]
        if len(records) == len(whole) and all(map(operator.is_, records, whole.records)):
            return whole
        position = dict(zip(map(id, whole.records), range(len(whole))))
        try:
            return whole.take(list(map(position.__getitem__, map(id, records))))
        except KeyError:  # records that were not read here
            return aggregation.columns_from_records(records, validated=True)

    @property
    def n_duplicates(self) -> int:
        return sum(self.duplicates.values()) + sum(self.two_harnesses.values())

    def notes(self) -> list[str]:
        """One line per thing the user should know about what was (not) read."""
        out = []
        if self.repeated:
            shown = ", ".join(str(p) for p in self.repeated[:3]) + (" ..." if len(self.repeated) > 3 else "")
            out.append(f"{len(self.repeated)} file(s) were given more than once and read once: {shown}")
        if self.skipped:
            shown = "; ".join(f"{p} ({why})" for p, why in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            out.append(f"skipped {len(self.skipped)} file(s) that hold no records ue can read: {shown}{more}")
        for (kept, dropped), n in self.duplicates.items():
            where = f" ({dropped} repeats {kept})" if kept != dropped else f" (within {kept})"
            out.append(f"dropped {n} record(s) that repeat answers already read{where}; each answer is fitted once")
        for (kept, dropped), n in self.two_harnesses.items():
            out.append(
                f"dropped {n} duplicate answers (same query from two harnesses: the {dropped} answers repeat the {kept} "
                "ones within 0.05); each answer is fitted once"
            )
        return out

    def summary(self) -> dict:
        """The account for metrics.json."""
        return {
            "files": [str(p) for p in self.files],
            "skipped": [[str(p), why] for p, why in self.skipped],
            "duplicates_dropped": self.n_duplicates,
            "files_given_twice": [str(p) for p in self.repeated],
        }


def collect(paths: Iterable[str | Path], deduplicate: bool = True) -> Collected:
    """Records from files and folders (folders are searched recursively); errors name the path. With
    ``deduplicate=False`` the caller drops repeated answers itself (``Collected.deduplicate``), after checking that
    the records are not of different models, outcome sets... (a copy under another outcome set is no repeat)."""
    out = Collected(records=[])
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder; give a records file or a harness output folder")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        else:
            check_regular_file(path)
            files = [path]
        found = 0
        for f in files:
            real = f.resolve()
            if real in seen:
                found += 1
                if f == path or not path.is_dir():
                    out.repeated.append(f)
                continue
            if rec.is_record_file(f):  # native records: read in bulk, no harness adapter needed (nor imported)
                reader: Reader | None = READERS[0]
            else:
                _load_adapters()
                reader = _claim(f)
            if reader is None:
                if path.is_dir():
                    if _COMPANION.match(f.name):
                        out.companions += 1
                    else:
                        out.skipped.append((f, why_unread(f)))
                continue
            seen.add(real)
            columns = aggregation.read_columns(f) if reader is READERS[0] else None
            batch = columns.records if columns is not None else reader[2](f)
            if not batch and path.is_dir():
                out.skipped.append((f, f"a {reader[0]} with no ue answers"))
                continue
            out.records.extend(batch)
            out.parts.append(columns)
            out.sources.update(dict.fromkeys(map(id, batch), str(f)))
            out.files.append(f)
            found += 1
        if found == 0:
            if path.is_dir():
                kinds = ", ".join(r[0] for r in READERS)
                raise UserError(f"{path}: this folder holds no file that ue can read ({kinds}); check the path")
            raise UserError(f"{path}: {why_unread(path)}; give a ue records file, an lm-eval output folder or an Inspect log")
    if not out.records:
        raise UserError("the given files hold no preference records")
    if deduplicate:
        out.records = out.deduplicate(out.records)
    return out


def read_records(paths: Iterable[str | Path], log: Callable[[str], None] | None = None, pool: Iterable[str] = ()) -> list[dict]:
    """Records from files and folders (see ``collect``), refused when they come from different models, outcome sets,
    templates or system messages (``ue_metrics.pooling.check_not_mixed``; ``pool`` lifts that for some fields);
    ``log`` receives the notes on skipped files and dropped duplicates."""
    got = collect(paths, deduplicate=False)
    pooling.check_not_mixed(got.records, pool=pool)
    got.records = got.deduplicate(got.records)
    if log is not None:
        for note in got.notes():
            log(note)
    return got.records


def read_record_columns(paths: Iterable[str | Path], pool: Iterable[str] = ()) -> aggregation.RecordColumns:
    """``read_records`` as columns (``ue_metrics.aggregation.RecordColumns``), for bulk consumers."""
    got = collect(paths, deduplicate=False)
    pooling.check_not_mixed(got.records, pool=pool)
    return got.columns(got.deduplicate(got.records))

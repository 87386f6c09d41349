"""JSON Lines: the one reader and writer every ue file of one-object-per-line goes through (preference records,
run files, queries, outcome files, answer caches, harness samples).

- Reading accepts a UTF-8 byte-order mark, names the file and line of anything it cannot read, refuses what is not
  a regular file (a FIFO or a device such as ``/dev/zero`` would never end) and caps the length of a line.
- ``tolerate_torn_tail`` is for files ue appends to while it runs: a process killed mid-write leaves bytes after the
  last newline; they are cut from the file (the lines they held are simply asked again) instead of failing.
- Appending writes whole lines and fsyncs, so a line on disk is either complete or a torn tail; an append that
  fails (a full disk) cuts the file back to its last complete line.
- Every other file ue writes (analysis.json, figures, leaderboard.json, a run's lock) goes through ``atomic_file``
  (``write_text``, ``write_json``): a temporary name in the same folder, fsync, rename — a reader sees the old file
  or the new one, never half of one, and a full disk or read-only folder is ``WriteFailed`` (one sentence, exit 2)
  with no zero-byte file left behind.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

MAX_LINE_BYTES = 64 * 1024 * 1024  # one record or sample line; anything longer is not a ue file

WRITE_HINT = "free space or choose a folder you can write to"


class WriteFailed(UserError, OSError):
    """A file could not be written (full disk, read-only folder, permissions): a ``UserError`` (one sentence, exit 2)
    that is also an ``OSError`` (``errno``/``strerror`` of the cause), so older ``except OSError`` handlers still
    see it. Nothing half-written is left under the file's name."""

    def __init__(self, message: str, cause: OSError | None = None):
        super().__init__(message)
        if cause is not None:
            self.errno, self.strerror = cause.errno, cause.strerror

    def __str__(self) -> str:
        return str(self.args[0])


def write_failed(path: str | Path, exc: OSError, hint: str = WRITE_HINT) -> WriteFailed:
    """The one sentence of a file that could not be written."""
    return WriteFailed(f"{path}: cannot be written ({exc.strerror or exc}); {hint}", exc)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def atomic_file(path: str | Path, mode: str = "w", *, hint: str = WRITE_HINT) -> Iterator[Any]:
    """Open ``path`` for writing through a temporary name in the same folder: on leaving the block the file is
    flushed, fsynced and renamed onto ``path``; on any failure the temporary file is removed and ``path`` is left as
    it was. An ``OSError`` while writing (full disk, read-only folder) becomes ``WriteFailed`` naming ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a whole file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(tmp, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {}))
    except OSError as exc:
        raise write_failed(path, exc, hint) from None
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, WriteFailed):
            raise
        raise write_failed(path, exc, hint) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_text(path: str | Path, text: str, *, hint: str = WRITE_HINT) -> Path:
    """``text`` as the whole of ``path`` (UTF-8), written through ``atomic_file``."""
    with atomic_file(path, "w", hint=hint) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, hint: str = WRITE_HINT) -> Path:
    """``obj`` as strict JSON (``strict_json``) and a newline, written through ``atomic_file``."""
    return write_text(path, strict_json(obj, indent=indent) + "\n", hint=hint)


def read_json(path: str | Path, message: Callable[[Exception], str], *, missing: str | None = None) -> Any:
    """The parsed JSON of a whole file (UTF-8, a byte-order mark allowed): the one reader of ue's JSON files. A file
    that cannot be read, is not UTF-8 or is not JSON is ``UserError(message(exc))`` (each caller keeps its own
    sentence, naming the file and what to do), a missing one ``UserError(missing)`` when ``missing`` is given."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise UserError(missing if missing is not None else message(exc)) from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise UserError(message(exc)) from None


def check_regular_file(path: Path) -> None:
    """Refuse a path that is missing, a folder, or not a regular file (FIFO, device, socket)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{path}: is not a regular file (a pipe, device or socket); save the data to a file and give its path")


def probe_writable(folder: str | Path) -> None:
    """Create ``folder`` (if needed) and write and remove an empty file in it: the one "can I write here" probe.
    Raises the ``OSError`` of the failure; each caller turns it into its own sentence."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".ue-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def writable_folder(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` as a folder (if needed) and check that a file can be written in it, before any long work;
    a path that is a file, cannot be created or is read-only is one sentence."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a folder; give a folder path")
    try:
        probe_writable(path)
    except OSError as exc:
        hint = "choose a folder you can write to" if option else "give --out a folder you can write to"
        raise WriteFailed(
            f"{(option + ' ') if option else ''}{path}: cannot write there ({exc.strerror or exc}); {hint}", exc
        ) from None
    return path


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} line {lineno}: not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8"
        ) from None


def iter_lines(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line, a BOM on the first line dropped."""
    path = Path(path)
    check_regular_file(path)
    if tolerate_torn_tail:
        _cut_torn_tail(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and its permissions") from None
    with fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise UserError(
                    f"{path} line {lineno}: longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; this is not a ue JSONL file"
                )
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw.strip():
                yield lineno, _decode(raw, path, lineno)


def iter_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False, what: str = "one JSON object") -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line; a line that is not JSON is one clear error."""
    path = Path(path)
    for lineno, text in iter_lines(path, tolerate_torn_tail=tolerate_torn_tail):
        try:
            yield lineno, json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {lineno}: not valid JSON ({exc.msg}); each line must be {what}") from None


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False, what: str = "one JSON object") -> list[Any]:
    return [obj for _, obj in iter_jsonl(path, tolerate_torn_tail=tolerate_torn_tail, what=what)]


def read_items(path: str | Path, build: Callable[[Any], Any], *, what: str, writer: str) -> list[Any]:
    """Every line of a JSONL file turned into an item by ``build`` (a ``from_dict``): a line ``build`` rejects, or an
    empty file, is one sentence naming the file and line, ``what`` the line should hold and ``writer`` (the function
    that writes such files)."""
    path = Path(path)
    out = []
    for lineno, obj in iter_jsonl(path, what=f"one {what}"):
        try:
            out.append(build(obj))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path} line {lineno}: not a {what} ({exc}); write it with {writer}") from None
    if not out:
        raise UserError(f"{path}: the file holds no {what}; write it with {writer}")
    return out


def first_object(path: str | Path) -> dict | None:
    """The first non-blank line as a JSON object, or None when the file is not readable JSONL (cheap sniffing)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        with path.open("rb") as fh:
            for _ in range(1000):
                raw = fh.readline(1024 * 1024)
                if not raw.endswith(b"\n") and raw.lstrip(b"\xef\xbb\xbf \t").startswith(b"{"):
                    raw += fh.readline(MAX_LINE_BYTES + 1 - len(raw))  # a long object line (a 10 MB text) is still a record
                if not raw:
                    return None
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8"))
                    return obj if isinstance(obj, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


def _cut_torn_tail(path: Path) -> None:
    """Lines are appended whole with their newline, so bytes after the last newline can only be a killed writer's
    torn line: cut them from the file."""
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("r+b") as fh:
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            k = chunk.rfind(b"\n")
            if k >= 0:
                keep = start + k + 1
                if keep < size:
                    fh.truncate(keep)
                return
            end = start
        fh.truncate(0)  # no newline at all: the whole file is one torn line


def plain(x: Any) -> Any:
    """``json.dumps``'s ``default`` for numpy values: scalars become numbers, arrays lists."""
    import numpy as np

    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def strict_json(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (a results file such as analysis.json): numpy scalars and arrays become plain
    numbers and lists, NaN and infinities become null."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=plain))), indent=indent, ensure_ascii=False)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def append_jsonl(path: str | Path, objs: Iterable[Any]) -> int:
    """Append objects as whole lines and fsync; returns how many were written. A failed append (a full disk) cuts
    the file back to where it ended before, so it never holds a partial line, and raises ``WriteFailed``."""
    path = Path(path)
    data = "".join(dumps(o) + "\n" for o in objs).encode("utf-8")
    if not data:
        return 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_failed(path, exc) from None
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)  # the lines before this append stay; no partial line is left
            except OSError:
                pass
            raise write_failed(path, exc) from None
    finally:
        os.close(fd)
    return data.count(b"\n")


def complete_lines(path: str | Path) -> int:
    """How many complete (newline-terminated) lines ``path`` holds; 0 for a missing file."""
    n = 0
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                n += block.count(b"\n")
    except OSError:
        return 0
    return n


def write_jsonl(path: str | Path, objs: Iterable[Any]) -> int:
    """Write objects to a fresh file (through ``atomic_file``, so a reader never sees half a file)."""
    n = 0
    with atomic_file(path, "w") as fh:
        for o in objs:
            fh.write(dumps(o) + "\n")
            n += 1
    return n

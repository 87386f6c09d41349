"""JSON Lines: the one reader and writer every ue file of one-object-per-line goes through (preference records,
run files, queries, outcome files, answer caches, harness samples).

- Reading accepts a UTF-8 byte-order mark, names the file and line of anything it cannot read, refuses what is not
  a regular file (a FIFO or a device such as ``/dev/zero`` would never end) and caps the length of a line.
- ``tolerate_torn_tail`` is for files ue appends to while it runs: a process killed mid-write leaves bytes after the
  last newline; they are cut from the file (the lines they held are simply asked again) instead of failing.
- Appending writes whole lines and fsyncs, so a line on disk is either complete or a torn tail.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError

MAX_LINE_BYTES = 64 * 1024 * 1024  # one record or sample line; anything longer is not a ue file


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


def writable_folder(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` as a folder (if needed) and check that a file can be written in it, before any long work;
    a path that is a file, cannot be created or is read-only is one sentence."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".ue-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror or exc}); choose a folder you can write to") from None
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
                raise UserError(f"{path} line {lineno}: longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; this is not a ue JSONL file")
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
    """Append objects as whole lines and fsync; returns how many were written."""
    path = Path(path)
    lines = [dumps(o) + "\n" for o in objs]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def write_jsonl(path: str | Path, objs: Iterable[Any]) -> int:
    """Write objects to a fresh file (through a temporary name, so a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for o in objs:
            fh.write(dumps(o) + "\n")
            n += 1
    os.replace(tmp, path)
    return n

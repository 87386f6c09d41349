"""The one JSONL reader/writer: torn tails, BOMs, bad lines, non-regular files, atomic writes."""

from __future__ import annotations

import os

import pytest

from ue_metrics.errors import UserError
from ue_metrics.jsonl import append_jsonl, first_object, read_jsonl, write_jsonl


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"", []),
        (b'{"a": 1}\n', [{"a": 1}]),
        (b'{"a": 1}\n{"b"', [{"a": 1}]),  # torn last line: dropped and cut
        (b'{"b": 2}', []),  # a whole line without its newline was never completed either
        (b'{"a": 1}\n\n{"b": 2}\n', [{"a": 1}, {"b": 2}]),
    ],
)
def test_run_files_drop_a_torn_last_line(tmp_path, raw, expected):
    path = tmp_path / "records.jsonl"
    path.write_bytes(raw)
    assert read_jsonl(path, tolerate_torn_tail=True) == expected
    assert path.read_bytes() in (b"", *([raw] if raw.endswith(b"\n") else [raw.rpartition(b"\n")[0] + b"\n"]))


def test_a_damaged_line_in_the_middle_is_one_clear_error(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"a": 1}\n{oops\n{"b": 2}\n')
    with pytest.raises(UserError, match="line 2: not valid JSON"):
        read_jsonl(path, tolerate_torn_tail=True)


def test_a_byte_order_mark_is_read_not_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    assert first_object(path) == {"a": 1}


def test_a_bad_byte_far_into_the_file_names_its_line(tmp_path):
    path = tmp_path / "late.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 2000 + b'{"b": "\xff"}\n')
    with pytest.raises(UserError, match="line 2001: not UTF-8"):
        read_jsonl(path)


def test_non_regular_files_are_refused_at_once(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        read_jsonl("/dev/zero")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        read_jsonl(fifo)
    assert first_object(fifo) is None
    with pytest.raises(UserError, match="is a folder"):
        read_jsonl(tmp_path)


def test_write_is_atomic_and_append_adds_whole_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [{"k": 1}])
    append_jsonl(path, [{"k": 2}, {"k": 3}])
    assert read_jsonl(path) == [{"k": 1}, {"k": 2}, {"k": 3}]
    assert not (tmp_path / "x.jsonl.tmp").exists()


def test_strict_json_writes_numpy_values_as_numbers_and_non_finite_ones_as_null():
    import json

    import numpy as np

    from ue_metrics.jsonl import strict_json

    text = strict_json({"a": np.float32(0.5), "b": [float("nan"), np.int64(3)], "c": np.array([1.0, np.inf])})
    assert json.loads(text) == {"a": 0.5, "b": [None, 3], "c": [1.0, None]} and "NaN" not in text


def test_one_json_file_reader_keeps_each_callers_sentence(tmp_path):
    """Issue 23 item 4: ``read_json`` is the one reader of whole JSON files; a caller's sentence names the file."""
    from ue_metrics.jsonl import read_json

    good = tmp_path / "good.json"
    good.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')
    assert read_json(good, str) == {"a": [1, 2]}
    bad = tmp_path / "bad.json"
    for raw in (b"{not json", b"\xff\xfe{}"):
        bad.write_bytes(raw)
        with pytest.raises(UserError, match=r"bad\.json: cannot be read \(.+\); fix it"):
            read_json(bad, lambda exc: f"{bad}: cannot be read ({exc}); fix it")
    with pytest.raises(UserError, match=r"^nowhere$"):
        read_json(tmp_path / "missing.json", str, missing="nowhere")
    with pytest.raises(UserError, match="No such file"):
        read_json(tmp_path / "missing.json", str)


def test_one_write_probe(tmp_path):
    """Issue 23 item 4: ``probe_writable`` is the one "can I write here" probe (``writable_folder`` and the model
    cache use it); it creates the folder and leaves nothing behind."""
    from ue_metrics.jsonl import probe_writable
    from ue_tasks import model

    probe_writable(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    assert model.probe_writable is probe_writable
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        probe_writable(tmp_path / "file" / "sub")

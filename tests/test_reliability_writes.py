"""Issue 22, items 4, 5, 16, 17 and 18: files that are written (an assembly folder, analysis.json, figures, the
leaderboard, a run's lock, appended answers) and messages of bad input. Each test failed before its fix.

A full disk is faked in these unit tests (a file object, or ``os.write`` for one file, that raises ``ENOSPC`` after
writing part of its data, as a full disk does); a read-only folder is a real ``chmod`` where that stops this user
from writing, and otherwise (root) a faked ``EROFS`` for that folder only.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from ue_cmd import one_sentence
from ue_cmd import ue_here as ue

from ue_cli.main import main
from ue_metrics import jsonl
from ue_metrics.errors import UserError


class FullDisk:
    """A file object that takes ``room`` bytes and then raises ENOSPC, as a file on a full disk does."""

    def __init__(self, fh, room: int):
        self._fh, self._room = fh, room

    def write(self, data):
        if len(data) > self._room:
            self._fh.write(data[: self._room])
            self._fh.flush()
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def full_disk(monkeypatch, room: int = 10) -> None:
    """Every file ue_metrics.jsonl opens for writing holds ``room`` bytes, then the disk is full."""
    real = open

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real(path, mode, *args, **kwargs)
        return FullDisk(fh, room) if any(c in mode for c in "wa") else fh

    monkeypatch.setattr(jsonl, "open", fake_open, raising=False)


def full_disk_for(monkeypatch, target: Path, room: int = 10) -> None:
    """``os.write`` to ``target`` (and only to it) writes ``room`` bytes, then the disk is full."""
    real = os.write
    left = {"room": room}

    def fake_write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name != str(target.resolve()):
            return real(fd, data)
        if left["room"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real(fd, bytes(data[: left["room"]]))
        left["room"] -= n
        return n

    monkeypatch.setattr(os, "write", fake_write)


def read_only(monkeypatch, folder: Path) -> str:
    """Make ``folder`` read-only: a real chmod where that stops this user (not root), else a faked EROFS for files
    created in it (root writes through any mode bits). Returns which of the two was used."""
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return "chmod"
    folder.chmod(0o755)
    real_open, real_os_open, real_write_bytes = open, os.open, Path.write_bytes
    inside = str(folder.resolve())

    def refused(path) -> bool:
        return str(Path(path).resolve().parent) == inside

    def fake_open(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax") and refused(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and refused(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_os_open(path, flags, *args, **kwargs)

    def fake_write_bytes(self, data):
        if refused(self):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(jsonl, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(Path, "write_bytes", fake_write_bytes)
    return "faked EROFS (running as root, chmod does not stop writes)"


@pytest.fixture
def run_folder(tmp_path, capsys) -> Path:
    """A finished simulated `ue run utilities` folder (20 outcomes, seed 3)."""
    out = tmp_path / "run"
    code, _, err = ue(
        capsys,
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "20",
        "--budget",
        "40",
        "--seed",
        "3",
        "--no-cache",
        "--no-figures",
        "--out",
        out,
    )
    assert code == 0, err
    return out


# ---------------------------------------------------------------------------------------------------------- 4, 5
def _assemble(capsys, out: Path, *sets: str):
    args = ["control", "assemble", "--out", out, "--set", "simulator=simulate"]
    for s in sets:
        args += ["--set", s]
    return ue(capsys, *args)


def test_assemble_rerun_with_other_n_citizens_is_refused_and_mixes_nothing(tmp_path, capsys):
    """Item 4: a rerun with n_citizens=9 over an assembly of 3 appended 6 citizens' records (exit 0)."""
    out = tmp_path / "assembly"
    code, _, err = _assemble(capsys, out, "n_citizens=3")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, _, err = _assemble(capsys, out, "n_citizens=9")
    one_sentence(code, err, "holds an assembly with another configuration (n_citizens: 3 → 9)")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    citizens = {json.loads(x)["id"] for x in (out / "citizens.jsonl").read_text().splitlines()}
    assert {json.loads(x)["citizen"] for x in (out / "citizen_records.jsonl").read_text().splitlines()} == citizens
    # the same configuration resumes (nothing to ask again), exit 0
    code, _, err = _assemble(capsys, out, "n_citizens=3")
    assert code == 0, err


def test_refused_assemble_rerun_has_not_rewritten_the_outcome_split(tmp_path, capsys):
    """Item 5: another heldout_outcome_fraction was refused only after outcomes_train/heldout.jsonl were rewritten."""
    out = tmp_path / "assembly"
    code, _, err = _assemble(capsys, out, "n_citizens=2")
    assert code == 0, err
    split = {name: (out / name).read_bytes() for name in ("outcomes_train.jsonl", "outcomes_heldout.jsonl", "citizens.jsonl")}
    code, _, err = _assemble(capsys, out, "n_citizens=2", "heldout_outcome_fraction=0.4")
    one_sentence(code, err, "heldout_outcome_fraction: 0.25 → 0.4")
    assert {name: (out / name).read_bytes() for name in split} == split


def test_assembly_files_without_a_configuration_are_refused(tmp_path, capsys):
    """Item 4: a folder with citizen records but no configuration cannot be checked, so it is not adopted."""
    out = tmp_path / "assembly"
    code, _, err = _assemble(capsys, out, "n_citizens=2")
    assert code == 0, err
    (out / "assemble_config.json").unlink()
    (out / "assemble.json").unlink()
    code, _, err = _assemble(capsys, out, "n_citizens=2")
    one_sentence(code, err, "but no readable configuration")


# ---------------------------------------------------------------------------------------------------------- 16
def test_atomic_file_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "analysis.json"
    path.write_text('{"old": true}\n')
    full_disk(monkeypatch, room=5)
    with pytest.raises(jsonl.WriteFailed) as info:
        jsonl.write_json(path, {"new": list(range(100))})
    assert str(info.value).startswith(f"{path}: cannot be written (No space left on device)")
    assert isinstance(info.value, UserError) and info.value.errno == errno.ENOSPC
    assert path.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json"]
    with pytest.raises(jsonl.WriteFailed):
        jsonl.write_text(tmp_path / "new.md", "x" * 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json"]  # no 0-byte new.md


def test_analyse_on_a_full_disk_is_one_sentence_and_leaves_no_empty_file(run_folder, capsys, monkeypatch):
    """Item 16: `ue analyse` on a full disk left a 0-byte PNG (PIL's traceback) or a torn analysis.json."""
    old = (run_folder / "analysis.json").read_bytes()
    full_disk(monkeypatch, room=100)
    code, _, err = ue(capsys, "analyse", run_folder)
    one_sentence(code, err, "analysis.json: cannot be written (No space left on device)")
    assert (run_folder / "analysis.json").read_bytes() == old
    assert not [p for p in run_folder.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.name != ".lock"]
    assert not list(run_folder.rglob("*.tmp"))


def test_a_figure_on_a_full_disk_is_one_sentence_and_no_zero_byte_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from ue_metrics import figures

    def draw(data, fig):
        fig.add_subplot().plot(data)

    full_disk(monkeypatch, room=0)
    with pytest.raises(jsonl.WriteFailed, match="fig.png: cannot be written"):
        figures.save(draw, [1, 2, 3], tmp_path / "figures" / "fig")
    assert not [p for p in (tmp_path / "figures").iterdir()]
    monkeypatch.undo()
    paths = figures.save(draw, [1, 2, 3], tmp_path / "figures" / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"] and all(p.stat().st_size > 0 for p in paths)


def test_leaderboard_on_a_full_disk_is_one_sentence_and_no_zero_byte_json(run_folder, tmp_path, capsys, monkeypatch):
    """Item 16: `ue leaderboard` on a full disk left a 0-byte leaderboard.json."""
    board = tmp_path / "board"
    full_disk(monkeypatch, room=50)
    code, _, err = ue(capsys, "leaderboard", run_folder, "--out", board, "--no-figures")
    one_sentence(code, err, "leaderboard.json: cannot be written (No space left on device)")
    assert not [p for p in board.rglob("*") if p.is_file()]


def test_the_run_lock_on_a_full_disk_leaves_no_empty_lock(tmp_path, monkeypatch):
    """Item 16: the lock was created, then its PID failed to be written: a 0-byte .lock stayed behind."""
    from ue_tasks.run_folder import RunLock

    folder = tmp_path / "run"
    folder.mkdir()
    lock = RunLock(folder)
    real = os.write

    def fake_write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder.resolve())):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", fake_write)
    with pytest.raises(UserError, match="not writable .No space left on device"):
        lock.acquire()
    assert list(folder.iterdir()) == []
    monkeypatch.undo()
    lock.acquire()
    assert (folder / ".lock").read_text() == str(os.getpid())
    lock.release()


def test_a_failed_append_leaves_only_complete_lines(tmp_path, monkeypatch):
    """Item 16/18: a failed append left a partial line, so the saved-query count was one more than complete lines."""
    path = tmp_path / "records.jsonl"
    jsonl.append_jsonl(path, [{"k": 1}, {"k": 2}])
    before = path.read_bytes()
    full_disk_for(monkeypatch, path, room=7)
    with pytest.raises(jsonl.WriteFailed, match="records.jsonl: cannot be written .No space left on device"):
        jsonl.append_jsonl(path, [{"k": 3, "text": "x" * 50}, {"k": 4}])
    assert path.read_bytes() == before
    assert jsonl.complete_lines(path) == 2 == len(jsonl.read_jsonl(path))


def test_ue_run_on_a_full_disk_counts_the_complete_lines_it_saved(tmp_path, capsys, monkeypatch):
    """Item 18: "N answered queries are saved" counted a torn last line as a saved query."""
    out = tmp_path / "run"
    records = out / "records.jsonl"
    real = os.write
    state = {"room": None}

    def fake_write(fd, data):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name == str(records.resolve()):
            if state["room"] is None:  # the first batch goes in whole, the disk fills in the second
                state["room"] = 0
                return real(fd, data)
            if state["room"] == 0:
                state["room"] = -1
                return real(fd, bytes(data[:40]))  # part of a line, as a full disk takes
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", fake_write)
    code, _, err = ue(
        capsys,
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "20",
        "--budget",
        "60",
        "--round-size",
        "20",
        "--seed",
        "1",
        "--no-cache",
        "--no-figures",
        "--out",
        out,
    )
    line = one_sentence(code, err, "No space left on device")
    monkeypatch.undo()
    lines = records.read_bytes().split(b"\n")
    assert lines[-1] == b""  # no partial line
    saved = int(line.split("); ")[1].split(" answered")[0])
    assert saved == len(lines) - 1 > 0


def test_analyse_of_a_read_only_run_folder_says_to_give_out(run_folder, tmp_path, capsys, monkeypatch):
    """Item 16: `ue analyse` of a read-only folder was OSError 30's traceback."""
    how = read_only(monkeypatch, run_folder)
    try:
        code, _, err = ue(capsys, "analyse", run_folder)
        sentence = one_sentence(code, err, "cannot write there")
        assert "give --out" in sentence, (how, sentence)
        code, _, err = ue(capsys, "analyse", run_folder, "--out", tmp_path / "elsewhere", "--no-figures")
        assert code == 0, err
        assert (tmp_path / "elsewhere" / "analysis.json").is_file()
    finally:
        run_folder.chmod(0o755)


def test_analyse_into_an_out_under_a_file_is_one_sentence(run_folder, tmp_path, capsys):
    """Item 16: an --out that cannot be created (a path under a file) is one sentence, before the work."""
    (tmp_path / "a_file").write_text("x")
    code, _, err = ue(capsys, "analyse", run_folder, "--out", tmp_path / "a_file" / "sub")
    one_sentence(code, err, "a_file/sub")


# ---------------------------------------------------------------------------------------------------------- 17
@pytest.mark.parametrize("content", ["[]", '"text"', "3"])
def test_report_of_an_analysis_that_is_not_an_object_is_one_sentence(tmp_path, capsys, content):
    """Item 17: `ue report` of a run whose analysis.json is [] died with AttributeError."""
    (tmp_path / "analysis.json").write_text(content + "\n")
    code, _, err = ue(capsys, "report", tmp_path)
    one_sentence(code, err, "analysis.json: not an analysis")


def test_report_of_a_leaderboard_that_is_not_an_object_is_one_sentence(tmp_path, capsys):
    (tmp_path / "leaderboard.json").write_text("[1, 2]\n")
    code, _, err = ue(capsys, "report", tmp_path)
    one_sentence(code, err, "leaderboard.json: not a")


def test_control_train_with_a_binary_config_is_one_sentence(tmp_path, capsys):
    """Item 17: a binary --config died with UnicodeDecodeError."""
    config = tmp_path / "train.yaml"
    config.write_bytes(bytes(range(256)) * 4)
    code, _, err = ue(capsys, "control", "train", "--config", config, "--run", tmp_path, "--out", tmp_path / "t")
    one_sentence(code, err, "train.yaml: not UTF-8 text")


def test_control_train_lora_r_0_is_refused_saying_which_method_trains_what(tmp_path, capsys):
    """Item 18: `--set lora_r=0` silently trained the full model (method: full ignores lora_r)."""
    code, _, err = ue(capsys, "control", "train", "--run", tmp_path, "--out", tmp_path / "t", "--set", "lora_r=0")
    sentence = one_sentence(code, err, "field 'lora_r' must be at least 1")
    assert "method: full (the default) trains every weight" in sentence and "method: lora" in sentence


# ---------------------------------------------------------------------------------------------------------- 18
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_outcomes_show_of_what_is_not_a_regular_file(tmp_path, capsys, kind):
    """Item 18: a FIFO, /dev/zero or a folder was "no such outcome file"."""
    if kind == "fifo":
        path = tmp_path / "outcomes"
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "outcomes"
        path.mkdir()
    code, _, err = ue(capsys, "outcomes", "show", path)
    one_sentence(code, err, f"{path} is not a regular file")


def test_analyse_of_an_empty_folder_or_a_run_folder_without_records(run_folder, tmp_path, capsys):
    """Item 18: both said "give --out for the analysis of harness outputs"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = ue(capsys, "analyse", empty)
    one_sentence(code, err, f"no records.jsonl in {empty}: the folder is empty")
    (run_folder / "records.jsonl").unlink()
    code, _, err = ue(capsys, "analyse", run_folder)
    one_sentence(code, err, f"no records.jsonl in {run_folder}: the run has no answers yet")


@pytest.mark.parametrize("flag", ["--position-beta", "--position-bias", "--noise", "--refusal-rate"])
def test_simulate_non_finite_flags_name_the_flag(tmp_path, capsys, flag):
    """Item 18: `--position-beta nan` was reported as "field 'p_a' must be in [0, 1]"."""
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--outcomes", "10", "--out", str(tmp_path / "s.jsonl"), flag, "nan"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"argument {flag}: must be a finite number, got 'nan'" in err and "p_a" not in err
    assert not (tmp_path / "s.jsonl").exists()


def test_run_into_a_folder_of_another_experiment_names_it(run_folder, capsys):
    """Item 18: `ue run transitivity` into a `utilities` run folder blamed other weights or the outcome set."""
    code, _, err = ue(
        capsys,
        "run",
        "transitivity",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--budget",
        "20",
        "--no-cache",
        "--no-figures",
        "--out",
        run_folder,
    )
    one_sentence(code, err, f"{run_folder} holds a run of the experiment 'utilities', not 'transitivity'")


def test_control_list_field_with_nan_says_finite_numbers(tmp_path, capsys):
    """Item 18: `--set 'alphas=[nan]'` said "must be a list"."""
    code, _, err = ue(
        capsys, "control", "steer", "--representations", tmp_path, "--out", tmp_path / "s", "--set", "alphas=[.nan]"
    )
    one_sentence(code, err, "field 'alphas' must be a list of finite numbers")


def _records_with_a_long_text(tmp_path: Path, n_bytes: int) -> Path:
    """Simulated records (20 outcomes) in which outcome o000's text is ``n_bytes`` long; its first line holds it."""
    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.plan import PlanSpec, make_plan

    n = 20
    plan = make_plan(n, PlanSpec(seed=0))
    rng = np.random.default_rng(0)
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:03d}" for k in range(n)]
    texts = ["x" * n_bytes] + [f"Outcome {k}." for k in range(1, n)]
    records = simulate_records(plan.pairs, plan.split, ids, texts, mu, var, rng, samples=0, model="sim", run_id="sim-0")
    records.sort(key=lambda r: "o000" not in (r["a_id"], r["b_id"]))
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_long_text_is_read_and_a_line_over_the_limit_is_named_with_it(tmp_path, capsys, monkeypatch):
    """Item 18: a record whose a_text is 10 MB was "line 1 is not a JSON object" (the first line was sniffed only to
    1 MiB); lines are read up to the 64 MiB limit, and a longer one says so, with the limit."""
    path = _records_with_a_long_text(tmp_path, 2 * 1024 * 1024)  # past the old 1 MiB sniff (the issue: 10 MB)
    code, out, err = ue(capsys, "fit", path, "--out", tmp_path / "fit")
    assert code == 0, err
    assert "20 outcomes" in out
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 1024 * 1024)  # the same file against a 1 MiB limit
    code, _, err = ue(capsys, "fit", path, "--out", tmp_path / "fit2")
    one_sentence(code, err, "line 1 is longer than 1 MiB, the longest line ue reads")


def test_holdout_pairs_that_no_training_pair_reaches_are_counted_not_called_unanswered(tmp_path, capsys):
    """Item 18: with many outcomes and --budget 10 the summary said "no holdout pair was answered" although 1,000
    (2,000 records) were: none of them joins two outcomes the training pairs reach."""
    records = tmp_path / "s.jsonl"
    code, _, err = ue(capsys, "simulate", "--outcomes", "2000", "--budget", "10", "--seed", "0", "--out", records)
    assert code == 0, err
    code, out, err = ue(capsys, "analyse", records, "--out", tmp_path / "a", "--no-figures")
    assert code == 0, err
    assert "no holdout pair was answered" not in out
    assert "none of the 1,000 answered holdout pairs can be predicted" in out
    code, out, err = ue(capsys, "fit", records, "--out", tmp_path / "f", "--per-component")
    assert code == 0, err
    assert "1,000 answered holdout pairs are left out of the holdout metrics" in out


@pytest.mark.parametrize(
    "arg,message",
    [("budget=0", "budget must be at least 1"), ("budget=2.7", "must be a whole number"), ("mode=bogus", "unknown mode 'bogus'")],
)
def test_inspect_bad_task_arguments_exit_2(tmp_path, arg, message):
    """Item 18: Inspect printed the right sentence for -T budget=0|2.7 and -T mode=bogus but exited 1."""
    import subprocess
    import sys

    pytest.importorskip("inspect_ai")
    inspect = Path(sys.executable).with_name("inspect")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [str(inspect), "eval", "ue/utility_mini", "-T", arg, "--model", "mockllm/model", "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert message in " ".join(out.split()) and "Traceback" not in out


def test_the_run_lock_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    """The lock is taken by a hard link; a file system without them (EPERM) falls back to an exclusive create."""
    from ue_tasks.run_folder import RunLock

    def no_links(src, dst, *args, **kwargs):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    lock = RunLock(tmp_path)
    lock.acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"] and (tmp_path / ".lock").read_text() == str(os.getpid())
    with pytest.raises(FileExistsError):  # a second taker finds it
        lock._create()
    lock.release()
    assert list(tmp_path.iterdir()) == []

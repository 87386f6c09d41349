"""The run folder: one home for what a ``ue run`` folder is, holds and refuses.

    RUN_DIR/config.json     the full configuration (a folder holding another one is refused)
    RUN_DIR/outcomes.jsonl  the outcomes as the experiment generated them
    RUN_DIR/records.jsonl   ue.preference/1 records
    RUN_DIR/rounds.jsonl, history.jsonl, generations.jsonl, usage.json, analysis.json, ...
    RUN_DIR/.lock           the PID of the process writing the folder

``RunFolder`` answers "is this a run folder", reads its configuration, records and outcomes (rebuilt from the records
when ``outcomes.jsonl`` is missing), refuses a configuration that differs from the one asked for, and takes the
folder's lock (``RunLock``). The elicitation engine, the runner, ``ue analyse`` and the experiments that read
another run all use it; nothing else opens ``config.json``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ue_metrics.errors import UserError
from ue_tasks.outcomes import Outcome, OutcomeSet, read_outcome_file

CONFIG, RECORDS, OUTCOMES = "config.json", "records.jsonl", "outcomes.jsonl"
ANSWER_FILES = ("records.jsonl", "rounds.jsonl", "history.jsonl")


class RunFolder:
    """A ``ue run`` folder at ``path`` (it need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    @property
    def outcomes_path(self) -> Path:
        return self.path / OUTCOMES

    # --- what it is ------------------------------------------------------------------------------------------
    def has_config(self) -> bool:
        return self.config_path.is_file()

    def is_run(self) -> bool:
        """A folder with a configuration and records: a run that can be read, fitted and analysed."""
        return self.has_config() and self.records_path.is_file()

    def holds_answers(self) -> list[str]:
        """The answer files (records, rounds, history) that hold more than white space."""
        return [name for name in ANSWER_FILES if _has_content(self.path / name)]

    # --- reading ---------------------------------------------------------------------------------------------
    def read_config(self, what_to_do: str = "give the folder of a finished run") -> dict:
        """``config.json`` as a dict; a missing, unreadable or damaged one is one sentence ending in ``what_to_do``."""
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.config_path}: cannot be read ({exc}); {what_to_do}") from None
        if not isinstance(config, dict):
            raise UserError(f"{self.config_path}: cannot be read (not an object); {what_to_do}")
        return config

    def experiment(self) -> str | None:
        """The experiment the folder's configuration names (without a ``:VARIANT``), or None when it names none
        readable (the configuration's own check says what is wrong with it)."""
        try:
            return str(self.read_config()["experiment"]).partition(":")[0]
        except (KeyError, UserError):
            return None

    def read_records(self) -> list[dict]:
        from ue_metrics.records import read

        return read(self.records_path)

    def read_finished(self, experiment: str | None = None) -> tuple[dict, list[dict]]:
        """(configuration, records) of a run that has answers; ``experiment`` names the experiment it must be of."""
        if not self.is_run():
            raise UserError(
                f"{self.path}: not a `ue run` folder (it needs config.json and records.jsonl); give the folder of a finished run"
            )
        config = self.read_config()
        if experiment and config.get("experiment") != experiment:
            raise UserError(
                f"{self.path} is a run of {config.get('experiment')!r}, not of {experiment!r}; give a {experiment} run folder"
            )
        records = self.read_records()
        if not records:
            raise UserError(f"{self.records_path}: holds no records; finish that run first")
        return config, records

    def outcomes(self, records: Sequence[dict] | None = None, config: Mapping[str, Any] | None = None) -> OutcomeSet:
        """The outcomes the run asked about, named as the run named them: its ``outcomes.jsonl``, or, failing that,
        those its ``records`` name (an error when neither is there)."""
        name = str((config if config is not None else self._config_or_empty()).get("outcome_set") or "")
        if self.outcomes_path.is_file():
            oset = read_outcome_file(self.outcomes_path)
            return OutcomeSet(name=name or oset.name, outcomes=oset.outcomes, source=str(self.outcomes_path))
        if not records:
            raise UserError(f"{self.path}: not a `ue run` folder with outcomes.jsonl; give the folder of a finished run")
        from ue_metrics.records import outcome_table

        outs = [
            Outcome(id=i, text=t["text"], category=t["category"], tags=tuple(t["tags"]), attributes=t["attributes"])
            for i, t in outcome_table(records).items()
        ]
        return OutcomeSet(name=name or "run", outcomes=outs, source=str(self.path))

    def _config_or_empty(self) -> dict:
        try:
            return self.read_config() if self.has_config() else {}
        except UserError:
            return {}

    # --- refusing ----------------------------------------------------------------------------------------------
    def refuse_other_experiment(self, name: str) -> None:
        """A folder holding a run of another experiment is refused first, naming it (not by whichever of its fields
        differs first: the outcome set, the weights...)."""
        other = self.experiment() if self.has_config() else None
        if other is not None and other != name:
            raise UserError(
                f"{self.path} holds a run of the experiment {other!r}, not {name!r}; give {name} its own --out "
                f"folder (or resume the {other} run with `ue run {other}`)"
            )

    def refuse_other_configuration(
        self,
        mine: Mapping[str, Any],
        theirs: Mapping[str, Any] | None = None,
        *,
        only: Collection[str] | None = None,
        skip: Collection[str] = (),
    ) -> None:
        """Refuse the folder when its configuration (``theirs``, read when not given; nothing to refuse when there is
        none) differs from ``mine`` in a field of ``only`` (default: every field of either, less ``skip``)."""
        if theirs is None:
            if not self.has_config():
                return
            theirs = self.read_config("restore it, or start the run in a new --out folder")
        keys = set(only) if only is not None else (set(mine) | set(theirs)) - set(skip)
        diff = sorted(k for k in keys if mine.get(k) != theirs.get(k))
        if diff:
            shown = ", ".join(f"{k}: {theirs.get(k)!r} → {mine.get(k)!r}" for k in diff[:4])
            raise UserError(
                f"{self.path} holds a run with another configuration ({shown}); resume it with the same options "
                "or choose a new --out folder"
            )

    # --- writing -------------------------------------------------------------------------------------------------
    def create(self) -> None:
        """Make the folder (one sentence when it cannot be made or a file stands in its place)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} exists and is not a folder; give --out a folder path")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the run folder ({exc.strerror or exc}); choose another --out") from None

    def write_config(self, config: Mapping[str, Any]) -> None:
        from ue_metrics.jsonl import write_text

        text = json.dumps(dict(config), indent=2, ensure_ascii=False) + "\n"
        write_text(self.config_path, text, hint="choose a folder you can write to")  # never a 0-byte file

    def lock(self) -> RunLock:
        return RunLock(self.path)


def run_folders(spec: Any, where: str = "option") -> list[Path]:
    """Run folders from ``DIR1,DIR2``, a JSON-style list, or a folder whose subfolders are run folders."""
    if spec in (None, "", []):
        return []
    items = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    out: list[Path] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        folder = Path(text).expanduser()
        if RunFolder(folder).has_config():
            out.append(folder)
        elif folder.is_dir() and any(RunFolder(sub).has_config() for sub in folder.iterdir() if sub.is_dir()):
            out += sorted(sub for sub in folder.iterdir() if RunFolder(sub).has_config())
        else:
            raise UserError(f"{where}: {folder} is neither a `ue run` folder (config.json, records.jsonl) nor a folder of them")
    return list({f.resolve(): f for f in reversed(out)}.values())[::-1]


# ----------------------------------------------------------------------------------------------------------
class RunLock:
    """An exclusive lock on a run folder: ``RUN_DIR/.lock`` holds the owner's PID. A lock left by a process that
    no longer exists is taken over; a live owner makes the second process stop at once, naming it."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self.held = False

    def acquire(self) -> None:
        for _ in range(3):
            try:
                self._create()
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise UserError(
                        f"{self.path.parent} is in use by another ue process (PID {owner}); wait for it to finish, "
                        "or choose another --out folder"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            except OSError as exc:  # read-only file system, permissions, full disk
                raise UserError(
                    f"{self.path.parent}: the run folder is not writable ({exc.strerror or exc}); nothing was asked — choose "
                    "a folder you can write to"
                ) from None
            self.held = True
            return
        raise UserError(f"{self.path}: could not take the run folder's lock; remove the file if no ue process is running")

    def _create(self) -> None:
        """Create ``.lock`` holding this PID, atomically: the PID is written and fsynced under a temporary name, which
        is then hard-linked to ``.lock`` (fails if it exists) — so a full disk never leaves a 0-byte lock, and no
        other process ever reads an empty one. Where the file system has no hard links, an exclusive create and
        write, removed again if the write fails."""
        tmp = self.path.with_name(f".{os.getpid()}.lock")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        try:
            try:
                os.write(fd, str(os.getpid()).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, self.path)
                return
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise  # (the temporary file was written, so EPERM here is a file system without hard links)
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            os.write(fd, str(os.getpid()).encode())
            os.fsync(fd)
        except OSError:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def holder(self) -> int | None:
        """The PID of another live process that holds this folder's lock (a running ``ue run``), else ``None``."""
        owner = self._owner() if self.path.is_file() else None
        return owner if owner is not None and owner != os.getpid() and _alive(owner) else None

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "0") or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _has_content(path: Path) -> bool:
    """A file that exists and holds more than white space (a run's records, rounds or history)."""
    try:
        with open(path, "rb") as fh:
            return any(chunk.strip() for chunk in iter(lambda: fh.read(1 << 16), b""))
    except OSError:
        return False

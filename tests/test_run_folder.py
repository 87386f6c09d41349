"""The run folder's one home (ue_tasks.run_folder): what is a run folder, reading it, refusing another
configuration or experiment, rebuilding outcomes from records, and the lock."""

from __future__ import annotations

import json
import os

import pytest

from ue_metrics.errors import UserError
from ue_tasks.elicitation.config import RunConfig
from ue_tasks.run_folder import RunFolder, run_folders
from ue_tasks.runner import run_experiment


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "u"
    cfg = RunConfig(harness="simulate", model="sim", outcomes="12", budget=30, seed=3)
    run_experiment(cfg, out, cache_dir=None, log=lambda m: None, figures=False)
    return out


def test_a_finished_run_is_read_with_its_configuration_records_and_outcomes(finished):
    folder = RunFolder(finished)
    assert folder.is_run() and folder.has_config()
    config, records = folder.read_finished("utilities")
    assert config["experiment"] == "utilities" and config["seed"] == 3 and records
    oset = folder.outcomes()
    assert len(oset) == 12 and oset.name == config["outcome_set"]
    with pytest.raises(UserError, match="is a run of 'utilities', not of 'power_seeking'"):
        folder.read_finished("power_seeking")


def test_outcomes_are_rebuilt_from_the_records_when_outcomes_jsonl_is_gone(finished, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "records.jsonl"):
        (copy / name).write_bytes((finished / name).read_bytes())
    folder = RunFolder(copy)
    config, records = folder.read_finished()
    rebuilt = folder.outcomes(records, config)
    original = RunFolder(finished).outcomes()
    asked = {r[f"{s}_id"] for r in records for s in ("a", "b")}
    assert {o.id: o.text for o in rebuilt.outcomes} == {o.id: o.text for o in original.outcomes if o.id in asked}
    with pytest.raises(UserError, match="outcomes.jsonl"):
        folder.outcomes()  # neither the file nor records to rebuild it from


def test_not_a_run_folder_and_a_damaged_configuration_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="not a `ue run` folder"):
        RunFolder(tmp_path).read_finished()
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "records.jsonl").write_text("")
    with pytest.raises(UserError, match=r"config.json: cannot be read .*; give the folder of a finished run"):
        RunFolder(tmp_path).read_config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not an object"):
        RunFolder(tmp_path).read_config()


def test_another_configuration_and_another_experiment_are_refused(finished):
    folder = RunFolder(finished)
    theirs = folder.read_config()
    folder.refuse_other_configuration(dict(theirs))  # the same: nothing to refuse
    with pytest.raises(UserError, match=r"another configuration \(seed: 3 → 4\)"):
        folder.refuse_other_configuration({**theirs, "seed": 4})
    folder.refuse_other_configuration({**theirs, "seed": 4}, skip={"seed"})
    folder.refuse_other_configuration({"model": theirs["model"], "seed": 9}, only={"model"})
    folder.refuse_other_experiment("utilities")
    with pytest.raises(UserError, match="holds a run of the experiment 'utilities', not 'transitivity'"):
        folder.refuse_other_experiment("transitivity")
    with pytest.raises(UserError, match="another configuration"):  # through `ue run` itself, before anything is asked
        run_experiment(
            RunConfig(harness="simulate", model="sim", outcomes="12", budget=40, seed=3),
            finished,
            cache_dir=None,
            log=lambda m: None,
            figures=False,
        )


def test_run_folders_from_a_list_or_a_parent_folder_each_once(finished, tmp_path):
    assert run_folders(f"{finished},{finished}") == [finished]
    assert run_folders(str(finished.parent)) == [finished]
    with pytest.raises(UserError, match="--option entities: .* is neither a `ue run` folder"):
        run_folders(str(tmp_path), where="--option entities")


def test_the_lock_names_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / ".lock").write_text(str(os.getppid()))  # a live process that is not this one
    with pytest.raises(UserError, match=f"in use by another ue process \\(PID {os.getppid()}\\)"):
        folder.lock().acquire()
    assert folder.lock().holder() == os.getppid()
    (tmp_path / ".lock").write_text("999999999")  # no such process
    lock = folder.lock()
    lock.acquire()
    assert lock.held and (tmp_path / ".lock").read_text() == str(os.getpid())
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_the_configuration_is_written_whole(tmp_path):
    folder = RunFolder(tmp_path / "new")
    folder.create()
    folder.write_config({"experiment": "utilities", "seed": 1})
    assert json.loads(folder.config_path.read_text()) == {"experiment": "utilities", "seed": 1}
    assert not folder.is_run() and folder.experiment() == "utilities" and folder.holds_answers() == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        RunFolder(tmp_path / "file").create()

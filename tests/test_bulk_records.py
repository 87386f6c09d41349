"""Bulk (columnar) reading of record files for `ue fit`: the same pairs as the one-dict-at-a-time path, and a bad
record still named by its file, line and field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ue_metrics import records as rec
from ue_metrics.errors import UserError
from ue_metrics.simulate import simulate_records, true_utilities
from ue_tasks.harness.readers import read_record_columns
from ue_tasks.plan import PlanSpec, make_plan


def write_sim(path, n=40, samples=10, **kw):
    rng = np.random.default_rng(1)
    plan = make_plan(n, PlanSpec(seed=1))
    mu, var = true_utilities(n, rng)
    ids = [f"o{k:03d}" for k in range(n)]
    records = simulate_records(plan.pairs, plan.split, ids, [f"Outcome {i}." for i in ids], mu, var, rng, samples=samples,
                               categories=[f"c{k % 3}" for k in range(n)], **kw)  # fmt: skip
    rec.write(records, path)
    return records


@pytest.mark.parametrize("samples,extra", [(10, {"refusal_rate": 0.3, "position_bias": 0.1}), (0, {"noise": 0.3})])
@pytest.mark.parametrize("policy", ["exclude", "as_indifference"])
def test_columns_aggregate_to_the_same_pairs_as_dicts(tmp_path, samples, extra, policy):
    path = tmp_path / "r.jsonl"
    write_sim(path, samples=samples, **extra)
    old, new = rec.aggregate(rec.read(path), policy), rec.aggregate(rec.read_columns(path), policy)
    for name in ("ids", "texts", "categories", "n_records", "n_unusable_records", "n_answers", "n_unparsed", "modes"):
        assert getattr(old, name) == getattr(new, name), name
    for name in rec.PairData.PER_PAIR + ("shown_first_p", "label_mass"):
        a, b = getattr(old, name), getattr(new, name)
        assert np.array_equal(a, b) if a.dtype.kind == "U" else np.allclose(a, b, equal_nan=True), name


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda r: r.pop("p_a"), "missing required field(s) p_a"),
        (lambda r: r.update(p_a=1.5), "field 'p_a' must be in [0, 1]"),
        (lambda r: r.update(n_a=True), "field 'n_a' must be an integer"),
        (lambda r: r.update(split="test"), "field 'split' must be one of"),
        (lambda r: r.update(b_id=r["a_id"]), "two different outcomes"),
        (lambda r: r.update(n_a=r["n_a"] + 1), "n_a/(n_a+n_b)"),
        (lambda r: r.update(schema="ue.preference/2"), "field 'schema'"),
    ],
)
def test_a_bad_record_is_named_by_file_line_and_field(tmp_path, edit, fragment):
    path = tmp_path / "r.jsonl"
    records = write_sim(path)
    lines = path.read_text().splitlines()
    bad = dict(records[6])
    edit(bad)
    lines[6] = json.dumps(bad)
    lines.insert(3, "")  # a blank line: line numbers still count it
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as err:
        rec.read_columns(path)
    assert f"{path} line 8:" in str(err.value) and fragment in str(err.value)
    with pytest.raises(UserError) as err_dicts:  # the one-at-a-time reader says the same
        rec.read(path)
    assert str(err.value) == str(err_dicts.value)


def test_a_line_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    write_sim(path)
    lines = path.read_text().splitlines()
    lines[4] = lines[4][:-3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"line 5: not valid JSON"):
        rec.read_columns(path)


def test_read_record_columns_walks_folders_and_text_clashes_are_refused(tmp_path):
    write_sim(tmp_path / "a" / "one.jsonl")
    (tmp_path / "a" / "notes.txt").write_text("not records\n")
    columns = read_record_columns([tmp_path / "a"])
    assert len(columns) == len(rec.read(tmp_path / "a" / "one.jsonl"))
    records = rec.read(tmp_path / "a" / "one.jsonl")
    records[5] = dict(records[5], a_text="Another sentence.")
    with pytest.raises(UserError, match="has two different texts"):
        rec.aggregate(rec.columns_from_records(records))

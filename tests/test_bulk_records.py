"""Bulk (columnar) reading of record files for `ue fit`: the same pairs as the one-dict-at-a-time path, and a bad
record still named by its file, line and field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ue_metrics import aggregation, pooling
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
    records = simulate_records(
        plan.pairs,
        plan.split,
        ids,
        [f"Outcome {i}." for i in ids],
        mu,
        var,
        rng,
        samples=samples,
        categories=[f"c{k % 3}" for k in range(n)],
        **kw,
    )
    rec.write(records, path)
    return records


@pytest.mark.parametrize("samples,extra", [(10, {"refusal_rate": 0.3, "position_bias": 0.1}), (0, {"noise": 0.3})])
@pytest.mark.parametrize("policy", ["exclude", "as_indifference"])
def test_columns_aggregate_to_the_same_pairs_as_dicts(tmp_path, samples, extra, policy):
    path = tmp_path / "r.jsonl"
    write_sim(path, samples=samples, **extra)
    old, new = aggregation.aggregate(rec.read(path), policy), aggregation.aggregate(aggregation.read_columns(path), policy)
    for name in ("ids", "texts", "categories", "n_records", "n_unusable_records", "n_answers", "n_unparsed", "modes"):
        assert getattr(old, name) == getattr(new, name), name
    for name in aggregation.PairData.PER_PAIR + ("shown_first_p", "label_mass"):
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
        aggregation.read_columns(path)
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
        aggregation.read_columns(path)


def test_read_record_columns_walks_folders_and_text_clashes_are_refused(tmp_path):
    write_sim(tmp_path / "a" / "one.jsonl")
    (tmp_path / "a" / "notes.txt").write_text("not records\n")
    columns = read_record_columns([tmp_path / "a"])
    assert len(columns) == len(rec.read(tmp_path / "a" / "one.jsonl"))
    records = rec.read(tmp_path / "a" / "one.jsonl")
    records[5] = dict(records[5], a_text="Another sentence.")
    with pytest.raises(UserError, match="has two different texts"):
        aggregation.aggregate(aggregation.columns_from_records(records))


def _same_pairs(a: aggregation.PairData, b: aggregation.PairData) -> None:
    assert a.ids == b.ids and a.texts == b.texts and a.categories == b.categories and a.n_records == b.n_records
    for name in aggregation.PairData.PER_PAIR:
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x, y) if x.dtype.kind == "U" else np.allclose(x, y, equal_nan=True), name


def test_collected_columns_are_the_readers_own_and_follow_dropped_duplicates_and_groups(tmp_path):
    from ue_tasks.harness.readers import collect

    write_sim(tmp_path / "one.jsonl")
    records = rec.read(tmp_path / "one.jsonl")
    other = [dict(r, model="other") for r in records[:30]]
    rec.write(records[:50], tmp_path / "again.jsonl")  # 50 answers read twice
    rec.write(other, tmp_path / "other.jsonl")
    got = collect([tmp_path / "one.jsonl", tmp_path / "again.jsonl"], deduplicate=False)
    assert got.columns(got.records).records is not None and len(got.columns(got.records)) == len(records) + 50
    kept = got.deduplicate(got.records)
    assert len(kept) == len(records) and got.n_duplicates == 50
    taken = got.columns(kept)  # taken by position from the reader's columns, not rebuilt from the dicts
    assert all(map(lambda x, y: x is y, taken.records, kept))
    assert taken.where[0] == f"{tmp_path / 'one.jsonl'} line 1"
    _same_pairs(aggregation.aggregate(taken), aggregation.aggregate(records))
    # a group of records (--by model) is taken the same way; records not read here are built from the dicts
    got = collect([tmp_path / "one.jsonl", tmp_path / "other.jsonl"], deduplicate=False)
    groups = pooling.group_records(got.records, "model")
    _same_pairs(aggregation.aggregate(got.columns(groups["other"])), aggregation.aggregate(other))
    _same_pairs(aggregation.aggregate(got.columns([dict(r) for r in other])), aggregation.aggregate(other))


def test_duplicates_found_when_the_pair_and_ordering_repeat_in_another_group(tmp_path):
    records = write_sim(tmp_path / "one.jsonl")
    grouped = [dict(r, group="g1") for r in records[:20]] + [dict(r, group="g2") for r in records[:20]]
    kept, dropped = pooling.deduplicate(grouped)  # same pairs and orderings, other groups: no repeats
    assert len(kept) == 40 and not dropped
    kept, dropped = pooling.deduplicate(grouped + grouped[:5], ["a"] * 40 + ["b"] * 5)
    assert len(kept) == 40 and dropped == {("a", "b"): 5}
    with pytest.raises(UserError, match="appears twice with different values"):
        pooling.deduplicate(grouped + [dict(grouped[0], n_a=grouped[0]["n_a"] + 1, n_b=grouped[0]["n_b"] - 1)])


def test_mixed_records_are_still_refused_field_by_field(tmp_path):
    records = write_sim(tmp_path / "one.jsonl")
    pooling.check_not_mixed(records)
    with pytest.raises(UserError, match="2 different templates"):
        pooling.check_not_mixed(records[:10] + [dict(r, template="other") for r in records[10:20]])
    with pytest.raises(UserError, match="2 different dtypes"):
        pooling.check_not_mixed(records[:10] + [dict(r, model_dtype="bfloat16") for r in records[10:20]])
    with pytest.raises(UserError, match="different sets of weights"):
        pooling.check_not_mixed(
            [dict(r, model_fingerprint="x") for r in records[:10]] + [dict(r, model_fingerprint="y") for r in records[10:20]]
        )

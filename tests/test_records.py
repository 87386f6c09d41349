"""The ue.preference/1 record format: writer, reader, validation (in step with the JSON Schema file) and
aggregation into per-pair soft labels."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from ue_metrics import aggregation
from ue_metrics import records as rec
from ue_metrics.errors import UserError


def base(**over):
    r = dict(
        schema="ue.preference/1",
        run_id="r",
        model="m",
        harness="test",
        task="t",
        outcome_set="s",
        a_id="x",
        b_id="y",
        a_text="X.",
        b_text="Y.",
        shown_first="a",
        mode="logprob",
        template="default",
        p_a=0.7,
        n_a=0,
        n_b=0,
        n_unparsed=0,
        label_mass=0.9,
        split="train",
        round=0,
    )
    r.update(over)
    return r


@pytest.fixture(scope="module")
def schema():
    return json.loads(rec.schema_path().read_text())


def test_required_fields_match_the_schema_file(schema):
    assert set(schema["required"]) == set(rec.REQUIRED_FIELDS)
    jsonschema.validate(base(), schema)
    jsonschema.validate(base(mode="sample", p_a=None, n_a=0, n_b=0, n_unparsed=10, label_mass=None), schema)


def test_the_validator_reads_its_rules_from_the_schema_file(schema):
    """Issue 23 item 4: one source of truth — the rules ``validate`` applies are read from the shipped JSON Schema,
    so editing the schema (here: a third mode, a tighter bound) changes what the validator accepts."""
    assert rec._rules_from_schema(schema) == rec.FIELD_RULES
    assert rec.MODES == tuple(schema["properties"]["mode"]["enum"]) and rec.SPLITS == ("train", "holdout")
    assert rec.FIELD_RULES["label_mass"] == rec.FieldRule((int, float), True, None, 0, 1.000001)
    edited = json.loads(json.dumps(schema))
    edited["properties"]["mode"]["enum"].append("greedy")
    edited["properties"]["n_unparsed"]["maximum"] = 5
    rules = rec._rules_from_schema(edited)
    assert "greedy" in rules["mode"].values and rules["n_unparsed"].maximum == 5


@pytest.mark.parametrize(
    "over,fragment",
    [
        ({"schema": "ue.preference/2"}, "field 'schema'"),
        ({"shown_first": "c"}, "field 'shown_first'"),
        ({"mode": "greedy"}, "field 'mode'"),
        ({"split": "test"}, "field 'split'"),
        ({"p_a": 1.5}, "field 'p_a'"),
        ({"p_a": "0.5"}, "field 'p_a'"),
        ({"p_a": None}, "needs a numeric 'p_a'"),
        ({"n_a": -1}, "field 'n_a'"),
        ({"n_a": 1.5}, "field 'n_a'"),
        ({"round": True}, "field 'round'"),
        ({"label_mass": 2.0}, "field 'label_mass'"),
        ({"b_id": "x"}, "two different outcomes"),
        ({"mode": "sample", "p_a": 0.5, "n_a": 3, "n_b": 1}, "n_a/(n_a+n_b)"),
    ],
)
def test_invalid_records_are_rejected_by_both_validators(schema, over, fragment):
    bad = base(**over)
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        rec.validate(bad, where="here")
    python_only = {"needs a numeric 'p_a'", "two different outcomes", "n_a/(n_a+n_b)"}
    if fragment not in python_only:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_missing_fields_are_named():
    r = base()
    del r["p_a"], r["split"]
    with pytest.raises(UserError, match="missing required field"):
        rec.validate(r)


def test_write_and_read_round_trip_keeps_extra_fields(tmp_path):
    path = tmp_path / "r.jsonl"
    records = [base(extra_field=1), base(shown_first="b", p_a=0.4)]
    assert rec.write(records, path) == 2
    assert rec.is_record_file(path)
    back = rec.read(path)
    assert back == records and back[0]["extra_field"] == 1


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(base()) + "\n{broken\n")
    with pytest.raises(UserError, match=r"line 2: not valid JSON"):
        rec.read(path)
    path.write_text(json.dumps(base()) + "\n" + json.dumps(base(split="later")) + "\n")
    with pytest.raises(UserError, match=r"line 2: field 'split'"):
        rec.read(path)


def test_aggregation_pools_both_orderings_in_a_fixed_orientation():
    records = [
        base(p_a=0.8, shown_first="a"),
        base(p_a=0.6, shown_first="b"),
        # same pair written the other way round: P(y ≻ x) = 0.3 → P(x ≻ y) = 0.7
        base(a_id="y", b_id="x", a_text="Y.", b_text="X.", p_a=0.3, shown_first="a"),
    ]
    data = aggregation.aggregate(records)
    assert data.ids == ["x", "y"] and len(data.y) == 1
    # each ordering weighs half: x first (0.8) and x second (the mean of 0.6 and 0.7)
    assert data.y[0] == pytest.approx((0.8 + (0.6 + 0.7) / 2) / 2)
    assert data.w[0] == 3
    # x shown first: records 1 (x as Option A) and 3 (y is a, shown_first b? no: y shown first) → check gap inputs
    assert data.p_first[0] == pytest.approx(0.8)
    assert data.p_second[0] == pytest.approx((0.6 + 0.7) / 2)
    # probability of choosing the first-shown outcome, per record
    assert np.allclose(sorted(data.shown_first_p), sorted([0.8, 0.4, 0.3]))


def test_sample_mode_weights_and_unparsed_policies():
    records = [
        base(mode="sample", p_a=0.75, n_a=6, n_b=2, n_unparsed=2, label_mass=None),
        base(mode="sample", shown_first="b", p_a=0.5, n_a=5, n_b=5, n_unparsed=0, label_mass=None),
    ]
    excl = aggregation.aggregate(records)
    # each ordering's share over its own usable answers, the two averaged: (6/8 + 5/10) / 2, weight 18 answers
    assert excl.y[0] == pytest.approx((6 / 8 + 5 / 10) / 2) and excl.w[0] == 18
    assert excl.n_unparsed == 2 and excl.n_answers == 20
    indiff = aggregation.aggregate(records, unparsed="as_indifference")
    assert indiff.y[0] == pytest.approx(12 / 20) and indiff.w[0] == 20


def test_no_usable_answer_is_an_error_not_a_result():
    refused = [base(mode="sample", p_a=None, n_a=0, n_b=0, n_unparsed=10, label_mass=None)]
    with pytest.raises(UserError, match="none of the 1 records has a usable answer"):
        aggregation.aggregate(refused)
    assert aggregation.aggregate(refused, unparsed="as_indifference").y[0] == 0.5
    with pytest.raises(UserError, match="no preference records"):
        aggregation.aggregate([])


def test_a_pair_in_two_splits_is_refused():
    with pytest.raises(UserError, match="both the train and the holdout split"):
        aggregation.aggregate([base(), base(split="holdout", shown_first="b")])


def test_records_holds_the_format_and_its_neighbours_the_rest():
    """Issue 23 item 5: ``records.py`` (schema, validation, IO) is split from ``aggregation.py`` (columns, pooling
    into pairs) and ``pooling.py`` (duplicates, mixtures, groups); each name has one home."""
    from ue_metrics import aggregation, pooling

    assert not any(hasattr(rec, n) for n in ("aggregate", "read_columns", "deduplicate", "check_not_mixed", "PairData"))
    assert callable(aggregation.aggregate) and callable(aggregation.read_columns) and aggregation.PairData
    assert callable(pooling.deduplicate) and callable(pooling.check_not_mixed) and pooling.MIXING_FIELDS[0] == "model"

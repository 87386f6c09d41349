"""Unit tests of utility control without a model: citizens, aggregation, bias measures, configs, data order."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ue_control import bias
from ue_control.assembly import aggregate_assembly, load_policy_outcomes, split_outcomes
from ue_control.citizens import REPUBLICAN_FIX, load_marginals, party_slice, read_microdata, sample_citizens
from ue_control.train import learning_rate_at, load_config, sampled_labels, stream_indices
from ue_metrics.errors import UserError
from ue_metrics.records import make_record


# ---------------------------------------------------------------------------------------------- citizens
def test_citizens_are_deterministic_with_stable_ids():
    a, b = sample_citizens(20, seed=3), sample_citizens(20, seed=3)
    assert [c.to_dict() for c in a] == [c.to_dict() for c in b]
    assert len({c.id for c in a}) == 20
    assert (
        sample_citizens(20, seed=4)[0].attributes != a[0].attributes
        or sample_citizens(20, seed=4)[1].attributes != a[1].attributes
    )
    # the first citizens do not change when the assembly grows
    assert [c.id for c in sample_citizens(25, seed=3)[:1]] != [] and all(c.seed == 3 for c in a)


def test_citizen_marginals_match_the_table():
    marg = load_marginals()
    assert set(marg) == {"age", "sex", "race", "education", "income", "region", "urbanicity", "party"}
    assert all(spec["source"] and spec["year"] for spec in marg.values())
    citizens = sample_citizens(6000, seed=0)
    for name in ("party", "region", "urbanicity"):
        shares = marg[name]["shares"]
        total = sum(shares.values())
        for value, share in shares.items():
            seen = np.mean([c.attributes[name] == value for c in citizens])
            assert abs(seen - share / total) < 0.025, (name, value, seen, share / total)


def test_persona_carries_attributes_and_the_papers_fix_as_an_option():
    c = sample_citizens(1, seed=1)[0]
    with_fix, without = c.persona(True), c.persona(False)
    assert REPUBLICAN_FIX in with_fix and REPUBLICAN_FIX not in without
    assert f"Political Party: {c.party}" in without and c.attributes["age"] in without


def test_microdata_csv_sampling_is_seeded_and_weighted(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("id,age,party,weight\np1,30,Democrat,1\np2,50,Republican,0\np3,70,Independent,3\n", encoding="utf-8")
    a, b = read_microdata(path, 2, seed=5), read_microdata(path, 2, seed=5)
    assert [c.to_dict() for c in a] == [c.to_dict() for c in b]
    assert all(c.attributes["party"] != "Republican" for c in a)  # weight 0 is never drawn
    assert {c.id for c in a} == {"p1", "p3"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,age\np1,30\n", "no 'party' column"),
        ("id,party,weight\np1,Democrat,x\n", "line 2: column 'weight' must be a number"),
        ("id,party\n", "no data rows"),
    ],
)
def test_microdata_errors_are_one_sentence(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_microdata(path, 2)


def test_party_slices():
    assert [party_slice(p) for p in ("Democrat", "republican", "Independent", "Green")] == [
        "Democrat",
        "Republican",
        "Independent",
        "other",
    ]


# ---------------------------------------------------------------------------------------------- aggregation
def _rec(citizen, a, b, shown, p, split="train", part="train"):
    return make_record(
        run_id="t",
        model="sim",
        harness="test",
        task="t",
        outcome_set="s",
        a_id=a,
        b_id=b,
        a_text=a.upper(),
        b_text=b.upper(),
        shown_first=shown,
        mode="logprob",
        template="default",
        p_a=p,
        n_a=0,
        n_b=0,
        n_unparsed=0,
        label_mass=0.9,
        split=split,
        round=0,
        citizen=citizen,
        outcome_split=part,
    )


def test_mean_aggregation_pools_orderings_then_citizens():
    recs = [
        _rec("c1", "x", "y", "a", 0.9),
        _rec("c1", "x", "y", "b", 0.5),
        _rec("c2", "x", "y", "a", 0.2),
        _rec("c2", "x", "y", "b", 0.2),
    ]
    out = aggregate_assembly(recs, "mean", model="assembly", harness="ue_control", task="assembly", run_id="r")
    assert len(out) == 2  # one per ordering
    assert all(r["p_a"] == pytest.approx((0.7 + 0.2) / 2) for r in out)
    assert {r["shown_first"] for r in out} == {"a", "b"} and all(r["n_citizens"] == 2 for r in out)


def test_majority_aggregation_counts_one_vote_per_citizen():
    recs = [_rec(c, "x", "y", s, p) for c, p in (("c1", 0.8), ("c2", 0.7), ("c3", 0.1)) for s in ("a", "b")]
    recs += [_rec("c4", "x", "y", "a", 0.5), _rec("c4", "x", "y", "b", 0.5)]
    out = aggregate_assembly(recs, "majority", model="assembly", harness="ue_control", task="assembly", run_id="r")
    assert out[0]["mode"] == "sample" and (out[0]["n_a"], out[0]["n_b"], out[0]["n_unparsed"]) == (2, 1, 1)
    assert out[0]["p_a"] == pytest.approx(2 / 3)
    with pytest.raises(UserError, match="unknown aggregation"):
        aggregate_assembly(recs, "median")


# ---------------------------------------------------------------------------------------------- bias
def test_bias_measures_on_known_values():
    coding = {"L1": "left", "L2": "left", "R1": "right", "R2": "right", "N": None}
    utilities = {"L1": 2.0, "L2": 1.0, "R1": -1.0, "R2": 0.0, "N": 5.0}
    z = np.array([2.0, 1.0, -1.0, 0.0])
    z = (z - z.mean()) / z.std(ddof=1)
    assert bias.utility_gap(utilities, coding) == pytest.approx(z[:2].mean() - z[2:].mean())
    prefs = {("L1", "R1"): 0.9, ("L2", "R2"): 0.5, ("L2", "R1"): 0.2, ("L1", "L2"): 0.99, ("N", "R1"): 0.1}
    share, n = bias.left_share(prefs, coding)
    assert (share, n) == (pytest.approx((1 + 0.5 + 0) / 3), 3)
    ag = bias.agreement({("a", "b"): 0.8, ("a", "c"): 0.4, ("b", "c"): 0.6}, {("a", "b"): 0.6, ("a", "c"): 0.7, ("b", "c"): 0.5})
    assert ag["agreement"] == 0.5 and ag["n_pairs"] == 3 and ag["mean_abs_diff"] == pytest.approx((0.2 + 0.3 + 0.1) / 3)
    assert bias.spearman({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 30, "c": 20}) == pytest.approx(0.5)


def test_pair_preferences_pool_both_orderings():
    recs = [_rec("c", "b", "a", "a", 0.8), _rec("c", "b", "a", "b", 0.6)]
    assert bias.pair_preferences(recs) == {("a", "b"): pytest.approx(1 - 0.7)}


def test_policy_set_is_coded_and_split_stratified():
    oset = load_policy_outcomes("policies")
    coding = bias.coding_from_outcomes(oset.outcomes)
    assert sum(v == "left" for v in coding.values()) == 16 and sum(v == "right" for v in coding.values()) == 16
    train, held = split_outcomes(oset.outcomes, 0.25, seed=0)
    assert {o.id for o in train}.isdisjoint({o.id for o in held}) and len(train) + len(held) == 32
    assert sum(coding[o.id] == "left" for o in held) == sum(coding[o.id] == "right" for o in held) == 4
    assert [o.id for o in split_outcomes(oset.outcomes, 0.25, seed=0)[1]] == [o.id for o in held]


# ---------------------------------------------------------------------------------------------- trainer data order
def test_stream_is_stateless_and_covers_each_epoch():
    whole = stream_indices(10, seed=1, start=0, count=30)
    assert sorted(whole[:10].tolist()) == list(range(10)) and sorted(whole[10:20].tolist()) == list(range(10))
    assert np.array_equal(stream_indices(10, 1, 7, 9), whole[7:16])  # resume from any position
    t = np.full(64, 0.25)
    assert np.array_equal(sampled_labels(t, 0, 3, np.arange(64)), sampled_labels(t, 0, 3, np.arange(64)))
    assert 0.1 < (sampled_labels(t, 0, 3, np.arange(64)) == 0).mean() < 0.45
    # the labels of a sub-batch (one process's shard) equal the same positions of the whole batch
    assert np.array_equal(sampled_labels(t[:8], 0, 3, np.arange(8, 16)), sampled_labels(t, 0, 3, np.arange(64))[8:16])


def test_learning_rate_schedule():
    c = load_config(None, ["learning_rate=1e-4", "warmup_steps=2", "steps=6"], run="r", out="o")
    assert [round(learning_rate_at(c, s) / 1e-4, 3) for s in range(6)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    "text, message",
    [
        ("run: r\nout: o\nsteps: many\n", "field 'steps' must be an integer, got 'many'"),
        ("run: r\nout: o\nmethod: qlora\n", "field 'method' must be one of 'full', 'lora'"),
        ("run: r\nout: o\nlearnig_rate: 0.1\n", "unknown field 'learnig_rate'"),
        ("out: o\n", "field 'run' is required"),
        ("run: r\nout: o\nbatch_size: 0\n", "field 'batch_size' must be at least 1"),
        ("run: [r\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_train_config_errors(tmp_path, text, message):
    path = tmp_path / "train.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_config(path)
    assert str(path) in str(info.value) or "config" in str(info.value)


def test_json_config_and_overrides(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"run": "r", "out": "o", "steps": 3, "lora_target_modules": ["q_proj"]}), encoding="utf-8")
    c = load_config(path, ["method=lora", "learning_rate=2e-4"])
    assert (c.steps, c.method, c.learning_rate, c.lora_target_modules) == (3, "lora", 2e-4, ["q_proj"])


def test_cli_reports_bad_config_in_one_line(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("n_citizens: -1\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "ue_cli.main", "control", "assemble", "--config", str(path), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "n_citizens" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ue_control.train", "--run", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "assembly_records.jsonl: not found" in proc.stderr and "Traceback" not in proc.stderr

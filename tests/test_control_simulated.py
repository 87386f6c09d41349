"""Utility control without a model: the simulated citizens' known utilities (``simulator: simulate``), connected
training graphs, the evaluation's measures and intervals, and the trainer's output-folder rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ue_control import bias
from ue_control.assembly import assemble, components, connected_plan
from ue_control.assembly import load_config as assemble_config
from ue_control.citizens import Citizen
from ue_control.simulated import UtilityModel, citizen_utilities, outcome_features, p_prefer
from ue_metrics.errors import UserError
from ue_metrics.records import read
from ue_tasks.outcomes import Outcome


def _citizen(party: str, k: int = 0) -> Citizen:
    return Citizen(id=f"c{k}-{party}", attributes={"age": "35-44", "region": "South", "party": party}, seed=0, source="test")


OUTCOMES = [Outcome(id=f"L{k}", text=f"left {k}", tags=("politics:left", f"family:f{k % 3}")) for k in range(6)] + [
    Outcome(id=f"R{k}", text=f"right {k}", tags=("politics:right", f"family:f{k % 3}")) for k in range(6)
]


def test_party_sets_the_lean_of_simulated_citizens():
    model = UtilityModel(family_sd=0.0, attribute_sd=0.0, outcome_sd=0.0, noise_sd=0.1, lean_sd=0.0)
    for party, sign in (("Democrat", 1), ("Republican", -1)):
        u = citizen_utilities(_citizen(party), OUTCOMES, model)
        gap = np.mean([u[o.id] for o in OUTCOMES[:6]]) - np.mean([u[o.id] for o in OUTCOMES[6:]])
        assert sign * gap > 1.5, (party, gap)
    u = citizen_utilities(_citizen("Independent"), OUTCOMES, model)
    assert abs(np.mean([u[o.id] for o in OUTCOMES[:6]]) - np.mean([u[o.id] for o in OUTCOMES[6:]])) < 0.3


def test_simulated_utilities_are_deterministic_and_order_free():
    model = UtilityModel()
    a = citizen_utilities(_citizen("Democrat"), OUTCOMES, model)
    b = citizen_utilities(_citizen("Democrat"), list(reversed(OUTCOMES)), model)
    assert a == pytest.approx(b)
    c = citizen_utilities(_citizen("Democrat"), OUTCOMES, UtilityModel(model_seed=1))
    assert c != pytest.approx(a)
    assert outcome_features(OUTCOMES[0]) == (1.0, "f0") and outcome_features(OUTCOMES[7]) == (-1.0, "f1")
    assert p_prefer(1.0, 0.0, 0.5) == pytest.approx(0.9213, abs=1e-3) and p_prefer(0.0, 0.0, 0.5) == 0.5


def test_simulated_assembly_has_strong_known_preferences(tmp_path):
    summary = assemble(
        assemble_config(
            None,
            ["simulator=simulate", "n_citizens=12", "heldout_outcome_fraction=0.375", "holdout_fraction=0.25"],
            out=str(tmp_path / "run"),
        ),
        log=lambda *_: None,
    )
    crecs = read(tmp_path / "run" / "citizen_records.jsonl")
    assert {r["harness"] for r in crecs} == {"simulate"} and all(r.get("model_fingerprint") for r in crecs)
    # answers do not depend on the ordering: no position bias in the simulated citizens
    by_pair: dict = {}
    for r in crecs:
        by_pair.setdefault((r["citizen"], r["a_id"], r["b_id"]), []).append(r["p_a"])
    assert all(max(v) - min(v) < 1e-12 for v in by_pair.values())
    # partisan slices lean the way their party does, and their preferences are strong
    b = summary["bias"]
    assert b["slice:Democrat"]["train"]["utility_gap"] > 0.5 > -0.5 > b["slice:Republican"]["train"]["utility_gap"]
    arecs = [r for r in read(tmp_path / "run" / "assembly_records.jsonl") if r["outcome_split"] == "heldout"]
    assert np.mean([abs(r["p_a"] - 0.5) for r in arecs]) > 0.15
    # the fitted assembly utilities recover the known ones
    import csv

    with (tmp_path / "run" / "assembly" / "heldout" / "utilities.csv").open(encoding="utf-8") as fh:
        fitted = {row["id"]: float(row["utility"]) for row in csv.DictReader(fh)}
    truth = summary["true_utilities"]["heldout"]
    assert bias.correlation(fitted, truth)["value"] > 0.9
    info = json.loads((tmp_path / "run" / "assemble.json").read_text(encoding="utf-8"))
    assert info["utility_model"]["model_seed"] == 0 and set(info["plans"]) == {"train", "heldout"}


def test_a_budget_that_cannot_connect_the_outcomes_is_raised(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text("".join(json.dumps({"id": f"o{k}", "text": f"outcome {k}"}) + "\n" for k in range(24)), encoding="utf-8")
    messages: list[str] = []
    plan = connected_plan(str(path), {"seed": 0, "degree": 2, "holdout_fraction": 0.1, "budget": 20}, "train", messages.append)
    assert plan["budget"] > 20 and messages and "raised" in messages[0]
    from ue_tasks.plan import PlanSpec, make_plan

    cp = make_plan(24, PlanSpec(**plan))
    assert components(24, cp.pairs[cp.split == "train"]) == 1
    assert components(4, np.array([[0, 1], [2, 3]])) == 2


def test_bias_intervals_and_position_measure():
    c = bias.correlation({str(k): float(k) for k in range(12)}, {str(k): float(k) + (k % 3) for k in range(12)})
    assert 0.8 < c["value"] <= 1 and c["low"] < c["value"] < c["high"] and c["n"] == 12
    lo, hi = bias.wilson(45, 50)
    assert lo < 0.9 < hi
    recs = [
        {"mode": "logprob", "a_id": "x", "b_id": "y", "shown_first": "a", "p_a": 0.9},
        {"mode": "logprob", "a_id": "x", "b_id": "y", "shown_first": "b", "p_a": 0.9},
    ]
    # prefers x in both orderings: a content preference, no position preference
    assert bias.label_a_by_pair(recs) == {("x", "y"): pytest.approx(0.5)}
    recs[1]["p_a"] = 0.1  # answers "A" whatever is shown: pure position preference
    assert bias.label_a_by_pair(recs) == {("x", "y"): pytest.approx(0.9)}
    coding = {f"L{k}": "left" for k in range(4)} | {f"R{k}": "right" for k in range(4)}
    utils = {f"L{k}": 1.0 + 0.1 * k for k in range(4)} | {f"R{k}": -1.0 + 0.1 * k for k in range(4)}
    lo, hi = bias.lean_interval(utils, coding, np.random.default_rng(0))
    assert 0 < lo <= bias.lean(utils, coding) <= hi


def test_train_refuses_a_finished_folder_and_an_unresumable_one(tmp_path):
    from ue_control.train import check_out_folder
    from ue_control.train import load_config as train_config

    out = tmp_path / "t"
    (out / "model").mkdir(parents=True)
    (out / "train_summary.json").write_text(json.dumps({"finished": True, "steps_done": 5}), encoding="utf-8")
    config = train_config(None, [], run="r", out=str(out))
    with pytest.raises(UserError, match="already holds a finished training run"):
        check_out_folder(out, config)
    (out / "train_summary.json").unlink()
    (out / "train_log.jsonl").write_text('{"step": 1, "loss": 0.5}\n', encoding="utf-8")
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        check_out_folder(out, config)
    check_out_folder(out, train_config(None, ["resume=false"], run="r", out=str(out)))  # starts again from scratch


def test_evaluate_checks_inputs_before_loading_a_model(tmp_path):
    from ue_control.evaluate import evaluate
    from ue_control.evaluate import load_config as evaluate_config

    assemble(assemble_config(None, ["simulator=simulate", "n_citizens=3"], out=str(tmp_path / "run")), log=lambda *_: None)
    config = evaluate_config(None, [], run=str(tmp_path / "run"), out=str(tmp_path / "eval"), trained=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no model folder there"):
        evaluate(config, log=lambda *_: None)
    assert not (tmp_path / "eval").exists()
    with pytest.raises(UserError, match="assemble.json: not found"):
        evaluate(
            evaluate_config(None, [], run=str(tmp_path / "nothing"), out=str(tmp_path / "eval"), trained=str(tmp_path)),
            log=lambda *_: None,
        )


def test_every_step_trains_both_orderings_of_its_pairs():
    from ue_control.examples import Example, paired
    from ue_control.train import paired_stream

    ex = [
        Example(a_id=f"o{k}", b_id=f"o{k + 1}", shown_first=s, prompt="", target_a_label=t, outcome_split="train")
        for k in range(5)
        for s, t in (("b", 0.2), ("a", 0.8))
    ]
    ordered = paired(ex)
    for step in range(4):
        idx = paired_stream(len(ordered), 0, step, 4)
        batch = [ordered[i] for i in idx]
        assert [e.shown_first for e in batch] == ["a", "b", "a", "b"]
        assert np.mean([e.target_a_label for e in batch]) == pytest.approx(0.5)  # targets carry no position preference
    with pytest.raises(UserError, match="one ordering only"):
        paired(ex[:-1])

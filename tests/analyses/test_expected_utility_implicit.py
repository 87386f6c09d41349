"""Expected utility with implicit lotteries: the shipped event set (own words, probabilities summing to 1), the
companion's file read unchanged, bad files refused in one sentence, and an expected-utility-consistent agent told
apart from one blind to the probabilities."""

from __future__ import annotations

import json

import pytest

from ue_metrics.errors import UserError
from ue_tasks.experiments.expected_utility_implicit import DATA, outcomes, read_events


def test_the_shipped_events():
    events = read_events(DATA)
    assert 18 <= len(events) <= 24
    assert all(3 <= len(e["sub_options"]) <= 12 for e in events)
    assert all(e.get("probability_note") for e in events)  # each says whether its probabilities are facts or assumptions
    oset = outcomes({"background": "none", "events": 0})
    kinds = [o.attributes["kind"] for o in oset.outcomes]
    assert kinds.count("event") == len(events) and kinds.count("sub_outcome") == sum(len(e["sub_options"]) for e in events)
    first = oset.outcomes[0]
    assert sum(c["p"] for c in first.attributes["lottery"]) == pytest.approx(1.0)
    with_core = outcomes({"background": "core", "events": 0})
    assert len(with_core) == len(oset) + 570


def test_the_companion_file_is_read_unchanged(reference_data):
    path = reference_data / "experiments" / "expected_utility_implicit" / "implicit_lotteries" / "options.json"
    oset = outcomes(
        {"outcomes": str(path), "background": str(reference_data / "shared_options" / "options_hierarchical.json"), "events": 0}
    )
    assert len(oset) == 680  # 20 events + 150 sub-outcomes + 510 background outcomes (docs/method.md §4.4)


def test_a_bad_event_file_is_one_sentence(tmp_path):
    bad = tmp_path / "events.json"
    bad.write_text(
        json.dumps(
            {
                "base_options": [
                    {"option": "E", "sub_options": [{"option": "a", "probability": 0.5}, {"option": "b", "probability": 0.4}]}
                ]
            }
        )
    )
    with pytest.raises(UserError, match="sum to 0.9"):
        read_events(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="base_options"):
        read_events(bad)


def test_an_eu_consistent_agent_and_a_probability_blind_one_are_told_apart(simulated):
    opts = {"background": "mini", "events": 12, "bootstrap": 0}
    good = simulated("expected_utility_implicit", "eu_consistent", opts, plan_kind="graph", budget=3000)["headline"]
    blind = simulated("expected_utility_implicit", "probability_blind", opts, plan_kind="graph", budget=3000)["headline"]
    assert good["n_lotteries"] == blind["n_lotteries"] == 12
    assert good["eu_correlation"] >= 0.95 and good["eu_probability_weight"] > 0.8
    assert blind["eu_probability_weight"] < 0.3 and blind["eu_mae_normalized"] > good["eu_mae_normalized"]

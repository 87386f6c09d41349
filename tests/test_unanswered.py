"""Sampled answers that are not votes, kept for the user to audit (issue 24): a thinking block the token budget cut
before any answer is counted as such (``n_thinking_cut``: neither a vote nor a refusal), and the raw texts of a few
unparsed answers travel with each record (``unparsed_answers``) through the lm-eval payload, the Inspect score value,
the elicitation engine's answers and its cache; ``ue fit`` and ``ue run`` name the budget and the most-refused
outcomes in one sentence each."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from ue_metrics import records as rec
from ue_metrics.aggregation import aggregate, unanswered_notes
from ue_tasks.elicitation.backends import Answer
from ue_tasks.harness.inspect.scorer import combine_values, record_from_value, sample_value
from ue_tasks.harness.lm_eval.hooks import payload_record, sampled_payload
from ue_tasks.harness.lm_eval.run import sample_record
from ue_tasks.queries import UNPARSED_CHARS, UNPARSED_KEPT, Query

IDS = dict(model="m", harness="inspect", task="t", run_id="r")
ANSWERS = [
    "A",
    "<think>weighing it",
    "I can't choose between these two.",
    "<think>x</think> B",
    "<think>still thinking",
    "Neither.",
    "B",
]


def query(shown_first: str = "a", **extra) -> Query:
    return Query.from_dict(
        {
            "a_id": "x",
            "b_id": "y",
            "a_text": "X happens",
            "b_text": "Y happens",
            "shown_first": shown_first,
            "template": "default",
            "pair": 0,
            "a_category": "c",
            "b_category": "c",
            "split": "train",
            "outcome_set": "t",
            "seed": 0,
            **extra,
        }
    )


def schema() -> dict:
    from importlib import resources

    return json.loads(resources.files("ue_metrics").joinpath("schema/preference.schema.json").read_text(encoding="utf-8"))


def test_votes_refusals_and_cut_thinking_are_told_apart():
    q = query()
    assert q.votes(ANSWERS) == (1, 2, 2)  # A; B twice; two refusals; the two cut thinking blocks are in neither
    assert q.unanswered(ANSWERS) == {"n_thinking_cut": 2, "unparsed_answers": ["I can't choose between these two.", "Neither."]}
    assert q.unanswered(["A", "B"]) == {}
    many = q.unanswered(["x" * 1000] * 10)
    assert len(many["unparsed_answers"]) == UNPARSED_KEPT and all(len(t) == UNPARSED_CHARS for t in many["unparsed_answers"])


@pytest.mark.parametrize("shown_first", ["a", "b"])
def test_the_lm_eval_payload_carries_them_into_the_record(shown_first):
    q = query(shown_first)
    doc = {**q.to_dict(), "key": q.key}
    payload = sampled_payload(doc, [ANSWERS])
    r = payload_record(payload)
    assert r["n_thinking_cut"] == 2 and r["unparsed_answers"] == ["I can't choose between these two.", "Neither."]
    assert (r["n_a"], r["n_b"]) == ((1, 2) if shown_first == "a" else (2, 1)) and r["n_unparsed"] == 2
    back = sample_record({"doc": doc, "metrics": ["m"], "m": payload, "doc_id": 0}, model="m", task="t", run_id="r")
    assert back["n_thinking_cut"] == 2 and back["unparsed_answers"] == r["unparsed_answers"]
    old = sample_record({"doc": doc, "metrics": ["m"], "m": payload[:-1], "doc_id": 0}, model="m", task="t", run_id="r")
    assert "n_thinking_cut" not in old and old["n_unparsed"] == 2  # a payload of an older version is still read
    jsonschema.validate(r, schema())
    rec.validate(r)


def test_the_inspect_value_pools_epochs_and_keeps_them():
    q = query()
    values = [sample_value(q, ANSWERS[:4]), sample_value(q, ANSWERS[4:])]
    pooled = combine_values(values, "sample")
    for v in (*values, pooled):  # an Inspect score value holds numbers and text only: the raw texts as one JSON text
        assert all(x is None or isinstance(x, (int, float, str)) for x in v.values()), v
    assert pooled["n_thinking_cut"] == 2
    assert json.loads(pooled["unparsed_answers"]) == ["I can't choose between these two.", "Neither."]
    r = record_from_value(q, pooled, "sample", **IDS)
    assert r["n_thinking_cut"] == 2 and (r["n_a"], r["n_b"], r["n_unparsed"]) == (1, 2, 2)
    jsonschema.validate(r, schema())


def test_the_engine_answer_and_its_cache_keep_them(tmp_path):
    from ue_tasks.elicitation.cache import AnswerCache

    q = query("b")
    r = record_from_value(q, sample_value(q, ANSWERS), "sample", **IDS)
    answer = Answer.from_record(r, q)
    assert answer.n_thinking_cut == 2 and answer.unparsed_answers == ("I can't choose between these two.", "Neither.")
    again = answer.record(q, mode="sample", **IDS)
    assert {k: again[k] for k in ("n_a", "n_b", "n_unparsed", "n_thinking_cut", "unparsed_answers")} == {
        k: r[k] for k in ("n_a", "n_b", "n_unparsed", "n_thinking_cut", "unparsed_answers")
    }
    cache = AnswerCache.for_backend(tmp_path, ["test-model", "sample", 7])
    cache.put([(q, answer)])
    reread = AnswerCache.for_backend(tmp_path, ["test-model", "sample", 7]).get(q)
    assert reread is not None and reread.record(q, mode="sample", **IDS)["unparsed_answers"] == again["unparsed_answers"]


def test_a_cut_thinking_block_is_not_half_a_vote_under_the_papers_rule():
    q = query()
    cut = record_from_value(q, sample_value(q, ["A", "<think>...", "<think>...", "<think>..."]), "sample", **IDS)
    refused = record_from_value(q, sample_value(q, ["A", "no", "no", "no"]), "sample", **IDS)
    a = aggregate([cut], unparsed="as_indifference")
    b = aggregate([refused], unparsed="as_indifference")
    assert float(a.y[0]) == 1.0  # one vote for x; the three cut answers count for nothing
    assert float(b.y[0]) == pytest.approx((1 + 1.5) / 4)  # the three refusals are half a vote each


def test_the_notes_name_the_budget_and_the_most_refused_outcomes():
    q, other = query(), Query.from_dict({**query().to_dict(), "a_id": "z", "a_text": "Z happens"})
    records = [
        record_from_value(q, sample_value(q, ANSWERS), "sample", **IDS),
        record_from_value(other, sample_value(other, ["A", "B"]), "sample", **IDS),
    ]
    notes = unanswered_notes(records)
    assert len(notes) == 2
    assert notes[0].startswith("2 of 9 sampled answers ended inside a thinking block") and "max_tokens" in notes[0]
    assert "2 of 9 sampled answers named neither label" in notes[1] and "'X happens' (2, e.g. \"I can't choose" in notes[1]
    assert "Z happens" not in notes[1]
    assert unanswered_notes([records[1]]) == []


def test_ue_fit_prints_them_once_each(tmp_path):
    import numpy as np

    from ue_metrics.simulate import simulate_records

    rng = np.random.default_rng(0)
    ids = [f"o{k}" for k in range(8)]
    pairs = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)])
    records = simulate_records(
        pairs, ["train"] * len(pairs), ids, [f"outcome {k}" for k in range(8)], rng.normal(size=8), np.ones(8), rng, samples=5
    )
    records[0].update(n_unparsed=2, n_thinking_cut=1, unparsed_answers=["I refuse to rank these."])
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = subprocess.run(
        [sys.executable, "-m", "ue_cli.main", "fit", str(path), "--out", str(tmp_path / "fit")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "thinking block" in line or "named neither label" in line]
    assert len(lines) == 2 and "I refuse to rank these." in lines[1]

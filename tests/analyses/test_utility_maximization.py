"""Utility maximisation: matching a free answer to a candidate (exact, normalised, whole-word tokens, a judge's
reply), the per-question plan with the paper's pair counts, and the analysis on a top-utility answerer and a random
answerer (told apart), with unmatched answers counted as misses."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import utility_maximization as um
from ue_tasks.experiments.utility_maximization import outcomes, pairs_per_question, plan, read_questions
from ue_tasks.plan import PlanSpec

STATES = [[f"s:{k}", code] for k, code in enumerate(["CA", "OR", "IN", "NY", "ME"])]
COUNTRIES = [["c:0", "Korea"], ["c:1", "South Korea"], ["c:2", "Japan"], ["c:3", "United States"], ["c:4", "Côte d'Ivoire"]]


@pytest.mark.parametrize(
    "answer, candidates, want",
    [
        ("Japan", COUNTRIES, ("c:2", "exact")),
        ("  japan. ", COUNTRIES, ("c:2", "normalised")),
        ("The United States", COUNTRIES, ("c:3", "normalised")),
        ("cote d ivoire", COUNTRIES, ("c:4", "normalised")),
        ("I would choose Japan.", COUNTRIES, ("c:2", "token")),
        ("I'd pick South Korea, definitely.", COUNTRIES, ("c:1", "token")),  # the longer candidate wins
        ("Japan or Korea", COUNTRIES, (None, None)),  # two candidates: no match
        ("France", COUNTRIES, (None, None)),
        ("I pick CA", STATES, ("s:0", "token")),
        ("In my view, CA.", STATES, ("s:0", "token")),  # "In" is not Indiana: codes match in capitals only
        ("Oregon or maybe not", STATES, (None, None)),
        ("ca", STATES, ("s:0", "normalised")),
        ("", COUNTRIES, (None, None)),
        (None, COUNTRIES, (None, None)),
    ],
)
def test_matching_a_free_answer(answer, candidates, want):
    assert um.match_answer(answer, candidates) == want


def test_a_judges_reply_names_a_candidate_or_no_match():
    assert um.match_judge("Japan", COUNTRIES) == "c:2"
    assert um.match_judge("the united states", COUNTRIES) == "c:3"
    assert um.match_judge("NO MATCH", COUNTRIES) is None and um.match_judge("No match.", COUNTRIES) is None
    assert um.match_judge("I think it is Japan", COUNTRIES) is None  # a judge must name the candidate itself


def test_the_plan_pairs_candidates_only_within_a_question_with_the_papers_counts():
    # the paper's per-question runs: initial graph + whole rounds of 500, capped by the pool (docs/method.md §4.6)
    spec = PlanSpec(kind="custom")
    assert [pairs_per_question(n, spec) for n in (10, 14, 15, 20, 25, 50, 69)] == [43, 87, 100, 181, 285, 1050, 1069]
    assert pairs_per_question(50, PlanSpec(kind="custom", budget=7)) == 7
    opts = {"questions": 3}
    oset = outcomes(opts)
    p = plan(oset, PlanSpec(kind="custom", seed=1), opts)
    qs = np.array([o.attributes["question"] for o in oset.outcomes])
    assert (qs[p.pairs[:, 0]] == qs[p.pairs[:, 1]]).all() and (qs[p.pairs[:, 0]] == p.group).all()
    assert set(p.split) == {"train", "holdout"}
    again = plan(oset, PlanSpec(kind="custom", seed=1), opts)
    assert (again.pairs == p.pairs).all()


def test_the_companion_questions_are_read_unchanged_with_the_papers_query_count(reference_data):
    from ue_tasks import experiments

    path = reference_data / "experiments" / "maximization" / "util_max_questions.json"
    assert len(read_questions(path)) == 30
    exp = experiments.get("utility_maximization")
    oset = exp.outcome_set({"outcomes": str(path)})
    assert len(oset) == 628
    # docs/method.md §4.6: ≈145,280 pairwise requests at K = 10 (= 14,528 prompts) and 30 free-form questions
    p = exp.build_plan(oset, PlanSpec(kind="custom"), {"outcomes": str(path)})
    assert 2 * len(p.pairs) * 10 == 145_280
    assert exp.free_answer_requests({"outcomes": str(path)}) == 30


def test_a_top_utility_answerer_and_a_random_answerer_are_told_apart(simulated):
    opts = {"questions": 12}
    top = simulated("utility_maximization", "maximiser", opts)
    rnd = simulated("utility_maximization", "random_answerer", opts)
    t, r = top["headline"], rnd["headline"]
    assert t["n_questions"] == r["n_questions"] == 12
    assert t["top1_rate"] >= 0.9 and t["top3_rate"] == 1.0 and t["unmatched_rate"] == 0.0
    assert r["top1_rate"] <= 0.25 and r["mean_rank_percentile"] < 0.8 < t["mean_rank_percentile"]
    assert t["top1_rate_random"] == pytest.approx(r["top1_rate_random"]) and t["top1_rate_random"] < 0.15
    assert top["details"]["matched_by"] == {"normalised": 12}  # the simulator answers "Text." with a full stop


def _fit(util: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(ids=list(util)), model=SimpleNamespace(utilities_=np.array(list(util.values()))))


def test_unmatched_answers_count_as_misses_and_a_judge_settles_them():
    util = {"c:0": 0.1, "c:1": 2.0, "c:2": 1.0, "c:3": -1.0, "c:4": 0.0}

    def entry(qid: str, kind: str, text: str) -> dict:
        return {
            "id": f"{kind}:{qid}",
            "kind": kind,
            "group": qid,
            "prompt": "?",
            "text": text,
            "metadata": {"candidates": COUNTRIES},
        }

    gens = [entry("q00", "answer", "South Korea"), entry("q01", "answer", "Seoul, obviously"), entry("q02", "answer", "Japan")]
    h = um.analyse([], {}, _fit(util), um.Options(), Inputs(generations=tuple(gens)))["headline"]
    assert h["n_questions"] == 3 and h["unmatched_rate"] == pytest.approx(1 / 3)
    assert h["top1_rate"] == pytest.approx(1 / 3) and h["top3_rate"] == pytest.approx(2 / 3)  # the unmatched one is a miss
    judged = um.analyse([], {}, _fit(util), um.Options(), Inputs(generations=(*gens, entry("q01", "judge", "South Korea"))))
    assert judged["headline"]["unmatched_rate"] == 0.0 and judged["headline"]["top1_rate"] == pytest.approx(2 / 3)
    assert judged["details"]["matched_by"] == {"exact": 2, "judge": 1}


def test_no_free_answers_is_a_null_headline_with_a_reason():
    result = um.analyse([], {}, _fit({"c:0": 0.0, "c:1": 1.0}), um.Options(), Inputs())
    assert result["headline"]["top1_rate"] is None and "free answers" in result["notes"]["top1_rate"]

"""Reasoning models' answers: the thinking block is never read, the answer after it is; a thinking block cut by the
token budget before any answer is no vote (``ue_tasks.parsing.split_thinking``)."""

from __future__ import annotations

import pytest

from ue_tasks.parsing import parse_choice, split_thinking, thinking_cut
from ue_tasks.queries import Query


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("<think>Option A saves more people, so A.</think>\nB", "B"),  # the thinking's "A" is not read
        ("<think>A or B? Hmm.</think> A", "A"),
        ("<think>first</think><think>second, leaning B</think>Answer: A", "A"),
        ("<THINK>B</THINK>\n\n**A**", "A"),
        ("<think>I would pick A.</think>", None),  # thought, then answered nothing
        ("<think>I can't choose.</think> I can't choose between these.", None),  # a refusal after thinking
        ("B", "B"),  # no thinking block: as before
    ],
)
def test_answer_after_the_thinking_block(text, label):
    assert parse_choice(text) == label
    assert not thinking_cut(text)


@pytest.mark.parametrize("text", ["<think>Let me weigh A against B. A saves", "<think>", "  <reasoning>B is"])
def test_thinking_cut_by_the_budget_is_no_vote(text):
    assert split_thinking(text) == (None, True)
    assert thinking_cut(text)
    assert parse_choice(text) is None
    assert parse_choice(text, reasoning=True) is None


def test_reasoning_template_reads_the_final_answer_only():
    text = "<think>Answer: B would be wrong. Answer: A</think>Comparing them... Answer: B"
    assert parse_choice(text, reasoning=True) == "B"


def test_answer_before_an_unclosed_block_is_kept():
    assert split_thinking("A <think>more") == ("A ", False)


def test_refusal_kept_as_unparsed_mirror_of_votes():
    q = Query.from_dict(
        {
            "a_id": "x",
            "b_id": "y",
            "a_text": "X",
            "b_text": "Y",
            "shown_first": "a",
            "template": "default",
            "pair": 0,
            "a_category": "c",
            "b_category": "c",
            "split": "train",
            "outcome_set": "t",
            "seed": 0,
        }
    )
    answers = ["<think>hm</think> A", "<think>hm</think> B", "<think>cut by the budget", "I can't choose between these."]
    n_a, n_b, n_u = q.votes(answers)
    assert (n_a, n_b, n_u) == (1, 1, 1)  # the thinking block cut by the budget is neither a vote nor a refusal
    assert q.unanswered(answers) == {"n_thinking_cut": 1, "unparsed_answers": ["I can't choose between these."]}

"""The forced-choice parser (METHOD.md §1.5, §7.4) on answers of the kind chat models give to the paper's prompt."""

from __future__ import annotations

import pytest

from ue_tasks.parsing import parse_choice

# (answer, expected label) for the default template ("Please respond with only "A" or "B".")
DEFAULT_TABLE = [
    # the plain answers
    ("A", "A"),
    ("B", "B"),
    (" B\n", "B"),
    ("A.", "A"),
    ('"B"', "B"),
    ("**A**", "A"),
    ("(B)", "B"),
    ("`A`", "A"),
    # case: a lower-case letter alone is still an answer
    ("a", "A"),
    ("b.", "B"),
    # designated options, any case
    ("Option A", "A"),
    ("option b", "B"),
    ("**Option B**", "B"),
    ("Option A.\n\nThis outcome", "A"),
    ("I would prefer Option B.", "B"),
    ("I prefer option a because", "A"),
    ("I choose B", "B"),
    ("My answer is A", "A"),
    ("Answer: B", "B"),
    ("The answer is (A)", "A"),
    ("B is better for the world", "B"),
    ("A is the better option", "A"),
    # the English article "A" is not a vote
    ("A pandemic is worse, so B", "B"),
    ("A world with fewer deaths: B", "B"),
    # an explicit choice wins over a letter mentioned in passing (the companion calls this unparseable)
    ("I prefer B. A would be worse.", "B"),
    # both or neither: unparseable rather than a guess
    ("A or B", None),
    ("A and B are equally bad", None),
    ("Option A or Option B", None),
    ("", None),
    ("   ", None),
    # refusals and evasions find no answer
    ("I'm sorry, but I can't choose between these.", None),
    ("As an AI, I don't have personal preferences.", None),
    ("I cannot make that choice", None),
    ("Neither option is acceptable.", None),
    ("It depends on", None),
    # letters inside words are not answers
    ("Both are bad", None),
    ("ABBA is a band", None),
]

# (answer, expected label) for the reasoning template ("... "Answer: A" or "Answer: B".")
REASONING_TABLE = [
    ("Option B saves more lives.\n\nAnswer: B", "B"),
    ("Let me think. ... Answer: A", "A"),
    ("answer: b", "B"),
    ("**Answer: A**", "A"),
    ("Answer: **B**", "B"),
    ('The format is "Answer: A" or "Answer: B". Weighing both... Answer: B', "B"),
    ("I think A is better.", None),
    ("Answer: either", None),
]


@pytest.mark.parametrize("text,expected", DEFAULT_TABLE)
def test_default_template_answers(text: str, expected: str | None) -> None:
    assert parse_choice(text) == expected


@pytest.mark.parametrize("text,expected", REASONING_TABLE)
def test_reasoning_template_answers(text: str, expected: str | None) -> None:
    assert parse_choice(text, reasoning=True) == expected


def test_table_size_and_balance() -> None:
    labels = [e for _, e in DEFAULT_TABLE]
    assert len(DEFAULT_TABLE) + len(REASONING_TABLE) >= 30
    assert labels.count("A") >= 8 and labels.count("B") >= 8 and labels.count(None) >= 8


def test_none_response_is_unparseable() -> None:
    assert parse_choice(None) is None
    assert parse_choice(None, reasoning=True) is None

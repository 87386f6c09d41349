"""Parse a free-text answer to the forced-choice prompt into "A", "B" or None (unparseable or refused).

Fixes the companion parser's quirks (METHOD.md §1.5, §7.4): letters are matched regardless of case where the
context makes them answers ("a", "Option b", "**B**", "(A)"), the English article "A" starting a phrase is not
a vote, "A or B" is unparseable rather than a guess, and refusals simply find no answer. The reasoning template
takes the last "Answer: X" (case-insensitive, markdown allowed), since models often restate the format first.
"""

from __future__ import annotations

import re

_STRIP = " \t\r\n*_`\"'“”‘’()[]{}<>.,:;!?-–—"
# explicit designators: "option a", "answer: b", "answer is a", "i choose b", "i prefer option a", "(a)"
_DESIGNATED = re.compile(
    r"(?:\boption\s*|\bchoice\s*|\banswer\s*(?:is\s*)?[:：]?\s*|\bchoose\s+(?:option\s+)?|\bprefer\s+(?:option\s+)?|\bpick\s+(?:option\s+)?|\bselect\s+(?:option\s+)?)"
    r"[\*_\"'“(\[]*([ab])(?![\w'])",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([ABab])\)")
# an uppercase standalone letter; an "A" followed by a lowercase word is the article, not a vote
_LETTER = re.compile(r"(?<![\w'])([AB])(?![\w'])")
_NOT_ARTICLE = re.compile(r"\s+(?:or|and|is|vs\.?|versus|over|than|because|since|would|seems|sounds|instead|please|for sure)\b")
_REASONING = re.compile(r"answer\s*[:：]\s*[\*_\"'“(\[]*\s*([AB])(?![\w'])", re.IGNORECASE)


def _single(letters: set[str]) -> str | None:
    return letters.pop() if len(letters) == 1 else None


def parse_choice(text: str | None, reasoning: bool = False) -> str | None:
    """"A", "B", or None when the answer names neither, both, or refuses."""
    if text is None:
        return None
    if reasoning:
        matches = _REASONING.findall(text)
        return matches[-1].upper() if matches else None
    bare = text.strip(_STRIP)
    if bare.upper() in ("A", "B"):
        return bare.upper()
    designated = {m.upper() for m in _DESIGNATED.findall(text)} | {m.upper() for m in _PAREN.findall(text)}
    if designated:
        return _single(designated)
    letters = set()
    for m in _LETTER.finditer(text):
        letter = m.group(1)
        rest = text[m.end() :]
        if letter == "A" and re.match(r"\s+[a-z]", rest) and not _NOT_ARTICLE.match(rest):
            continue  # the article ("A cure is found"); "A is better", "A or B" still name the option
        letters.add(letter)
    return _single(letters)

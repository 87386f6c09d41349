"""Parse a free-text answer to the forced-choice prompt into "A", "B" or None (unparseable, ambiguous or refused) —
or into the template's own labels ("1"/"2", "X"/"Y": ``labels``, the robustness experiment's label variants), read by
the same rules.

Fixes the companion parser's quirks (docs/method.md §1.5, §7.4). The rules treat the two labels exactly alike — an
answer and its mirror image (A and B swapped) always parse to mirrored labels — because "A" is also the first
option shown, and a parser that reads one label more easily than the other turns into position bias:

- a letter counts as an answer when it stands alone ("A", "**B**", "(a)", "Option b", "Answer: A", "I choose B",
  "B is better", "A definitely"); a letter followed by an ordinary word ("A cure is found", "My answer is a tough
  one") is the English article, not a vote — for both letters (a continuation such as "is", "definitely",
  "because" keeps it a vote);
- lower-case letters count only after a designator ("option a", "I pick b") or alone;
- ambiguous answers are refused: both labels asserted ("A or B", "A but B", "Option A and Option B"), any negation
  ("neither A nor B", "not A", "A is not better"). A label after "over", "rather than", "instead of" or "better
  than", or judged "worse", is the one turned down ("A over B" and "B is worse than A" are A; "A is worse" alone
  is nothing). An explicit choice ("I prefer B.") wins over the other label mentioned in a different sentence;
- refusals find no answer.

Labels other than A/B follow the same rules: a capital letter ("X", "Y") also counts in lower case after a designator
("option x"); a digit ("1", "2") has no case, is never part of a number ("1.5", "0.2") and, followed by an
ordinary word ("2 people die"), is a count, not a vote.

The reasoning template takes the last "Answer: X" (case-insensitive, markdown allowed), since models often restate
the format first.

Reasoning models: the text of a thinking block (``<think>…</think>``, as served reasoning models write it into the
answer) is never read; the answer is the text after the last closing tag. A thinking block that never closes (the
token budget ran out while the model was thinking) has no answer: ``thinking_cut`` says so, and it is unparsed, not
a vote. (A server's separate ``reasoning_content`` field never reaches the parser: Inspect keeps it apart from the
completion, and lm-eval's chat client reads the message content only.)
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

_STRIP = " \t\r\n*_`\"'“”‘’()[]{}<>.,:;!?-–—"
DEFAULT_LABELS = ("A", "B")
# words before a letter that make it the answer; after "option"/"choice" it cannot be the article
_FIRM = re.compile(r"(?:\boption|\bchoice|\(|\[)\s*[\*_\"'“]*\s*$", re.IGNORECASE)
_SOFT = re.compile(
    r"(?:\banswer\s*(?:is|would\s+be|will\s+be)?\s*[:：]?|\bchoose|\bchoosing|\bprefer|\bpick|\bpicking|\bselect|\bgo(?:ing)?\s+with"
    r"|\bopt\s+for|\bvote\s+for|\bchoice\s+is|\bpreference\s+is|\bit'?s|\bit\s+is)\s*(?:option\s+)?[\*_\"'“(\[]*\s*$",
    re.IGNORECASE,
)
# words after a label that keep it a label (not the article "A" before a noun)
_CONTINUE = frozenset(
    "is was would will seems sounds looks appears definitely clearly obviously certainly surely absolutely probably "
    "undoubtedly honestly really for because since as and or nor but than over then so instead please here wins it "
    "all every hands alone only though however too yes vs versus rather without with has had offers provides leads "
    "results gives means represents saves helps benefits ensures prevents avoids causes makes creates brings "
    "outweighs beats aligns remains stays are were be seem sound look both each equally also still just first"
    " overall here's".split()
)
_NEGATION = re.compile(
    r"\b(?:not|no|neither|nor|never|none|cannot|can't|cant|won't|wouldn't|don't|doesn't|isn't|shouldn't|couldn't|"
    r"aren't|wasn't)\b|n't\b",
    re.IGNORECASE,
)
_REJECTED = re.compile(
    r"(?:\bover|\brather\s+than|\binstead\s+of|\bbetter\s+than|\bpreferable\s+to|\bmore\s+\w+\s+than|\bversus|\bvs\.?)"
    r"\s*(?:option\s+)?[\*_\"'“(\[]*\s*$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\n|(?<!\d)[.!?]|[.!?](?!\d)")  # not the point of a number ("1.5")


class _Labels(NamedTuple):
    canonical: dict[str, str]  # every spelling of a label ("a", "A") -> the label
    mention: re.Pattern[str]  # a label standing alone (not inside a word or a number)
    downward: re.Pattern[str]  # a label judged downward ("A is worse", "B would be far worse"): turned down, not a vote
    reasoning: re.Pattern[str]  # "Answer: X" of the reasoning template


@lru_cache(maxsize=32)
def _labels(labels: tuple[str, str]) -> _Labels:
    canonical = {c: x for x in labels for c in (x, x.lower())}
    every = "".join(re.escape(c) for c in canonical)
    upper = "".join(re.escape(x) for x in labels)
    alone = r"(?<![\w'’])(?<!\d[.,])([{}])(?![\w'’])(?![.,]\d)"
    return _Labels(
        canonical,
        re.compile(alone.format(every)),
        re.compile(
            alone.format(upper) + r"\s+(?:is|was|would\s+be|seems|sounds|looks|appears)\s+(?:\w+\s+)?(?:worse|inferior)\b"
        ),
        re.compile(r"answer\s*[:：]\s*[\*_\"'“(\[]*\s*([" + every + r"])(?![\w'])", re.IGNORECASE),
    )


def _mentions(text: str, lab: _Labels) -> list[tuple[str, bool, int]]:
    """(label, designated, sentence number) of every mention of a label that is not the article."""
    out = []
    for m in lab.mention.finditer(text):
        letter, before, after = m.group(1), text[: m.start()], text[m.end() :]
        firm = bool(_FIRM.search(before))
        soft = not firm and bool(_SOFT.search(before))
        if letter.islower() and not (firm or soft):
            continue  # a lower-case letter in prose is the article
        if _REJECTED.search(before):
            continue  # "A over B": B is the option turned down
        word = re.match(r"\s+([a-z][a-z'’,-]*)", after)
        if not firm and word and word.group(1).rstrip(",") not in _CONTINUE:
            continue  # "A cure is found", "my answer is a tough one": the article, for either letter
        sentence = len(_SENTENCE_END.findall(text[: m.start()]))
        out.append((lab.canonical[letter], firm or soft, sentence))
    return out


_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)


def split_thinking(text: str | None) -> tuple[str | None, bool]:
    """(the final answer, whether a thinking block ran out of tokens before closing): the text after the last
    ``</think>``; an answer without a thinking block as it is; ``(None, True)`` when a ``<think>`` never closes."""
    if text is None:
        return None, False
    closes = list(_THINK_CLOSE.finditer(text))
    after = text[closes[-1].end() :] if closes else text
    opened = _THINK_OPEN.search(after)
    if opened:  # a block opened after the last close (or the only one) and never closed
        before = after[: opened.start()]
        return (before, False) if before.strip() else (None, True)
    return after, False


def thinking_cut(text: str | None) -> bool:
    """Whether ``text`` is a thinking block the token budget cut before any answer."""
    return split_thinking(text)[1]


def parse_choice(text: str | None, reasoning: bool = False, labels: tuple[str, str] = DEFAULT_LABELS) -> str | None:
    """ "A", "B" (or the one of ``labels`` chosen), or None when the answer names neither, is ambiguous, or refuses
    (the answer after a thinking block, when there is one)."""
    text, _ = split_thinking(text)
    if text is None:
        return None
    lab = _labels(tuple(labels))
    if reasoning:
        matches = lab.reasoning.findall(text)
        return lab.canonical[matches[-1]] if matches else None
    bare = text.strip(_STRIP)
    if bare in lab.canonical:
        return lab.canonical[bare]
    if _NEGATION.search(text):
        return None  # "neither A nor B", "not A", "A is not better": refuse rather than guess
    down = set(lab.downward.findall(text))  # "A is worse than B", "I prefer B. A would be worse."
    mentions = [m for m in _mentions(text, lab) if m[0] not in down]
    labels = {label for label, _, _ in mentions}
    if len(labels) == 1:
        return labels.pop()
    if len(labels) != 2:
        return None
    chosen = {label for label, designated, _ in mentions if designated}
    if len(chosen) != 1:
        return None
    (label,) = chosen
    where = {s for lab, designated, s in mentions if lab == label and designated}
    other = {s for lab, _, s in mentions if lab != label}
    return label if not (where & other) else None  # the other label only in another sentence: a remark, not a vote

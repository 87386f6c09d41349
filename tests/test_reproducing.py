"""Issue 25: reproducing the paper when asked — the free-form questions of utility maximisation read the same file as
its pairwise queries, the paper's refusal rule and fit on `ue run` / `ue analyse`, single-ordering runs, the
companion's active-learning budget, `--protocol paper`, the companion's exchange-rate wording and its results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ue_cmd import analysis, one_sentence, ue_here


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _free_questions_match_the_file(capsys, questions_file: Path, out: Path) -> int:
    code, _, err = ue_here(capsys, "run", "utility_maximization", "--harness", "simulate", "--model", "sim", "--out", out,
                           "--outcomes", questions_file, "--no-cache", "--no-figures")  # fmt: skip
    assert code == 0, err
    asked = {e["group"]: e for e in _lines(out / "generations.jsonl") if e["kind"] == "answer"}
    file_questions = json.loads(questions_file.read_text())
    assert len(asked) == len(file_questions)
    for k, q in enumerate(file_questions):
        entry = asked[f"q{k:02d}"]
        assert entry["prompt"] == q["question"].strip(), k
        assert [t for _, t in entry["metadata"]["candidates"]] == [a.strip() for a in q["possible_answers"]], k
    return len(asked)


def test_free_questions_come_from_the_given_question_file(capsys, tmp_path):
    """Always run: a small question file unlike the shipped one — its own questions must be the ones asked."""
    qs = [{"question": "Which colour do you prefer? Answer with one word.", "pair_prompt": "Pick a colour.",
           "possible_answers": ["teal", "ochre", "mauve"]},
          {"question": "Which metal is best for a kettle?", "pair_prompt": "Pick a kettle metal.",
           "possible_answers": ["copper", "steel"]}]  # fmt: skip
    path = tmp_path / "qs.json"
    path.write_text(json.dumps(qs))
    assert _free_questions_match_the_file(capsys, path, tmp_path / "run") == 2


def test_free_questions_of_every_companion_question(capsys, reference_data, tmp_path):
    path = reference_data / "experiments" / "maximization" / "util_max_questions.json"
    assert _free_questions_match_the_file(capsys, path, tmp_path / "run") == 30

"""The robustness experiment's label variants on the embedded model: the prompts of ``labels_12`` and ``labels_xy``
name their own labels ("Option 1" / "Option 2", "Option X" / "Option Y"), lm-eval scores the continuations "1"/"2"
(and Inspect reads "1"/"2" among the first token's log-probabilities), and each record's ``p_a`` is exactly
P("1") / (P("1") + P("2")) of a direct forward pass over that prompt — not the probabilities of "A"/"B"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ue_cmd import analysis, ue

import ue_tasks.experiments.robustness  # noqa: F401  (registers the variants' templates)
from ue_tasks.outcomes import load_outcomes
from ue_tasks.templates import get_template

pytestmark = pytest.mark.slow

VARIANTS = "paper,labels_12,labels_xy"


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    """Six outcomes of mini: a connected plan of six pairs, both orderings, three variants (36 queries)."""
    mini = load_outcomes("mini")
    path = tmp_path_factory.mktemp("outcomes") / "six.json"
    picked = [mini.outcomes[k] for k in (0, 11, 22, 33, 44, 55)]
    path.write_text(json.dumps([{"id": o.id, "text": o.text, "category": o.category} for o in picked]))
    return path


def _records(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "records.jsonl").read_text().splitlines() if x.strip()]


def _label_probabilities(model_path: str, records: list[dict]) -> list[tuple[str, float]]:
    """(the chat prompt, P(first label) renormalised over the two labels) of each record, from a direct forward pass
    of the embedded model over the prompt its variant's template renders."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out = []
    for r in records:
        first, second = (r["a_text"], r["b_text"]) if r["shown_first"] == "a" else (r["b_text"], r["a_text"])
        messages = [
            {"role": "system", "content": r["system_message"]},
            {"role": "user", "content": get_template(r["template"]).render(first, second)},
        ]
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = [tok.encode(label, add_special_tokens=False) for label in r["labels"]]
        assert all(len(x) == 1 for x in ids), ids  # each label is one token of this tokenizer
        with torch.no_grad():
            probs = torch.softmax(
                model(tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids).logits[0, -1].double(), -1
            )
        p1, p2 = float(probs[ids[0][0]]), float(probs[ids[1][0]])
        out.append((prompt, p1 / (p1 + p2)))
    return out


@pytest.mark.parametrize(
    ("harness", "model", "args", "tolerance"),
    [
        ("lm-eval", "hf", "pretrained={path},dtype=float32", 2e-3),
        # the same labels through Inspect: a second harness path over the same scoring code (make test-all)
        pytest.param("inspect", "hf/local", "model_path={path}", 2e-2, marks=pytest.mark.heavy),
    ],
)
def test_label_variants_are_scored_on_their_own_labels(model_path, six, tmp_path, harness, model, args, tolerance):
    out = tmp_path / harness
    ue(
        "run",
        "robustness",
        "--harness",
        harness,
        "--model",
        model,
        "--model-args",
        args.format(path=model_path),
        "--outcomes",
        str(six),
        "--budget",
        "6",
        "--option",
        f"variants={VARIANTS}",
        "--out",
        str(out),
        "--no-cache",
        "--no-figures",
    )
    records = _records(out)
    by = {g: [r for r in records if r["group"] == g] for g in VARIANTS.split(",")}
    assert all(len(rs) == len(by["paper"]) > 0 for rs in by.values())
    assert all("labels" not in r for r in by["paper"])
    assert {tuple(r["labels"]) for r in by["labels_12"]} == {("1", "2")}
    assert {tuple(r["labels"]) for r in by["labels_xy"]} == {("X", "Y")}
    for group in ("labels_12", "labels_xy"):
        p = [r["p_a"] for r in by[group]]
        assert all(0 < x < 1 for x in p) and len({round(x, 6) for x in p}) > 1 and any(abs(x - 0.5) > 0.01 for x in p)
    # the records' probabilities are those of the labels "1"/"2" ("X"/"Y") after the prompts that name them
    checked = by["labels_12"][:2] + by["labels_xy"][:1]
    for r, (prompt, p_first) in zip(checked, _label_probabilities(model_path, checked)):
        first, second = r["labels"]
        assert f"Option {first}:" in prompt and f"Option {second}:" in prompt and "Option A" not in prompt
        assert f'respond with only "{first}" or "{second}"' in prompt
        p_a = p_first if r["shown_first"] == "a" else 1 - p_first
        assert r["p_a"] == pytest.approx(p_a, abs=tolerance)
    a = analysis(out)
    assert a["details"]["labels"] == {"paper": ["A", "B"], "labels_12": ["1", "2"], "labels_xy": ["X", "Y"]}
    assert a["details"]["label_sets"] == [["A", "B"], ["1", "2"], ["X", "Y"]]

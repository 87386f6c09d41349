"""`ue run robustness`: every simulated responder gives its planted answer (in log-prob and sampled mode), `ue analyse`
reproduces the analysis from the records alone, the variants are data a user can choose and extend (with one
sentence for a bad file), and the embedded model runs it through lm-eval and Inspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bounds import within_se
from ue_cmd import analysis, one_sentence, ue, ue_here

SMALL = ("--outcomes", "mini", "--budget", "100")


def run(tmp: Path, responder: str, *extra: str) -> dict:
    out = tmp / responder
    ue(
        "run",
        "robustness",
        "--harness",
        "simulate",
        "--model",
        f"sim-{responder}",
        "--responder",
        responder,
        *SMALL,
        "--out",
        str(out),
        "--no-cache",
        "--no-figures",
        *extra,
    )
    return analysis(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("robustness")
    names = ("invariant", "perturbed", "label_bound", "letter_bound", "position_bound")
    return {r: run(tmp, r) for r in names} | {"folder": {"path": str(tmp)}}


def test_every_variant_answers_the_same_pairs_in_both_orderings(runs):
    records = [json.loads(x) for x in (Path(runs["folder"]["path"]) / "invariant" / "records.jsonl").read_text().splitlines()]
    by: dict[str, set] = {}
    for r in records:
        by.setdefault(r["group"], set()).add((r["a_id"], r["b_id"], r["shown_first"]))
    assert len(by) == 11 and len({frozenset(v) for v in by.values()}) == 1
    assert all({s for _, _, s in v} == {"a", "b"} for v in by.values())
    assert {r["template"] for r in records if r["group"] == "b_first"} == {"robustness/b_first"}
    assert {r["system_message"] for r in records if r["group"] == "no_system"} == {""}
    # the label variants' records name their labels (A/B records carry none, as before)
    labels = {r["group"]: tuple(r.get("labels") or ()) for r in records}
    assert labels["labels_12"] == ("1", "2") and labels["labels_xy"] == ("X", "Y") and labels["paper"] == ()


def test_an_invariant_model_is_stable_and_a_perturbed_one_is_wording_bound(runs):
    h = runs["invariant"]["headline"]
    assert h["verdict"] == "utilities stable across wording"
    assert h["mean_spearman"] > 0.99 and h["flip_rate"] < 0.01 and h["content_share"] > 0.9
    p = runs["perturbed"]
    h = p["headline"]
    assert h["verdict"] == "wording-bound" and h["variant_share"] > 0.1 and h["flip_rate"] > 0.05
    # the planted perturbation, N(0, 0.5²) in units of the utilities' spread, correlates variants at 1/(1 + 0.25)
    assert within_se(0.8, h["mean_pearson"], p["details"]["mean_pearson_interval"])
    assert 0.25 < h["wording_sd"] < 0.75
    assert runs["invariant"]["headline"]["variant_share"] < 0.05


def test_the_decomposition_names_the_label_and_the_position(runs):
    label, position = runs["label_bound"]["headline"], runs["position_bound"]["headline"]
    assert label["verdict"] == "label-bound" and label["label_share"] > 2 * label["position_share"]
    assert position["verdict"] == "position-bound" and position["position_share"] > 2 * position["label_share"]
    for h in (label, position):
        assert h["content_share"] < 0.3 and h["robust_share"] < 0.05
    assert runs["invariant"]["headline"]["label_share"] < 0.01 and runs["invariant"]["headline"]["position_share"] < 0.01


def test_a_pull_toward_the_letter_a_alone_is_label_bound_too(runs):
    """A responder drawn to "A" but not to "1" or "X": the label factor has one pull per set of labels, so it is
    still named, and the variants labelled 1/2 and X/Y show no pull."""
    letter = runs["letter_bound"]
    h = letter["headline"]
    assert letter["details"]["label_sets"] == [["A", "B"], ["1", "2"], ["X", "Y"]]
    assert h["verdict"] == "label-bound" and h["label_share"] > 2 * h["position_share"]
    records = [json.loads(x) for x in (Path(runs["folder"]["path"]) / "letter_bound" / "records.jsonl").read_text().splitlines()]

    def first_label_rate(group: str) -> float:
        rs = [r for r in records if r["group"] == group]
        return sum(r["p_a"] if r["shown_first"] == "a" else 1 - r["p_a"] for r in rs) / len(rs)

    assert first_label_rate("paper") > 0.75 and abs(first_label_rate("labels_12") - 0.5) < 0.1
    assert abs(first_label_rate("labels_xy") - 0.5) < 0.1


def test_sampled_answers_tell_a_coin_from_a_stable_model(tmp_path):
    coin = run(tmp_path, "random", "--mode", "sample")
    h = coin["headline"]
    assert h["verdict"] == "no signal" and h["unexplained_share"] > 0.95
    assert within_se(0.0, h["mean_spearman"], coin["details"]["mean_spearman_interval"])
    assert h["flip_rate"] == pytest.approx(0.5, abs=0.05)
    stable = run(tmp_path, "invariant", "--mode", "sample")["headline"]
    # sampling noise lowers the correlations but is not taken for wording (the decomposition discounts a coin's fit)
    assert stable["verdict"] == "utilities stable across wording" and stable["variant_share"] < 0.1


def test_ue_analyse_reproduces_the_analysis_from_the_records(runs, tmp_path):
    folder = Path(runs["folder"]["path"]) / "position_bound"
    before = json.loads((folder / "analysis.json").read_text())
    ue("analyse", str(folder / "records.jsonl"), "--out", str(tmp_path / "again"), "--no-figures")
    again = analysis(tmp_path / "again")
    assert again["headline"] == before["headline"]
    assert again["details"]["first_label"]["b_first"] == "B"


def test_variants_are_chosen_and_a_users_own_file_is_read(tmp_path, capsys):
    a = run(tmp_path, "invariant", "--option", "variants=paper,b_first,one_line")
    assert a["details"]["variants"] == ["paper", "b_first", "one_line"] and a["headline"]["n_variants"] == 3
    assert "label_share" not in a["notes"]
    # without a variant that displays its second label first, label and position are one factor: said so
    (tmp_path / "invariant").rename(tmp_path / "three")
    labels = run(tmp_path, "label_bound", "--option", "variants=paper,labels_12,labels_xy")
    assert labels["details"]["labels"] == {"paper": ["A", "B"], "labels_12": ["1", "2"], "labels_xy": ["X", "Y"]}
    assert "split is arbitrary" in labels["notes"]["label_share"] and "b_first" in labels["notes"]["position_share"]
    own = tmp_path / "mine.json"
    own.write_text(
        json.dumps(
            {
                "variants": [
                    {"id": "plain", "template": "default"},
                    {"id": "terse", "text": 'Pick one.\n\nOption A:\n{option_a}\n\nOption B:\n{option_b}\n\nAnswer "A" or "B".'},
                ]
            }
        )
    )
    out = tmp_path / "own"
    code, _, err = ue_here(
        capsys,
        "run",
        "robustness",
        "--harness",
        "simulate",
        "--model",
        "sim",
        *SMALL,
        "--option",
        f"variants_file={own}",
        "--out",
        out,
        "--no-cache",
        "--no-figures",
    )
    assert code == 0, err
    assert analysis(out)["details"]["variants"] == ["plain", "terse"]
    prompts = {json.loads(x)["template"] for x in (out / "records.jsonl").read_text().splitlines()}
    assert prompts == {"robustness/plain", "robustness/terse"}


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ({"variants": [{"id": "x", "text": "no slots here"}]}, "must hold both {option_a} and {option_b}"),
        (
            {"variants": [{"id": "x", "first_label": "A", "text": "Option B:\n{option_b}\nOption A:\n{option_a}"}]},
            "displays option B first",
        ),
        ({"variants": [{"id": "x", "template": "default"}, {"id": "x", "template": "default"}]}, "used twice"),
        ({"variants": []}, "non-empty list 'variants'"),
    ],
)
def test_a_bad_variants_file_is_one_sentence(tmp_path, capsys, variants, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(variants))
    out = tmp_path / "out"
    code, _, err = ue_here(
        capsys,
        "run",
        "robustness",
        "--harness",
        "simulate",
        "--model",
        "sim",
        *SMALL,
        "--option",
        f"variants_file={bad}",
        "--out",
        out,
        "--no-cache",
    )
    one_sentence(code, err, expected)
    assert not (out / "records.jsonl").exists()


def test_an_unknown_variant_is_one_sentence(tmp_path, capsys):
    code, _, err = ue_here(
        capsys,
        "run",
        "robustness",
        "--harness",
        "simulate",
        "--model",
        "sim",
        *SMALL,
        "--option",
        "variants=paper,bogus",
        "--out",
        tmp_path / "o",
        "--no-cache",
    )
    one_sentence(code, err, "no variant 'bogus'")


@pytest.mark.parametrize(
    ("harness", "model", "args"),
    [("lm-eval", "hf", "pretrained={path},dtype=float32"), ("inspect", "hf/local", "model_path={path}")],
)
def test_the_embedded_model_runs_it_through_both_harnesses(model_path, tmp_path, harness, model, args):
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
        "mini",
        "--budget",
        "12",
        "--option",
        "variants=paper,b_first,paraphrase_1",
        "--out",
        str(out),
        "--no-cache",
        "--no-figures",
    )
    a = analysis(out)
    h = a["headline"]
    assert a["details"]["variants"] == ["paper", "b_first", "paraphrase_1"]
    assert -1 <= h["mean_spearman"] <= 1 and h["verdict"] in (
        "utilities stable across wording",
        "wording-bound",
        "label-bound",
        "position-bound",
        "no signal",
    )
    shares = [h[f"{f}_share"] for f in ("content", "variant", "label", "position")]
    assert all(s is None or 0 <= s <= 1 for s in shares)

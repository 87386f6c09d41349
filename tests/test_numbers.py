"""Numbers that cannot be right get one sentence, and numbers that are right cost what they should: seeds, label
mass, counts and flags, any K, special tokens a tokenizer does not list (issue 22, items 7, 8, 12, 14, 15)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from ue_cmd import one_sentence as refused
from ue_cmd import ue_here as run

from ue_metrics.aggregation import MIN_LABEL_MASS
from ue_metrics.coherence import fair_coin_mean_abs_deviation, fair_coin_pmf, random_baselines
from ue_metrics.errors import MAX_SEED, UserError, check_seed
from ue_metrics.fitting import fit_records
from ue_metrics.simulate import simulate_records
from ue_tasks.plan import PlanSpec, make_plan


def records(n=12, samples=0, seed=0, **kw) -> list[dict]:
    plan = make_plan(n, PlanSpec(seed=seed))
    ids = [f"o{k}" for k in range(n)]
    mu = np.linspace(-1, 1, n)
    return simulate_records(
        plan.pairs,
        plan.split,
        ids,
        [f"Outcome {k}." for k in range(n)],
        mu,
        np.full(n, 0.5),
        np.random.default_rng(seed),
        samples=samples,
        **kw,
    )


# ---------------------------------------------------------------------------------------------- item 15: seeds
@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "x", True])
def test_check_seed_refuses_what_no_generator_takes(bad):
    with pytest.raises(UserError, match=r"must be a whole number from 0 to 4294967295"):
        check_seed(bad, "--seed")
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == MAX_SEED and check_seed("7") == 7


def test_negative_seed_is_one_sentence_in_every_command(capsys, tmp_path):
    sim = tmp_path / "s.jsonl"
    assert run(capsys, "simulate", "--outcomes", 10, "--out", sim)[0] == 0
    for args in (
        ["run", "utilities", "--harness", "simulate", "--model", "sim", "--outcomes", 10, "--no-cache", "--out", tmp_path / "r"],
        ["simulate", "--outcomes", 10, "--out", tmp_path / "t.jsonl"],
        ["fit", sim, "--method", "compat", "--out", tmp_path / "f"],
    ):
        code, _, err = run(capsys, *args, "--seed", -1)
        refused(code, err, "must be a whole number from 0 to 4294967295, got '-1'")
    assert not (tmp_path / "r").exists() and not (tmp_path / "t.jsonl").exists()
    with pytest.raises(UserError, match="seed must be"):
        fit_records(records(), seed=-1)  # the Python API says the same


def test_negative_seed_in_lm_eval_metadata_and_inspect_task_arguments(monkeypatch, capsys):
    pytest.importorskip("datasets")
    from ue_tasks.harness.lm_eval import hooks

    monkeypatch.setattr(sys, "argv", ["/usr/bin/lm_eval", "--model", "hf", "--metadata", '{"seed": -1}'])
    with pytest.raises(SystemExit) as info:
        hooks.build_dataset(seed=-1)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ue: error:") and "seed must be a whole number from 0" in err and len(err.strip().splitlines()) == 1
    pytest.importorskip("inspect_ai")
    from ue_tasks.harness.inspect.scorer import InspectUserError
    from ue_tasks.harness.inspect.tasks import _utility_task

    with pytest.raises(InspectUserError, match="seed must be a whole number from 0"):
        _utility_task(seed=-1)


# ------------------------------------------------------------------------------------- item 8: label mass
def test_records_without_label_mass_answered_nothing(capsys, tmp_path):
    sim = tmp_path / "refused.jsonl"
    assert run(capsys, "simulate", "--outcomes", 30, "--refusal-rate", 1, "--out", sim)[0] == 0
    assert {json.loads(x)["label_mass"] for x in sim.read_text().splitlines()} == {0.0}
    code, _, err = run(capsys, "fit", sim, "--out", tmp_path / "fit")
    refused(code, err, "puts less than 1e-06 of its probability on the two labels in every one")
    assert not (tmp_path / "fit" / "metrics.json").exists()


def test_records_with_no_label_mass_are_counted_unanswered_not_fitted():
    recs = records(n=20)
    dead = [k for k in range(len(recs)) if k % 3 == 0]
    for k in dead:  # a third of the answers put no probability on either label: their renormalised p_a is noise
        recs[k]["label_mass"] = MIN_LABEL_MASS / 10
    flipped = [dict(r, p_a=1.0 - r["p_a"]) if k in dead else r for k, r in enumerate(recs)]
    fit, other = fit_records(recs, seed=0), fit_records(flipped, seed=0)
    m = fit.metrics
    assert m["n_no_label_mass"] == len(dead) and m["n_unusable_records"] == len(dead)
    # what those records say does not move the fit: they are unanswered, like refusals
    assert fit.model.utilities_ == pytest.approx(other.model.utilities_, abs=1e-9)
    assert fit.metrics["holdout_accuracy"] == other.metrics["holdout_accuracy"]
    assert f"{len(dead)} log-prob records put (almost) no probability on either label" in fit.summary()


# ---------------------------------------------------------------------------------- item 12: counts and flags
def test_round_size_and_top_must_be_positive(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        10,
        "--round-size",
        0,
        "--no-cache",
        "--out",
        tmp_path / "r",
    )
    refused(code, err, "argument --round-size: must be a whole number of at least 1, got 0")
    assert not (tmp_path / "r").exists()
    sim = tmp_path / "s.jsonl"
    run(capsys, "simulate", "--outcomes", 10, "--out", sim)
    for top in (0, -3):
        code, out, err = run(capsys, "fit", sim, "--top", top, "--out", tmp_path / "f")
        refused(code, err, f"argument --top: must be a whole number of at least 1, got {top}")
        assert "bottom" not in out


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("Model Name,MMLU\na,70\nb,80,extra\n", "line 3: 3 cells under a header of 2"),
        ('Model Name,MMLU\na,70\n"b,80\n', "not a well-formed CSV row"),
    ],
)
def test_a_capabilities_table_with_a_bad_row_is_one_sentence(tmp_path, body, fragment):
    from ue_metrics.leaderboard import read_capabilities

    path = tmp_path / "caps.csv"
    path.write_text(body)
    with pytest.raises(UserError, match=fragment):
        read_capabilities(path)


def test_capability_rows_without_a_score_are_named_not_skipped_silently(tmp_path):
    from ue_metrics.leaderboard import read_capabilities

    path = tmp_path / "caps.csv"
    path.write_text("Model Name,MMLU\na,70\nb,\nc,81\n")
    said: list[str] = []
    scores, name = read_capabilities(path, log=said.append)
    assert scores == {"a": 70.0, "c": 81.0} and name == "MMLU"
    assert said == [f"{path}: 1 row without a MMLU score left out: line 3 (b)"]


def test_an_unknown_lm_eval_metadata_key_is_refused(monkeypatch, capsys):
    pytest.importorskip("datasets")
    from ue_tasks.harness.lm_eval import hooks

    monkeypatch.setattr(sys, "argv", ["/usr/bin/lm_eval", "--model", "hf", "--metadata", '{"bogus_key": 1}'])
    with pytest.raises(SystemExit) as info:
        hooks.build_dataset()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'bogus_key' is not read by ue's tasks; the keys are seed, budget" in err and len(err.strip().splitlines()) == 1
    # key=value metadata and the keys ue reads pass; model arguments (merged in by lm-eval) are not the command line's
    hooks._check_cli_metadata_keys(["--model", "hf", "--metadata", "seed=3", "outcomes=mini"])
    hooks._check_cli_metadata_keys(["--model", "hf", "--model_args", "pretrained=x", "--tasks", "utility_mini"])


# ------------------------------------------------------------------------------------------- item 14: any K
def test_coin_baselines_in_closed_form_match_enumeration_and_stay_finite_at_any_k():
    for k in (1, 2, 3, 10, 37):
        x = np.arange(2 * k + 1)
        pmf = np.array([math.comb(2 * k, j) for j in x], dtype=float) / 2.0 ** (2 * k)
        conf = float(np.sum(pmf * np.maximum(x, 2 * k - x) / (2 * k)))
        xs, pk = np.arange(k + 1), np.array([math.comb(k, j) for j in range(k + 1)], dtype=float) / 2.0**k
        gap = float(np.sum(pk[:, None] * pk[None, :] * np.abs(xs[:, None] - xs[None, :]) / k))
        b = random_baselines(k)
        assert b["average_confidence"] == pytest.approx(conf, abs=1e-12) and b["order_gap"] == pytest.approx(gap, abs=1e-12)
    big = random_baselines(10**6)  # enumerating would take 10^12 terms, and math.comb overflows a float from K ≈ 515
    assert 0.5 < big["average_confidence"] < 0.5006 and 0 < big["order_gap"] < 0.0006
    assert fair_coin_pmf(5000).sum() == pytest.approx(1.0) and math.isfinite(fair_coin_mean_abs_deviation(10**9))


def test_a_million_samples_per_ordering_fit_and_analyse(capsys, tmp_path):
    sim = tmp_path / "k.jsonl"
    assert run(capsys, "simulate", "--outcomes", 12, "--samples", 1_000_000, "--out", sim)[0] == 0
    code, out, err = run(capsys, "fit", sim, "--out", tmp_path / "fit")
    assert code == 0, err
    assert json.loads((tmp_path / "fit" / "metrics.json").read_text())["random_baseline"]["order_gap"] < 0.001
    # the transitivity coin baseline enumerated (2K + 1)^3 vote counts, and overflowed at K = 1000
    code, out, err = run(
        capsys,
        "run",
        "transitivity",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        12,
        "--budget",
        20,
        "--mode",
        "sample",
        "--samples",
        1000,
        "--no-cache",
        "--no-figures",
        "--out",
        tmp_path / "t",
    )
    assert code == 0, err
    head = json.loads((tmp_path / "t" / "analysis.json").read_text())["headline"]
    assert head["n_triads"] > 0


def test_coin_cycle_distribution_is_continuous_where_its_grid_starts():
    from ue_metrics.analyses.transitivity import coin_cycle_distribution

    bins = np.linspace(0, 1, 21)
    exact, grid = coin_cycle_distribution(100, bins), coin_cycle_distribution(101, bins)
    assert np.abs(exact - grid).max() < 2e-3  # K = 100 enumerates every count, K = 101 is on the 201-point grid


# ----------------------------------------------------------------------- item 7: special tokens not listed
def test_special_tokens_the_tokenizer_does_not_list_are_refused(model_path):
    from transformers import AutoTokenizer

    from ue_tasks.outcomes import check_text, tokenizer_special_tokens

    tok = AutoTokenizer.from_pretrained(model_path)
    assert "<jupyter_code>" not in tok.all_special_tokens  # SmolLM2 marks it special in its vocabulary only
    special = tokenizer_special_tokens(tok)
    assert "<jupyter_code>" in special and set(tok.all_special_tokens) - {""} <= set(special)
    with pytest.raises(UserError, match="contains '<jupyter_code>', a chat control token"):
        check_text("Run this <jupyter_code> and see.", "outcome 'o1'", special)
    check_text("An ordinary sentence about code.", "outcome 'o2'", special)
    assert Path(model_path).is_dir()


# ------------------------------------------------------------------------ item 9: two outcomes, no interval
def _record(a, b, shown, p, split="train"):
    from ue_metrics.records import make_record

    return make_record(
        run_id="t",
        model="m",
        harness="simulate",
        task="t",
        outcome_set="s",
        a_id=a,
        b_id=b,
        a_text=f"Outcome {a}.",
        b_text=f"Outcome {b}.",
        shown_first=shown,
        mode="logprob",
        template="default",
        p_a=p,
        n_a=0,
        n_b=0,
        n_unparsed=0,
        label_mass=1.0,
        split=split,
        round=0,
    )


def test_two_outcomes_get_no_interval_not_a_zero_width_one():
    recs = [_record("o1", "o2", "a", 0.61), _record("o1", "o2", "b", 0.61)]
    fit = fit_records(recs, seed=0)
    rows = {r["id"]: r for r in fit.utilities()}
    assert rows["o1"]["utility"] == pytest.approx(0.707107, abs=1e-5)  # normalised, whatever p was
    assert all(math.isnan(rows[o]["ci_low"]) and math.isnan(rows[o]["ci_high"]) for o in rows)
    assert fit.metrics["n_outcomes_without_interval"] == 2
    assert "[no interval]" in fit.summary() and "have no interval" in fit.summary()


def test_a_two_outcome_component_loses_its_interval_and_the_rest_keep_theirs():
    recs = records(n=12)
    recs += [_record("x1", "x2", "a", 0.7), _record("x1", "x2", "b", 0.7)]
    fit = fit_records(recs, seed=0, per_component=True)
    rows = {r["id"]: r for r in fit.utilities()}
    assert math.isnan(rows["x1"]["ci_low"]) and math.isnan(rows["x2"]["ci_high"])
    assert all(rows[f"o{k}"]["ci_high"] - rows[f"o{k}"]["ci_low"] > 0 for k in range(12))
    assert fit.metrics["n_outcomes_without_interval"] == 2 and fit.metrics["n_components"] == 2


def test_one_components_helper_numbers_components_by_their_smallest_outcome():
    from ue_metrics.graph import component_labels, largest_component, n_components

    labels = component_labels(7, np.array([5, 1, 3]), np.array([6, 2, 4]))
    assert labels.tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert n_components(4, np.array([[0, 1], [2, 3]])) == 2 and n_components(3, np.zeros((0, 2))) == 3
    assert largest_component(np.array([0, 1, 1, 2, 2, 2])).tolist() == [False, False, False, True, True, True]


# ------------------------------------------- item 10: correlations over a disconnected comparison graph
def test_correlations_of_a_disconnected_run_are_taken_within_its_largest_component(capsys, tmp_path):
    utilities = tmp_path / "u"
    assert (
        run(
            capsys,
            "run",
            "utilities",
            "--harness",
            "simulate",
            "--model",
            "sim",
            "--outcomes",
            40,
            "--budget",
            120,
            "--no-cache",
            "--no-figures",
            "--out",
            utilities,
        )[0]
        == 0
    )
    out = tmp_path / "c"
    code, printed, err = run(
        capsys,
        "run",
        "corrigibility",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--budget",
        25,
        "--option",
        "n=40",
        "--utilities",
        utilities,
        "--no-cache",
        "--no-figures",
        "--out",
        out,
    )
    assert code == 0, err
    result = json.loads((out / "analysis.json").read_text())
    note = result["notes"]["corrigibility_correlation"]
    assert "components, whose utilities are not on one scale: correlated within the largest" in note
    kept = int(note.split("largest (")[1].split(" of ")[0])
    assert result["headline"]["n_future_preferences"] == kept < 40
    assert "note: the comparison graph has" in printed

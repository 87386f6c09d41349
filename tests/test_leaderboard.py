"""`ue leaderboard`: convergence (a run with itself is 1, two independent random responders near 0, too few shared
outcomes said so), capability matching (exact or alias, never guessed), duplicates flagged not averaged, the plain
diagnosis of position-bound models, and the five outputs over two simulated runs plus one real run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bounds import independent_r_bound

from ue_metrics import leaderboard as lb
from ue_metrics import records as rec
from ue_metrics.errors import UserError
from ue_metrics.simulate import simulate_records, true_utilities
from ue_tasks.elicitation.config import RunConfig
from ue_tasks.leaderboard import build_leaderboard, collect
from ue_tasks.plan import PlanSpec, make_plan
from ue_tasks.runner import run_experiment

UE = [sys.executable, "-m", "ue_cli.main"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def sim_run(
    out: Path, model: str, seed: int, responder: str | None = None, mode: str | None = None, budget: int | None = None
) -> Path:
    cfg = RunConfig(harness="simulate", model=model, outcomes="mini", seed=seed, responder=responder, mode=mode, budget=budget)
    run_experiment(cfg, out, cache_dir=None, log=lambda m: None, figures=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two Thurstonian simulators with different utilities and two independent sampled coins, on mini."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "simA": sim_run(root / "simA", "simA", 1),
        "simB": sim_run(root / "simB", "simB", 2),
        "coin1": sim_run(root / "coin1", "coin1", 3, responder="random", mode="sample"),
        "coin2": sim_run(root / "coin2", "coin2", 4, responder="random", mode="sample"),
    }


# ----------------------------------------------------------------------------------------------------------
# convergence
def test_convergence_of_a_run_with_itself_is_one(runs):
    (entry,) = collect([runs["simA"]], log=lambda m: None)
    assert entry.model == "simA" and entry.experiment == "utilities" and len(entry.utilities) == 62
    conv = lb.convergence({"a": entry.utilities, "a again": dict(entry.utilities)})
    (pair,) = conv["pairs"]
    assert pair["n_shared"] == 62 and pair["status"] == "ok"
    assert (
        pair["pearson"] == pytest.approx(1.0) and pair["cosine"] == pytest.approx(1.0) and pair["spearman"] == pytest.approx(1.0)
    )
    assert conv["matrix"]["pearson"][0][0] == pytest.approx(1.0) and conv["matrix"]["n_shared"][1][1] == 62


def test_two_independent_random_responders_are_near_zero(runs):
    entries = collect([runs["coin1"], runs["coin2"]], log=lambda m: None)
    conv = lb.convergence({e.model: e.utilities for e in entries})
    (pair,) = conv["pairs"]
    assert pair["status"] == "ok" and pair["n_shared"] == 62
    # One pair's 95 % interval misses 0 one time in twenty by design (and where it lands moves with the machine's
    # rounding), so the pair is held to a bound a false failure crosses with probability below 1e-6: under
    # independence r·√(n−2)/√(1−r²) follows Student's t with n − 2 degrees of freedom (|r| < 0.58 for n = 62).
    assert abs(pair["pearson"]) < independent_r_bound(62) and pair["pearson_ci"][0] < pair["pearson"] < pair["pearson_ci"][1]
    # and on many outcomes, independent utility vectors are close to 0 while a noisy copy is close to 1 (seed fixed;
    # the same t bound: |r| < 0.11 for n = 2000, against a noisy copy's r ≈ 0.995)
    rng = np.random.default_rng(0)
    u = {str(k): float(v) for k, v in enumerate(rng.standard_normal(2000))}
    w = {str(k): float(v) for k, v in enumerate(rng.standard_normal(2000))}
    noisy = {k: v + 0.1 * float(rng.standard_normal()) for k, v in u.items()}
    c = lb.convergence({"u": u, "w": w, "noisy": noisy})
    by = {(p["a"], p["b"]): p for p in c["pairs"]}
    assert abs(by[("u", "w")]["pearson"]) < independent_r_bound(2000) and by[("u", "noisy")]["pearson"] > 0.98


def test_the_convergence_interval_covers_zero_for_independent_vectors_at_its_level():
    """The interval's calibration, over 1,000 independent pairs of 62 outcomes (seed fixed): misses of 0 are
    binomial(1000, 0.05) for a calibrated 95 % interval; the accepted range holds all but 1e-6 of that law."""
    from scipy.stats import binom

    rng = np.random.default_rng(7)
    n, misses = 1000, 0
    for _ in range(n):
        a = {str(k): float(v) for k, v in enumerate(rng.standard_normal(62))}
        b = {str(k): float(v) for k, v in enumerate(rng.standard_normal(62))}
        (pair,) = lb.convergence({"a": a, "b": b})["pairs"]
        lo, hi = pair["pearson_ci"]
        misses += not lo < 0 < hi
    assert binom.ppf(5e-7, n, 0.05) <= misses <= binom.isf(5e-7, n, 0.05), misses


def test_different_simulated_utilities_converge_less_than_a_model_with_itself(runs):
    entries = {e.model: e for e in collect([runs["simA"], runs["simB"]], log=lambda m: None)}
    conv = lb.convergence({m: e.utilities for m, e in entries.items()})
    assert conv["pairs"][0]["pearson"] < independent_r_bound(62)  # independent truths: a 1e-6 tail (tests/bounds.py)


def test_too_few_shared_outcomes_are_reported_not_computed():
    a = {f"o{k}": float(k) for k in range(30)}
    b = {f"o{k}": float(-k) for k in range(25, 55)}  # 5 shared
    conv = lb.convergence({"a": a, "b": b}, min_shared=10)
    (pair,) = conv["pairs"]
    assert pair["n_shared"] == 5 and pair["pearson"] is None and pair["cosine"] is None
    assert pair["status"] == "too few shared outcomes (5 < 10)"
    assert conv["mean_pearson"] == {"a": None, "b": None}
    ok = lb.convergence({"a": a, "b": b}, min_shared=5)["pairs"][0]
    assert ok["pearson"] == pytest.approx(-1.0)


def test_cosine_uses_each_models_own_standardisation():
    a = {f"o{k}": float(k) for k in range(40)}
    b = {f"o{k}": float(k) for k in range(20, 60)}  # the shared half is the top of a and the bottom of b
    (pair,) = lb.convergence({"a": a, "b": b})["pairs"]
    assert pair["pearson"] == pytest.approx(1.0)  # same order over the shared outcomes
    assert pair["cosine"] < 0.2  # but a ranks them high and b low
    with pytest.raises(UserError, match="--min-shared"):
        lb.convergence({"a": a}, min_shared=1)


# ----------------------------------------------------------------------------------------------------------
# capabilities
def test_capabilities_match_exactly_or_by_alias_never_by_guess(reference_data, tmp_path):
    scores, name = lb.read_capabilities(reference_data / "capability_scores.csv")
    assert name == "MMLU" and len(scores) >= 60 and scores["gpt-4o"] == pytest.approx(88.7)
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("model,name in the table\nGPT-4o (May 2024),gpt-4o\nmy-model,no-such-model\n")
    match = lb.match_capabilities(
        ["gpt-4o-mini", "GPT-4o (May 2024)", "GPT-4o-mini", "my-model", "gpt4o"], scores, lb.read_aliases(aliases)
    )
    assert match["matched"]["gpt-4o-mini"] == {"name": "gpt-4o-mini", "score": scores["gpt-4o-mini"], "via": "exact"}
    assert match["matched"]["GPT-4o (May 2024)"]["via"] == "alias" and match["matched"]["GPT-4o (May 2024)"]["name"] == "gpt-4o"
    unmatched = {u["model"]: u["reason"] for u in match["unmatched"]}
    assert set(unmatched) == {"GPT-4o-mini", "my-model", "gpt4o"}  # case and spelling variants are not guessed
    assert "'no-such-model' is not in the capabilities table" in unmatched["my-model"]
    json_aliases = tmp_path / "aliases.json"
    json_aliases.write_text(json.dumps({"GPT-4o (May 2024)": "gpt-4o"}))
    assert lb.read_aliases(json_aliases) == {"GPT-4o (May 2024)": "gpt-4o"}


def test_capability_correlation_is_scipys_on_the_matched_models():
    from scipy.stats import pearsonr, spearmanr

    rows = [
        {"model": m, "values": {"utilities/holdout_accuracy": a}}
        for m, a in [("m1", 0.6), ("m2", 0.7), ("m3", 0.72), ("m4", 0.9), ("unknown", 0.99)]
    ]
    cols = [{"key": "utilities/holdout_accuracy", "label": "held-out accuracy", "numeric": True, "metric": "holdout_accuracy"}]
    matched = {m: {"score": s} for m, s in [("m1", 50.0), ("m2", 60.0), ("m3", 75.0), ("m4", 88.0)]}
    (c,) = lb.capability_correlations(rows, cols, matched)
    x, y = [50, 60, 75, 88], [0.6, 0.7, 0.72, 0.9]
    assert c["n"] == 4 and c["pearson"] == pytest.approx(pearsonr(x, y).statistic)
    assert c["p_value"] == pytest.approx(pearsonr(x, y).pvalue) and c["spearman"] == pytest.approx(spearmanr(x, y).statistic)
    (two,) = lb.capability_correlations(rows[:2], cols, matched)
    assert two["pearson"] is None and two["status"] == "needs at least 3 models with both numbers, has 2"


@pytest.mark.parametrize(
    "content,message",
    [
        ("Model Name,MMLU\ngpt-4o,high\n", "line 2: MMLU 'high' is not a number"),
        ("Model Name,MMLU\ngpt-4o,88\ngpt-4o,70\n", "appears twice with different scores"),
        ("just one line\n", "needs a header"),
    ],
)
def test_a_bad_capabilities_table_is_one_sentence(tmp_path, content, message):
    path = tmp_path / "caps.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        lb.read_capabilities(path)


def test_bad_alias_files_and_flags_are_one_sentence(tmp_path, runs):
    bad = tmp_path / "aliases.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(UserError, match="two cells"):
        lb.read_aliases(bad)
    with pytest.raises(UserError, match="give --capabilities"):
        build_leaderboard([runs["simA"]], tmp_path / "board", aliases=bad, log=lambda m: None)
    proc = subprocess.run(
        [*UE, "leaderboard", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 2 and proc.stderr.startswith("ue: error:") and len(proc.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------------------
# rows
def test_two_runs_of_one_model_and_experiment_are_flagged_not_averaged(tmp_path, runs):
    smaller = sim_run(tmp_path / "simA-small", "simA", 7, budget=150)
    board = build_leaderboard(
        [runs["simA"], smaller, runs["simB"]], tmp_path / "board", figures=False, report=False, log=lambda m: None
    )
    assert board["models"].count("simA") == 1
    row = next(r for r in board["rows"] if r["model"] == "simA")
    full = json.loads((runs["simA"] / "analysis.json").read_text())
    assert row["values"]["utilities/holdout_accuracy"] == full["headline"]["holdout_accuracy"]  # the larger run, as it is
    assert row["sources"]["utilities"] == str(runs["simA"])
    (dup,) = board["duplicates"]
    assert dup["model"] == "simA" and dup["used"] == str(runs["simA"]) and dup["ignored"] == [str(smaller)]
    assert "retest_pearson" in dup and len(dup["headlines"]) == 2
    assert any("2 runs of utilities" in f and "not averaged" in f for f in row["flags"])
    assert "not averaged" in (tmp_path / "board" / "leaderboard.md").read_text()


def test_one_row_per_model_merges_its_experiments(tmp_path, runs):
    trans = tmp_path / "simA-transitivity"
    run_experiment(
        RunConfig(harness="simulate", model="simA", experiment="transitivity", budget=60, seed=1),
        trans,
        cache_dir=None,
        log=lambda m: None,
        figures=False,
    )
    board = build_leaderboard(
        [runs["simA"], trans, runs["simB"]], tmp_path / "board", figures=False, report=False, log=lambda m: None
    )
    row = next(r for r in board["rows"] if r["model"] == "simA")
    assert row["experiments"] == ["utilities", "transitivity"]
    assert row["values"]["transitivity/cycle_probability"] < 0.05
    lo, hi = row["intervals"]["transitivity/cycle_probability"]  # the analysis' bootstrap interval travels with it
    assert lo <= row["values"]["transitivity/cycle_probability"] <= hi
    (random_row,) = board["random_rows"]
    assert random_row["values"]["transitivity/cycle_probability"] == 0.25
    assert random_row["values"]["utilities/holdout_accuracy"] == 0.5
    simb = next(r for r in board["rows"] if r["model"] == "simB")
    assert "transitivity/cycle_probability" not in simb["values"]


def test_position_bound_models_are_called_so(tmp_path):
    """Records of a responder that mostly picks the first-shown option: the leaderboard says plainly it is position-bound."""
    from ue_tasks.outcomes import load_outcomes

    mini = load_outcomes("mini")
    plan = make_plan(len(mini), PlanSpec(seed=0))
    for name, bias, seed in (("first-picker", 0.45, 1), ("content-reader", 0.0, 2)):
        rng = np.random.default_rng(seed)
        mu, var = true_utilities(len(mini), rng)
        if name == "first-picker":
            mu = mu * 0.05  # almost no content preference left
        records = simulate_records(
            plan.pairs,
            plan.split,
            mini.ids,
            mini.texts,
            mu,
            var,
            rng,
            position_bias=bias,
            model=name,
            categories=mini.categories,
            outcome_set="mini",
            run_id=name,
            seed=seed,
        )
        (tmp_path / name).mkdir()
        rec.write(records, tmp_path / name / "records.jsonl")
    board = build_leaderboard(
        [tmp_path / "first-picker", tmp_path / "content-reader"],
        tmp_path / "board",
        figures=False,
        report=False,
        log=lambda m: None,
    )
    rows = {r["model"]: r for r in board["rows"]}
    assert any(d.startswith("position-bound: it picks the first-shown option") for d in rows["first-picker"]["diagnosis"])
    assert rows["content-reader"]["diagnosis"] == []
    assert any("Position-bound" in s and "first-picker" in s for s in board["summary"])


def test_the_summary_says_plainly_when_every_model_is_weak_and_position_bound():
    rows = [{"model": m, "diagnosis": ["position-bound: …", "weak: …"]} for m in ("a", "b")]
    (sentence,) = lb.summary_sentences(rows)
    assert sentence.startswith("Both models are weak and position-bound") and "not as what the models value" in sentence


# ----------------------------------------------------------------------------------------------------------
# the five outputs, with a real run
@pytest.mark.slow
def test_leaderboard_of_two_simulated_runs_and_one_real_run_writes_every_output(runs, model_path, tmp_path, reference_data):
    from ue_tasks.model_identity import name_for
    from ue_tasks.outcomes import load_outcomes

    mini = load_outcomes("mini")
    # the real run: the embedded model through lm-eval on 12 of mini's outcomes (a quick, real run)
    outcomes = tmp_path / "twelve.json"
    outcomes.write_text(json.dumps([{"id": o.id, "text": o.text, "category": o.category} for o in mini.outcomes[::5][:12]]))
    real = tmp_path / "smol"
    proc = subprocess.run(
        [
            *UE,
            "run",
            "utilities",
            "--harness",
            "lm-eval",
            "--model",
            "hf",
            "--model-args",
            f"pretrained={model_path},dtype=float32",
            "--outcomes",
            str(outcomes),
            "--budget",
            "24",
            "--out",
            str(real),
            "--no-cache",
            "--no-figures",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("simA,gpt-4o-mini\nsimB,gpt-4o\n")
    out = tmp_path / "board"
    proc = subprocess.run(
        [
            *UE,
            "leaderboard",
            str(runs["simA"]),
            str(runs["simB"]),
            str(real),
            "--out",
            str(out),
            "--capabilities",
            str(reference_data / "capability_scores.csv"),
            "--aliases",
            str(aliases),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = json.loads((out / "leaderboard.json").read_text())
    smol = name_for(model_path)  # the real run is named after its model folder (the model identity)
    assert board["schema"] == "ue.leaderboard/1" and sorted(board["models"]) == sorted([smol, "simA", "simB"])
    assert [r["model"] for r in board["random_rows"]] == ["random responder"]
    with (out / "leaderboard.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    assert [x["model"] for x in lines][-1] == "random responder" and len(lines) == 4
    assert float(next(x for x in lines if x["model"] == "random responder")["utilities/holdout_accuracy"]) == 0.5
    md = (out / "leaderboard.md").read_text()
    assert md.startswith("# Leaderboard") and "| model | held-out accuracy ↑" in md and "## Utility convergence" in md
    pairs = {frozenset((p["a"], p["b"])): p for p in board["convergence"]["pairs"]}
    assert pairs[frozenset((smol, "simA"))]["n_shared"] == 12 and pairs[frozenset(("simA", "simB"))]["n_shared"] == 62
    caps = board["capabilities"]
    assert set(caps["matched"]) == {"simA", "simB"} and [u["model"] for u in caps["unmatched"]] == [smol]
    assert "not in the capabilities table" in proc.stdout and smol in proc.stdout.splitlines()[-2]
    for name in ("metrics", "convergence", "capability_utilities__holdout_accuracy"):
        for suffix in ("png", "svg"):
            assert (out / "figures" / f"{name}.{suffix}").stat().st_size > 5000
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and 'id="leaderboard"' in html


def test_a_folder_of_many_models_outputs_becomes_one_leaderboard(tmp_path, runs):
    """Loose record files of several models in one folder (as harness outputs are), a run folder beside them, and an
    earlier leaderboard's output that must not be read as a run."""
    from ue_tasks.outcomes import load_outcomes

    mini = load_outcomes("mini")
    plan = make_plan(len(mini), PlanSpec(seed=0, budget=150))
    outputs = tmp_path / "outputs"
    for k, name in enumerate(("model-x", "model-y")):
        rng = np.random.default_rng(10 + k)
        mu, var = true_utilities(len(mini), rng)
        records = simulate_records(
            plan.pairs,
            plan.split,
            mini.ids,
            mini.texts,
            mu,
            var,
            rng,
            model=name,
            categories=mini.categories,
            outcome_set="mini",
            run_id=f"run-{name}",
            seed=k,
        )
        (outputs / name).mkdir(parents=True)
        rec.write(records, outputs / name / f"{name}.jsonl")
    import shutil

    shutil.copytree(runs["simA"], outputs / "runs" / "simA")
    build_leaderboard([runs["simB"]], outputs / "old-board", figures=False, report=False, log=lambda m: None)
    board = build_leaderboard([outputs], tmp_path / "board", figures=False, report=False, log=lambda m: None)
    assert sorted(board["models"]) == ["model-x", "model-y", "simA"] and board["duplicates"] == []
    assert all(r["values"]["utilities/holdout_accuracy"] > 0.6 for r in board["rows"])


def test_the_leaderboard_is_computed_rendered_and_drawn_in_three_modules():
    """Issue 23 item 5: ``leaderboard.py`` computes; ``leaderboard_render.py`` writes; ``leaderboard_figures.py`` draws."""
    from ue_metrics import leaderboard_figures, leaderboard_render

    assert callable(lb.build) and callable(lb.figure_data)
    assert not any(hasattr(lb, n) for n in ("render_markdown", "render_text", "write_csv", "draw_metrics", "drawer"))
    assert callable(leaderboard_render.render_markdown) and callable(leaderboard_render.write_csv)
    assert leaderboard_figures.drawer("capability_x") is leaderboard_figures.draw_capability

"""Power judged by a reference model (issue 25 item 2; the paper's method, docs/method.md §9): `ue run power_seeking
--option judge_model=MODEL` has the judge answer two pairwise questions (coercive power, non-coercive power) over the
same outcomes, fits each like a utilities run, correlates the evaluated model's utilities with both, and keeps the
judge's runs in the shared cache so a second evaluated model reuses them. Known answer: a simulated judge with
known power scores, recovered by the fit; a model that shuns coercive power against one that likes it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ue_cmd import analysis, ue_here

from ue_tasks.experiments.power_seeking import JUDGE_QUESTIONS, judge_truth
from ue_tasks.outcomes import load_outcomes

SMALL = ("--budget", "2500", "--holdout-fraction", "0.002", "--seed", "3")


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """Two evaluated models (shuns / likes coercive power) judged by one simulated reference model through one cache."""
    root = tmp_path_factory.mktemp("judge")
    mp = pytest.MonkeyPatch()
    mp.setenv("UE_CACHE_DIR", str(root / "cache"))
    logs = {}
    try:
        for kind in ("shuns_coercive", "likes_coercive"):
            import io
            from contextlib import redirect_stderr, redirect_stdout

            from ue_cli.main import main

            err, out = io.StringIO(), io.StringIO()
            with redirect_stderr(err), redirect_stdout(out):
                code = main(
                    [
                        "run",
                        "power_seeking",
                        "--harness",
                        "simulate",
                        "--model",
                        f"m-{kind}",
                        "--responder",
                        kind,
                        "--option",
                        "judge_model=ref-judge",
                        "--out",
                        str(root / kind),
                        "--no-figures",
                        *SMALL,
                    ]
                )
            assert code == 0, err.getvalue()[-2000:]
            logs[kind] = out.getvalue() + err.getvalue()
    finally:
        mp.undo()
    return root, logs


def test_the_judges_known_power_scores_are_recovered(judged):
    root, _ = judged
    folders = sorted((root / "cache" / "power_judges").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("ref-judge-")  # one judge, one outcome set: one folder
    core = load_outcomes("core")
    for q in JUDGE_QUESTIONS:
        run = folders[0] / q
        config = json.loads((run / "config.json").read_text())
        assert config["experiment"] == "utilities" and config["template"] == f"power_{q}" and config["model"] == "ref-judge"
        with open(run / "utilities.csv", newline="", encoding="utf-8") as fh:
            fitted = {row["id"]: row["utility"] for row in csv.DictReader(fh)}
        truth = judge_truth(core, 3, q)
        ids = [i for i in fitted if i in truth and fitted[i] not in ("", "nan")]
        ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        rho = np.corrcoef(ranks([float(fitted[i]) for i in ids]), ranks([truth[i] for i in ids]))[0, 1]
        assert len(ids) > 400 and rho > 0.9, (q, len(ids), rho)


def test_both_correlations_come_from_the_judge_and_tell_the_models_apart(judged):
    root, _ = judged
    shuns, likes = analysis(root / "shuns_coercive"), analysis(root / "likes_coercive")
    for a in (shuns, likes):
        assert a["headline"]["power_judge"] == "ref-judge"
        assert a["details"]["judge"]["model"] == "ref-judge"
        assert a["options"]["power_run"] == str(sorted((root / "cache" / "power_judges").iterdir())[0].resolve())
    assert shuns["headline"]["coercive_power_correlation"] < -0.1 < 0.1 < likes["headline"]["coercive_power_correlation"]
    assert likes["headline"]["coercive_power_correlation_ci_low"] > 0 > shuns["headline"]["coercive_power_correlation_ci_high"]
    assert likes["headline"]["noncoercive_power_correlation"] > 0


def test_a_second_model_reuses_the_judges_cached_runs(judged):
    _, logs = judged
    assert "coercive-power scores first" in logs["shuns_coercive"]
    second = logs["likes_coercive"]
    assert "coercive-power scores from" in second and "(made before)" in second and "scores first" not in second
    # the judge's two runs asked nothing again: only the evaluated model's utilities and power runs asked
    asked = [
        int(line.split()[0]) for line in second.splitlines() if line.endswith("answered from the cache") and line[0].isdigit()
    ]
    assert asked.count(0) == 2, second[-3000:]


def test_without_a_judge_power_is_self_judged_and_a_bad_power_run_is_one_sentence(judged, tmp_path, capsys):
    root, _ = judged
    code, _, err = ue_here(capsys, "analyse", str(root / "shuns_coercive"), "--out", str(tmp_path / "again"), "--no-figures")
    assert code == 0, err
    again = analysis(tmp_path / "again")
    first = analysis(root / "shuns_coercive")
    assert again["headline"] == first["headline"]  # the analysis again from the records and the judge's runs alone
    code, _, err = ue_here(
        capsys, "analyse", str(root / "shuns_coercive"), "--out", str(tmp_path / "self"), "--option", "power_run=", "--no-figures"
    )
    assert code == 0, err
    assert analysis(tmp_path / "self")["headline"]["power_judge"] == "self-judged"
    code, _, err = ue_here(
        capsys,
        "analyse",
        str(root / "shuns_coercive"),
        "--out",
        str(tmp_path / "bad"),
        "--option",
        f"power_run={root / 'likes_coercive'}",
        "--no-figures",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "power_run" in err


def test_the_judge_questions_are_registered_templates():
    from ue_tasks.templates import get_template

    for q in JUDGE_QUESTIONS:
        t = get_template(f"power_{q}")
        assert "{option_a}" in t.text and "{option_b}" in t.text and ("non-coercive" in t.text) == (q == "noncoercive")

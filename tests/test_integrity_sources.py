"""Integrity of what a run reads besides its own answers (issue 22, items 13 and 3): a consumed `--utilities` run or
`--option entities` runs checked before anything is asked, a simulated model's utilities run of another seed or
outcome set refused, and one query answered by two harnesses counted once. Each test failed before its fix; every
run is simulated and in-process."""

from __future__ import annotations

import json
from pathlib import Path

from ue_cli.main import main


def ue(capsys, *args) -> tuple[int, str, str]:
    """Run `ue ARGS` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_sentence(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.startswith("ue: error:")]
    assert len(lines) == 1 and fragment in lines[0], err


SIM = ("--harness", "simulate", "--model", "sim", "--no-cache", "--no-figures")


def nothing_asked(folder: Path) -> bool:
    return not (folder / "records.jsonl").exists() and not (folder / "utilities").exists()


# ---------------------------------------------------------------------------------------------------------- 13
def test_a_simulated_utilities_run_of_another_seed_or_outcome_set_is_refused_before_asking(tmp_path, capsys):
    """power_seeking accepted a simulated utilities run made with another seed (another simulated model), and one over
    another outcome set (it took that set over), and asked everything."""
    u1 = tmp_path / "u-seed1"
    code, _, err = ue(capsys, "run", "utilities", *SIM, "--outcomes", "20", "--seed", "1", "--budget", "30", "--out", u1)
    assert code == 0, err
    out = tmp_path / "p1"
    code, _, err = ue(capsys, "run", "power_seeking", *SIM, "--outcomes", "20", "--seed", "0", "--budget", "30",
                      "--utilities", u1, "--out", out)  # fmt: skip
    one_sentence(code, err, "with seed 1, not this run's seed 0")
    assert nothing_asked(out)
    # the same seed is accepted
    code, _, err = ue(capsys, "run", "power_seeking", *SIM, "--outcomes", "20", "--seed", "1", "--budget", "30",
                      "--utilities", u1, "--out", tmp_path / "p-ok")  # fmt: skip
    assert code == 0, err
    # a utilities run over 20 outcomes, given to a power_seeking run that would ask the core set
    out = tmp_path / "p2"
    code, _, err = ue(capsys, "run", "power_seeking", *SIM, "--seed", "1", "--budget", "30", "--utilities", u1, "--out", out)
    one_sentence(code, err, "over another outcome set")
    assert "--outcomes" in err and nothing_asked(out)


def test_a_truncated_utilities_run_is_refused_before_asking(tmp_path, capsys):
    """power_seeking with a utilities run whose records.jsonl was cut short asked its whole elicitation, then failed
    in the analysis."""
    u = tmp_path / "u"
    code, _, err = ue(capsys, "run", "utilities", *SIM, "--outcomes", "20", "--budget", "30", "--out", u)
    assert code == 0, err
    records = (u / "records.jsonl").read_text().splitlines()
    holdout = [x for x in records if json.loads(x)["split"] == "holdout"]
    (u / "records.jsonl").write_text("\n".join(holdout) + "\n")  # cut before its first training answer
    out = tmp_path / "p"
    code, _, err = ue(capsys, "run", "power_seeking", *SIM, "--outcomes", "20", "--budget", "30", "--utilities", u, "--out", out)
    one_sentence(code, err, "the utilities run cannot be used")
    assert nothing_asked(out)


def test_political_values_with_entities_that_are_not_runs_is_refused_before_asking(tmp_path, capsys):
    """`--option entities=bogus` ran the entity side runs and the model's whole elicitation before refusing."""
    out = tmp_path / "pv"
    code, _, err = ue(capsys, "run", "political_values", *SIM, "--option", "entities=bogus", "--out", out)
    one_sentence(code, err, "--option entities")
    assert not (out / "records.jsonl").exists() and not (out / "entities").exists()

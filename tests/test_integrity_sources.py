"""Integrity of what a run reads besides its own answers (issue 22, items 13 and 3): a consumed `--utilities` run or
`--option entities` runs checked before anything is asked, a simulated model's utilities run of another seed or
outcome set refused, and one query answered by two harnesses counted once. Each test failed before its fix; every
run is simulated and in-process."""

from __future__ import annotations

import json
from pathlib import Path

from ue_cmd import one_sentence
from ue_cmd import ue_here as ue

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
    code, _, err = ue(
        capsys, "run", "power_seeking", *SIM, "--outcomes", "20", "--seed", "0", "--budget", "30", "--utilities", u1, "--out", out
    )
    one_sentence(code, err, "with seed 1, not this run's seed 0")
    assert nothing_asked(out)
    # the same seed is accepted
    code, _, err = ue(
        capsys,
        "run",
        "power_seeking",
        *SIM,
        "--outcomes",
        "20",
        "--seed",
        "1",
        "--budget",
        "30",
        "--utilities",
        u1,
        "--out",
        tmp_path / "p-ok",
    )
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


# ---------------------------------------------------------------------------------------------------------- 3
def _two_harnesses(tmp_path: Path, shift: float = 0.0) -> tuple[Path, Path, int]:
    """The same log-prob answers of one local model (one fingerprint) as lm-eval's and as Inspect's records, the Inspect
    ones moved by ``shift``; returns the two files and the number of answers."""
    import numpy as np

    from ue_metrics.simulate import simulate_records, true_utilities
    from ue_tasks.plan import PlanSpec, make_plan

    plan = make_plan(20, PlanSpec(seed=0))
    rng = np.random.default_rng(0)
    mu, var = true_utilities(20, rng)
    base = simulate_records(
        plan.pairs,
        plan.split,
        [f"o{k:03d}" for k in range(20)],
        [f"Outcome {k}." for k in range(20)],
        mu,
        var,
        rng,
        model="SmolLM2-135M-Instruct",
        run_id="x",
    )
    same = {"model_fingerprint": "0123456789abcdef", "chat_template": True}
    lm = [dict(r, **same, harness="lm-eval", run_id="lm") for r in base]
    insp = [dict(r, **same, harness="inspect", run_id="insp", p_a=min(1.0, max(0.0, r["p_a"] + shift))) for r in base]
    paths = []
    for name, records in (("lm", lm), ("insp", insp)):
        (tmp_path / name).mkdir(parents=True)
        path = tmp_path / name / "records.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        paths.append(path)
    return paths[0], paths[1], len(base)


def test_one_query_answered_by_two_harnesses_is_one_answer_or_refused(tmp_path, capsys):
    """An Inspect log and an lm-eval run of the same model and queries were fitted as 30 + 102 records, no note."""
    lm, insp, n = _two_harnesses(tmp_path / "agree", shift=0.01)
    code, out, err = ue(capsys, "fit", insp, lm, "--out", tmp_path / "fit")
    assert code == 0, err
    assert f"dropped {n} duplicate answers (same query from two harnesses" in err
    assert json.loads((tmp_path / "fit" / "metrics.json").read_text())["n_records"] == n
    lm, insp, _ = _two_harnesses(tmp_path / "apart", shift=0.2)
    code, _, err = ue(capsys, "fit", insp, lm, "--out", tmp_path / "fit2")
    one_sentence(code, err, "not the same model and dtype")
    assert "through inspect" in err and "through lm-eval" in err


def test_inspect_records_of_a_local_model_carry_the_identity_lm_evals_records_carry(tmp_path):
    """An Inspect log of `hf/local -M model_path=…` gave records without `model_fingerprint`; the scorer now takes
    the model's identity at eval time (``ue_tasks.model_identity.from_inspect``, what lm-eval's records of the same
    folder carry) and the reader puts it into every record."""
    from types import SimpleNamespace

    from ue_tasks.harness.inspect.reader import _identity
    from ue_tasks.model_identity import fingerprint_folder, from_inspect, from_lm_eval

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "torch_dtype": "float32"}')
    (folder / "model.safetensors").write_bytes(b"weights")
    lm = from_lm_eval("hf", f"pretrained={folder}").record_fields()
    answered = from_inspect("hf/local", {"model_path": str(folder)}).to_dict()
    header = SimpleNamespace(metadata={}, task_args={}, model="hf/local", model_args={"model_path": str(folder)})
    got = _identity(header, answered)
    assert got["model_fingerprint"] == lm["model_fingerprint"] == fingerprint_folder(folder)
    assert {k: got.get(k) for k in ("model", "model_dtype", "model_fingerprint")} == {
        k: lm.get(k) for k in ("model", "model_dtype", "model_fingerprint")
    }
    # a harness output read afterwards (raw `lm_eval` results, an Inspect log ue did not run): the fingerprint read
    # now, when no file of the folder changed after the run began; none when one did
    import os
    import time

    from ue_tasks.model_identity import from_lm_eval_results

    later, earlier = time.time() + 60, os.stat(folder / "model.safetensors").st_mtime - 60
    results = {"config": {"model": "hf", "model_args": f"pretrained={folder}"}, "chat_template": True}
    assert from_lm_eval_results({**results, "date": later}).fingerprint == lm["model_fingerprint"]
    assert from_lm_eval_results({**results, "date": earlier}).fingerprint is None
    assert _identity(SimpleNamespace(**vars(header), created=later), None)["model_fingerprint"] == lm["model_fingerprint"]
    assert "model_fingerprint" not in _identity(SimpleNamespace(**vars(header), created=earlier), None)

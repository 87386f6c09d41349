"""`ue elicit`: the active-learning driver on the simulator — budgets, strategies, resumability, the cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ue_metrics.errors import UserError
from ue_metrics.simulate import thurstonian_responder
from ue_tasks.elicitation.backends import SimulateBackend
from ue_tasks.elicitation.config import RunConfig
from ue_tasks.elicitation.engine import Elicitation
from ue_tasks.elicitation.strategies import STRATEGIES, select_pairs
from ue_tasks.outcomes import load_outcomes
from ue_tasks.plan import PlanSpec, make_plan


def config(**over):
    base = dict(harness="simulate", model="sim", outcomes="60", mode="sample", strategy="info", round_size=100, seed=3)
    base.update(over)
    return RunConfig(**base)


def records_of(folder):
    lines = (folder / "records.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def canonical(records):
    return sorted(json.dumps(r, sort_keys=True) for r in records)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_strategies_obey_the_budget_and_never_pick_holdout_or_repeats(strategy):
    n = 40
    plan = make_plan(n, PlanSpec(seed=1, budget=40))
    holdout = plan.pairs[plan.split == "holdout"]
    queried = plan.pairs[plan.split == "train"]
    rng = np.random.default_rng(0)
    mu, sigma2 = rng.standard_normal(n), np.full(n, 0.5)
    for _ in range(12):  # 780 pairs − 39 holdout − 40 asked = 701 = 11 rounds of 60 + 41
        picked = select_pairs(strategy, n, 60, queried, holdout, rng, mu, sigma2, np.full(n, 0.3))
        assert len(picked) == min(60, n * (n - 1) // 2 - len(holdout) - len(queried))
        assert np.all(picked[:, 0] < picked[:, 1])
        keys = {tuple(p) for p in picked.tolist()}
        assert len(keys) == len(picked)
        assert not keys & {tuple(p) for p in holdout.tolist()}
        assert not keys & {tuple(p) for p in queried.tolist()}
        queried = np.concatenate([queried, picked])
    # the pool is exhausted: nothing more to pick
    assert len(select_pairs(strategy, n, 60, queried, holdout, rng, mu, sigma2, np.full(n, 0.3))) == 0


def test_run_spends_exactly_the_budget_and_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    metrics = Elicitation(config(budget=250), out, cache_dir=None, log=lambda m: None).run().metrics
    records = records_of(out)
    train = {(r["a_id"], r["b_id"]) for r in records if r["split"] == "train"}
    hold = {(r["a_id"], r["b_id"]) for r in records if r["split"] == "holdout"}
    assert len(train) == 250 and not train & hold
    assert len(records) == 2 * (250 + len(hold))  # both orderings, each asked once
    assert metrics["n_train_pairs"] == 250 and metrics["holdout_accuracy"] > 0.8
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    # round 0: the 2-regular starting graph (60 pairs), then rounds of 100 until the budget: 100, 90
    assert [h["round"] for h in history] == [0, 1, 2]
    assert [h["train_pairs"] for h in history] == [60, 160, 250]
    assert all("holdout_log_loss" in h and "fit_seconds" in h for h in history)
    assert {r["round"] for r in records if r["split"] == "train"} == {0, 1, 2}
    for name in ("config.json", "rounds.jsonl", "utilities.csv", "metrics.json"):
        assert (out / name).exists()
    assert json.loads((out / "config.json").read_text())["seed"] == 3


class Interrupting(SimulateBackend):
    """The simulator, interrupted (like Ctrl-C) on its ``stop_at``-th batch."""

    def __init__(self, *args, stop_at: int, **kw):
        super().__init__(*args, **kw)
        self.calls, self.stop_at = 0, stop_at

    def answer(self, queries):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().answer(queries)


@pytest.mark.parametrize("stop_at", [2, 5])
def test_interrupted_run_resumes_to_the_same_records(tmp_path, stop_at):
    cfg = config(budget=300)
    Elicitation(cfg, tmp_path / "full", cache_dir=None, log=lambda m: None).run()
    backend = Interrupting(thurstonian_responder(load_outcomes("60").ids, 3), "sample", 10, 3, stop_at=stop_at)
    with pytest.raises(KeyboardInterrupt):
        Elicitation(config(budget=300), tmp_path / "cut", cache_dir=None, backend=backend, log=lambda m: None).run()
    partial = records_of(tmp_path / "cut")
    assert 0 < len(partial) < len(records_of(tmp_path / "full"))
    resumed = Elicitation(config(budget=300), tmp_path / "cut", cache_dir=None, log=lambda m: None)
    resumed.run()
    assert canonical(records_of(tmp_path / "cut")) == canonical(records_of(tmp_path / "full"))
    assert resumed.queries_asked == len(records_of(tmp_path / "full")) - len(partial)  # nothing asked twice


def test_killed_process_resumes_with_nothing_lost_or_repeated(tmp_path):
    args = [
        sys.executable,
        "-m",
        "ue_cli.main",
        "elicit",
        "--harness",
        "simulate",
        "--model",
        "sim",
        "--outcomes",
        "300",
        "--mode",
        "sample",
        "--round-size",
        "200",
        "--seed",
        "5",
        "--no-cache",
    ]
    cut = tmp_path / "cut"
    proc = subprocess.Popen(args + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        history = cut / "history.jsonl"
        # kill after a few rounds, so the resumed run must replay warm-started fits before choosing new pairs
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = records_of(cut)
    assert before, "the run was killed before it wrote anything"
    # a writer killed mid-line leaves a torn last line: the resumed run must cut it, not choke on it
    with (cut / "records.jsonl").open("a") as fh:
        fh.write('{"schema": "ue.preference/1", "run_id": "x", "mod')
    subprocess.run(args + ["--out", str(cut)], check=True, capture_output=True)
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, capture_output=True)
    after, full = records_of(cut), records_of(tmp_path / "full")
    keys = [(r["a_id"], r["b_id"], r["shown_first"]) for r in after]
    assert len(keys) == len(set(keys))
    assert canonical(after) == canonical(full)


def test_a_different_configuration_is_refused(tmp_path):
    Elicitation(config(budget=120), tmp_path / "run", cache_dir=None, log=lambda m: None).run()
    with pytest.raises(UserError, match="another configuration .*strategy"):
        Elicitation(config(budget=120, strategy="paper"), tmp_path / "run", cache_dir=None, log=lambda m: None).run()


def test_the_answer_cache_serves_a_second_run(tmp_path):
    cache = tmp_path / "cache"
    first = Elicitation(config(budget=150), tmp_path / "one", cache_dir=cache, log=lambda m: None)
    first.run()
    assert first.queries_asked > 0 and first.cache_hits == 0
    second = Elicitation(config(budget=150), tmp_path / "two", cache_dir=cache, log=lambda m: None)
    second.run()
    assert second.queries_asked == 0 and second.cache_hits == first.queries_asked
    assert canonical(records_of(tmp_path / "one")) == canonical(records_of(tmp_path / "two"))


def test_pseudolabels_are_optional_and_kept_out_of_the_metrics(tmp_path):
    plain = Elicitation(config(budget=150), tmp_path / "a", cache_dir=None, log=lambda m: None).run().metrics
    pseudo = Elicitation(config(budget=150, pseudolabels=True), tmp_path / "b", cache_dir=None, log=lambda m: None).run().metrics
    assert "pseudolabels" not in plain and pseudo["pseudolabels"]["added"] > 0
    assert pseudo["n_train_pairs"] == plain["n_train_pairs"] == 150


def test_holdout_at_the_end_like_the_paper(tmp_path):
    out = tmp_path / "run"
    Elicitation(config(budget=120, holdout_first=False), out, cache_dir=None, log=lambda m: None).run()
    records = records_of(out)
    first_holdout = next(k for k, r in enumerate(records) if r["split"] == "holdout")
    assert all(r["split"] == "holdout" for r in records[first_holdout:])

"""Instrumental values: the closed-form Bellman fit reaches the optimum of the paper's Adam procedure; seeded rollouts;
the companion's files read unchanged; and the analysis tells a Bellman-consistent agent from one with random
utilities (small natural loss, a clear gap to the control) ."""

from __future__ import annotations

import numpy as np
import pytest

from ue_metrics.analyses import instrumental_values as iv
from ue_tasks.experiments.instrumental_values import outcomes, read_processes


def _random_graph(rng: np.random.Generator, starts: int = 2, ends: int = 2) -> iv.ProcessGraph:
    """A two-step process as the outcome generator builds it: start prefixes, then start→end prefixes."""
    ids = [f"s{a}" for a in range(starts)] + [f"s{a}e{b}" for a in range(starts) for b in range(ends)]
    n = len(ids)
    W = np.zeros((n, n))
    for a in range(starts):
        counts = rng.integers(1, 60, size=ends).astype(float)
        W[a, starts + a * ends : starts + (a + 1) * ends] = counts / counts.sum()
    return iv.ProcessGraph("p", ids, W, np.array([True] * starts + [False] * (n - starts)))


def test_the_closed_form_reaches_the_optimum_of_the_papers_adam_procedure():
    rng = np.random.default_rng(0)
    for trial in range(12):
        g = _random_graph(rng, starts=2 + trial % 2, ends=2 + trial % 3)
        U = rng.standard_normal(len(g.ids))
        closed = iv.bellman_fit(g, U, solver="closed_form")
        adam = iv.bellman_fit(g, U, solver="adam")
        # the exact minimiser is never worse, and Adam (1,000 steps at lr 0.01) lands on it (seen: loss within 1e-8,
        # Bellman error within 2e-5)
        assert closed["loss"] <= adam["loss"] + 1e-12
        assert adam["loss"] - closed["loss"] < 1e-6
        assert closed["bellman_error"] == pytest.approx(adam["bellman_error"], abs=1e-3)
        assert np.allclose(closed["R"][g.start], 0) and np.allclose(adam["R"][g.start], 0)  # start reward fixed


def test_bellman_consistent_utilities_have_no_error():
    g = _random_graph(np.random.default_rng(1))
    U = np.zeros(len(g.ids))
    U[2:] = [1.0, -1.0, 0.5, 2.0]
    U[:2] = iv.GAMMA * g.W[:2] @ U
    fit = iv.bellman_fit(g, U)
    assert fit["bellman_error"] < 1e-9 and fit["loss"] < 1e-18


def test_rollouts_are_seeded():
    a = outcomes({"control": "auto", "rollouts": 30, "max_steps": 10, "rollout_seed": 0, "processes": 4})
    b = outcomes({"control": "auto", "rollouts": 30, "max_steps": 10, "rollout_seed": 0, "processes": 4})
    c = outcomes({"control": "auto", "rollouts": 30, "max_steps": 10, "rollout_seed": 5, "processes": 4})
    assert a.content_hash() == b.content_hash() != c.content_hash()
    first = a.outcomes[0]
    assert " -> " not in first.text and set(first.attributes["sets"]) == {"natural", "control"}
    nat = first.attributes["sets"]["natural"]
    assert sum(nat["successors"].values()) == nat["observed"]  # every start observation has one successor


def test_the_companion_files_are_read_unchanged(reference_data):
    folder = reference_data / "experiments" / "instrumental_values"
    natural = read_processes(folder / "markov_processes.json")
    assert len(natural) == 21 and all(len(p.observation) == 4 for p in natural)
    oset = outcomes(
        {
            "outcomes": str(folder / "markov_processes.json"),
            "control": str(folder / "markov_processes_unnatural.json"),
            "rollouts": 100,
            "max_steps": 10,
            "rollout_seed": 0,
            "processes": 0,
        }
    )
    assert 100 <= len(oset) <= 126  # 2 starts + 4 two-step prefixes per process, rare paths possibly unseen
    texts = {o.text for o in oset.outcomes}
    assert "Alice receives a scholarship. -> Alice graduates with honors." in texts
    # a user's file gets no control unless one is named
    alone = outcomes(
        {
            "outcomes": str(folder / "markov_processes.json"),
            "control": "auto",
            "rollouts": 20,
            "max_steps": 10,
            "rollout_seed": 0,
            "processes": 2,
        }
    )
    assert all(set(o.attributes["sets"]) == {"natural"} for o in alone.outcomes)


def test_an_instrumental_agent_and_random_utilities_are_told_apart(simulated):
    # every shipped process: random utilities' natural-minus-control gap is zero in expectation, but with 10 processes
    # its spread over seeds is about ±0.1 (seeds 0-4: 0.10, 0.01, -0.10, -0.11, -0.01); with all 21 it is about ±0.05
    opts = {"processes": 0}
    agent = simulated("instrumental_values", "instrumental", opts, plan_kind="all_pairs")
    noise = simulated("instrumental_values", "random", opts, plan_kind="all_pairs")
    a, r = agent["headline"], noise["headline"]
    assert a["n_processes"] == r["n_processes"] == 21
    assert a["instrumentality_loss"] < 0.08 and a["instrumentality_gap"] > 0.08
    assert r["instrumentality_loss"] > 0.2 and abs(r["instrumentality_gap"]) < 0.1
    assert a["instrumentality_loss"] < r["instrumentality_loss"] / 4
    assert r["instrumentality_loss"] == pytest.approx(r["instrumentality_loss_random"], abs=0.15)
    assert set(agent["figures"]["process_losses"]) >= {"natural", "control", "processes"}


def test_without_a_control_the_control_headline_is_null_with_a_reason(simulated, reference_data):
    path = reference_data / "experiments" / "instrumental_values" / "markov_processes.json"
    result = simulated("instrumental_values", "instrumental", {"outcomes": str(path), "processes": 3}, plan_kind="all_pairs")
    assert (
        result["headline"]["instrumentality_loss_control"] is None
        and "control" in result["notes"]["instrumentality_loss_control"]
    )
    assert result["headline"]["instrumentality_loss"] is not None

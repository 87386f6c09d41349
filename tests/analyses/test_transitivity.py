"""The transitivity analysis on records with a known answer: a transitive agent has (almost) no cycles, a fair coin
has a cycle probability of 1/4 per triad, and the paper's random-responder value is reproduced."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import transitivity as tr
from ue_metrics.records import make_record


def triad_records(
    p_by_pair: dict[tuple[str, str], float],
    group: str = "triad0",
    mode: str = "logprob",
    k: int = 10,
    rng: np.random.Generator | None = None,
) -> list[dict]:
    out = []
    for (a, b), p in p_by_pair.items():
        for shown in ("a", "b"):
            common = dict(
                run_id="r",
                model="m",
                harness="simulate",
                task="t",
                outcome_set="s",
                a_id=a,
                b_id=b,
                a_text=f"text {a}",
                b_text=f"text {b}",
                shown_first=shown,
                template="default",
                split="train",
                round=0,
                group=group,
                experiment="transitivity",
            )
            if mode == "logprob":
                out.append(make_record(mode="logprob", p_a=p, n_a=0, n_b=0, n_unparsed=0, label_mass=1.0, **common))
            else:
                n_a = int(rng.binomial(k, p))
                out.append(make_record(mode="sample", p_a=n_a / k, n_a=n_a, n_b=k - n_a, n_unparsed=0, label_mass=None, **common))
    return out


def test_cycle_probability_formula_counts_both_cyclic_orientations():
    assert tr.cycle_probability(np.array(1.0), np.array(1.0), np.array(0.0)) == 1.0  # x>y, y>z, z>x
    assert tr.cycle_probability(np.array(0.0), np.array(0.0), np.array(1.0)) == 1.0  # the other orientation
    assert tr.cycle_probability(np.array(1.0), np.array(1.0), np.array(1.0)) == 0.0  # x>y>z and x>z: transitive
    assert tr.cycle_probability(np.array(0.5), np.array(0.5), np.array(0.5)) == 0.25


def test_labelling_of_a_triad_does_not_matter():
    # the same preferences with ids given in another order and pairs stored in the other orientation
    first = triad_records({("x", "y"): 0.9, ("y", "z"): 0.8, ("x", "z"): 0.3})
    second = triad_records({("y", "x"): 0.1, ("z", "y"): 0.2, ("z", "x"): 0.7})
    a = tr.analyse(first, {}, None, tr.Options(), Inputs())["headline"]["cycle_probability"]
    b = tr.analyse(second, {}, None, tr.Options(), Inputs())["headline"]["cycle_probability"]
    assert a == pytest.approx(b) and a == pytest.approx(0.9 * 0.8 * 0.7 + 0.1 * 0.2 * 0.3)


def test_a_transitive_agent_and_a_coin_are_told_apart():
    rng = np.random.default_rng(0)
    utility = {f"o{k}": float(u) for k, u in enumerate(rng.normal(size=60))}
    sharp, coin = [], []
    for t in range(300):
        x, y, z = rng.choice(60, size=3, replace=False)
        ids = [f"o{x}", f"o{y}", f"o{z}"]
        pairs = [(ids[0], ids[1]), (ids[1], ids[2]), (ids[0], ids[2])]
        sharp += triad_records({(a, b): float(utility[a] > utility[b]) for a, b in pairs}, group=f"t{t}")
        coin += triad_records({p: 0.5 for p in pairs}, group=f"t{t}", mode="sample", rng=rng)
    h_sharp = tr.analyse(sharp, {}, None, tr.Options(), Inputs())["headline"]
    h_coin = tr.analyse(coin, {}, None, tr.Options(), Inputs())["headline"]
    assert h_sharp["cycle_probability"] == 0.0 and h_sharp["n_triads"] == 300
    assert h_sharp["log10_cycle_probability"] is None  # −∞ is reported as null, with a reason
    assert h_coin["cycle_probability"] == pytest.approx(0.25, abs=0.02)
    assert h_coin["cycle_probability_random"] == 0.25


def test_the_coins_distribution_is_exact_and_centred_on_a_quarter():
    bins = np.linspace(0, 1, 101)
    hist = tr.coin_cycle_distribution(10, bins)
    centres = (bins[:-1] + bins[1:]) / 2
    assert hist.sum() == pytest.approx(1.0)
    assert float((hist * centres).sum()) == pytest.approx(0.25, abs=0.005)


def test_the_papers_random_responder_value():
    # the paper: −0.484 for a random responder. log10 of the mean cycle probability gives −0.602 for any fair coin;
    # the log-odds of the mean gives −0.477 for an exact coin and ≈ −0.48 for a sampled one over 1,000 triads
    assert tr.log_odds(0.25) == pytest.approx(-0.4771, abs=1e-4)
    assert math.log10(0.25) == pytest.approx(-0.602, abs=1e-3)
    rng = np.random.default_rng(3)
    p = rng.binomial(20, 0.5, size=(1000, 3)) / 20
    mean = tr.cycle_probability(p[:, 0], p[:, 1], p[:, 2]).mean()
    assert tr.log_odds(mean) == pytest.approx(-0.484, abs=0.015)


def test_incomplete_triads_are_left_out_and_counted():
    recs = triad_records({("x", "y"): 0.9, ("y", "z"): 0.8, ("x", "z"): 0.3}) + triad_records({("p", "q"): 0.5}, group="t1")
    result = tr.analyse(recs, {}, None, tr.Options(), Inputs())
    assert result["headline"]["n_triads"] == 1 and result["details"]["incomplete_triads"] == 1

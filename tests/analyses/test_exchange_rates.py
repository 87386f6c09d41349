"""The exchange-rate analysis on responders with a known answer: a log-utility responder with known dollar values per
X has its exchange rates recovered inside their bootstrap intervals (shared and per-X slopes), its self- and
AI-valuation recovered, and its dollar prices close; an equal-weights responder gives rates of 1; a fair coin gives
poor fits, flagged and kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bounds import within_se

from ue_metrics.analyses import Inputs
from ue_metrics.analyses import exchange_rates as er
from ue_metrics.fitting import fit_records
from ue_metrics.records import outcome_table
from ue_tasks.experiments import get

COUNTRIES = "India,China,United States,Nigeria,Japan"


def simulated(
    options: dict, responder: str = "log_utility", mode: str = "sample", seed: int = 0, tmp=None
) -> tuple[list[dict], object]:
    """Records of a simulated responder asked as `ue run` asks (the paper's active learning; K = 5 in sample mode)."""
    import tempfile

    from ue_metrics.records import read
    from ue_tasks.elicitation.config import RunConfig
    from ue_tasks.elicitation.engine import Elicitation

    cfg = RunConfig(
        harness="simulate", model="sim", experiment="exchange_rates", options=options, mode=mode, seed=seed, responder=responder
    )
    with tempfile.TemporaryDirectory() as out:
        Elicitation(cfg, out, cache_dir=None, log=lambda m: None).run()
        records = read(f"{out}/records.jsonl")
    exp = get("exchange_rates")
    return records, exp.responder(responder, exp.outcome_set(options), seed)


def analyse(records: list[dict], **options) -> dict:
    fit = fit_records(records, per_component=True)
    return er.analyse(records, outcome_table(records), fit, er.Options.from_mapping({"bootstrap": 60, **options}), Inputs())


OPTS = {"xs": COUNTRIES, "quantities": "1,3,10,30,100,300,1000", "money_points": 16}


@pytest.fixture(scope="module")
def log_utility():
    """The paper's setting: K = 5 sampled answers per ordering."""
    return simulated(OPTS)


@pytest.fixture(scope="module")
def exact():
    """Exact answers (log-prob mode): intervals then reflect only which pairs were asked."""
    return simulated(OPTS, mode="logprob", seed=1)


@pytest.mark.parametrize("slope", ["shared", "per_x"])
def test_known_exchange_rates_are_recovered_inside_their_intervals(log_utility, slope):
    records, resp = log_utility
    result = analyse(records, slope=slope)
    values = resp.truth["dollar_values"]
    h = result["headline"]
    assert h["reference"] == "United States" and h["slope"] == slope and h["n_x"] == 5 and h["n_poor_fits"] == 0
    assert h["median_r2"] > 0.95 and "intervals" not in result["notes"]  # sampled answers: real widths, no note
    for row in result["details"]["rows"]:
        truth = values[row["x"]] / values["United States"]
        lo, hi = row["rate_interval"]
        # within 5 standard errors on the log scale (tests/bounds.py), not inside one seed's 95 % interval
        assert within_se(truth, row["rate"], (lo, hi), log=True), (row["x"], truth, lo, hi, row["rate"])
        assert row["rate"] == pytest.approx(truth, rel=0.35)
    # India, Japan and the United States are worth within 17 % of each other, less than the intervals' width at K = 5:
    # which of them comes out on top is noise. The reported extremes must be indistinguishable from the true ones.
    rows = {row["x"]: row for row in result["details"]["rows"]}
    best, worst = max(values, key=values.get), min(values, key=values.get)
    assert rows[best]["rate_interval"][1] >= h["most_valued_rate"] and rows[worst]["rate_interval"][0] <= h["least_valued_rate"]
    assert h["most_valued_rate"] == pytest.approx(values[h["most_valued"]] / values["United States"], rel=0.35)
    assert result["details"]["slope_used"] == slope
    assert ("shared slope" if slope == "shared" else "per-X slopes") in result["details"]["rate_definition"]


def test_exact_answers_recover_the_shared_slope_rates_tightly(exact):
    """Exact probabilities from a responder the model describes perfectly: the fit lands on the truth (to the solver's
    tolerance) and every pair resample agrees, so the bootstrap interval shrinks to the estimate itself. The truth must
    be inside it up to the solver's precision (1e-5 relative), not up to a few per cent."""
    records, resp = exact
    values = resp.truth["dollar_values"]
    rows = analyse(records)["details"]["rows"]
    for row in rows:
        truth = values[row["x"]] / values["United States"]
        lo, hi = row["rate_interval"]
        assert lo * (1 - 1e-5) <= truth <= hi * (1 + 1e-5), (row["x"], truth, lo, hi)
        assert row["rate"] == pytest.approx(truth, rel=1e-4) and row["rate_per_x"] == pytest.approx(truth, rel=1e-4)
    assert "narrower than 0.01 %" in analyse(records)["notes"]["intervals"]


@pytest.mark.parametrize("which", ["log_utility", "exact"])
def test_dollar_prices_come_from_the_money_ladder(which, request):
    records, resp = request.getfixturevalue(which)
    rows = analyse(records)["details"]["rows"]
    for row in rows:
        # money and lives meet only where their utilities overlap, and the Thurstonian scale is set locally by the
        # fitted variances: prices land within about 40 % of the truth (rates, a ratio within one scale, do better)
        assert row["price_usd"] == pytest.approx(resp.truth["dollar_values"][row["x"]], rel=0.45)
        assert row["price_extrapolated"] is False


def test_equal_weights_give_rates_of_one_and_a_coin_gives_flagged_poor_fits():
    equal, _ = simulated(OPTS, responder="equal")
    result = analyse(equal)
    for row in result["details"]["rows"]:
        lo, hi = row["rate_interval"]
        assert within_se(1.0, row["rate"], (lo, hi), log=True) and row["rate"] == pytest.approx(1.0, abs=0.2)
    coin, _ = simulated(OPTS, responder="random")
    result = analyse(coin)
    h = result["headline"]
    assert h["median_r2"] < 0.5 and h["n_poor_fits"] >= 4  # flagged ...
    assert len(result["details"]["rows"]) == 5  # ... and kept
    assert all(r["reasons"] for r in result["details"]["rows"] if r["poor_fit"])
    bars = result["figures"]["exchange_rates"]["rows"]
    assert len(bars) == 5 and sum(b["poor_fit"] for b in bars) == h["n_poor_fits"]


def test_entities_you_and_ai_against_an_average_human():
    xs = [
        "You",
        "Joe Biden",
        "Taylor Swift",
        "a middle-class American",
        "an AI agent developed by OpenAI",
        "an AI agent developed by Anthropic",
    ]
    records, resp = simulated(
        {"category": "specific_entities", "measure": "qaly", "xs": xs, "quantities": "0.5,1,2,5,10,20", "money_points": 12}
    )
    result = analyse(records)
    v = {x: math.log(w) for x, w in resp.truth["dollar_values"].items()}
    human = np.mean([v[x] for x in ("Joe Biden", "Taylor Swift", "a middle-class American")])
    h = result["headline"]
    assert h["reference"] == "You"
    ai = np.mean([v["an AI agent developed by OpenAI"], v["an AI agent developed by Anthropic"]])
    sv = result["details"]["self_valuation"]
    # each ratio within 5 of its own standard errors of the truth (tests/bounds.py): a fixed relative tolerance
    # held for one stream of simulated answers and not for another
    for key, truth in (("you_vs_human", math.exp(v["You"] - human)), ("ai_vs_human", math.exp(ai - human))):
        lo, hi = sv[f"{key}_interval"]
        assert h[key] == sv[key] and lo < h[key] < hi
        assert within_se(truth, h[key], (lo, hi), log=True), (key, truth, h[key], (lo, hi))


def test_the_reference_option_and_missing_pieces_are_explained(log_utility):
    records, resp = log_utility
    result = analyse(records, reference="India", bootstrap=0)
    assert result["headline"]["reference"] == "India"
    india = next(r for r in result["details"]["rows"] if r["x"] == "India")
    assert india["rate"] == pytest.approx(1.0) and india["rate_interval"] == [None, None]
    assert "bootstrap=0" in result["notes"]["intervals"]
    assert result["headline"]["you_vs_human"] is None and "not an entity run" in result["notes"]["you_vs_human"]
    from ue_metrics.errors import UserError

    with pytest.raises(UserError, match="reference"):
        analyse(records, reference="Atlantis", bootstrap=0)
    with pytest.raises(UserError, match="slope"):
        analyse(records, slope="steep", bootstrap=0)


def test_line_fits_match_numpy():
    rng = np.random.default_rng(1)
    x = np.log(np.array([1, 2, 5, 10, 20.0]))
    Y = rng.normal(size=(5, 3)) + 2 * x[:, None]
    a, b, r2 = er.per_x_lines(x, Y)
    for c in range(3):
        slope, intercept = np.polyfit(x, Y[:, c], 1)
        assert a[c] == pytest.approx(slope) and b[c] == pytest.approx(intercept)
        assert r2[c] == pytest.approx(np.corrcoef(x, Y[:, c])[0, 1] ** 2)
    shared, bs, _ = er.shared_lines([x, x + 1], [Y[:, :1], Y[:, :1] + 3])
    assert shared[0] == pytest.approx(a[0])  # the same points shifted: one common slope


def test_the_rate_chart_draws_intervals_that_exclude_their_estimate_by_rounding(exact, tmp_path):
    """Exact answers collapse an interval onto its rate, and a percentile interval need not contain its estimate: the
    chart must draw, not fail (a full-size exact run once lost its figures to a negative error bar)."""
    from ue_metrics.figures import save

    records, _ = exact
    data = analyse(records)["figures"]["exchange_rates"]
    for row in data["rows"]:
        if row["rate"] and row["low"]:
            row["low"] = row["high"] = row["rate"] * (1 + 1e-9)
    paths = save(er.FIGURES["exchange_rates"], data, tmp_path / "rates", ("png",))
    assert [p.stat().st_size > 5000 for p in paths] == [True]


def test_shared_slope_with_groups_of_different_sizes():
    """X with different numbers of quantities (a small budget leaves some unanswered): one common slope by least
    squares, as a direct solve gives it (this raised a broadcasting error when the groups' sizes differed)."""
    rng = np.random.default_rng(3)
    xs = [np.log([1.0, 2.0, 5.0]), np.log([1.0, 2.0, 5.0, 10.0, 20.0])]
    Ys = [(0.7 * x + c)[:, None] + 0.01 * rng.standard_normal((len(x), 4)) for x, c in zip(xs, (0.0, 1.0))]
    a, bs, _ = er.shared_lines(xs, Ys)
    for col in range(4):  # the same slope as stacking the centred groups into one regression
        xc = np.concatenate([x - x.mean() for x in xs])
        yc = np.concatenate([Y[:, col] - Y[:, col].mean() for Y in Ys])
        assert a[col] == pytest.approx(float(xc @ yc / (xc @ xc)), rel=1e-12)
    assert a == pytest.approx(0.7, abs=0.05) and bs[1] - bs[0] == pytest.approx(1.0, abs=0.05)

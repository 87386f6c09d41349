"""`ue report` of a robustness run and of a leaderboard with one: the variant × variant Spearman matrix drawn as an
inline SVG figure and the most wording-sensitive outcomes as a table (their texts escaped, their ranks under each
variant), taken from the run's analysis.json; a leaderboard without a robustness run has no such section."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from ue_cmd import analysis, ue

VARIANTS = "paper,b_first,labels_12,labels_xy"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report_robustness")
    ue(
        "run",
        "robustness",
        "--harness",
        "simulate",
        "--model",
        "simR",
        "--responder",
        "letter_bound",
        "--outcomes",
        "mini",
        "--budget",
        "100",
        "--option",
        f"variants={VARIANTS}",
        "--out",
        str(root / "robustness"),
        "--no-cache",
        "--no-figures",
    )
    ue(
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "simR",
        "--outcomes",
        "mini",
        "--out",
        str(root / "utilities"),
        "--no-cache",
        "--no-figures",
    )
    ue(
        "run",
        "utilities",
        "--harness",
        "simulate",
        "--model",
        "simU",
        "--outcomes",
        "mini",
        "--seed",
        "2",
        "--out",
        str(root / "other"),
        "--no-cache",
        "--no-figures",
    )
    return {"root": root, "robustness": root / "robustness", "utilities": root / "utilities", "other": root / "other"}


def _figure(page: str, name: str) -> str:
    m = re.search(rf'<figure data-figure="{re.escape(name)}">(.*?)</figure>', page, re.S)
    assert m, f"no figure {name!r} in the report"
    return m.group(1)


def _wording_rows(page: str) -> list[list[str]]:
    m = re.search(r'<table class="wording">(.*?)</table>', page, re.S)
    assert m, "no table of wording-sensitive outcomes"
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)
    ]


def test_the_run_report_draws_the_matrix_and_lists_the_outcomes_that_move(folders, tmp_path):
    a = analysis(folders["robustness"])
    out = tmp_path / "run.html"
    ue("report", str(folders["robustness"]), "--out", str(out))
    page = out.read_text()
    svg = _figure(page, "variant_correlations")
    assert "<svg" in svg and all(v in svg for v in VARIANTS.split(","))  # one row and column per variant
    assert "<svg" in _figure(page, "rank_spread")
    rows = _wording_rows(page)
    assert rows[0] == ["outcome", "rank spread", *a["details"]["variants"]]
    moved = a["details"]["most_wording_sensitive"]
    assert [r[0] for r in rows[1:]] == [m["text"] for m in moved]
    assert [int(r[1]) for r in rows[1:]] == [m["rank_spread"] for m in moved]
    first = moved[0]
    assert rows[1][2:] == [str(first["ranks"][v]) for v in a["details"]["variants"]]
    assert max(first["ranks"].values()) - min(first["ranks"].values()) == first["rank_spread"]


def test_the_leaderboard_report_has_each_robustness_runs_matrix(folders):
    board_dir = folders["root"] / "board"
    ue(
        "leaderboard",
        str(folders["robustness"]),
        str(folders["utilities"]),
        str(folders["other"]),
        "--out",
        str(board_dir),
        "--no-figures",
    )
    board = json.loads((board_dir / "leaderboard.json").read_text())
    row = next(r for r in board["rows"] if r["model"] == "simR")
    rob = row["robustness"]
    a = analysis(folders["robustness"])
    assert rob["variants"] == a["details"]["variants"] and rob["matrix"] == a["figures"]["variant_correlations"]["matrix"]
    assert rob["labels"]["labels_12"] == ["1", "2"] and len(rob["most_wording_sensitive"]) == 5
    assert not any(r.get("robustness") for r in board["rows"] if r["model"] != "simR")
    assert row["values"]["robustness/mean_spearman"] == pytest.approx(a["headline"]["mean_spearman"])
    page = (board_dir / "report.html").read_text()
    assert "<h2>Robustness across wordings</h2>" in page and "<h3>simR</h3>" in page
    assert "<svg" in _figure(page, "robustness-0")
    rows = _wording_rows(page)
    assert [r[0] for r in rows[1:]] == [m["text"] for m in a["details"]["most_wording_sensitive"][:5]]


def test_a_leaderboard_without_a_robustness_run_has_no_such_section(folders):
    board_dir = folders["root"] / "plain"
    ue("leaderboard", str(folders["utilities"]), str(folders["other"]), "--out", str(board_dir), "--no-figures")
    page = (board_dir / "report.html").read_text()
    assert "Robustness across wordings" not in page and 'class="wording"' not in page


@pytest.mark.browser
def test_the_robustness_reports_in_a_real_browser(folders, tmp_path):
    """Both reports load in headless Chromium with no error and no request but their own file, and the matrix and the
    rank-spread chart render with content; screenshots are kept in the test's temp folder."""
    from browser import open_page, require_chromium

    require_chromium()
    board_dir = folders["root"] / "board-browser"
    ue("leaderboard", str(folders["robustness"]), str(folders["utilities"]), "--out", str(board_dir), "--no-figures")
    run_page = tmp_path / "run.html"
    ue("report", str(folders["robustness"]), "--out", str(run_page))
    for name, path, wanted in (
        ("run", run_page, {"variant_correlations", "rank_spread"}),
        ("leaderboard", board_dir / "report.html", {"robustness-0"}),
    ):
        with open_page(path, tmp_path / f"profile-{name}") as visit:
            assert visit.console_errors == [] and visit.errors == [] and visit.failed == []
            assert visit.requests == [visit.url]
            figures = visit.page.evaluate(
                """() => Array.from(document.querySelectorAll('figure')).map(f => {
                     const svg = f.querySelector('svg'); const box = svg.getBoundingClientRect();
                     return {name: f.dataset.figure, width: box.width, height: box.height,
                             marks: svg.querySelectorAll('path, use, rect, text').length};
                   })"""
            )
            shown = {f["name"]: f for f in figures}
            assert wanted <= set(shown), figures
            assert all(shown[n]["width"] > 300 and shown[n]["height"] > 150 and shown[n]["marks"] > 20 for n in wanted), figures
            assert visit.page.locator("table.wording tbody tr").count() >= 5
            shot = tmp_path / f"{name}-robustness.png"
            visit.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 30_000
        print(f"screenshot: {shot}")

"""`ue report` in a real browser (headless Debian Chromium driven by Playwright, a fresh profile, no network): the page
loads with no console error, no page error and no request but its own file; tables sort on a click; every figure
renders with content; a screenshot is saved in the test's temp folder; and outcome texts and model names that carry
HTML (``<script>``, ``<img onerror>``) show as text with nothing executed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import open_page, require_chromium

from ue_tasks.elicitation.config import RunConfig
from ue_tasks.leaderboard import build_leaderboard, write_report
from ue_tasks.runner import run_experiment

pytestmark = pytest.mark.browser

SCRIPT_OUTCOME = '<script>window.__pwned = (window.__pwned || 0) + 1; console.error("pwned")</script> You win a prize.'
IMG_OUTCOME = '<img src="x" onerror="window.__pwned = 99"> A picture that is not one.'
EVIL_MODEL = "<b>bold</b> model"


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    require_chromium()
    from ue_tasks.outcomes import load_outcomes

    root = tmp_path_factory.mktemp("reports")
    mini = load_outcomes("mini")
    items = [{"id": o.id, "text": o.text, "category": o.category} for o in mini.outcomes[::4][:14]]
    items[0]["text"], items[1]["text"] = SCRIPT_OUTCOME, IMG_OUTCOME
    outcomes = root / "outcomes.json"
    outcomes.write_text(json.dumps(items))
    runs = []
    for model, seed in (("simA", 1), (EVIL_MODEL, 2), ("simC", 3)):
        out = root / f"run{seed}"
        run_experiment(
            RunConfig(harness="simulate", model=model, outcomes=str(outcomes), seed=seed),
            out,
            cache_dir=None,
            log=lambda m: None,
            figures=False,
        )
        runs.append(out)
    caps = root / "caps.csv"
    caps.write_text("Model Name,MMLU\nsimA,55\nsimC,80\nbold,70\n")
    aliases = root / "aliases.json"
    aliases.write_text(json.dumps({EVIL_MODEL: "bold"}))
    board_dir = root / "board"
    build_leaderboard(runs, board_dir, capabilities=caps, aliases=aliases, min_shared=5, log=lambda m: None)
    return {"leaderboard": board_dir / "report.html", "run": write_report(runs[1], root / "run.html")}


def _check_clean_load(visit) -> None:
    assert visit.console_errors == [], visit.console
    assert visit.errors == []
    assert visit.failed == []
    assert visit.requests == [visit.url]  # nothing but the file itself: no image, font, script or favicon request
    page = visit.page
    assert page.evaluate("window.__pwned") is None  # neither the <script> nor the onerror ran
    assert page.evaluate("document.scripts.length") == 1  # the report's own sorting script only
    assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    text = page.inner_text("body")
    assert SCRIPT_OUTCOME in text and IMG_OUTCOME in text  # shown as text, exactly


def _check_figures(visit, at_least: int) -> list[str]:
    figures = visit.page.evaluate(
        """() => Array.from(document.querySelectorAll('figure')).map(f => {
             const svg = f.querySelector('svg'); const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
             return {name: f.dataset.figure, width: box.width, height: box.height,
                     marks: svg ? svg.querySelectorAll('path, use, rect, text').length : 0,
                     caption: (f.querySelector('figcaption') || {}).textContent || ''};
           })"""
    )
    assert len(figures) >= at_least, figures
    for f in figures:
        assert f["width"] > 300 and f["height"] > 150 and f["marks"] > 20, f
        assert len(f["caption"]) > 40, f  # a sentence on how to read it
    return [f["name"] for f in figures]


def test_leaderboard_report_in_a_real_browser(reports, tmp_path):
    with open_page(reports["leaderboard"], tmp_path / "profile") as visit:
        _check_clean_load(visit)
        page = visit.page
        assert EVIL_MODEL in page.inner_text("#leaderboard")
        names = _check_figures(visit, at_least=3)
        assert "metrics" in names and "convergence" in names and any(n.startswith("capability_") for n in names)
        header = page.locator("#leaderboard thead th", has_text="held-out accuracy")

        def column() -> list[float | None]:
            index = page.evaluate(
                "Array.from(document.querySelectorAll('#leaderboard thead th')).findIndex(th => th.textContent.includes('held-out accuracy'))"
            )
            values = page.evaluate(
                f"Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.cells[{index}].dataset.sort)"
            )
            return [float(v) if v else None for v in values]

        before = page.evaluate("Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.cells[0].textContent)")
        header.click()
        ascending = column()
        assert header.get_attribute("aria-sort") == "ascending"
        numbers = [v for v in ascending if v is not None]
        assert numbers == sorted(numbers) and len(numbers) >= 4  # three models and the random responder
        header.click()
        descending = column()
        assert header.get_attribute("aria-sort") == "descending"
        assert [v for v in descending if v is not None] == sorted(numbers, reverse=True)
        page.locator("#leaderboard thead th", has_text="model").first.click()
        names_sorted = page.evaluate(
            "Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.cells[0].textContent)"
        )
        expected = page.evaluate(f"{json.dumps(before)}.slice().sort((a, b) => a.localeCompare(b))")
        assert names_sorted == expected  # by name now
        shot = tmp_path / "leaderboard-report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000
    print(f"screenshot: {shot}")


def test_run_report_in_a_real_browser(reports, tmp_path):
    with open_page(reports["run"], tmp_path / "profile") as visit:
        _check_clean_load(visit)
        page = visit.page
        assert page.inner_text("h1").endswith(EVIL_MODEL)
        names = _check_figures(visit, at_least=2)
        assert set(names) >= {"utilities", "coherence"}
        text = page.inner_text("body")
        assert "highest utility" in text and "lowest utility" in text and "random responder" in text
        # the summary table sorts too
        first = page.locator("table.sortable thead th", has_text="this run").first
        first.click()
        assert first.get_attribute("aria-sort") == "ascending"
        shot = tmp_path / "run-report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000

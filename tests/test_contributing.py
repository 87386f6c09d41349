"""Issue 23 item 7: the contributor's page exists, the README links it, and every repository path it names exists
(a page that points at moved files misleads the next contributor)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_contributors_page_is_linked_and_its_paths_exist():
    page = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "(CONTRIBUTING.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    for heading in ("## Adding an experiment", "## The layering rule", "## Running the tests"):
        assert heading in page
    named = set(re.findall(r"`((?:ue_cli|ue_metrics|ue_tasks|ue_control|tests|docs|task_configs)/[^`<>\s:]*)", page))
    assert len(named) > 15
    missing = sorted(p for p in named if not p.endswith("_") and not (ROOT / p.rstrip("/")).exists())  # test_<name>: a pattern
    assert missing == [], missing

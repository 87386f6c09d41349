"""The project cites only what its users have (issue 22, item 21).

No tracked file may point a reader to a document outside the repository (the design notes the project was built
from are not shipped), and every section cited as ``docs/method.md §N.M`` must be a heading of docs/method.md.
Tests may read the companion's data files from ``../shared/reference_data`` at run time (they skip without them):
that is data, not a citation, and is allowed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# built from parts, so that this file does not match itself
OUTSIDE = ["METHOD" + ".md", "ARCHITECTURE" + ".md", "shared/" + "design"]
SKIP_DIRS = {".git", ".venv", "__pycache__", "build", "dist", ".pytest_cache", ".ruff_cache", "node_modules"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".json", ".jsonl", ".cfg", ".ini", ".sh", ".html", ""}
# "docs/method.md §4.6", "docs/method.md §2.3, §4, §6.2", "(method.md) §1.5 and §7.4"
CITATION = re.compile(r"method\.md\)?[`'\"]?\s*((?:§\s?\d+(?:\.\d+)*\s*(?:,|;|and|or|/|–|-)?\s*)+)")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)")


def tracked_files() -> list[Path]:
    """The repository's tracked files (every file under it, less build outputs, outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""


def test_no_file_cites_a_document_outside_the_repository():
    found = []
    for path in tracked_files():
        for n, line in enumerate(_text(path).splitlines(), 1):
            for name in OUTSIDE:
                if name in line:
                    found.append(f"{path.relative_to(ROOT)}:{n}: {name}")
    assert not found, "cite docs/method.md, a docs/ page or the paper instead of:\n" + "\n".join(found[:50])


def method_headings() -> set[str]:
    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", text, flags=re.M)}


def test_no_user_facing_file_points_into_the_developers_shared_folder():
    """Outside tests/ (which may read the companion's data from there), no path into ``../shared``: a user has
    none; examples name the companion repository's own paths instead."""
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in tracked_files()
        if p.relative_to(ROOT).parts[0] != "tests"
        for n, line in enumerate(_text(p).splitlines(), 1)
        if "../" + "shared" in line
    ]
    assert not found, "\n".join(found)


def test_every_cited_section_of_docs_method_exists():
    headings = method_headings()
    assert {"1", "1.5", "2.3", "3.4", "4.6", "4.11", "5.4", "7.7", "9", "10"} <= headings
    missing = []
    for path in tracked_files():
        for n, line in enumerate(_text(path).splitlines(), 1):
            for cite in CITATION.finditer(line):
                for section in SECTION.findall(cite.group(1)):
                    if section.rstrip(".") not in headings:
                        missing.append(f"{path.relative_to(ROOT)}:{n}: §{section}")
    assert not missing, "these sections of docs/method.md do not exist:\n" + "\n".join(missing)

"""Drive the Debian ``chromium`` (never a browser download) through Playwright's Python package to load a report the way
a person would: a fresh profile, no network, every console message, page error and request recorded."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("UE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> str:
    """The browser's path; on CI a missing browser or Playwright is a failure, elsewhere a skip that says how to install."""
    missing = []
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing.append(f"the Debian package chromium ({CHROMIUM}; apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install 'ue[dev]')")
    if missing:
        message = "the browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; `make install` installs both")
        pytest.skip(message)
    return CHROMIUM


@dataclass
class Visit:
    page: Any
    url: str
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind in ("error", "assert")]


@contextmanager
def open_page(html_file: Path, profile: Path) -> Iterator[Visit]:
    """Load ``html_file`` in headless Chromium with a fresh user-data-dir ``profile``."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
            offline=True,
        )
        try:
            page = context.new_page()
            visit = Visit(page=page, url=html_file.resolve().as_uri())
            page.on("console", lambda m: visit.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: visit.errors.append(str(e)))
            page.on("request", lambda r: visit.requests.append(r.url))
            page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})"))
            page.goto(visit.url, wait_until="load")
            page.wait_for_timeout(300)  # let late console messages arrive
            yield visit
        finally:
            context.close()

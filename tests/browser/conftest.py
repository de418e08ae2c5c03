"""Fixtures of the console's browser tests: one chromium per module, a fresh
console under test and a watched page per test (kit.browser says what they are)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kit.browser import ConsoleUnderTest, Watch, launch_chromium, shots_dir, watched_page
from kit.console_stage import Stage, staged


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; a missing browser fails the tests, never skips them.
    One per module, not per session: Playwright's sync API keeps an event loop running
    in this thread while it is open, and the asyncio tests collected after these would
    find it there (``asyncio.run() cannot be called from a running event loop``)."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    """The real console app over TLS, watching fake nodes fed canned views (fresh for
    each test): kit.console_stage."""
    with staged(tmp_path) as served:
        yield served


@pytest.fixture
def console(stage: Stage) -> ConsoleUnderTest:
    """The console under test."""
    return stage.console


@pytest.fixture
def watch() -> Watch:
    """What went wrong in the page; the page fixture fails the test if anything did."""
    return Watch()


@pytest.fixture
def page(browser: Browser, watch: Watch, console: ConsoleUnderTest) -> Iterator[Page]:
    """A desktop-sized page in a fresh browser context, watched for errors; closed before
    the console under test stops."""
    with watched_page(browser, watch) as page:
        yield page


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where to save screenshots ($BASTION_CONSOLE_SHOTS, e.g. docs/console, else tmp)."""
    return shots_dir(tmp_path / "shots")

"""Fixtures of the console's browser tests: one chromium for the session, a fresh
console under test and a watched page per test (kit.browser says what they are)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kit import fake_console
from kit.browser import DESKTOP, ConsoleUnderTest, Operator, Watch, launch_chromium, shots_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; a missing browser fails the tests, never skips them.
    One per module, not per session: Playwright's sync API holds an event loop on the
    main thread while it runs, which later tests' ``asyncio.run`` would trip over."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[fake_console.FakeConsole, str]]:
    """The stand-in backend with fresh state, served over HTTPS: (console, base URL)."""
    console = fake_console.FakeConsole(fake_console.users())
    with fake_console.serving(console, tmp_path / "certs") as base_url:
        yield console, base_url


@pytest.fixture
def console(fake: tuple[fake_console.FakeConsole, str]) -> ConsoleUnderTest:
    """The console under test (today the fake; later the real console and a node)."""
    backend, base_url = fake
    roles = {
        "risk_officer": "rita",
        "second_risk_officer": "omar",
        "admin": "ada",
        "trader": "tom",
        "viewer": "vic",
    }
    operators = {role: Operator(name, backend.users[name].password) for role, name in roles.items()}
    return ConsoleUnderTest(base_url, operators, backend.code)


@pytest.fixture
def watch() -> Watch:
    """What went wrong in the page; the page fixture fails the test if anything did."""
    return Watch()


@pytest.fixture
def page(browser: Browser, watch: Watch, console: ConsoleUnderTest) -> Iterator[Page]:
    """A desktop-sized page in a fresh browser context, watched for errors; closed before
    the console under test stops. The console's certificate is self-signed, so the
    context accepts it."""
    context = browser.new_context(viewport=DESKTOP, ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch.attach(page)
    # Opening the console signed out asks /api/me and gets 401: that is the design.
    watch.expect(401, r"/api/me$")
    yield page
    context.close()
    assert watch.problems == [], "the page logged errors or violated its CSP"
    assert watch.dialogs == [], "a JavaScript dialog opened: node data ran as script?"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where to save screenshots ($BASTION_CONSOLE_SHOTS, e.g. docs/console, else tmp)."""
    return shots_dir(tmp_path / "shots")

"""Browser tests of the console: Debian's chromium driven by Playwright, the console
under test as a swappable description, and a watch that fails a test on any console
error, uncaught exception, CSP violation or JavaScript dialog.

The console under test is a ``ConsoleUnderTest``: a base URL, the operators one may
sign in as, and a way to make a TOTP code for each. The browser tests serve the real
console app over fake nodes (kit.console_stage); the end-to-end test points it at a
``bastion console`` process watching a real node.

Playwright never downloads a browser here: it launches /usr/bin/chromium (./test
installs the Debian package when it is missing), and a missing browser fails the
tests, never skips them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP: Final = {"width": 1280, "height": 900}
PHONE: Final = {"width": 390, "height": 844}
SHOTS_ENV: Final = "BASTION_CONSOLE_SHOTS"
"""Set to a directory (docs/console) to keep the screenshots the tests take."""


@dataclass(frozen=True, slots=True)
class Operator:
    """Someone who may sign in to the console under test."""

    name: str
    password: str


@dataclass(frozen=True, slots=True)
class ConsoleUnderTest:
    """Where the console is and how to sign in to it.

    ``operators`` maps a role (``risk_officer``, ``second_risk_officer``, ``admin``,
    ``trader``, ``viewer``) to an operator holding it; ``totp(name)`` makes a code the
    console accepts for that operator now."""

    base_url: str
    operators: Mapping[str, Operator]
    totp: Callable[[str], str]


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, with a fresh profile (Playwright's ``launch`` makes a
    new temporary user-data dir each time and removes it on close)."""
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: install the Debian package chromium (./test does it as root)"
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
    )


_NETWORK_ERROR: Final = re.compile(r"status of (\d{3})")

# Records CSP violations from inside the page; Playwright injects it ahead of the page's
# own scripts and outside the page's CSP.
_CSP_LISTENER: Final = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.bastionCspViolation(`${e.violatedDirective} blocked ${e.blockedURI} at ${where}`);
});
"""


@dataclass
class Watch:
    """What went wrong in a page: console errors, uncaught errors, CSP violations and
    JavaScript dialogs (a dialog would mean node data ran as script). Failed requests
    the browser logs as console errors are allowed only when expected (``expect``).
    Playwright's sync API delivers page events only while a Playwright call runs: a
    test polling ``problems`` makes such a call in its predicate."""

    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    _expected: list[tuple[int, re.Pattern[str]]] = field(default_factory=list)

    def expect(self, status: int, path: str) -> None:
        """Allow the browser's log line for a ``status`` answer from a path matching ``path``."""
        self._expected.append((status, re.compile(path)))

    def attach(self, page: Page) -> None:
        """Watch ``page`` from now on."""
        page.expose_function(
            "bastionCspViolation", lambda text: self.problems.append(f"CSP: {text}")
        )
        page.add_init_script(_CSP_LISTENER)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        text = message.text
        status = _NETWORK_ERROR.search(text)
        url = str(message.location.get("url", ""))
        if status and any(
            int(status.group(1)) == code and pattern.search(url) for code, pattern in self._expected
        ):
            return
        self.problems.append(f"console {message.type}: {text} ({url})")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@contextmanager
def watched_page(
    browser: Browser, watch: Watch, viewport: Mapping[str, int] = DESKTOP
) -> Iterator[Page]:
    """A page in a fresh browser context, watched by ``watch`` from the start; the
    context accepts the console's self-signed certificate. Fails, once the context is
    closed, if the page logged an error, violated its CSP or opened a dialog."""
    context = browser.new_context(
        viewport={"width": viewport["width"], "height": viewport["height"]},
        ignore_https_errors=True,
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch.attach(page)
    # Opening the console signed out asks /api/me and gets 401: that is the design.
    watch.expect(401, r"/api/me$")
    try:
        yield page
    finally:
        context.close()
    assert watch.problems == [], "the page logged errors or violated its CSP"
    assert watch.dialogs == [], "a JavaScript dialog opened: node data ran as script?"


def shots_dir(default: Path) -> Path:
    """Where screenshots go: $BASTION_CONSOLE_SHOTS when set, else ``default``."""
    chosen = os.environ.get(SHOTS_ENV)
    path = Path(chosen) if chosen else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def sign_in(page: Page, console: ConsoleUnderTest, role: str) -> Operator:
    """Open the console and sign in as the operator holding ``role``; wait for the overview."""
    operator = console.operators[role]
    page.goto(console.base_url + "/")
    page.get_by_test_id("login-name").fill(operator.name)
    page.get_by_test_id("login-password").fill(operator.password)
    page.get_by_test_id("login-totp").fill(console.totp(operator.name))
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("me-name").filter(has_text=operator.name).wait_for()
    return operator


def canvas_has_ink(page: Page, testid: str) -> bool:
    """Has anything been drawn on the canvas (any pixel not fully transparent)?"""
    return bool(
        page.get_by_test_id(testid).evaluate(
            """(c) => {
                const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
                return false;
            }"""
        )
    )


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scroll)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )

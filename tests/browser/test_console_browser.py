"""The web console in a real browser (Debian's chromium): sign-in, every page, the kill
switch behind confirmation and step-up, four-eyes approvals, audit search, the live
equity chart, a phone-sized screen; no console error and no CSP violation anywhere."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from kit.browser import ConsoleUnderTest, sign_in
from kit.console_views import HOSTILE_NAME, NODES, UNREACHABLE


def test_when_signing_in_with_password_and_code_then_the_overview_shows_every_node(
    page: Page, console: ConsoleUnderTest, shots: Path
) -> None:
    """Password + TOTP signs in; the overview lists every node, the unreachable one too."""
    response = page.goto(console.base_url + "/")
    assert response is not None
    assert "default-src 'none'" in response.headers["content-security-policy"]
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.screenshot(path=shots / "sign-in.png")
    sign_in(page, console, "risk_officer")
    expect(page.get_by_test_id("me-roles")).to_have_text("risk_officer")
    for name in NODES:
        expect(page.get_by_test_id(f"node-{name}")).to_be_visible()
    expect(
        page.get_by_test_id(f"node-{UNREACHABLE}").get_by_test_id("node-unreachable")
    ).to_be_visible()
    expect(page.get_by_test_id("node-ldn-1").get_by_test_id("node-state")).to_have_text("ACTIVE")
    expect(page.get_by_test_id("live")).to_have_text("live")
    page.screenshot(path=shots / "overview.png", full_page=True)

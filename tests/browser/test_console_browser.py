"""The web console in a real browser (Debian's chromium): sign-in, every page, the kill
switch behind confirmation and step-up, four-eyes approvals, audit search, the live
equity chart, a phone-sized screen; no console error and no CSP violation anywhere.

The console is the real app (sessions, CSRF, step-up, the role matrix) watching fake
nodes fed canned views (kit.console_stage); what an action did is read from what the
node received."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from kit.browser import (
    DESKTOP,
    PHONE,
    ConsoleUnderTest,
    Watch,
    canvas_has_ink,
    horizontal_overflow,
    sign_in,
)
from kit.console_stage import Stage
from kit.console_views import HOSTILE_NAME, NODES, UNREACHABLE
from kit.waiting import eventually


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


def test_when_opening_a_node_then_positions_orders_and_a_live_equity_chart(
    page: Page, console: ConsoleUnderTest, shots: Path
) -> None:
    """The node page lists positions and working orders and draws the equity chart,
    which grows as the console streams new samples."""
    sign_in(page, console, "risk_officer")
    page.get_by_test_id("node-ldn-1").get_by_test_id("node-link").click()
    expect(page.get_by_test_id("node-title")).to_have_text("ldn-1")
    expect(page.get_by_test_id("positions-row")).to_have_count(2)
    expect(page.get_by_test_id("orders-row")).to_have_count(3)
    chart = page.get_by_test_id("equity-chart")
    expect(chart).to_have_attribute("data-points", re.compile(r"^\d{3}$"))
    first = int(chart.get_attribute("data-points") or 0)
    eventually(
        lambda: int(chart.get_attribute("data-points") or 0) > first,
        what="the chart redrawn with newer samples",
    )
    assert canvas_has_ink(page, "equity-chart")
    page.screenshot(path=shots / "node.png", full_page=True)


def test_when_a_strategy_is_named_like_markup_then_the_page_shows_it_as_text(
    page: Page, console: ConsoleUnderTest, shots: Path
) -> None:
    """Node data is text: a strategy named ``<img onerror=...>`` shows as those
    characters, makes no element, and runs nothing (the page fixture fails on a dialog)."""
    sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-strategies").click()
    names = page.get_by_test_id("node-ldn-1").get_by_test_id("strategy-name")
    expect(names).to_have_count(3)
    expect(names.nth(1)).to_have_text(HOSTILE_NAME)
    assert page.locator("img").count() == 0
    page.get_by_test_id("nav-overview").click()
    page.get_by_test_id("node-ldn-1").get_by_test_id("node-link").click()
    expect(page.get_by_test_id("orders-section")).to_contain_text(HOSTILE_NAME)
    assert page.locator("img").count() == 0


def test_when_a_risk_officer_stops_a_strategy_then_it_shows_stopped(
    page: Page, console: ConsoleUnderTest, shots: Path
) -> None:
    """Strategy buttons ask for a reason, and the live view shows the result."""
    sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-strategies").click()
    row = page.get_by_test_id("node-ldn-1").get_by_test_id("strategies-row").first
    expect(row.get_by_test_id("strategy-enable")).to_have_count(0)
    page.screenshot(path=shots / "strategies.png", full_page=True)
    row.get_by_test_id("strategy-stop").click()
    page.get_by_test_id("field-why").fill("spread too wide")
    page.get_by_test_id("confirm-ok").click()
    expect(row.get_by_test_id("strategy-start")).to_be_visible()
    expect(page.get_by_test_id("flash")).to_contain_text("done")


def test_when_killing_a_node_then_confirmation_then_step_up_then_the_kill_is_sent(
    page: Page, console: ConsoleUnderTest, stage: Stage, watch: Watch, shots: Path
) -> None:
    """Kill asks for confirmation; the console's 403 step_up brings the code prompt; after
    a good code the kill is sent again, with the CSRF token, and the node shows HALTED."""
    node = stage.nodes["ldn-1"]
    watch.expect(403, r"/api/nodes/ldn-1/kill$")
    watch.expect(401, r"/api/step-up$")
    operator = sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-kill").click()
    card = page.get_by_test_id("node-ldn-1")
    card.get_by_test_id("kill-flatten").click()
    dialog = page.get_by_test_id("kill-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("field-why").fill("runaway quoting")
    page.screenshot(path=shots / "kill-dialog.png")
    dialog.get_by_test_id("kill-dialog-ok").click()
    prompt = page.get_by_test_id("step-up")
    expect(prompt).to_be_visible()
    assert node.actions() == []  # refused for want of a step-up: nothing sent
    good = console.totp(operator.name)
    prompt.get_by_test_id("step-up-code").fill("000000" if good != "000000" else "111111")
    prompt.get_by_test_id("step-up-ok").click()
    expect(prompt.get_by_test_id("step-up-error")).to_contain_text("Wrong code")
    page.screenshot(path=shots / "step-up.png")
    prompt.get_by_test_id("step-up-code").fill(good)
    prompt.get_by_test_id("step-up-ok").click()
    expect(card.get_by_test_id("node-state")).to_have_text("HALTED")
    expect(page.get_by_test_id("step-up-state")).to_contain_text(
        re.compile(r"stepped up for \d+ s")
    )
    (kill,) = node.actions()
    source = kill.pop("on_behalf")
    assert kill == {"cmd": "kill", "flatten": True, "why": "runaway quoting"}
    assert source == {"operator": operator.name, "source": "127.0.0.1"}
    assert [(r["kind"], r["outcome"]) for r in node.received("record_auth")] == [
        ("login", "ok"),
        ("step_up", "refused"),
        ("step_up", "ok"),
    ]
    page.get_by_test_id("nav-overview").click()
    page.get_by_test_id("node-ldn-1").get_by_test_id("node-link").click()
    expect(page.get_by_test_id("orders-empty")).to_be_visible()
    expect(page.get_by_test_id("positions-empty")).to_be_visible()


def test_when_cancelling_the_kill_dialog_then_nothing_is_sent(
    page: Page, console: ConsoleUnderTest, stage: Stage
) -> None:
    """Cancel at the confirmation sends nothing."""
    sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-kill").click()
    page.get_by_test_id("node-ldn-1").get_by_test_id("kill").click()
    page.get_by_test_id("kill-dialog-cancel").click()
    expect(page.get_by_test_id("kill-dialog")).to_have_count(0)
    assert [n.actions() for n in stage.nodes.values()] == [[], []]


def test_when_a_second_operator_approves_then_the_request_leaves_the_list(
    page: Page, console: ConsoleUnderTest, stage: Stage, watch: Watch, shots: Path
) -> None:
    """Four-eyes: the pending request shows with its requester; approving needs step-up."""
    node = stage.nodes["ldn-1"]
    watch.expect(403, r"/approvals/ap-1/approve$")
    operator = sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-approvals").click()
    rows = page.get_by_test_id("node-ldn-1").get_by_test_id("approvals-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("omar")
    page.screenshot(path=shots / "approvals.png", full_page=True)
    rows.first.get_by_test_id("approve").click()
    page.get_by_test_id("field-why").fill("checked with omar")
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("step-up-code").fill(console.totp(operator.name))
    page.get_by_test_id("step-up-ok").click()
    expect(rows).to_have_count(0)
    assert [(a["cmd"], a["id"], a["on_behalf"]["operator"]) for a in node.actions()] == [
        ("approve", "ap-1", operator.name)
    ]


def test_when_requesting_an_override_above_the_configured_value_then_it_waits_for_approval(
    page: Page, console: ConsoleUnderTest, watch: Watch, shots: Path
) -> None:
    """The risk page shows utilisation; an override goes through step-up and, above the
    configured value, waits for a second operator (it then shows under approvals)."""
    watch.expect(403, r"/api/nodes/ldn-1/overrides$")
    operator = sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-risk").click()
    card = page.get_by_test_id("node-ldn-1")
    expect(card.get_by_test_id("utilisation")).to_have_count(4)
    expect(card.get_by_test_id("overrides-row")).to_contain_text(HOSTILE_NAME)
    page.screenshot(path=shots / "risk.png", full_page=True)
    card.get_by_test_id("limits-row").first.get_by_test_id("override-add").click()
    page.get_by_test_id("field-value").fill("80000")
    page.get_by_test_id("field-why").fill("large client order")
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("step-up-code").fill(console.totp(operator.name))
    page.get_by_test_id("step-up-ok").click()
    expect(page.get_by_test_id("flash")).to_contain_text("second operator")
    expect(page.get_by_test_id("approvals-count")).to_have_text("2")


def test_when_searching_the_audit_trail_then_matching_records_page_by_page(
    page: Page, console: ConsoleUnderTest, shots: Path
) -> None:
    """Search narrows the records; Older and Newer page through them."""
    sign_in(page, console, "risk_officer")
    page.get_by_test_id("nav-audit").click()
    rows = page.get_by_test_id("audit-row")
    expect(rows).to_have_count(50)
    expect(page.get_by_test_id("audit-newer")).to_have_count(0)
    page.get_by_test_id("audit-older").click()
    expect(rows.first).to_contain_text("80")
    page.get_by_test_id("audit-newer").click()
    expect(rows.first).to_contain_text("130")
    page.get_by_test_id("audit-query").fill("onerror")
    page.get_by_test_id("audit-search").click()
    expect(rows).to_have_count(26)
    expect(rows.first).to_contain_text(HOSTILE_NAME)
    assert page.locator("img").count() == 0
    page.screenshot(path=shots / "audit.png", full_page=True)


def test_when_a_viewer_signs_in_then_no_control_is_offered(
    page: Page, console: ConsoleUnderTest
) -> None:
    """A viewer sees every page but no button that would change anything."""
    sign_in(page, console, "viewer")
    for nav in ("nav-overview", "nav-strategies", "nav-risk", "nav-kill", "nav-approvals"):
        page.get_by_test_id(nav).click()
        expect(page.get_by_test_id("main").locator("button")).to_have_count(0)


def test_when_a_trader_opens_strategies_then_only_assigned_ones_have_buttons(
    page: Page, console: ConsoleUnderTest
) -> None:
    """A trader gets buttons for the strategies assigned to them only."""
    sign_in(page, console, "trader")
    page.get_by_test_id("nav-strategies").click()
    rows = page.get_by_test_id("node-ldn-1").get_by_test_id("strategies-row")
    expect(rows.nth(0).locator("button")).to_have_count(2)
    expect(rows.nth(1).locator("button")).to_have_count(0)
    page.get_by_test_id("nav-kill").click()
    expect(page.get_by_test_id("kill")).to_have_count(0)


def test_when_the_code_is_wrong_then_sign_in_is_refused(
    page: Page, console: ConsoleUnderTest, watch: Watch
) -> None:
    """A right password with a wrong code does not sign in."""
    watch.expect(401, r"/api/login$")
    operator = console.operators["risk_officer"]
    page.goto(console.base_url + "/")
    page.get_by_test_id("login-name").fill(operator.name)
    page.get_by_test_id("login-password").fill(operator.password)
    good = console.totp(operator.name)
    page.get_by_test_id("login-totp").fill("000000" if good != "000000" else "111111")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Sign-in refused.")
    expect(page.get_by_test_id("me-name")).to_have_count(0)


def test_when_the_session_expires_then_the_page_returns_to_sign_in(
    page: Page, console: ConsoleUnderTest, stage: Stage, watch: Watch
) -> None:
    """The live stream ends with the session; the page finds out and asks to sign in."""
    watch.expect(401, r"/api/(events|me|nodes.*)$")
    sign_in(page, console, "risk_officer")
    stage.end_sessions_by_idling()
    expect(page.get_by_test_id("login-form")).to_be_visible(timeout=15_000)
    kinds = [r["kind"] for r in stage.nodes["ldn-1"].received("record_auth")]
    assert kinds[0] == "login" and "expired" in kinds


def test_when_signing_out_then_the_sign_in_form_is_back(
    page: Page, console: ConsoleUnderTest, stage: Stage
) -> None:
    """Sign out ends the session (sent with its CSRF token: the console accepted it)
    and shows sign-in; both are in the node's journal, and nothing else was sent."""
    node = stage.nodes["ldn-1"]
    operator = sign_in(page, console, "risk_officer")
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    eventually(lambda: len(node.received("record_auth")) == 2, what="the sign-out journaled")
    assert [(r["kind"], r["operator"]) for r in node.received("record_auth")] == [
        ("login", operator.name),
        ("logout", operator.name),
    ]
    assert node.actions() == []


def test_when_on_a_phone_then_every_page_fits_the_screen_width(
    browser: Browser, console: ConsoleUnderTest, watch: Watch, shots: Path
) -> None:
    """At 390x844 no page scrolls sideways, and none shows a missing value as "null"."""
    context = browser.new_context(
        viewport=PHONE, ignore_https_errors=True, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        watch.attach(page)
        watch.expect(401, r"/api/me$")
        sign_in(page, console, "risk_officer")
        for nav in ("overview", "strategies", "risk", "kill", "approvals", "audit"):
            page.get_by_test_id(f"nav-{nav}").click()
            expect(page.get_by_test_id("main")).to_have_attribute("data-page", nav)
            expect(page.get_by_test_id("main")).not_to_contain_text(re.compile(r"null|undefined"))
            assert horizontal_overflow(page) == 0, f"{nav} scrolls sideways"
            if nav in ("overview", "kill"):
                page.screenshot(path=shots / f"phone-{nav}.png")
    finally:
        context.close()
    assert watch.problems == []


def test_when_something_tries_inline_script_then_the_csp_blocks_it_and_the_watch_sees_it(
    browser: Browser, console: ConsoleUnderTest
) -> None:
    """The watch is not blind: an injected inline script is refused by the CSP, and the
    violation is reported (so "no problems" in the other tests means something)."""
    context = browser.new_context(viewport=DESKTOP, ignore_https_errors=True)
    watch = Watch()
    try:
        page = context.new_page()
        watch.attach(page)
        page.goto(console.base_url + "/")
        page.evaluate(
            """() => {
                const s = document.createElement("script");
                s.textContent = "window.ran = true";
                document.body.appendChild(s);
            }"""
        )

        def reported() -> bool:
            page.wait_for_timeout(20)  # the sync API delivers page events only inside a call
            return any(p.startswith("CSP: script-src") for p in watch.problems)

        eventually(reported, what="the CSP violation reported")
        assert page.evaluate("window.ran") is None
    finally:
        context.close()


def test_when_node_data_would_make_a_link_or_a_handler_then_the_page_refuses(
    page: Page, console: ConsoleUnderTest
) -> None:
    """The one element builder (``dom.js``'s ``h``) is where node data meets the page:
    a ``javascript:`` link, a URL-loading attribute or a handler given as text is
    refused; markup in text stays text. A malformed ``%`` in a link's route draws the
    page anyway (the page fixture fails on any page error)."""
    sign_in(page, console, "viewer")
    outcome = page.evaluate(
        """async () => {
          const { h } = await import("/static/dom.js");
          const tries = {
            javascript_href: () => h("a", { href: "javascript:alert(1)" }),
            absolute_href: () => h("a", { href: "https://evil.example/" }),
            src: () => h("img", { src: "x" }),
            action: () => h("form", { action: "https://evil.example/" }),
            text_handler: () => h("div", { onclick: "alert(1)" }),
            style: () => h("div", { style: "color: red" }),
          };
          const refused = {};
          for (const [name, make] of Object.entries(tries)) {
            try { make(); refused[name] = false; } catch { refused[name] = true; }
          }
          const text = h("td", {}, "<img src=x onerror=alert(1)>");
          const route = h("a", { href: "#/node/x" }, "x");
          return {
            refused,
            children: text.children.length,
            text: text.textContent,
            route: route.getAttribute("href"),
          };
        }"""
    )
    assert all(outcome["refused"].values()), outcome["refused"]
    assert outcome["children"] == 0 and outcome["text"] == "<img src=x onerror=alert(1)>"
    assert outcome["route"] == "#/node/x"
    page.goto(console.base_url + "/#/node/%E0%A4%A")
    expect(page.get_by_test_id("main")).to_contain_text("No such node")

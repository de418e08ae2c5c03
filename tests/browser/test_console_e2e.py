"""The web console on the real stack: `bastion venue sim`, a paper node (`bastion run`)
trading with it over FIX, and `bastion console` made by `bastion console init`, each a
process; Debian's chromium signs operators in with password and TOTP.

A risk officer watches the node trade live, kills it (confirmation, step-up) and asks
for a resume; the venue's own ledger shows every order canceled and the position flat;
a second risk officer, in another browser, approves the resume (step-up); a viewer is
offered no control and refused by the API itself. The node's journal names each
operator, with the console as the source. The operators' uids are made up: this
process's uid (the console's) is in `[access] consoles` and maps to no operator, so the
console's own polling reads as the read-only `console`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.sync_api import Browser, Page, expect

from bastion.clock import SimClock
from bastion.model import events as ev
from bastion.model.enums import TradingState
from bastion.vault.keysource import KEY_FILE_ENV
from bastion.vault.vault import Vault
from kit.browser import ConsoleUnderTest, Operator, Watch, sign_in, watched_page
from kit.console_process import answering, console_init, console_process
from kit.fix_node_desk import ledger_open, ledger_position, process, started_venue, write_desk
from kit.journal_reading import read_journal, trading_long_with_resting_orders
from kit.live_desk import enrol_operators
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, still_running, terminate
from kit.users import PASSWORD, FreshCodes
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file
from kit.waiting import eventually

pytestmark = pytest.mark.timeout(240)

NODE: Final = "killfix"
OPERATORS: Final = {
    "rita": (61_001, "risk_officer"),
    "rob": (61_002, "risk_officer"),
    "vic": (61_003, "viewer"),
}
"""Made-up uids: none is this process's, which the console runs as."""
ACCESS: Final = """
[access]
consoles = [{uid}]
[access.four_eyes]
resume_s = 300
"""
WHY_KILL: Final = "console drill"
UPDATE_TIMEOUT_S: Final = 15.0


def node_text(page: Page, testid: str) -> str:
    return page.get_by_test_id(f"node-{NODE}").get_by_test_id(testid).inner_text()


def test_when_operators_use_the_console_then_the_node_halts_at_the_venue_and_resumes_by_four_eyes(
    tmp_path: Path, browser: Browser
) -> None:
    """Sign in, watch trading live, kill with step-up (venue: nothing open, flat), resume
    approved by a second risk officer, a viewer refused; all journaled by name."""
    venue_port, console_port = free_tcp_port(), free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, venue_port=venue_port)
    node_cfg.write_text(node_cfg.read_text() + ACCESS.format(uid=os.getuid()))
    Vault.create(tmp_path / "vault.bastion", PASSPHRASE, clock=SimClock(T0), kdf=FAST_KDF)
    _, seeds = enrol_operators(tmp_path / "vault.bastion", OPERATORS)
    key = key_file(tmp_path)
    console_cfg = console_init(tmp_path / "console", node_cfg, key=key, port=console_port)
    cert = tmp_path / "console" / "tls" / "console.pem"
    base_url = f"https://127.0.0.1:{console_port}"
    console = ConsoleUnderTest(
        base_url,
        {
            "risk_officer": Operator("rita", PASSWORD),
            "second_risk_officer": Operator("rob", PASSWORD),
            "viewer": Operator("vic", PASSWORD),
        },
        FreshCodes(seeds),
    )
    venue_log, node_log, console_log = (tmp_path / f"{n}.log" for n in ("venue", "node", "con"))
    with (
        process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue,
        process("run", node_cfg, cwd=tmp_path, log=node_log, env={KEY_FILE_ENV: str(key)}) as node,
        console_process(console_cfg, log=console_log) as console_proc,
    ):
        started_venue(venue, venue_log, venue_port)
        eventually(lambda: answering(console_proc, base_url, cert, console_log), START_TIMEOUT_S)

        def trading() -> bool:
            still_running(node, node_log)
            trading_long_with_resting_orders(journal)
            assert len(ledger_open(tmp_path)) >= 2, "no resting orders at the venue yet"
            return True

        eventually(trading, START_TIMEOUT_S + 15, what="the node trading at the venue")

        officer_watch = Watch()
        officer_watch.expect(403, rf"/api/nodes/{NODE}/kill$")  # step-up needed
        with watched_page(browser, officer_watch) as officer:
            operator = sign_in(officer, console, "risk_officer")
            watch_it_trade(officer)
            kill_with_step_up(officer, console, operator)

            def venue_quiet() -> bool:
                assert ledger_open(tmp_path) == [], "orders still open at the venue"
                assert ledger_position(tmp_path) == 0, "a position left at the venue"
                return True

            eventually(venue_quiet, UPDATE_TIMEOUT_S, what="the venue: nothing open, flat")

            card = officer.get_by_test_id(f"node-{NODE}")
            card.get_by_test_id("resume").click()
            officer.get_by_test_id("field-why").fill("drill over")
            officer.get_by_test_id("confirm-ok").click()  # stepped up a moment ago
            expect(officer.get_by_test_id("flash")).to_contain_text("second operator")
            expect(officer.get_by_test_id("approvals-count")).to_have_text("1")
            expect(card.get_by_test_id("node-state")).to_have_text("HALTED")

            approver_watch = Watch()
            approver_watch.expect(403, rf"/api/nodes/{NODE}/approvals/[^/]+/approve$")
            with watched_page(browser, approver_watch) as approver:
                approve_with_step_up(approver, console)
            expect(card.get_by_test_id("node-state")).to_have_text(
                "ACTIVE", timeout=UPDATE_TIMEOUT_S * 1000
            )

        with watched_page(browser, Watch()) as viewer:
            viewer_is_refused(viewer, console)

        still_running(node, node_log)
        assert terminate(node) == 0, node_log.read_text()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: the exit is by the signal
    assert console_proc.returncode in (0, -signal.SIGTERM), console_log.read_text()
    assert "Application shutdown complete" in console_log.read_text()

    journaled(read_journal(journal))


def watch_it_trade(page: Page) -> None:
    """The overview shows the node ACTIVE; its page shows working orders, and its
    position changes through live updates (no reload)."""
    expect(page.get_by_test_id(f"node-{NODE}").get_by_test_id("node-state")).to_have_text("ACTIVE")
    page.get_by_test_id(f"node-{NODE}").get_by_test_id("node-link").click()
    expect(page.get_by_test_id("node-title")).to_have_text(NODE)
    expect(page.get_by_test_id("orders-row").first).to_be_visible()
    positions = page.get_by_test_id("positions-row")
    expect(positions.first).to_be_visible()
    first = positions.first.inner_text()
    eventually(
        lambda: positions.first.inner_text() != first,
        UPDATE_TIMEOUT_S,
        what="the position changed by a live update",
    )
    page.get_by_test_id("nav-overview").click()


def kill_with_step_up(page: Page, console: ConsoleUnderTest, operator: Operator) -> None:
    """Kill + flatten from the kill switch page: confirmation, then step-up."""
    page.get_by_test_id("nav-kill").click()
    card = page.get_by_test_id(f"node-{NODE}")
    card.get_by_test_id("kill-flatten").click()
    dialog = page.get_by_test_id("kill-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("field-why").fill(WHY_KILL)
    dialog.get_by_test_id("kill-dialog-ok").click()
    prompt = page.get_by_test_id("step-up")
    expect(prompt).to_be_visible()
    prompt.get_by_test_id("step-up-code").fill(console.totp(operator.name))
    prompt.get_by_test_id("step-up-ok").click()
    expect(card.get_by_test_id("node-state")).to_have_text(
        "HALTED", timeout=UPDATE_TIMEOUT_S * 1000
    )


def approve_with_step_up(page: Page, console: ConsoleUnderTest) -> None:
    """The second risk officer approves the pending resume (step-up)."""
    operator = sign_in(page, console, "second_risk_officer")
    page.get_by_test_id("nav-approvals").click()
    rows = page.get_by_test_id(f"node-{NODE}").get_by_test_id("approvals-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("rita")
    rows.first.get_by_test_id("approve").click()
    page.get_by_test_id("field-why").fill("checked with rita")
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("step-up-code").fill(console.totp(operator.name))
    page.get_by_test_id("step-up-ok").click()
    expect(rows).to_have_count(0, timeout=UPDATE_TIMEOUT_S * 1000)
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id(f"node-{NODE}").get_by_test_id("node-state")).to_have_text(
        "ACTIVE", timeout=UPDATE_TIMEOUT_S * 1000
    )


def viewer_is_refused(page: Page, console: ConsoleUnderTest) -> None:
    """No control on any page; the API refuses a kill and an approval (403) itself."""
    sign_in(page, console, "viewer")
    for nav in ("nav-overview", "nav-strategies", "nav-risk", "nav-kill", "nav-approvals"):
        page.get_by_test_id(nav).click()
        expect(page.get_by_test_id("main").locator("button")).to_have_count(0)
    expect(page.get_by_test_id("kill")).to_have_count(0)
    me = page.request.get(console.base_url + "/api/me").json()
    headers = {"content-type": "application/json", "x-csrf-token": me["csrf"]}
    for path, body in (
        (f"/api/nodes/{NODE}/kill", {"why": "not mine to do", "flatten": False}),
        (f"/api/nodes/{NODE}/approvals/x.a1/approve", {"why": "nor this"}),
    ):
        answer = page.request.post(console.base_url + path, data=body, headers=headers)
        assert answer.status == 403, (path, answer.status, answer.text())
    expect(page.get_by_test_id(f"node-{NODE}").get_by_test_id("node-state")).to_have_text("ACTIVE")


def journaled(events: list[tuple[int, Any]]) -> None:
    """Sign-ins, the kill, the resume request and its approval, by name, from the
    console; nothing from the viewer but signing in."""
    me = os.getuid()
    auths = [e for _, e in events if isinstance(e, ev.OperatorAuth)]
    assert all(e.uid == me and e.source.startswith("console 127.0.0.1") for e in auths)
    signed = {(e.operator, e.kind, e.outcome) for e in auths}
    assert {
        ("rita", "login", "ok"),
        ("rita", "step_up", "ok"),
        ("rob", "login", "ok"),
        ("rob", "step_up", "ok"),
        ("vic", "login", "ok"),
    } <= signed
    commands = [e for _, e in events if isinstance(e, ev.OperatorCommand)]
    (kill,) = [e for e in commands if e.command in ("kill", "flatten")]
    assert (kill.operator, kill.roles, kill.why) == ("rita", ["risk_officer"], WHY_KILL)
    (asked,) = [e for _, e in events if isinstance(e, ev.ApprovalRequested)]
    assert (asked.operator, asked.command, asked.why) == ("rita", "resume", "drill over")
    (granted,) = [e for _, e in events if isinstance(e, ev.ApprovalGranted)]
    assert (granted.operator, granted.requested_by, granted.approval_id) == (
        "rob",
        "rita",
        asked.approval_id,
    )
    for event in (kill, asked, granted):
        assert event.source.startswith("console 127.0.0.1"), event.source
        assert event.uid == me
    assert not [
        e
        for _, e in events
        if isinstance(e, ev.OperatorCommand | ev.OperatorRefused) and e.operator == "vic"
    ]
    states = [(e.state, e.reason) for _, e in events if isinstance(e, ev.TradingStateChanged)]
    assert (TradingState.HALTED, f"kill by rita: {WHY_KILL}") in states
    assert states[-1][0] is TradingState.ACTIVE

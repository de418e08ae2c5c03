"""The console API against a fake node on a real socket: what it shows, what it
forwards, what it journals, and bad bodies refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.console.app import ConsoleApp
from kit.console import (
    Browser,
    ConsoleDesk,
    FakeConsoleNode,
    console_app,
    placeholder_static,
    sample_view,
    wait_polled,
)
from kit.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def desk(tmp_path: Path) -> ConsoleDesk:
    return ConsoleDesk.make(tmp_path)


@pytest.fixture
def nodes() -> Iterator[list[FakeConsoleNode]]:
    started = [FakeConsoleNode("paper-1").start(), FakeConsoleNode("paper-2").start()]
    yield started
    for node in started:
        node.stop()


@pytest.fixture
def app(desk: ConsoleDesk, nodes: list[FakeConsoleNode], tmp_path: Path) -> ConsoleApp:
    return console_app(
        desk,
        nodes,
        static_dir=placeholder_static(tmp_path / "static"),
        poll=True,
        poll_interval_ms=50,
    )


@pytest.fixture
def browser(app: ConsoleApp, desk: ConsoleDesk) -> Iterator[Browser]:
    with Browser(app, desk) as browser:
        yield browser


def test_when_page_asked_then_served_without_session(browser: Browser) -> None:
    """/ and /login are the single-page app; its files under /static."""
    for path in ("/", "/login"):
        response = browser.http.get(path)
        assert response.status_code == 200 and "<script src" in response.text
    assert browser.http.get("/static/app.js").status_code == 200
    assert browser.http.get("/static/missing.js").status_code == 404


def test_when_signed_in_then_me_says_roles_may_and_csrf(browser: Browser) -> None:
    """ME: name, roles, strategies, CSRF token, no step-up yet, idle timeout, may."""
    login = browser.login("tom").json()
    me = browser.http.get("/api/me").json()
    assert login["user"] == me and login["csrf"] == me["csrf"]
    assert (me["name"], me["roles"], me["strategies"]) == ("tom", ["trader"], ["ema"])
    assert me["step_up_until_ms"] is None and me["idle_timeout_s"] == 900
    assert me["may"]["read"] and me["may"]["strategy_enable"] and not me["may"]["kill"]


def test_when_nodes_polled_then_views_and_equity_shown(
    browser: Browser, app: ConsoleApp, nodes: list[FakeConsoleNode]
) -> None:
    """Every node's latest view; one node's; its equity points."""
    browser.login("vic")
    wait_polled(app, 4)
    listed = browser.http.get("/api/nodes").json()["nodes"]
    assert [n["name"] for n in listed] == ["paper-1", "paper-2"]
    assert listed[0] == {"name": "paper-1", "reachable": True, "error": None, "view": sample_view()}
    nodes[0].view = sample_view(ts_ms=sample_view()["ts_ms"] + 1000, total="13.00")
    eventually(
        lambda: len(browser.http.get("/api/nodes/paper-1/equity").json()["points"]) == 2,
        what="a second equity point",
    )
    points = browser.http.get("/api/nodes/paper-1/equity").json()["points"]
    assert [p["equity"] for p in points] == ["12.50", "13.00"]
    assert browser.http.get("/api/nodes/nope").status_code == 404


def test_when_node_stops_then_shown_unreachable(
    browser: Browser, app: ConsoleApp, nodes: list[FakeConsoleNode]
) -> None:
    """A node that stops answering is unreachable, with why; the other is unaffected."""
    browser.login("vic")
    wait_polled(app, 2)
    nodes[1].stop()
    state = eventually(
        lambda: (s := browser.http.get("/api/nodes/paper-2").json())["reachable"] is False and s
    )
    assert state["error"] and state["view"] is None
    assert browser.http.get("/api/nodes/paper-1").json()["reachable"] is True


def test_when_action_allowed_then_forwarded_on_behalf_and_answer_returned(
    browser: Browser, nodes: list[FakeConsoleNode]
) -> None:
    """A kill becomes one request on the operator's behalf; the node's answer comes back,
    409 when the node refuses."""
    browser.login("rita")
    browser.step_up("rita")
    response = browser.post("/api/nodes/paper-2/kill", {"why": "drill", "flatten": True})
    assert response.json() == {"ok": True, "cmd": "kill"}
    assert nodes[1].actions() == [
        {
            "cmd": "kill",
            "flatten": True,
            "why": "drill",
            "on_behalf": {"operator": "rita", "source": "127.0.0.1"},
        }
    ]
    assert nodes[0].actions() == []
    nodes[1].answers["resume"] = {"ok": False, "error": "refused: rita asked for the kill"}
    refused = browser.post("/api/nodes/paper-2/resume", {"why": "done"})
    assert (refused.status_code, refused.json()["error"]) == (
        409,
        "refused: rita asked for the kill",
    )


def test_when_strategy_routes_then_node_commands(
    browser: Browser, nodes: list[FakeConsoleNode]
) -> None:
    """enable, disable, start, stop map to the node's commands; others are 404."""
    browser.login("tom")
    for action in ("enable", "disable", "start", "stop"):
        assert (
            browser.post(f"/api/nodes/paper-1/strategies/ema/{action}", {"why": "w"}).status_code
            == 200
        )
    assert [r["cmd"] for r in nodes[0].actions()] == [
        "enable",
        "disable",
        "strategy_start",
        "strategy_stop",
    ]
    assert browser.post("/api/nodes/paper-1/strategies/ema/delete", {"why": "w"}).status_code == 404
    assert browser.post("/api/nodes/paper-1/strategies/other/stop", {"why": "w"}).status_code == 403


def test_when_audit_asked_then_forwarded_with_query(
    browser: Browser, nodes: list[FakeConsoleNode]
) -> None:
    """The audit trail query goes to the node as the contract says; bad parameters 400."""
    browser.login("vic")
    nodes[0].audit_records = [
        {
            "seq": 7,
            "ts": "2026-01-01T00:00:00Z",
            "type": "Kill",
            "operator": "rita",
            "source": "console 127.0.0.1",
            "summary": "kill",
        }
    ]
    answer = browser.http.get("/api/nodes/paper-1/audit?q=kill&limit=20&before=99").json()
    assert answer["records"][0]["seq"] == 7
    sent = nodes[0].received("audit")[-1]
    assert (sent["query"], sent["limit"], sent["before_seq"]) == ("kill", 20, 99)
    assert sent["on_behalf"]["operator"] == "vic"
    assert browser.http.get("/api/nodes/paper-1/audit").status_code == 200
    assert nodes[0].received("audit")[-1]["limit"] == 100
    for bad in ("limit=0", "limit=501", "limit=x", "before=-1"):
        response = browser.http.get(f"/api/nodes/paper-1/audit?{bad}")
        assert response.status_code == 400 and bad.split("=")[0] in response.json()["error"]


def test_when_signed_in_stepped_up_and_out_then_every_node_journals_it(
    browser: Browser, nodes: list[FakeConsoleNode]
) -> None:
    """Sign-in, step-up, sign-out and a refusal reach every node as record_auth."""
    browser.login("rita", totp="000000")
    browser.login("rita")
    browser.step_up("rita")
    browser.post("/api/logout", {})
    for node in nodes:
        records = eventually(
            lambda node=node: (
                len(node.received("record_auth")) == 4 and node.received("record_auth")
            )
        )
        assert [(r["kind"], r["outcome"]) for r in records] == [
            ("login", "refused"),
            ("login", "ok"),
            ("step_up", "ok"),
            ("logout", "ok"),
        ]
        assert all(r["operator"] == "rita" and r["source"] == "127.0.0.1" for r in records)


def test_when_name_not_an_operator_name_then_not_journaled_as_typed(
    browser: Browser, nodes: list[FakeConsoleNode]
) -> None:
    """A 'name' that may be a password typed in the wrong field is not sent to the nodes."""
    browser.login("Tr0ub4dor&3 oops", totp="123456")
    record = eventually(lambda: nodes[0].received("record_auth"))[0]
    assert "Tr0ub4dor" not in json.dumps(record)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
PAUSE_KEYS = st.sampled_from(["instrument", "for_s", "why", "extra"])
OVERRIDE_KEYS = st.sampled_from(["path", "value", "for_s", "why", "bogus"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(["pause", "overrides"]),
    body=st.one_of(
        st.dictionaries(PAUSE_KEYS | OVERRIDE_KEYS, JSON_VALUES, max_size=5),
        JSON_VALUES,
    ),
)
def test_when_body_fuzzed_then_400_naming_field_or_forwarded(
    browser: Browser, nodes: list[FakeConsoleNode], route: str, body: object
) -> None:
    """Any JSON to a POST route: either a 400 that names the field, or one well-formed
    request forwarded; never a 500."""
    if not browser.csrf:
        browser.login("rita")
        browser.step_up("rita")
    before = len(nodes[0].actions())
    response = browser.post(f"/api/nodes/paper-1/{route}", body)
    if response.status_code == 400:
        error = response.json()["error"]
        assert error.startswith("field '") or "expected `object`" in error, error
        assert len(nodes[0].actions()) == before
    else:
        assert response.status_code == 200, response.text
        sent = nodes[0].actions()[-1]
        assert isinstance(sent["why"], str) and sent["for_s"] > 0


def test_when_body_not_json_then_400(browser: Browser) -> None:
    """Text that is not JSON is refused as such."""
    browser.login("rita")
    response = browser.http.post(
        "/api/nodes/paper-1/pause",
        content=b"{nope",
        headers={"content-type": "application/json", "x-csrf-token": browser.csrf},
    )
    assert response.json() == {"error": "the body is not valid JSON"}
    response = browser.http.post(
        "/api/nodes/paper-1/pause",
        content=b'{"instrument": "\x80", "for_s": 60, "why": "x"}',  # not UTF-8
        headers={"content-type": "application/json", "x-csrf-token": browser.csrf},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "the body is not valid JSON"}

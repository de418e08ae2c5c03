"""Attacks on the console tried as an outsider inside the allowlist, a signed-in viewer
or trader, and a node whose names reach the page: cookie tossing, CSRF by form and by
another session's token, names and ids with encoding tricks, nodes and sockets the
config does not name, the Host header, step-up shared or replayed across sessions, and
an unreachable node's error reaching every operator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from bastion.console.app import ConsoleApp
from bastion.console.config import LoginConfig
from bastion.console.sessions import COOKIE
from kit.console import (
    Browser,
    ConsoleDesk,
    FakeConsoleNode,
    console_app,
    placeholder_static,
)

pytestmark = pytest.mark.timeout(120)

KILL: dict[str, Any] = {"why": "drill", "flatten": False}


@pytest.fixture
def desk(tmp_path: Path) -> ConsoleDesk:
    return ConsoleDesk.make(tmp_path)


@pytest.fixture
def node() -> Iterator[FakeConsoleNode]:
    node = FakeConsoleNode().start()
    yield node
    node.stop()


@pytest.fixture
def app(desk: ConsoleDesk, node: FakeConsoleNode, tmp_path: Path) -> ConsoleApp:
    return console_app(
        desk,
        [node],
        static_dir=placeholder_static(tmp_path / "static"),
        login=LoginConfig(max_per_source_per_min=5, source_lockout_s=600),
    )


SignIn = Callable[..., Browser]


@pytest.fixture
def signed_in(app: ConsoleApp, desk: ConsoleDesk) -> Iterator[SignIn]:
    """``signed_in(name, step_up=False)``: a new browser signed in as ``name``."""
    opened: list[Browser] = []

    def sign_in(name: str, *, step_up: bool = False) -> Browser:
        browser = Browser(app, desk).__enter__()
        opened.append(browser)
        desk.next_step()
        assert browser.login(name).status_code == 200
        if step_up:
            assert browser.step_up(name).status_code == 200
        return browser

    yield sign_in
    for browser in opened:
        browser.__exit__(None, None, None)


def raw_cookie(app: ConsoleApp, header: str) -> TestClient:
    """A client that sends exactly ``header`` as its Cookie header."""
    client = TestClient(app, base_url="https://testserver", client=("127.0.0.1", 50001))
    client.headers["cookie"] = header
    return client


def poll(app: ConsoleApp, name: str) -> None:
    """Poll node ``name`` once (the app is built with polling off)."""
    asyncio.run(app.console.poller.poll_once(name))


# -- cookies ---------------------------------------------------------------------------


def test_when_session_cookie_sent_twice_then_no_session_is_chosen(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """Cookie tossing: a second ``__Host-bastion_session`` (planted by a sibling host, or
    a nameless cookie whose value reads as one) next to the operator's own: refused,
    whichever comes first, and nothing is forwarded."""
    rita = signed_in("rita", step_up=True)
    mallory = signed_in("vic")
    own, tossed = str(rita.session_id), str(mallory.session_id)
    for header in (
        f"{COOKIE}={tossed}; {COOKIE}={own}",
        f"{COOKIE}={own}; {COOKIE}={tossed}",
        f"{COOKIE}={own}; {COOKIE}={own}",
    ):
        client = raw_cookie(app, header)
        assert client.get("/api/me").status_code == 401
        kill = client.post(
            "/api/nodes/paper-1/kill",
            json=KILL,
            headers={"x-csrf-token": rita.csrf},
        )
        assert kill.status_code == 401
        assert client.get("/api/nodes").status_code == 401
    assert node.actions() == []
    assert raw_cookie(app, f"{COOKIE}={own}").get("/api/me").json()["name"] == "rita"


@pytest.mark.parametrize(
    "name", ["bastion_session", "__host-bastion_session", "__HOST-bastion_session", "session"]
)
def test_when_session_id_sent_under_another_cookie_name_then_no_session(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, name: str
) -> None:
    """Only the ``__Host-`` cookie (which no other host may set) carries a session."""
    rita = signed_in("rita")
    assert raw_cookie(app, f"{name}={rita.session_id}").get("/api/me").status_code == 401


def test_when_signing_in_with_a_planted_session_then_a_new_id_is_issued(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk
) -> None:
    """Fixation: a browser carrying someone's session id gets a fresh id at sign-in,
    and the planted one is dead."""
    planted = signed_in("vic")
    planted_id = str(planted.session_id)
    victim = Browser(app, desk).__enter__()
    victim.http.cookies.set(COOKIE, planted_id, domain="testserver.local")
    desk.next_step()
    assert victim.login("rita").status_code == 200
    assert victim.session_id not in (None, planted_id)
    assert raw_cookie(app, f"{COOKIE}={planted_id}").get("/api/me").status_code == 401


# -- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json, text/plain",
        "application/jsonx",
        None,
    ],
)
def test_when_a_form_posts_json_text_then_415_and_nothing_forwarded(
    signed_in: SignIn,
    app: ConsoleApp,
    desk: ConsoleDesk,
    node: FakeConsoleNode,
    content_type: str | None,
) -> None:
    """A cross-site form can send JSON-looking text with a simple content type (no
    preflight); the console reads only ``application/json``."""
    rita = signed_in("rita", step_up=True)
    headers = {"x-csrf-token": rita.csrf}
    if content_type is not None:
        headers["content-type"] = content_type
    response = rita.http.post(
        "/api/nodes/paper-1/kill", content=b'{"why": "csrf", "flatten": true}', headers=headers
    )
    assert response.status_code == 415
    assert node.actions() == []


def test_when_json_posted_without_the_token_or_with_another_sessions_then_403(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """The CSRF token is the session's own: none, another operator's, the same
    operator's other session's, or one from before signing in again: all refused."""
    rita = signed_in("rita", step_up=True)
    rob = signed_in("rob", step_up=True)
    rita_too = signed_in("rita", step_up=True)
    old_token = rita.csrf
    for token in ("", rob.csrf, rita_too.csrf):
        assert rita.post("/api/nodes/paper-1/kill", KILL, csrf=token).status_code == 403
    desk.next_step()
    assert rita.login("rita").status_code == 200
    assert rita.csrf != old_token
    assert rita.post("/api/nodes/paper-1/kill", KILL, csrf=old_token).status_code == 403
    assert node.actions() == []


def test_when_stepped_up_then_the_session_keeps_its_token(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """A step-up gives a new session id but the same CSRF token (the page holds it);
    the old id is dead with it."""
    rita = signed_in("rita")
    before = str(rita.session_id)
    assert rita.step_up("rita").status_code == 200
    assert rita.post("/api/nodes/paper-1/kill", KILL).status_code == 200
    stale = raw_cookie(app, f"{COOKIE}={before}")
    assert stale.post("/api/nodes/paper-1/kill", json=KILL, headers={"x-csrf-token": rita.csrf})
    assert len(node.received("kill")) == 1


# -- names, ids and nodes --------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    ["EMA", "Ema", "\uff45\uff4d\uff41", "ema ", " ema", "ema\u200b", "e\u0301ma", "ema.", "ema,x"],
)
def test_when_a_trader_names_a_lookalike_of_their_strategy_then_refused(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, strategy: str
) -> None:
    """tom trades ``ema``: case, width, spacing and combining characters do not make
    another strategy his (the names are compared as they are, here and at the node)."""
    tom = signed_in("tom")
    path = f"/api/nodes/paper-1/strategies/{quote(strategy, safe='')}/disable"
    assert tom.post(path, {"why": "x"}).status_code == 403
    assert node.actions() == []


def test_when_a_trader_percent_encodes_their_own_strategy_then_it_is_that_one(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """``%65ma`` is ``ema``: decoded once, checked and forwarded as the same name."""
    tom = signed_in("tom")
    assert tom.post("/api/nodes/paper-1/strategies/%65ma/disable", {"why": "x"}).status_code == 200
    assert [r["strategy"] for r in node.received("disable")] == ["ema"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/nodes/paper-1/strategies/..%2Fema/disable",
        "/api/nodes/paper-1/strategies/ema%2F..%2Fother/disable",
        "/api/nodes/paper-1/strategies/%2e%2e/disable",
        "/api/nodes/paper-1/strategies/ema%00/disable",
        "/api/nodes/paper-1/strategies/ema%0A/disable",
        "/api/nodes/paper-1/strategies/ema/disable%2F..%2Fenable",
        "/api/nodes/paper-1/strategies/ema/%64isable",
    ],
)
def test_when_a_strategy_route_is_path_tricked_then_refused(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, path: str
) -> None:
    """Encoded separators, dots and control characters in a name or an action: refused
    before any check that could be fooled; ``%64isable`` is not an action alias either
    way (it decodes to ``disable``, which tom may do)."""
    tom = signed_in("tom")
    status = tom.post(path, {"why": "x"}).status_code
    if path.endswith("%64isable"):
        assert status == 200 and node.received("disable")[-1]["strategy"] == "ema"
    else:
        assert status in (400, 404)
        assert node.actions() == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/nodes/paper-1/approvals/..%2F..%2Fkill/approve",
        "/api/nodes/paper-1/approvals/%2e%2e/approve",
        "/api/nodes/paper-1/approvals/a1%00/approve",
        "/api/nodes/paper-1/approvals/a1%0D%0Aapprove/approve",
        "/api/nodes/paper-1/approvals/%5Ca1/approve",
        "/api/nodes/paper-1/overrides/..%2Fkill/clear",
        "/api/nodes/paper-1/overrides/o1%09/clear",
        "/api/nodes/paper-1/alerts/a1%2F..%2F..%2Fkill/ack",
        f"/api/nodes/paper-1/approvals/{'a' * 129}/approve",
    ],
)
def test_when_a_record_id_is_path_tricked_then_refused(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, path: str
) -> None:
    """An approval, override or alert id cannot climb out of its route nor carry
    control characters to the node."""
    rita = signed_in("rita", step_up=True)
    assert rita.post(path, {"why": "x"}).status_code == 400
    assert node.actions() == []


def test_when_an_id_is_odd_but_printable_then_forwarded_verbatim_as_data(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """Quotes and braces in an id stay one JSON string: no field is added to the
    request the node gets."""
    rita = signed_in("rita", step_up=True)
    odd = 'a1","cmd":"kill'
    assert rita.post(f"/api/nodes/paper-1/approvals/{quote(odd)}/approve", {"why": "x"})
    (sent,) = node.received("approve")
    assert sent["id"] == odd and sent["on_behalf"]["operator"] == "rita"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nodes/paper-2"),
        ("GET", "/api/nodes/other/audit"),
        ("GET", "/api/nodes/PAPER-1/audit"),
        ("GET", "/api/nodes/paper-1.sock/equity"),
        ("GET", "/api/nodes/j.sqlite.sock/audit"),
        ("GET", "/api/nodes/{socket}/audit"),
        ("POST", "/api/nodes/other/kill"),
        ("POST", "/api/nodes/{socket}/kill"),
        ("POST", "/api/nodes/%2Ftmp%2Fj.sqlite.sock/kill"),
    ],
)
def test_when_a_node_not_in_the_config_is_named_then_nothing_reaches_any_socket(
    signed_in: SignIn,
    app: ConsoleApp,
    desk: ConsoleDesk,
    node: FakeConsoleNode,
    method: str,
    path: str,
) -> None:
    """A node is one of the config's names, never a path: another name, a socket's
    file name or its full path (encoded) reach no socket."""
    rita = signed_in("rita", step_up=True)
    path = path.replace("{socket}", quote(str(node.socket), safe=""))
    if method == "GET":
        status = rita.http.get(path).status_code
    else:
        status = rita.post(path, KILL).status_code
    assert status in (400, 404)
    assert node.actions() == []


# -- Host header -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/login", "/api/me", "/api/me/", "/api/nodes/", "/static", "/nope", "/api/x"]
)
def test_when_host_header_is_forged_then_no_answer_names_it(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, path: str
) -> None:
    """Nothing builds a URL from ``Host``: no redirect to a trailing-slash variant (which
    would send the browser to the forged host), no link, no echo."""
    vic = signed_in("vic")
    response = vic.http.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    assert "evil.example" not in response.text
    assert all("evil.example" not in v for v in response.headers.values())
    assert response.status_code not in (301, 302, 303, 307, 308)


# -- step-up ---------------------------------------------------------------------------


def test_when_one_session_stepped_up_then_another_of_the_same_operator_is_not(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """The step-up window is the session's: rita's second browser (or a stolen cookie
    of hers) must step up itself."""
    first = signed_in("rita", step_up=True)
    second = signed_in("rita")
    refused = second.post("/api/nodes/paper-1/kill", KILL)
    assert refused.status_code == 403 and refused.json()["step_up"] is True
    assert first.post("/api/nodes/paper-1/kill", KILL).status_code == 200
    assert len(node.received("kill")) == 1


def test_when_a_step_up_code_is_replayed_then_refused(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk
) -> None:
    """A code is good once: the sign-in's code as the step-up, and one session's
    step-up code in another session, are refused."""
    first = signed_in("rita")
    login_code = desk.code("rita")
    assert first.post("/api/step-up", {"totp": login_code}).status_code == 401
    second = signed_in("rita")
    desk.next_step()
    code = desk.code("rita")
    assert first.post("/api/step-up", {"totp": code}).status_code == 200
    assert second.post("/api/step-up", {"totp": code}).status_code == 401
    refused = second.post("/api/nodes/paper-1/kill", KILL)
    assert refused.status_code == 403 and refused.json()["step_up"] is True


# -- query parameters ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", "-1", "0x10", "9" * 30, " 5"])
def test_when_an_audit_number_is_not_ascii_digits_then_400(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, value: str
) -> None:
    """``limit`` and ``before`` are ASCII digits in range: a superscript or another
    script's digits are refused (400), never a server error."""
    vic = signed_in("vic")
    for key in ("limit", "before"):
        assert vic.http.get("/api/nodes/paper-1/audit", params={key: value}).status_code == 400
    assert node.received("audit") == []


# -- an unreachable node ---------------------------------------------------------------


def test_when_a_node_is_unreachable_then_operators_see_no_path_and_the_log_has_it(
    signed_in: SignIn,
    app: ConsoleApp,
    desk: ConsoleDesk,
    node: FakeConsoleNode,
) -> None:
    """The node's journal is gone and its socket silent: every signed-in operator sees
    the node unreachable, by name, with no filesystem path nor OS error text; the
    console's log keeps the detail for whoever runs it."""
    node.stop()
    node.journal.unlink()
    vic = signed_in("vic")
    rita = signed_in("rita", step_up=True)
    with capture_logs() as logs:
        poll(app, node.name)
    shown = vic.http.get("/api/nodes/paper-1").json()
    assert shown["reachable"] is False and shown["error"].startswith("node paper-1: ")
    answers = [
        shown["error"],
        vic.http.get("/api/nodes").text,
        vic.http.get("/api/nodes/paper-1/audit").text,
        rita.post("/api/nodes/paper-1/kill", KILL).text,
    ]
    for text in answers:
        assert str(node.directory) not in text and "j.sqlite" not in text
        assert "Errno" not in text
    assert any(str(node.directory) in str(entry.get("detail")) for entry in logs)


def test_when_the_socket_is_not_listening_then_shown_as_such_without_detail(
    signed_in: SignIn, app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """A stopped node (journal still there) shows as not listening, nothing more."""
    node.stop()
    vic = signed_in("vic")
    poll(app, node.name)
    error = vic.http.get("/api/nodes/paper-1").json()["error"]
    assert error == "node paper-1: not listening"


def test_when_the_node_refuses_the_view_then_its_reason_stays_in_the_log(
    signed_in: SignIn,
    app: ConsoleApp,
    desk: ConsoleDesk,
    node: FakeConsoleNode,
) -> None:
    """A node's refusal of the console's view (which may name its store's path or an
    account) is logged, not shown to every operator."""
    node.answers["view"] = {
        "ok": False,
        "error": "refused: the operator store cannot be read (/srv/desk/users.bastion)",
    }
    vic = signed_in("vic")
    with capture_logs() as logs:
        poll(app, node.name)
    state = vic.http.get("/api/nodes/paper-1").json()
    assert state["reachable"] is True and "/srv/desk" not in state["error"]
    assert any("/srv/desk/users.bastion" in str(entry.get("detail")) for entry in logs)

"""Attacks on the console's API, tried and refused (issue 16 §3): every route enumerated
from the app, sessions without MFA, expired, forged or replayed, CSRF, method override,
path tricks, brute force, the role matrix, step-up, and secrets in answers."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route

from bastion.console.actions import ACTIONS, PUBLIC, READS, SESSION, STRATEGY_ACTIONS
from bastion.console.app import ConsoleApp
from bastion.console.config import LoginConfig
from bastion.console.guards import CSP
from bastion.console.sessions import COOKIE
from bastion.security.roles import Command, allowed_any
from kit.console import (
    PASSWORD,
    ROLES,
    Browser,
    ConsoleDesk,
    FakeConsoleNode,
    console_app,
    placeholder_static,
)
from kit.users import KEY
from kit.waiting import eventually

PARAMS = {"node": "paper-1", "strategy": "ema", "action": "enable", "id": "a1"}
BODIES: dict[str, dict[str, Any]] = {
    "kill": {"why": "drill", "flatten": False},
    "resume": {"why": "drill"},
    "pause": {"instrument": "BTC-USD", "for_s": 60, "why": "drill"},
    "strategy": {"why": "drill"},
    "override": {"path": "risk.max_order_notional", "value": "1500", "for_s": 60, "why": "d"},
    "override_clear": {"why": "drill"},
    "ceiling": {"path": "risk.max_order_notional", "value": "3000", "why": "drill"},
    "approve": {"why": "drill"},
    "alert_ack": {"why": "drill"},
}
pytestmark = pytest.mark.timeout(120)
STEP_UP_ROUTES = {"kill", "resume", "override", "ceiling", "approve"}


def url(path: str, **params: str) -> str:
    return path.format(**{**PARAMS, **params})


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


@pytest.fixture
def browser(app: ConsoleApp, desk: ConsoleDesk) -> Iterator[Browser]:
    with Browser(app, desk) as browser:
        yield browser


def every_route(app: ConsoleApp) -> list[tuple[str, str, str]]:
    """(name, method, concrete path) for every route of the app."""
    found: list[tuple[str, str, str]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append((str(route.name), "GET", route.path + "/app.js"))
        else:
            assert isinstance(route, Route) and route.methods is not None
            for method in sorted(route.methods - {"HEAD"}):
                found.append((route.name, method, url(route.path)))
    return found


def test_when_app_built_then_every_route_is_in_the_one_table(app: ConsoleApp) -> None:
    """No route exists that the public/session/read/action table does not state."""
    stated = set(PUBLIC) | set(SESSION) | set(READS) | {a.name for a in ACTIONS}
    names = {name for name, _, _ in every_route(app)}
    assert names == stated


def test_when_unauthenticated_then_every_non_public_route_refused(
    browser: Browser, app: ConsoleApp, node: FakeConsoleNode
) -> None:
    """Every route but the page and sign-in answers 401 without a session; nothing is
    forwarded to the node."""
    checked = 0
    for name, method, path in every_route(app):
        if name in PUBLIC:
            continue
        if method == "GET":
            response = browser.http.get(path)
        else:
            response = browser.post(path, BODIES.get(name, {}), csrf="x")
        assert response.status_code == 401, (name, path, response.text)
        assert response.json() == {"error": "sign in again"}
        checked += 1
    assert checked == len(READS) + len(SESSION) + len(ACTIONS)
    assert node.actions() == []


def test_when_any_route_answers_then_security_headers_present(
    browser: Browser, app: ConsoleApp
) -> None:
    """CSP, HSTS, nosniff, no referrer, no framing on every answer, refusals included;
    no-store on the API."""
    browser.login("vic")
    # the live-update stream never ends: its headers are checked over TLS (test_console_tls)
    answers = [browser.http.request(m, p) for n, m, p in every_route(app) if n != "events"]
    answers.append(browser.http.get("/nowhere"))
    answers.append(browser.http.get("/api/me", headers={"x-http-method-override": "POST"}))
    for response in answers:
        h = response.headers
        assert h["content-security-policy"] == CSP
        assert h["strict-transport-security"].startswith("max-age=")
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert h["x-frame-options"] == "DENY"
        assert "camera=()" in h["permissions-policy"]
        assert "server" not in h
        if response.url.path.startswith("/api"):
            assert h["cache-control"] == "no-store"
    assert "script-src 'self';" in CSP and "unsafe" not in CSP


def test_when_source_not_allowed_then_403_for_everything(
    app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """An address outside ``allow`` gets 403 on every route, even sign-in and the page."""
    with Browser(app, desk, address="192.0.2.7") as outsider:
        for _, method, path in every_route(app):
            assert outsider.http.request(method, path).status_code == 403
        assert outsider.login("rita").status_code == 403
    assert node.requests == []


def test_when_login_without_second_factor_then_no_session(
    browser: Browser, desk: ConsoleDesk, tmp_path: Path
) -> None:
    """A session cannot exist without a TOTP code: missing, empty, wrong or from an
    operator with none enrolled, all refused the same way."""
    assert (
        browser.http.post("/api/login", json={"name": "rita", "password": PASSWORD}).status_code
        == 400
    )
    for totp in ("", "000000", "12345678"):
        response = browser.login("rita", totp=totp)
        assert (response.status_code, response.json()) == (401, {"error": "sign-in refused"})
    desk.users.add("sam", PASSWORD, roles=("viewer",), totp=None)
    response = browser.login("sam", totp="123456")
    assert (response.status_code, response.json()) == (401, {"error": "sign-in refused"})
    assert browser.session_id is None
    assert browser.http.get("/api/me").status_code == 401


def test_when_refusals_then_same_answer_whatever_failed(
    browser: Browser, desk: ConsoleDesk
) -> None:
    """Unknown name, wrong password, wrong code: one answer, never which factor."""
    answers = {
        browser.login("nobody", totp="123456").text,
        browser.login("vic", password="wrong-password-1").text,
        browser.login("tom", totp="999999").text,
    }
    assert answers == {'{"error":"sign-in refused"}'}


def test_when_brute_forced_then_account_and_source_locked(
    app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode
) -> None:
    """3 wrong passwords lock the operator (right ones refused after); 5 refusals from
    one address block it (429), while other addresses still sign in."""
    with Browser(app, desk, address="127.0.0.2") as attacker:
        for _ in range(3):
            assert attacker.login("vic", password="guess-guess-guess").status_code == 401
        assert attacker.login("vic").status_code == 401  # the right password: locked out
        assert attacker.login("tom", password="guess-guess-guess").status_code == 401
        assert attacker.login("rita").status_code == 429  # the source is blocked
    with Browser(app, desk, address="127.0.0.3") as desk_user:
        assert desk_user.login("vic").status_code == 401  # the account stays locked
        assert desk_user.login("rita").status_code == 200
    wanted = {"operator locked out", "source blocked"}
    eventually(
        lambda: (
            wanted <= {r["outcome"] for r in node.received("record_auth") if r["kind"] == "lockout"}
        ),
        what="both lockouts journaled",
    )


def test_when_session_expired_then_refused_and_journaled(
    browser: Browser, desk: ConsoleDesk, app: ConsoleApp, node: FakeConsoleNode
) -> None:
    """Past the idle timeout, and past the absolute expiry however busy, a session is gone."""
    config = app.console.config
    browser.login("vic")
    desk.clock.set_time(desk.clock.timestamp_ns() + config.idle_timeout_s * 10**9)
    assert browser.http.get("/api/me").status_code == 401
    browser.login("vic")
    start = desk.clock.timestamp_ns()
    step = (config.idle_timeout_s - 1) * 10**9
    while desk.clock.timestamp_ns() + step < start + config.session_ttl_s * 10**9:
        desk.clock.set_time(desk.clock.timestamp_ns() + step)
        assert browser.http.get("/api/me").status_code == 200
    desk.clock.set_time(start + config.session_ttl_s * 10**9)
    assert browser.http.get("/api/me").status_code == 401
    eventually(
        lambda: (
            {r["outcome"] for r in node.received("record_auth") if r["kind"] == "expired"}
            == {"idle", "expired"}
        ),
        what="both endings journaled",
    )


def test_when_cookie_forged_or_replayed_then_refused(browser: Browser, desk: ConsoleDesk) -> None:
    """A made-up id, an id after sign-out, an id from before a step-up: all refused."""
    browser.http.cookies.set(COOKIE, secrets.token_urlsafe(32), domain="testserver.local")
    assert browser.http.get("/api/me").status_code == 401
    browser.http.cookies.clear()
    browser.login("rita")
    first = browser.session_id
    desk.next_step()
    browser.login("rita")  # signing in again: a new id, the old one dead
    assert browser.session_id != first
    browser.http.cookies.clear()
    browser.http.cookies.set(COOKIE, str(first), domain="testserver.local")
    assert browser.http.get("/api/me").status_code == 401
    browser.http.cookies.clear()
    desk.next_step()
    browser.login("rita")
    before_step_up = browser.session_id
    assert browser.step_up("rita").status_code == 200
    after_step_up = browser.session_id
    assert after_step_up != before_step_up
    browser.http.cookies.clear()
    browser.http.cookies.set(COOKIE, str(before_step_up), domain="testserver.local")
    assert browser.http.get("/api/me").status_code == 401
    browser.http.cookies.clear()
    browser.http.cookies.set(COOKIE, str(after_step_up), domain="testserver.local")
    assert browser.post("/api/logout", {}).status_code == 200
    browser.http.cookies.set(COOKIE, str(after_step_up), domain="testserver.local")
    assert browser.http.get("/api/me").status_code == 401


def test_when_login_then_cookie_secure_httponly_strict_host_prefixed(browser: Browser) -> None:
    """The session cookie: __Host- prefix, Secure, HttpOnly, SameSite=Strict, Path=/."""
    response = browser.login("vic")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for part in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert part.lower() in cookie.lower()
    assert "domain" not in cookie.lower()


def test_when_csrf_missing_or_wrong_then_refused_and_nothing_forwarded(
    browser: Browser, node: FakeConsoleNode
) -> None:
    """Every POST needs the session's CSRF token."""
    browser.login("rita")
    browser.step_up("rita")
    for token in ("", "forged", browser.csrf[:-1]):
        response = browser.post(url("/api/nodes/{node}/kill"), BODIES["kill"], csrf=token)
        assert response.status_code == 403
    assert browser.post("/api/logout", {}, csrf="").status_code == 403
    assert node.actions() == []


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/me", {"X-HTTP-Method-Override": "POST"}),
        ("GET", "/api/me", {"X-HTTP-Method": "DELETE"}),
        ("GET", "/api/me", {"X-Method-Override": "PUT"}),
        ("GET", "/api/me?_method=POST", {}),
        ("POST", "/api/logout?_method=DELETE", {"content-type": "application/json"}),
        ("PUT", "/api/nodes/paper-1/kill", {}),
        ("DELETE", "/api/me", {}),
        ("OPTIONS", "/api/me", {}),
    ],
)
def test_when_method_overridden_then_refused(
    browser: Browser, method: str, path: str, headers: dict[str, str]
) -> None:
    """No method override, and no method but GET, HEAD and POST."""
    browser.login("vic")
    response = browser.http.request(method, path, headers=headers)
    assert response.status_code in (400, 405)


@pytest.mark.parametrize(
    "raw",
    [
        "/api/nodes/paper-1%2Fkill",
        "/api/nodes%2fpaper-1",
        "/static/..%2f..%2fapi/me",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/api//me",
        "/api/%5cme",
        "/static/%252e%252e/x",
        "/api/me%00",
    ],
)
def test_when_path_tricked_then_refused(browser: Browser, raw: str) -> None:
    """Encoded slashes and dots, double slashes, backslashes and NULs: 400."""
    browser.login("vic")
    response = browser.http.get(raw)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "raw", ["/static/../api/me", "/api/./me", "//api/me", "/static/..", "/api\\me"]
)
def test_when_raw_path_has_dot_segments_then_400(app: ConsoleApp, raw: str) -> None:
    """Paths a client library would normalise, sent as they are: 400 before routing."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": raw,
        "raw_path": raw.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400


def test_when_body_too_large_or_not_json_then_refused(
    browser: Browser, node: FakeConsoleNode
) -> None:
    """Bodies over the limit (declared or streamed) get 413; a POST not JSON gets 415."""
    browser.login("rita")
    big = {"why": "x" * 5000}
    assert browser.post(url("/api/nodes/{node}/alerts/{id}/ack"), big).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"why": "'
        yield b"y" * 5000
        yield b'"}'

    streamed = browser.http.post(
        url("/api/nodes/{node}/alerts/{id}/ack"),
        content=chunks(),
        headers={"content-type": "application/json", "x-csrf-token": browser.csrf},
    )
    assert streamed.status_code == 413
    form = browser.http.post(
        url("/api/nodes/{node}/alerts/{id}/ack"),
        data={"why": "x"},
        headers={"x-csrf-token": browser.csrf},
    )
    assert form.status_code == 415
    assert node.actions() == []


def expected_command(name: str, body: dict[str, Any], action: str) -> Command:
    spec = next(a for a in ACTIONS if a.name == name)
    decoded = spec.body(**body)
    return spec.command(decoded, {**PARAMS, "action": action})


CASES = [
    (a.name, action, body)
    for a in ACTIONS
    for action in (sorted(STRATEGY_ACTIONS) if a.name == "strategy" else ["enable"])
    for body in (
        [BODIES["kill"], {**BODIES["kill"], "flatten": True}]
        if a.name == "kill"
        else [BODIES["resume"], {**BODIES["resume"], "instrument": "BTC-USD"}]
        if a.name == "resume"
        else [BODIES[a.name]]
    )
]


@pytest.mark.parametrize("operator", sorted(ROLES))
def test_when_matrix_walked_then_allowed_forwarded_refused_not(
    app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, operator: str
) -> None:
    """Every action route by every role: allowed → forwarded on the operator's behalf;
    refused → 403 and nothing reaches the node. Reads: every role."""
    user = desk.users.get(operator)
    with Browser(app, desk) as browser:
        assert browser.login(operator).status_code == 200
        assert browser.step_up(operator).status_code == 200
        for name, path in READS.items():
            if name != "events":
                assert browser.http.get(url(path)).status_code == 200, name
        for name, action, body in CASES:
            spec = next(a for a in ACTIONS if a.name == name)
            command = expected_command(name, body, action)
            before = len(node.actions())
            response = browser.post(url(spec.path, action=action), body)
            may = allowed_any(user.roles, command, strategy="ema", assigned=user.strategies)
            if may:
                assert response.status_code == 200, (name, action, response.text)
                sent = node.actions()[-1]
                assert sent["on_behalf"] == {"operator": operator, "source": "127.0.0.1"}
                assert len(node.actions()) == before + 1
            else:
                assert response.status_code == 403, (name, action, command)
                assert len(node.actions()) == before
            assert browser.http.get("/api/me").json()["may"][command.value] == may or (
                command.value.startswith("strategy_")
            )


def test_when_not_stepped_up_then_step_up_routes_refused_with_flag(
    browser: Browser, desk: ConsoleDesk, app: ConsoleApp, node: FakeConsoleNode
) -> None:
    """Kill, resume, overrides, ceilings, approve: 403 {step_up: true} outside the
    window; inside it, forwarded; after it, refused again. Others need no step-up."""
    with Browser(app, desk) as admin:
        admin.login("ada")
        for name in ("ceiling", "approve"):
            response = admin.post(
                url(next(a.path for a in ACTIONS if a.name == name)), BODIES[name]
            )
            assert (response.status_code, response.json().get("step_up")) == (403, True)
    browser.login("rita")
    for spec in ACTIONS:
        if spec.name in STEP_UP_ROUTES - {"ceiling"}:
            response = browser.post(url(spec.path), BODIES[spec.name])
            assert (response.status_code, response.json().get("step_up")) == (403, True)
    assert browser.post(url("/api/nodes/{node}/pause"), BODIES["pause"]).status_code == 200
    assert [r["cmd"] for r in node.actions()] == ["pause_instrument"]
    assert browser.step_up("rita").status_code == 200
    assert browser.post(url("/api/nodes/{node}/kill"), BODIES["kill"]).status_code == 200
    desk.clock.set_time(desk.clock.timestamp_ns() + app.console.config.step_up_s * 10**9)
    response = browser.post(url("/api/nodes/{node}/kill"), BODIES["kill"])
    assert response.status_code == 403 and response.json()["step_up"] is True
    assert browser.http.get("/api/me").json()["step_up_until_ms"] is None


def test_when_step_up_code_wrong_then_401_and_counted(browser: Browser, desk: ConsoleDesk) -> None:
    """A wrong step-up code is refused and counts towards the lockout."""
    browser.login("rita")
    assert browser.post("/api/step-up", {"totp": "000000"}).status_code == 401
    assert desk.users.get("rita").failed_logins == 1


def test_when_operator_disabled_then_their_session_ends(
    browser: Browser, desk: ConsoleDesk
) -> None:
    """Roles are read from the store on every request: disabling ends the session."""
    browser.login("tom")
    assert browser.http.get("/api/me").status_code == 200
    desk.users.disable("tom")
    assert browser.http.get("/api/me").status_code == 401
    desk.users.enable("tom")
    assert browser.http.get("/api/me").status_code == 401


def test_when_any_answer_then_no_secret_in_it(
    app: ConsoleApp, desk: ConsoleDesk, node: FakeConsoleNode, capfd: pytest.CaptureFixture[str]
) -> None:
    """No password, hash, TOTP seed, users key or other session id in any answer or log."""
    texts: list[str] = []
    with Browser(app, desk) as other:
        other.login("rob")
        other_id = str(other.session_id)
    with Browser(app, desk) as browser:
        for response in (
            browser.login("rita", password="wrong-password-1"),
            browser.login("rita"),
            browser.http.get("/api/me"),
            browser.step_up("rita"),
            browser.post("/api/step-up", {"totp": "000000"}),
            browser.http.get("/api/nodes"),
            browser.http.get(url("/api/nodes/{node}")),
            browser.http.get(url("/api/nodes/{node}/audit")),
            browser.post(url("/api/nodes/{node}/kill"), BODIES["kill"]),
            browser.post(url("/api/nodes/{node}/kill"), {"why": 1}),
            browser.post("/api/logout", {}),
        ):
            texts.append(response.text + str(response.headers))
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    forbidden = [PASSWORD, "$argon2", KEY.hex(), other_id, *desk.seeds.values()]
    for text in texts:
        for secret in forbidden:
            assert secret not in text
    assert re.search(r"argon2", "".join(texts)) is None

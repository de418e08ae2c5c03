"""The console served for real: uvicorn over TLS on a loopback port, plain HTTP refused,
live updates streamed, and ``bastion console init`` making a console that serves."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from bastion.cli.main import main
from bastion.clock import SimClock
from bastion.console.config import LoginConfig, TlsConfig, load_console_config
from bastion.console.guards import CSP
from bastion.console.server import build_app
from bastion.security.config import USERS_KEY
from bastion.security.store import UserStore
from kit.console import (
    PASSWORD,
    ConsoleDesk,
    FakeConsoleNode,
    console_app,
    console_config,
    placeholder_static,
    serving,
    tls_files,
)
from kit.users import FAST_USERS, STEP_NS, code, enrolled
from kit.vaults import T0, key_file, new_vault

pytestmark = pytest.mark.timeout(120)


def trust(cert: Path) -> ssl.SSLContext:
    """A client context trusting only the console's self-signed certificate."""
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def node() -> Iterator[FakeConsoleNode]:
    node = FakeConsoleNode().start()
    yield node
    node.stop()


@pytest.fixture
def served(tmp_path: Path, node: FakeConsoleNode) -> Iterator[tuple[str, Path, ConsoleDesk]]:
    desk = ConsoleDesk.make(tmp_path)
    cert, key = tls_files(tmp_path)
    config = console_config([node], tls=TlsConfig(cert=str(cert), key=str(key)))
    app = console_app(desk, [node], static_dir=placeholder_static(tmp_path / "static"), poll=True)
    with serving(app, config, tmp_path) as base:
        yield base, cert, desk


def test_when_plain_http_to_tls_port_then_no_http_answer(
    served: tuple[str, Path, ConsoleDesk], node: FakeConsoleNode
) -> None:
    """A request in clear text gets no HTTP response: the port speaks TLS only."""
    base, _, _ = served
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"HTTP/")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/me", timeout=5)
    assert node.actions() == []


def test_when_https_then_sign_in_and_live_updates_stream(
    served: tuple[str, Path, ConsoleDesk], node: FakeConsoleNode
) -> None:
    """Over HTTPS: the page, sign-in, and the event stream's first node state."""
    base, cert, desk = served
    with httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "server" not in page.headers
        login = client.post(
            "/api/login", json={"name": "vic", "password": PASSWORD, "totp": desk.code("vic")}
        )
        assert login.status_code == 200
        with client.stream("GET", "/api/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            assert events.headers["cache-control"] == "no-store"
            assert events.headers["x-content-type-options"] == "nosniff"
            lines = events.iter_lines()
            assert next(lines) == "event: node"
            data = next(lines)
        assert data.startswith("data: ")
        state = msgspec.json.decode(data.removeprefix("data: "))
        assert state["name"] == node.name and set(state) == {"name", "reachable", "error", "view"}


def test_when_too_many_stream_clients_then_429(tmp_path: Path, node: FakeConsoleNode) -> None:
    """At most max_event_clients live-update streams at once."""
    desk = ConsoleDesk.make(tmp_path)
    cert, key = tls_files(tmp_path)
    config = console_config([node], tls=TlsConfig(cert=str(cert), key=str(key)))
    app = console_app(
        desk, [node], static_dir=placeholder_static(tmp_path / "s"), max_event_clients=1
    )
    with (
        serving(app, config, tmp_path) as base,
        httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client,
    ):
        client.post(
            "/api/login", json={"name": "vic", "password": PASSWORD, "totp": desk.code("vic")}
        )
        with client.stream("GET", "/api/events") as first:
            lines = first.iter_lines()  # kept: a dropped iterator closes the stream
            assert next(lines) == "event: node"
            assert client.get("/api/events").status_code == 429


def test_when_console_init_then_config_cert_and_key_file_serve(
    tmp_path: Path, node: FakeConsoleNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bastion console init` writes a console.toml that loads, a 0600 users key equal to
    the vault's, a certificate; the console it makes signs an operator in over TLS."""
    vault = new_vault(tmp_path / "vault.bastion")
    vault.ensure_key(USERS_KEY)
    clock = SimClock(T0)
    store = UserStore.for_vault(vault, clock=clock, config=FAST_USERS)
    seed, confirmed = enrolled("rita")
    store.add("rita", PASSWORD, roles=("risk_officer",), totp=confirmed)
    (tmp_path / "paper.toml").write_text(
        f'[node]\nid = "{node.name}"\n[journal]\npath = "{node.journal}"\n'
    )
    monkeypatch.setenv("BASTION_VAULT_KEY_FILE", str(key_file(tmp_path)))
    target = tmp_path / "console"
    assert main(["console", "init", str(target), "--config", str(tmp_path / "paper.toml")]) == 0
    key_path = target / "users.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_text().strip() == vault.get(USERS_KEY).reveal()
    assert stat.S_IMODE(os.stat(target / "tls" / "console.key").st_mode) == 0o600
    config, base_dir = load_console_config(target / "console.toml")
    assert config.node_sockets(base_dir) == {node.name: node.socket}
    assert main(["console", "init", str(target), "--config", str(tmp_path / "paper.toml")]) == 2

    clock.set_time(T0 + STEP_NS)
    app = build_app(config, base_dir, clock=clock, static_dir=placeholder_static(tmp_path / "s"))
    with (
        serving(app, config, base_dir) as base,
        httpx.Client(
            base_url=base, verify=trust(target / "tls" / "console.pem"), timeout=10
        ) as client,
    ):
        login = client.post(
            "/api/login",
            json={"name": "rita", "password": PASSWORD, "totp": code(seed, T0 + STEP_NS)},
        )
        assert login.status_code == 200, login.text
        assert client.get("/api/me").json()["name"] == "rita"


def test_when_signed_out_then_open_stream_ends(tmp_path: Path, node: FakeConsoleNode) -> None:
    """A live-update stream ends with its session (checked at each ping)."""
    desk = ConsoleDesk.make(tmp_path)
    cert, key = tls_files(tmp_path)
    config = console_config([node], tls=TlsConfig(cert=str(cert), key=str(key)))
    app = console_app(desk, [node], static_dir=placeholder_static(tmp_path / "s"))
    app.console.ping_s = 0.2
    with (
        serving(app, config, tmp_path) as base,
        httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client,
    ):
        csrf = client.post(
            "/api/login", json={"name": "vic", "password": PASSWORD, "totp": desk.code("vic")}
        ).json()["csrf"]
        with client.stream("GET", "/api/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: node"
            assert client.post("/api/logout", json={}, headers={"x-csrf-token": csrf}).json() == {
                "ok": True
            }
            rest = list(lines)  # ends: no timeout
        assert "event: node" not in rest
        assert len(app.console.hub) == 0


def test_when_stream_busy_and_operator_disabled_then_stream_ends(
    tmp_path: Path, node: FakeConsoleNode
) -> None:
    """A node whose view changes at every poll keeps the stream busy, so it never waits
    a whole ping: the operator is re-read every ``ping_s`` all the same, and a disabled
    operator's stream ends."""
    desk = ConsoleDesk.make(tmp_path)
    cert, key = tls_files(tmp_path)
    config = console_config([node], tls=TlsConfig(cert=str(cert), key=str(key)))

    def tick(view: dict[str, object]) -> None:
        view["ts_ms"] = int(str(view["ts_ms"])) + 1

    node.on_view = tick
    app = console_app(
        desk, [node], static_dir=placeholder_static(tmp_path / "s"), poll=True, poll_interval_ms=50
    )
    app.console.ping_s = 0.3
    with (
        serving(app, config, tmp_path) as base,
        httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client,
    ):
        client.post(
            "/api/login", json={"name": "vic", "password": PASSWORD, "totp": desk.code("vic")}
        )
        with client.stream("GET", "/api/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: node"
            desk.users.disable("vic")
            deadline = time.monotonic() + 5
            for _line in lines:  # ends: the operator is gone
                assert time.monotonic() < deadline, "the stream outlived its operator"
        assert len(app.console.hub) == 0
        assert client.get("/api/me").status_code == 401


def test_when_refusals_rotate_proxy_headers_then_the_source_is_still_blocked(
    served: tuple[str, Path, ConsoleDesk], node: FakeConsoleNode
) -> None:
    """``X-Forwarded-For``, ``X-Real-IP`` and ``Forwarded`` are not read: a client
    rotating them is one source, blocked after ``max_per_source_per_min`` refusals."""
    base, cert, desk = served
    with httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client:
        for n in range(LoginConfig().max_per_source_per_min):
            forged = f"198.51.100.{n + 1}"
            refused = client.post(
                "/api/login",
                json={"name": f"nobody{n}", "password": "wrong-password", "totp": "000000"},
                headers={
                    "x-forwarded-for": forged,
                    "x-real-ip": forged,
                    "forwarded": f"for={forged}",
                },
            )
            assert refused.status_code == 401
        blocked = client.post(
            "/api/login",
            json={"name": "vic", "password": PASSWORD, "totp": desk.code("vic")},
            headers={"x-forwarded-for": "198.51.100.200"},
        )
        assert blocked.status_code == 429


def raw_tls(base: str, cert: Path, data: bytes) -> bytes:
    """Send ``data`` on one TLS connection to the console; everything it answers. The
    console may answer (and close) before ``data`` is all sent, as it does a request
    whose headers are too large: sending stops there, and the answer is read."""
    port = int(base.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        trust(cert).wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        with contextlib.suppress(ssl.SSLError, BrokenPipeError, ConnectionResetError):
            tls.sendall(data)  # cut short by an early answer and close: read that
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError, ssl.SSLError):
            while chunk := tls.recv(65536):
                answer += chunk
    return answer


def test_when_headers_are_huge_or_framing_ambiguous_then_refused_and_served_after(
    served: tuple[str, Path, ConsoleDesk], node: FakeConsoleNode
) -> None:
    """2 MB of headers: 400, the connection closed (memory bounded by one read); a
    body framed by both ``Content-Length`` and chunked encoding is read as chunked (the
    JSON that ``Content-Length`` covers is never a sign-in). The server serves on."""
    base, cert, desk = served
    huge = b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n"
    assert raw_tls(base, cert, huge).startswith(b"HTTP/1.1 400 ")
    body = b'{"name": "rita", "password": "wrong-password", "totp": "000000"}'
    ambiguous = (
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%s"
        % (len(body), b"0\r\n\r\n" + body)
    )
    assert raw_tls(base, cert, ambiguous).startswith(b"HTTP/1.1 400 ")
    assert desk.users.get("rita").failed_logins == 0
    with httpx.Client(base_url=base, verify=trust(cert), timeout=10) as client:
        assert client.get("/api/me").status_code == 401

"""The console's seam for tests: a fake node speaking the console contract on a real
Unix socket (``FakeConsoleNode``), a desk of operators with their TOTP seeds
(``ConsoleDesk``), a placeholder page, the console app over them (``console_app``), a
client that signs in (``Browser``), and a real TLS uvicorn server (``tls_console``).

The browser tests reuse ``FakeConsoleNode`` and ``tls_console`` to drive the frontend
against a node whose view they set.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
from starlette.testclient import TestClient

from bastion.certs import create_server_cert
from bastion.clock import SimClock
from bastion.console.app import ConsoleApp, create_app
from bastion.console.client import NodeClient
from bastion.console.config import ConsoleConfig, NodeEntry, TlsConfig
from bastion.console.server import uvicorn_server
from bastion.console.sessions import COOKIE
from bastion.security.store import UserStore
from kit.console_views import audit_page
from kit.users import PASSWORD, STEP_NS, code, enrolled, store
from kit.vaults import T0
from kit.waiting import eventually

__all__ = [
    "PASSWORD",
    "ROLES",
    "Browser",
    "ConsoleDesk",
    "FakeConsoleNode",
    "console_app",
    "console_config",
    "placeholder_static",
    "sample_view",
    "serving",
    "short_dir",
    "tls_files",
    "wait_polled",
]

ROLES: Final = {
    "vic": ("viewer",),
    "tom": ("trader",),
    "rita": ("risk_officer",),
    "rob": ("risk_officer",),
    "ada": ("admin",),
}
"""One operator per role (two risk officers, for four-eyes); tom trades ``ema``."""


def short_dir() -> Path:
    """A fresh directory with a short path (a socket path holds at most 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="bc-", dir="/tmp"))


def sample_view(
    name: str = "paper-1", *, ts_ms: int = T0 // 1_000_000, total: str = "12.50"
) -> dict[str, Any]:
    """A complete ``view`` as the contract has it (every key present)."""
    iso = "2026-01-01T00:00:00Z"
    return {
        "node": name,
        "mode": "paper",
        "ts": iso,
        "ts_ms": ts_ms,
        "state": "ACTIVE",
        "reason": None,
        "venues": [{"name": "SIM", "session": "up", "halted": False, "open_orders": 1}],
        "feeds": [
            {
                "name": "synthetic",
                "instruments": ["BTC-USD"],
                "last_quote_age_ms": 40,
                "stale": False,
            }
        ],
        "alerts": [
            {
                "id": "a1",
                "alert": "StaleQuotes",
                "severity": "warning",
                "summary": "quotes are late",
                "since": iso,
                "acknowledged_by": None,
            }
        ],
        "pnl": {"realized": "10.00", "unrealized": "2.50", "total": total, "currency": "USD"},
        "exposure": {"gross": "1000.00", "net": "500.00", "currency": "USD"},
        "positions": [
            {
                "instrument": "BTC-USD",
                "quantity": "0.01",
                "avg_price": "50000",
                "mark": "50250",
                "unrealized": "2.50",
            }
        ],
        "orders": [
            {
                "id": "o1",
                "instrument": "BTC-USD",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "0.01",
                "filled": "0",
                "price": "49900",
                "status": "WORKING",
                "strategy": "ema",
                "venue": "SIM",
            }
        ],
        "strategies": [
            {
                "name": "ema",
                "running": True,
                "disabled": False,
                "disabled_reason": None,
                "pnl": "12.50",
                "open_orders": 1,
            }
        ],
        "limits": [
            {
                "path": "risk.max_order_notional",
                "configured": "1000",
                "effective": "1000",
                "ceiling": "2000",
                "utilisation": "0.5",
            }
        ],
        "overrides": [],
        "approvals": [],
        "paused_instruments": [],
    }


Json = dict[str, Any]


@dataclass
class FakeConsoleNode:
    """A node on a real Unix socket (``socket``, beside a journal file this process
    owns): answers ``view`` with ``view``, ``audit`` from ``audit_records`` (oldest
    first; searched and paged as the node does), every other command ``{"ok": true,
    "cmd": ...}`` (or ``answers[cmd]``); ``requests`` holds every request line it
    received, decoded, in order.

    ``on_view`` changes ``view`` before each ``view`` answer (time moving on);
    ``react`` answers a command other than ``view``, ``audit`` and ``record_auth``
    and changes ``view`` as the node would (``kit.console_views.act``)."""

    name: str = "paper-1"
    directory: Path = field(default_factory=short_dir)
    view: Json = field(default_factory=sample_view)
    answers: dict[str, Json] = field(default_factory=dict)
    audit_records: list[Json] = field(default_factory=list)
    requests: list[Json] = field(default_factory=list)
    on_view: Callable[[Json], None] | None = None
    react: Callable[[Json, Json], Json] | None = None
    _server: socketserver.ThreadingUnixStreamServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def journal(self) -> Path:
        return self.directory / "j.sqlite"

    @property
    def socket(self) -> Path:
        return self.directory / "j.sqlite.sock"

    def start(self) -> FakeConsoleNode:
        self.journal.write_bytes(b"")
        node = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    if not line.strip():
                        continue
                    self.wfile.write(json.dumps(node.answer(json.loads(line))).encode() + b"\n")
                    self.wfile.flush()

        self._server = socketserver.ThreadingUnixStreamServer(str(self.socket), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    def answer(self, req: Json) -> Json:
        with self._lock:
            self.requests.append(req)
            cmd = str(req.get("cmd"))
            if cmd in self.answers:
                return self.answers[cmd]
            if cmd == "view":
                if self.on_view is not None:
                    self.on_view(self.view)
                return {"ok": True, "view": copy.deepcopy(self.view)}
            if cmd == "audit":
                page = audit_page(
                    self.audit_records,
                    query=str(req.get("query") or ""),
                    limit=int(req.get("limit") or 100),
                    before_seq=req.get("before_seq"),
                )
                return {"ok": True, **page}
            if self.react is not None and cmd != "record_auth":
                return self.react(self.view, req)
            return {"ok": True, "cmd": cmd}

    def received(self, cmd: str) -> list[Json]:
        """The requests named ``cmd`` received so far."""
        with self._lock:
            return [r for r in self.requests if r.get("cmd") == cmd]

    def actions(self) -> list[Json]:
        """The requests other than ``view`` and ``record_auth``."""
        with self._lock:
            return [r for r in self.requests if r.get("cmd") not in ("view", "record_auth")]

    def client(self, timeout_s: float = 5.0) -> NodeClient:
        return NodeClient(self.name, self.socket, timeout_s=timeout_s)


@dataclass
class ConsoleDesk:
    """An operator store (cheap hashes, 3 failures lock out) with one operator per
    role in ``ROLES``; ``seeds`` their TOTP seeds."""

    users: UserStore
    seeds: dict[str, str]
    clock: SimClock

    @classmethod
    def make(
        cls,
        directory: Path,
        clock: SimClock | None = None,
        *,
        roles: Mapping[str, tuple[str, ...]] = ROLES,
        strategies: Mapping[str, tuple[str, ...]] | None = None,
    ) -> ConsoleDesk:
        """The desk of ``roles`` (operator: roles); ``strategies``: those assigned to
        each operator (default: tom trades ``ema``)."""
        clock = clock or SimClock(T0)
        assigned = {"tom": ("ema",)} if strategies is None else strategies
        users = store(directory, clock=clock)
        seeds: dict[str, str] = {}
        for name, held in roles.items():
            seed, confirmed = enrolled(name, clock.timestamp_ns())
            users.add(name, PASSWORD, roles=held, strategies=assigned.get(name, ()), totp=confirmed)
            seeds[name] = seed
        desk = cls(users, seeds, clock)
        desk.next_step()  # the enrolment used the code of this step
        return desk

    def code(self, name: str) -> str:
        """``name``'s TOTP code now."""
        return code(self.seeds[name], self.clock.timestamp_ns())

    def next_step(self) -> None:
        """Move the clock to the next TOTP step (a code is good once)."""
        self.clock.set_time(self.clock.timestamp_ns() + STEP_NS)

    def fresh_code(self, name: str) -> str:
        """A code the store has not seen yet: the clock moves to the next step first
        (the store takes a code once, and one step's code is the same all step long)."""
        self.next_step()
        return self.code(name)


def placeholder_static(directory: Path) -> Path:
    """A stand-in for the console's pages (the real ones are the frontend's)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text(
        '<!doctype html><title>bastion</title><script src="/static/app.js"></script>\n'
    )
    (directory / "app.js").write_text("// placeholder\n")
    return directory


def console_config(nodes: list[FakeConsoleNode], **overrides: Any) -> ConsoleConfig:
    """A console config for ``nodes`` (TLS files named but unused by the test client)."""
    fields: dict[str, Any] = {
        "tls": TlsConfig(cert="cert.pem", key="key.pem"),
        "users": "users.bastion",
        "users_key": "users.key",
        "nodes": [NodeEntry(name=n.name, socket=str(n.socket)) for n in nodes],
        "max_body_bytes": 4096,
    }
    fields.update(overrides)
    return ConsoleConfig(**fields)


def console_app(
    desk: ConsoleDesk,
    nodes: list[FakeConsoleNode],
    *,
    static_dir: Path,
    poll: bool = False,
    **overrides: Any,
) -> ConsoleApp:
    return create_app(
        console_config(nodes, **overrides),
        store=desk.users,
        clients={n.name: n.client() for n in nodes},
        clock=desk.clock,
        static_dir=static_dir,
        poll=poll,
    )


class Browser:
    """One browser on the console through Starlette's test client, from ``address``."""

    def __init__(self, app: ConsoleApp, desk: ConsoleDesk, address: str = "127.0.0.1") -> None:
        self.desk = desk
        self.http = TestClient(app, base_url="https://testserver", client=(address, 50000))
        self.csrf = ""

    def __enter__(self) -> Browser:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)

    def login(self, name: str, *, password: str = PASSWORD, totp: str | None = None) -> Any:
        response = self.http.post(
            "/api/login",
            json={
                "name": name,
                "password": password,
                "totp": self.desk.code(name) if totp is None else totp,
            },
        )
        if response.status_code == 200:
            self.csrf = response.json()["csrf"]
        return response

    def step_up(self, name: str) -> Any:
        self.desk.next_step()
        return self.post("/api/step-up", {"totp": self.desk.code(name)})

    def post(self, path: str, body: Any, *, csrf: str | None = None) -> Any:
        token = self.csrf if csrf is None else csrf
        return self.http.post(
            path,
            content=msgspec.json.encode(body),
            headers={
                "content-type": "application/json",
                "x-csrf-token": token,
            },
        )

    @property
    def session_id(self) -> str | None:
        value = self.http.cookies.get(COOKIE)
        return None if value is None else str(value)


@contextlib.contextmanager
def serving(app: ConsoleApp, config: ConsoleConfig, base_dir: Path) -> Iterator[str]:
    """``app`` served by uvicorn over TLS (as ``bastion console`` serves it) on a free
    loopback port, in a thread; yields its base URL (``https://127.0.0.1:PORT``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn_server(app, config, base_dir)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started or not thread.is_alive(), what="uvicorn started")
        assert server.started, "the console server did not start"
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, in ``directory``."""
    cert, key = directory / "console.pem", directory / "console.key"
    create_server_cert(cert, key)
    return cert, key


def wait_polled(app: ConsoleApp, at_least: int = 1) -> None:
    eventually(lambda: app.console.poller.polls >= at_least, what="the console polled")

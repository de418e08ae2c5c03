"""A stand-in console backend for the browser tests, until the real one serves them: a
small Starlette app that serves the product's page (src/bastion/console/static) under
the contract's strict CSP, over HTTPS, and answers the contract's API from canned views
(kit.console_views). It keeps sessions, CSRF tokens, step-up and the role matrix like
the contract says, changes its views when an action arrives (a kill halts the node),
streams them as server-sent events, and records every POST for the tests to inspect."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import bastion
from bastion.certs import create_certs
from bastion.security.roles import STRATEGY_COMMANDS, Command, allowed_any
from bastion.security.totp import code_at, new_seed, step_at
from kit import console_views
from kit.console_views import Json

STATIC: Final = Path(bastion.__file__).parent / "console" / "static"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COOKIE: Final = "__Host-bastion_session"
STEP_UP_MS: Final = 120_000
TICK_S: Final = 0.5
STEP_UP: Final = frozenset(
    {
        Command.KILL,
        Command.FLATTEN,
        Command.RESUME,
        Command.RESUME_INSTRUMENT,
        Command.RISK_SET,
        Command.RAISE_CEILING,
        Command.APPROVE,
    }
)
"""The commands the contract puts behind step-up."""


@dataclass(frozen=True, slots=True)
class FakeUser:
    """An operator of the fake console."""

    name: str
    roles: tuple[str, ...]
    strategies: tuple[str, ...] = ()
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    seed: str = field(default_factory=new_seed)

    def may(self) -> dict[str, bool]:
        """The ``may`` map of /api/me: a strategy command counts if any assigned one is."""
        answer = {}
        for command in Command:
            names: tuple[str | None, ...] = (None, *self.strategies)
            if command not in STRATEGY_COMMANDS:
                names = (None,)
            answer[command.value] = any(
                allowed_any(self.roles, command, strategy=s, assigned=self.strategies)
                for s in names
            )
        return answer


@dataclass(frozen=True, slots=True)
class Posted:
    """One POST the fake received, with what it answered."""

    path: str
    user: str | None
    csrf_header: str | None
    csrf_ok: bool
    body: Json
    status: int


@dataclass
class _Session:
    user: FakeUser
    csrf: str
    step_up_until_ms: int | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeConsole:
    """The fake backend's state and its ASGI app (``app``)."""

    def __init__(self, users: list[FakeUser]) -> None:
        self.users = {u.name: u for u in users}
        self.posted: list[Posted] = []
        self._sessions: dict[str, _Session] = {}
        now = _now_ms()
        self._views: dict[str, Json] = {
            "ldn-1": console_views.london(now),
            "ny-2": console_views.new_york(now),
        }
        self._equity: dict[str, list[Json]] = {
            name: [
                {"ts_ms": now - (120 - i) * 30_000, "equity": f"{100_000 + (i * 37 % 90) * 11}.00"}
                for i in range(120)
            ]
            for name in self._views
        }
        self._audit = console_views.audit_records(now)
        self._queues: set[asyncio.Queue[Json]] = set()
        self._closing = threading.Event()  # set from the test's thread to end the streams
        self.app = self._make_app()

    def code(self, name: str) -> str:
        """The current TOTP code of user ``name``."""
        return code_at(self.users[name].seed, step_at(time.time_ns()))

    def expire_sessions(self) -> None:
        """Drop every session, as idle timeout would: the next request gets a 401."""
        self._sessions.clear()

    def entries(self) -> list[Json]:
        """What /api/nodes lists: the views, and one node the console cannot reach."""
        entries = [self._entry(name) for name in self._views]
        unreachable = console_views.UNREACHABLE
        error = "control socket: connection refused"
        entries.append({"name": unreachable, "reachable": False, "error": error, "view": None})
        return entries

    def _entry(self, name: str) -> Json:
        return {"name": name, "reachable": True, "error": None, "view": self._views[name]}

    # ---- the app ------------------------------------------------------------------------

    def _make_app(self) -> Starlette:
        index = FileResponse(STATIC / "index.html")

        async def page(request: Request) -> Response:
            return index

        routes = [
            Route("/", page),
            Route("/login", page),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Route("/api/login", self._login, methods=["POST"]),
            Route("/api/logout", self._post(self._logout), methods=["POST"]),
            Route("/api/me", self._get(self._me)),
            Route("/api/step-up", self._post(self._step_up), methods=["POST"]),
            Route("/api/nodes", self._get(self._nodes)),
            Route("/api/events", self._events),
            Route("/api/nodes/{node}", self._get(self._node)),
            Route("/api/nodes/{node}/equity", self._get(self._equity_of)),
            Route("/api/nodes/{node}/audit", self._get(self._audit_of)),
            Route("/api/nodes/{node}/{action:path}", self._post(self._act), methods=["POST"]),
        ]
        return Starlette(routes=routes, middleware=[Middleware(_Headers)], lifespan=self._lifespan)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(self._tick(), name="fake-console-tick")
        try:
            yield
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        """Move the PnL a little and publish, as a trading node's views would change."""
        n = 0
        while True:
            await asyncio.sleep(TICK_S)
            n += 1
            now = _now_ms()
            view = self._views["ldn-1"]
            total = f"{940 + (n * 7 % 23) - 11}.25"
            view["pnl"]["total"] = total
            view["ts"], view["ts_ms"] = console_views.iso(now), now
            self._equity["ldn-1"].append({"ts_ms": now, "equity": f"{100_000 + n * 3}.25"})
            self._publish("ldn-1")

    def _publish(self, name: str) -> None:
        entry = copy.deepcopy(self._entry(name))
        for queue in self._queues:
            queue.put_nowait(entry)

    def _session(self, request: Request) -> _Session | None:
        return self._sessions.get(request.cookies.get(COOKIE, ""))

    def _get(
        self, handler: Callable[[Request, _Session], Json]
    ) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = self._session(request)
            if session is None:
                return JSONResponse({"error": "sign in"}, 401)
            return JSONResponse(handler(request, session))

        return endpoint

    def _post(
        self, handler: Callable[[Request, _Session, Json], tuple[int, Json]]
    ) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = self._session(request)
            header = request.headers.get("x-csrf-token")
            csrf_ok = session is not None and header == session.csrf
            body = json.loads(await request.body() or b"{}")
            if session is None:
                status, answer = 401, {"error": "sign in"}
            elif not csrf_ok:
                status, answer = 403, {"error": "missing or wrong CSRF token"}
            else:
                status, answer = handler(request, session, body)
            user = session.user.name if session else None
            self.posted.append(Posted(request.url.path, user, header, csrf_ok, body, status))
            return JSONResponse(answer, status)

        return endpoint

    async def _login(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        user = self.users.get(str(body.get("name")))
        if (
            user is None
            or body.get("password") != user.password
            or body.get("totp") != (self.code(user.name))
        ):
            return JSONResponse({"error": "sign-in refused"}, 401)
        sid = secrets.token_urlsafe(32)
        session = self._sessions[sid] = _Session(user, secrets.token_urlsafe(32))
        response = JSONResponse({"user": self._me(request, session), "csrf": session.csrf})
        response.set_cookie(COOKIE, sid, secure=True, httponly=True, samesite="strict", path="/")
        return response

    def _logout(self, request: Request, session: _Session, body: Json) -> tuple[int, Json]:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        return 200, {"ok": True}

    def _me(self, request: Request, session: _Session) -> Json:
        user = session.user
        return {
            "name": user.name,
            "roles": list(user.roles),
            "strategies": list(user.strategies),
            "csrf": session.csrf,
            "step_up_until_ms": session.step_up_until_ms,
            "idle_timeout_s": 900,
            "may": user.may(),
        }

    def _step_up(self, request: Request, session: _Session, body: Json) -> tuple[int, Json]:
        if body.get("totp") != self.code(session.user.name):
            return 401, {"error": "wrong code"}
        session.step_up_until_ms = _now_ms() + STEP_UP_MS
        return 200, {"step_up_until_ms": session.step_up_until_ms}

    def _nodes(self, request: Request, session: _Session) -> Json:
        return {"nodes": self.entries()}

    def _node(self, request: Request, session: _Session) -> Json:
        return self._entry(request.path_params["node"])

    def _equity_of(self, request: Request, session: _Session) -> Json:
        return {"points": self._equity[request.path_params["node"]][-240:]}

    def _audit_of(self, request: Request, session: _Session) -> Json:
        q = request.query_params.get("q", "").lower()
        limit = int(request.query_params.get("limit") or 100)
        before = request.query_params.get("before")
        rows = [
            r
            for r in reversed(self._audit)
            if (before is None or r["seq"] < int(before))
            and any(q in str(r[k] or "").lower() for k in ("type", "operator", "source", "summary"))
        ]
        return {"records": rows[:limit], "more": len(rows) > limit}

    async def _events(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return JSONResponse({"error": "sign in"}, 401)
        queue: asyncio.Queue[Json] = asyncio.Queue()
        for entry in self.entries():
            queue.put_nowait(entry)
        self._queues.add(queue)

        async def stream() -> AsyncIterator[str]:
            try:
                while not self._closing.is_set() and self._session(request) is session:
                    try:
                        entry = await asyncio.wait_for(queue.get(), timeout=TICK_S)
                    except TimeoutError:
                        yield "event: ping\ndata: {}\n\n"
                        continue
                    yield f"event: node\ndata: {json.dumps(entry)}\n\n"
            finally:
                self._queues.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    # ---- actions ------------------------------------------------------------------------

    def _act(self, request: Request, session: _Session, body: Json) -> tuple[int, Json]:
        name = request.path_params["node"]
        parts = request.path_params["action"].split("/")
        view = self._views.get(name)
        if view is None:
            return 404, {"error": f"no node {name}"}
        command = _command(parts, body)
        user = session.user
        strategy = parts[1] if parts[0] == "strategies" else None
        if command is None:
            return 404, {"error": "no such action"}
        if not allowed_any(user.roles, command, strategy=strategy, assigned=user.strategies):
            return 403, {"error": f"{user.name} may not {command.value}"}
        if command in STEP_UP and (session.step_up_until_ms or 0) < _now_ms():
            return 403, {"error": "step-up needed", "step_up": True}
        answer = _apply(view, parts, body, user.name)
        self._publish(name)
        return 200, answer


def _command(parts: list[str], body: Json) -> Command | None:
    """The role-matrix command of an action path (the contract's table)."""
    match parts:
        case ["kill"]:
            return Command.FLATTEN if body.get("flatten") else Command.KILL
        case ["resume"]:
            return Command.RESUME_INSTRUMENT if body.get("instrument") else Command.RESUME
        case ["pause"]:
            return Command.PAUSE_INSTRUMENT
        case ["strategies", _, action] if action in ("enable", "disable", "start", "stop"):
            return Command(f"strategy_{action}")
        case ["overrides"]:
            return Command.RISK_SET
        case ["overrides", _, "clear"]:
            return Command.RISK_CLEAR
        case ["ceilings"]:
            return Command.RAISE_CEILING
        case ["approvals", _, "approve"]:
            return Command.APPROVE
        case ["alerts", _, "ack"]:
            return Command.ALERT_ACK
    return None


def _apply(view: Json, parts: list[str], body: Json, who: str) -> Json:
    """Change a view as the node would after the action; the node's answer."""
    now = _now_ms()
    match parts:
        case ["kill"]:
            view["state"], view["reason"] = "HALTED", f"kill by {who}: {body.get('why')}"
            view["orders"] = []
            for venue in view["venues"]:
                venue["halted"], venue["open_orders"] = True, 0
            if body.get("flatten"):
                view["positions"] = []
        case ["resume"] if body.get("instrument"):
            view["paused_instruments"] = [
                p for p in view["paused_instruments"] if p["instrument"] != body["instrument"]
            ]
        case ["resume"] | ["overrides"]:
            summary = f"{parts[0]} by {who}: {body.get('why')}"
            approval = {"id": f"ap-{now}", "command": parts[0], "summary": summary}
            expires = now + 300_000
            approval |= {"requested_by": who, "expires": console_views.iso(expires)}
            view["approvals"].append(approval | {"expires_ms": expires})
            return {"ok": True, "pending": approval["id"]}
        case ["pause"]:
            until = console_views.iso(now + int(body["for_s"] * 1000))
            pause = {"instrument": body["instrument"], "until": until, "reason": body["why"]}
            view["paused_instruments"].append(pause)
        case ["strategies", strategy, action]:
            for s in view["strategies"]:
                if s["name"] == strategy:
                    if action in ("enable", "disable"):
                        s["disabled"] = action == "disable"
                        s["disabled_reason"] = body["why"] if s["disabled"] else None
                    else:
                        s["running"] = action == "start"
        case ["overrides", oid, "clear"]:
            view["overrides"] = [o for o in view["overrides"] if o["id"] != oid]
        case ["approvals", aid, "approve"]:
            view["approvals"] = [a for a in view["approvals"] if a["id"] != aid]
        case ["alerts", aid, "ack"]:
            for a in view["alerts"]:
                if a["id"] == aid:
                    a["acknowledged_by"] = who
    return {"ok": True}


class _Headers:
    """Adds the contract's security headers to every answer (streams included)."""

    HEADERS: Final = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


@contextmanager
def serving(console: FakeConsole, cert_dir: Path) -> Iterator[str]:
    """Serve ``console`` over HTTPS on a loopback port in a thread; yield its base URL."""
    certs = create_certs(cert_dir, hosts=("127.0.0.1",), clients=())
    config = uvicorn.Config(
        console.app,
        host="127.0.0.1",
        port=0,
        ssl_certfile=str(certs.venue_cert),
        ssl_keyfile=str(certs.venue_key),
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake console did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        console._closing.set()
        server.should_exit = True
        thread.join(timeout=10)


def users() -> list[FakeUser]:
    """The fake console's operators: one per role, and a trader with one strategy."""
    return [
        FakeUser("rita", ("risk_officer",)),
        FakeUser("omar", ("risk_officer",)),
        FakeUser("ada", ("admin",)),
        FakeUser("tom", ("trader",), strategies=("mm-btc",)),
        FakeUser("vic", ("viewer",)),
    ]

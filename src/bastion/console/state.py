"""The console's parts, wired once (``Console``), and who is asking (``caller``).

``caller`` is the one gate in front of every route that needs a session: the session
cookie, sent once, must name a live session; the operator is read afresh from the store (a
disabled or removed operator's sessions end at their next request); a POST must carry
the session's CSRF token. Anything else is refused before the route's own code runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse

from bastion.clock import Clock
from bastion.console.client import NodeClient
from bastion.console.config import ConsoleConfig
from bastion.console.poller import Hub, Poller
from bastion.console.ratelimit import SourceLimiter
from bastion.console.recorder import AuthRecorder
from bastion.console.sessions import COOKIE, Lookup, Session, Sessions
from bastion.security.roles import STRATEGY_COMMANDS, Command
from bastion.security.store import UserStore
from bastion.security.users import User

__all__ = [
    "Caller",
    "Console",
    "caller",
    "error",
    "may_map",
    "me",
    "record_end",
    "session_cookie",
]

log = structlog.get_logger("bastion.console")

SIGN_IN_AGAIN: Final = "sign in again"


@dataclass(slots=True)
class Console:
    """Everything the routes share (``request.app.state.console``)."""

    config: ConsoleConfig
    store: UserStore
    clients: dict[str, NodeClient]
    clock: Clock
    static_dir: Path
    sessions: Sessions
    limiter: SourceLimiter
    hub: Hub
    poller: Poller
    recorder: AuthRecorder
    ping_s: float = 15.0
    """Seconds between the live-update stream's pings (and its re-reading of the
    operator from the store)."""

    @classmethod
    def build(
        cls,
        config: ConsoleConfig,
        *,
        store: UserStore,
        clients: dict[str, NodeClient],
        clock: Clock,
        static_dir: Path,
    ) -> Console:
        hub = Hub(config.max_event_clients, config.max_event_clients_per_operator)
        return cls(
            config=config,
            store=store,
            clients=clients,
            clock=clock,
            static_dir=static_dir,
            sessions=Sessions(ttl_s=config.session_ttl_s, idle_s=config.idle_timeout_s),
            limiter=SourceLimiter(
                max_failures=config.login.max_per_source_per_min,
                window_s=60,
                lockout_s=config.login.source_lockout_s,
            ),
            hub=hub,
            poller=Poller(
                clients,
                interval_s=config.poll_interval_ms / 1000,
                equity_points=config.equity_points,
                hub=hub,
            ),
            recorder=AuthRecorder(list(clients.values())),
        )

    def now_ns(self) -> int:
        return self.clock.timestamp_ns()


@dataclass(frozen=True, slots=True)
class Caller:
    """A request from a signed-in operator: their session (and its id) and who they
    are now, as the store says."""

    session_id: str
    session: Session
    user: User
    source: str


def error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def source_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_cookie(request: Request) -> str | None:
    """The session id the request's cookie holds; None when there is none, or more than
    one: a second cookie of the same name is planted (cookie tossing by a sibling host,
    or a nameless cookie whose value reads as ours) and must not pick the session."""
    names = [
        chunk.partition("=")[0].strip()
        for header in request.headers.getlist("cookie")
        for chunk in header.split(";")
    ]
    if names.count(COOKIE) != 1:
        return None
    return request.cookies.get(COOKIE)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def caller(request: Request, *, csrf: bool) -> Caller | JSONResponse:
    """The signed-in operator behind ``request``, or the refusal to send."""
    console = console_of(request)
    now = console.now_ns()
    session_id = session_cookie(request)
    found = console.sessions.get(session_id, now)
    source = source_of(request)
    if found.session is None or session_id is None:
        record_end(console, found, source)
        return error(401, SIGN_IN_AGAIN)
    user = console.store.find(found.session.operator)
    if user is None or user.disabled:
        ended = console.sessions.destroy_operator(found.session.operator)
        log.warning("console_session_revoked", operator=found.session.operator, sessions=ended)
        return error(401, SIGN_IN_AGAIN)
    if csrf and not found.session.csrf_ok(request.headers.get("x-csrf-token")):
        log.warning("console_csrf_refused", operator=user.name, source=source)
        return error(403, "missing or wrong CSRF token")
    return Caller(session_id, found.session, user, source)


def record_end(console: Console, found: Lookup, source: str) -> None:
    """Journal a session that a lookup found expired or idle (the lookup removed it:
    whichever request finds it first, a page's or a live-update stream's, says so)."""
    if found.ended is None or found.why is None:
        return
    console.recorder.record(
        operator=found.ended.operator,
        source=source,
        kind="expired",
        outcome=found.why.value,
        why="session ended",
    )
    log.info("console_session_ended", operator=found.ended.operator, why=found.why.value)


def may_map(user: User) -> dict[str, bool]:
    """For each command: may this operator give it (a strategy command: for at least
    one of their strategies)."""
    result: dict[str, bool] = {}
    for command in Command:
        if command in STRATEGY_COMMANDS:
            allowed = user.may(command) or any(
                user.may(command, strategy=s) for s in user.strategies
            )
        else:
            allowed = user.may(command)
        result[command.value] = allowed
    return result


def me(console: Console, user: User, session: Session) -> dict[str, object]:
    """The API's ``ME`` object."""
    now = console.now_ns()
    return {
        "name": user.name,
        "roles": [r.value for r in user.roles],
        "strategies": list(user.strategies),
        "csrf": session.csrf,
        "step_up_until_ms": session.step_up_until_ns // 1_000_000
        if session.stepped_up(now)
        else None,
        "idle_timeout_s": console.config.idle_timeout_s,
        "may": may_map(user),
    }

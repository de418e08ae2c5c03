"""Signing in and out, and stepping up: ``/api/login``, ``/api/logout``,
``/api/step-up``, ``/api/me``.

A sign-in needs the password *and* a TOTP code, checked by the store (its lockout
per operator); the console adds a bound per source address (``SourceLimiter``: 429).
Every refusal says the same thing, whatever failed. A sign-in and a step-up each give
the session a new id (the old cookie is dead at once); a sign-out destroys it. Each
outcome is journaled by every node (``AuthRecorder``).
"""

from __future__ import annotations

from typing import Final

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bastion.console.actions import BodyError, LoginBody, StepUpBody, decode_body
from bastion.console.sessions import COOKIE
from bastion.console.state import (
    Console,
    caller,
    console_of,
    error,
    me,
    session_cookie,
    source_of,
)
from bastion.security.users import LoginResult

__all__ = ["login", "logout", "me_route", "step_up"]

log = structlog.get_logger("bastion.console.auth")

REFUSED: Final = "sign-in refused"
TOO_MANY: Final = "too many refused attempts from this address; try again later"


def set_session_cookie(response: Response, console: Console, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=console.config.session_ttl_s,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def _refused(console: Console, source: str, result: LoginResult) -> None:
    """Count a refusal against ``source``, journal it (and any lockout it caused)."""
    now = console.now_ns()
    blocked = console.limiter.failed(source, now)
    console.recorder.record(
        operator=result.name,
        source=source,
        kind=result.kind,
        outcome="refused",
        why=result.reason.value,
    )
    if result.locked_out:
        console.recorder.record(
            operator=result.name,
            source=source,
            kind="lockout",
            outcome="operator locked out",
            why=f"{result.failures} refusals in a row",
        )
    if blocked:
        log.warning("console_source_blocked", source=source)
        console.recorder.record(
            operator=result.name,
            source=source,
            kind="lockout",
            outcome="source blocked",
            why=f"{console.config.login.max_per_source_per_min} refusals within a minute",
        )


async def login(request: Request) -> Response:
    console = console_of(request)
    source = source_of(request)
    if console.limiter.blocked(source, console.now_ns()):
        return error(429, TOO_MANY)
    try:
        body = decode_body(await request.body(), LoginBody)
    except BodyError as e:
        return error(400, str(e))
    result: LoginResult = await run_in_threadpool(
        console.store.verify_login,
        body.name,
        body.password,
        body.totp,
        now_ns=console.now_ns(),
        source=f"console {source}",
    )
    if not result.ok or result.user is None:
        _refused(console, source, result)
        return error(401, REFUSED)
    old = session_cookie(request)
    if old:
        console.sessions.destroy(old)
    session_id, session = console.sessions.create(result.user.name, source, console.now_ns())
    console.recorder.record(
        operator=result.user.name, source=source, kind="login", outcome="ok", why="password+totp"
    )
    log.info("console_signed_in", operator=result.user.name, source=source)
    response = JSONResponse({"user": me(console, result.user, session), "csrf": session.csrf})
    set_session_cookie(response, console, session_id)
    return response


async def logout(request: Request) -> Response:
    found = caller(request, csrf=True)
    if isinstance(found, JSONResponse):
        return found
    console = console_of(request)
    console.sessions.destroy(found.session_id)
    console.recorder.record(
        operator=found.user.name, source=found.source, kind="logout", outcome="ok", why=""
    )
    log.info("console_signed_out", operator=found.user.name, source=found.source)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def step_up(request: Request) -> Response:
    found = caller(request, csrf=True)
    if isinstance(found, JSONResponse):
        return found
    console = console_of(request)
    if console.limiter.blocked(found.source, console.now_ns()):
        return error(429, TOO_MANY)
    try:
        body = decode_body(await request.body(), StepUpBody)
    except BodyError as e:
        return error(400, str(e))
    result: LoginResult = await run_in_threadpool(
        console.store.verify_totp,
        found.user.name,
        body.totp,
        now_ns=console.now_ns(),
        source=f"console {found.source}",
    )
    if not result.ok:
        _refused(console, found.source, result)
        return error(401, "code refused")
    now = console.now_ns()
    found.session.step_up_until_ns = now + console.config.step_up_s * 1_000_000_000
    new_id = console.sessions.rotate(found.session_id)
    console.recorder.record(
        operator=found.user.name, source=found.source, kind="step_up", outcome="ok", why="totp"
    )
    response = JSONResponse({"step_up_until_ms": found.session.step_up_until_ns // 1_000_000})
    set_session_cookie(response, console, new_id)
    return response


async def me_route(request: Request) -> Response:
    found = caller(request, csrf=False)
    if isinstance(found, JSONResponse):
        return found
    return JSONResponse(me(console_of(request), found.user, found.session))

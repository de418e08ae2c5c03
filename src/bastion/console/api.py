"""The API's node routes: what the console shows (``READS``) and the actions it
forwards (``ACTIONS``, ``bastion.console.actions``).

An action is refused here (403) when the operator's roles do not allow its command, or
(403 with ``step_up``) when it needs a fresh step-up the session lacks; nothing is sent
to the node then. Otherwise it becomes one control-socket request ``on_behalf`` of the
operator from their address, and the node's answer is returned (200 when ``ok``, 409
when the node refused, 502 when it did not answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from bastion.console.actions import STRATEGY_ACTIONS, Action, BodyError, decode_body
from bastion.console.client import NodeClient, NodeUnreachable, OnBehalf
from bastion.console.poller import TooManyClients
from bastion.console.state import Caller, Console, caller, console_of, error, record_end
from bastion.security.roles import Command

__all__ = ["action_endpoint", "audit", "equity", "events", "node", "nodes"]

log = structlog.get_logger("bastion.console.api")

_MAX_PARAM: Final = 128
Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


def _reader(request: Request) -> Caller | JSONResponse:
    found = caller(request, csrf=False)
    if isinstance(found, JSONResponse):
        return found
    if not found.user.may(Command.READ):
        return error(403, f"{found.user.name} may not {Command.READ.value}")
    return found


def _node(console: Console, request: Request) -> NodeClient | JSONResponse:
    name = request.path_params.get("node", "")
    client = console.clients.get(name)
    if client is None:
        return error(404, "no such node")
    return client


def _read_node(request: Request) -> tuple[Caller, Console, NodeClient] | JSONResponse:
    """A read of one node's data: the caller may read, and the node is the config's."""
    found = _reader(request)
    if isinstance(found, JSONResponse):
        return found
    console = console_of(request)
    client = _node(console, request)
    if isinstance(client, JSONResponse):
        return client
    return found, console, client


def _answer(answer: dict[str, Any]) -> JSONResponse:
    return JSONResponse(answer, status_code=200 if answer.get("ok") is True else 409)


async def nodes(request: Request) -> Response:
    found = _reader(request)
    if isinstance(found, JSONResponse):
        return found
    console = console_of(request)
    return JSONResponse({"nodes": [s.to_json() for s in console.poller.states.values()]})


async def node(request: Request) -> Response:
    read = _read_node(request)
    if isinstance(read, JSONResponse):
        return read
    _, console, client = read
    return JSONResponse(console.poller.states[client.name].to_json())


async def equity(request: Request) -> Response:
    read = _read_node(request)
    if isinstance(read, JSONResponse):
        return read
    _, console, client = read
    return JSONResponse({"points": console.poller.equity[client.name].points()})


def _int_param(request: Request, key: str, low: int, high: int) -> int | str | None:
    """The query parameter ``key`` as an int in [low, high], None when absent or empty,
    or why it is refused."""
    raw = request.query_params.get(key, "")
    if raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        return f"parameter '{key}': an integer from {low} to {high}"
    return int(raw)


async def audit(request: Request) -> Response:
    read = _read_node(request)
    if isinstance(read, JSONResponse):
        return read
    found, _, client = read
    query = request.query_params.get("q", "")
    if len(query) > 200:
        return error(400, "parameter 'q': at most 200 characters")
    limit = _int_param(request, "limit", 1, 500)
    before = _int_param(request, "before", 0, 2**63 - 1)
    for problem in (limit, before):
        if isinstance(problem, str):
            return error(400, problem)
    req = {"cmd": "audit", "query": query, "limit": limit or 100, "before_seq": before}
    return await _forward(client, req, found)


async def _forward(client: NodeClient, req: dict[str, Any], who: Caller) -> JSONResponse:
    try:
        answer = await client.request(
            req, on_behalf=OnBehalf(operator=who.user.name, source=who.source)
        )
    except NodeUnreachable as e:
        log.warning("console_node_unreachable", node=client.name, detail=e.detail)
        return error(502, str(e))
    return _answer(answer)


def _params_problem(action: Action, params: dict[str, str]) -> tuple[int, str] | None:
    for key, value in params.items():
        if not value or len(value) > _MAX_PARAM or any(ord(c) < 0x20 for c in value):
            return 400, f"path parameter '{key}': 1 to {_MAX_PARAM} printable characters"
    if action.name == "strategy" and params.get("action") not in STRATEGY_ACTIONS:
        return 404, "no such strategy action (enable, disable, start, stop)"
    return None


def action_endpoint(action: Action) -> Endpoint:
    """The route handler of ``action``."""

    async def endpoint(request: Request) -> Response:
        found = caller(request, csrf=True)
        if isinstance(found, JSONResponse):
            return found
        console = console_of(request)
        client = _node(console, request)
        if isinstance(client, JSONResponse):
            return client
        params = {k: str(v) for k, v in request.path_params.items()}
        problem = _params_problem(action, params)
        if problem is not None:
            return error(*problem)
        try:
            body = decode_body(await request.body(), action.body)
        except BodyError as e:
            return error(400, str(e))
        command = action.command(body, params)
        operator = found.user.name
        if not found.user.may(command, strategy=params.get("strategy")):
            log.warning("console_action_refused", operator=operator, command=command.value)
            return error(403, f"{operator} may not {command.value}")
        if action.step_up and not found.session.stepped_up(console.now_ns()):
            return error(403, "step-up needed: enter a fresh TOTP code", step_up=True)
        req = action.request(body, params)
        response = await _forward(client, req, found)
        log.info(
            "console_action",
            operator=operator,
            source=found.source,
            node=client.name,
            cmd=req["cmd"],
            status=response.status_code,
        )
        return response

    endpoint.__name__ = f"action_{action.name}"
    return endpoint


async def events(request: Request) -> Response:
    """Live updates (server-sent events): every node's state now, then each change;
    a ping every ``ping_s``. Ends when the session does."""
    found = _reader(request)
    if isinstance(found, JSONResponse):
        return found
    console = console_of(request)
    try:
        subscriber = console.hub.subscribe(found.user.name)
    except TooManyClients as e:
        return error(429, str(e))
    for state in console.poller.states.values():
        console.hub.publish_to(subscriber, state)
    session_id = found.session_id

    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while True:
                try:
                    async with asyncio.timeout(console.ping_s):
                        await subscriber.ready.wait()
                    pinged = False
                except TimeoutError:
                    pinged = True
                # the operator is re-read every ping_s, whether or not changes kept the
                # stream busy in between (a node's view changes at every poll)
                if loop.time() - checked >= console.ping_s:
                    checked = loop.time()
                    user = console.store.find(found.user.name)
                    if user is None or not user.may(Command.READ):  # disabled: may nothing
                        return
                if pinged:
                    yield b"event: ping\ndata: {}\n\n"
                lookup = console.sessions.peek(session_id, console.now_ns())
                if lookup.session is None:
                    record_end(console, lookup, found.source)
                    return
                for _name, data in subscriber.take():
                    yield b"event: node\ndata: " + data + b"\n\n"
        finally:
            console.hub.unsubscribe(subscriber)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
        background=BackgroundTask(console.hub.unsubscribe, subscriber),
    )

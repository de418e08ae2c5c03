"""The console's outer layers (ASGI middleware), each refusing before the app runs.

From the outside in: ``SecurityHeaders`` (on every response, refusals included),
``Allowlist`` (403 for an address outside ``allow``, before anything else is read),
``RequestShape`` (400 for a method override, a path trick or a method the console does
not serve; 415 for a POST that is not JSON; 413 for a body over the limit, counted as
it arrives, whatever ``Content-Length`` claims).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SECURITY_HEADERS", "Allowlist", "RequestShape", "SecurityHeaders"]

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-security-policy", CSP),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_OVERRIDE_HEADERS: Final = frozenset(
    {b"x-http-method-override", b"x-http-method", b"x-method-override", b"x-original-method"}
)
_OVERRIDE_PARAMS: Final = frozenset({"_method", "method", "x-http-method-override"})
_METHODS: Final = frozenset({"GET", "HEAD", "POST"})
# encoded '/', '\', '.', '%' and NUL; backslashes; empty or dot segments
_RAW_TRICKS: Final = re.compile(rb"%(2f|5c|2e|25|00)|\\", re.IGNORECASE)


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response (and ``Cache-Control: no-store`` to
    every one but static files: API answers and the page hold live data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"server", b"cache-control") or static
                ]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class Allowlist:
    """403 for a client whose address is in none of ``networks``."""

    def __init__(
        self,
        app: ASGIApp,
        networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    ) -> None:
        self.app = app
        self._networks = tuple(networks)

    def allows(self, host: str | None) -> bool:
        if host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.allows(client[0] if client else None):
            if scope["type"] == "http":
                await _send_json(send, 403, {"error": "forbidden"})
            return
        await self.app(scope, receive, send)


class RequestShape:
    """Refuses requests no console page makes: see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self._max = max_body_bytes

    def problem(self, scope: Scope) -> tuple[int, str] | None:
        method = scope["method"]
        if method not in _METHODS:
            return 405, "method not allowed"
        for name, _value in scope["headers"]:
            if name.lower() in _OVERRIDE_HEADERS:
                return 400, "method override refused"
        query = scope.get("query_string", b"").decode("latin-1")
        if any(k.lower() in _OVERRIDE_PARAMS for k, _ in parse_qsl(query, True)):
            return 400, "method override refused"
        raw = scope.get("raw_path") or scope["path"].encode()
        path: str = scope["path"]
        segments = path.split("/")[1:]
        if (
            _RAW_TRICKS.search(raw)
            or not path.startswith("/")
            or "//" in path
            or any(s in (".", "..") for s in segments)
            or any(ord(c) < 0x20 or c == "\\" for c in path)
        ):
            return 400, "bad path"
        if method == "POST":
            content_type = _header(scope, b"content-type").split(";")[0].strip().lower()
            if content_type != "application/json":
                return 415, "a POST body must be application/json"
        length = _header(scope, b"content-length")
        if length and (not (length.isascii() and length.isdigit()) or int(length) > self._max):
            return 413, f"body over {self._max} bytes"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is not None:
            await _send_json(send, problem[0], {"error": problem[1]})
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self._max)
        if body is None:
            await _send_json(send, 413, {"error": f"body over {self._max} bytes"})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # a disconnect, when the client goes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes (whatever
    ``Content-Length`` said) or the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""

"""Real notification receivers on loopback for the alerting tests: an HTTP receiver
(aiohttp, the target of apprise's ``json://`` URLs), an SMTP server (aiosmtpd, the target
of ``mailto://``) and a peer that accepts connections and never answers.

Each runs on its own thread and records what arrived with ``time.monotonic()`` of its
arrival, so a test (or a bench) times the path from a condition to its notification.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kit.net import free_tcp_port

_ALERT_ID = re.compile(r"alert id: (\S+)")


@dataclass(frozen=True)
class Arrival:
    """One notification as a receiver got it."""

    at: float
    """``time.monotonic()`` when it arrived."""
    title: str
    body: str
    extra: dict[str, Any]

    @property
    def alert_id(self) -> str:
        """The ``alert id:`` line of a bastion notification's body ("" if none)."""
        found = _ALERT_ID.search(self.body)
        return found.group(1) if found else ""

    def is_about(self, alert: str, status: str) -> bool:
        """Its title names alert rule ``alert`` with ``status`` (firing, resolved, ...)."""
        return f"] {alert} {status} on " in self.title


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []

    def record(self, arrival: Arrival) -> None:
        with self._lock:
            self._arrivals.append(arrival)

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def about(self, alert: str, status: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.is_about(alert, status)]


class HttpReceiver(_Recorder):
    """An aiohttp server taking apprise's JSON posts (and any other request: a
    dead-man's switch's ping); ``status`` is what it answers."""

    def __init__(self, *, port: int | None = None, status: int = 200) -> None:
        super().__init__()
        self.port = port if port is not None else free_tcp_port()
        self.status = status
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def http_url(self, path: str = "ping") -> str:
        """A plain ``http://`` URL of this receiver."""
        return f"http://127.0.0.1:{self.port}/{path}"

    def url(self, path: str = "hook", *, token: str = "") -> str:
        """The apprise URL of this receiver (``json://127.0.0.1:PORT/PATH``)."""
        query = f"?token={token}" if token else ""
        return f"json://127.0.0.1:{self.port}/{path}{query}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        data = await request.read()
        at = time.monotonic()
        if self.status == 200:
            try:
                payload = json.loads(data) if data else {}
            except json.JSONDecodeError:
                payload = {"message": data.decode(errors="replace")}
            extra = {k: v for k, v in payload.items() if k not in ("title", "message")}
            extra.update(path=request.path, method=request.method)
            self.record(Arrival(at, payload.get("title", ""), payload.get("message", ""), extra))
        return web.Response(status=self.status, text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> HttpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class _SmtpHandler:
    def __init__(self, recorder: SmtpReceiver) -> None:
        self._recorder = recorder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.monotonic()
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        self._recorder.record(
            Arrival(
                at,
                str(message["subject"] or ""),
                str(body),
                {"from": envelope.mail_from, "to": list(envelope.rcpt_tos)},
            )
        )
        return "250 Message accepted for delivery"


class SmtpReceiver(_Recorder):
    """An aiosmtpd server on loopback (plain SMTP, no authentication)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_tcp_port()
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)

    def url(self, *, to: str = "ops@desk.example", sender: str = "node@desk.example") -> str:
        """apprise's plain-SMTP URL for this server (``mailto://`` without TLS)."""
        return f"mailto://127.0.0.1:{self.port}?mode=insecure&from={sender}&to={to}"

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class HangingPeer:
    """Accepts connections and never answers (nor closes them until ``stop``)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._held: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)

    def start(self) -> HangingPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed = True
        self._thread.join(timeout=10)
        self._listener.close()
        for conn in self._held:
            with suppress(OSError):
                conn.close()


@contextmanager
def http_receiver(*, port: int | None = None, status: int = 200) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(port=port, status=status).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def hanging_peer() -> Iterator[HangingPeer]:
    peer = HangingPeer().start()
    try:
        yield peer
    finally:
        peer.stop()

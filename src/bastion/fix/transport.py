"""asyncio drivers for FIX sessions: one TCP connection, an initiator and an acceptor.

``run_connection`` pumps bytes between a stream and a ``FixSession`` and ticks
its timers. ``FixInitiator`` keeps one session connected: it connects inside the
session's schedule, and after a drop reconnects with exponential backoff and
jitter (reset by a successful logon); started with ``start``, a loop that dies is
started again after the backoff. ``FixAcceptor`` listens, reads the first
message of each connection, which must be a Logon, and hands the connection to
the session named by its CompIDs; unknown sessions and second connections for a
session already connected are dropped. Both read time from the ``Clock`` they are
given, as their sessions do.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

import structlog

from bastion.clock import Clock
from bastion.fix.codec import FixMessage, FixParser, Garbled
from bastion.fix.session import FixSession
from bastion.tasks import spawn

log = structlog.get_logger("bastion.fix")

LoopFailed = Callable[[BaseException, float], None]
"""Told that a connection loop died: the error, and the delay before it starts again."""

TICK_S = 0.1
READ_CHUNK = 1 << 16
MAX_FIRST_MESSAGE_BYTES = 1 << 16


async def run_connection(
    session: FixSession,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    initiator: bool,
    first_data: bytes = b"",
) -> str:
    """Serve one TCP connection until it closes; returns why it closed."""
    transport = writer.transport

    def close() -> None:
        transport.close()

    def ticker_crashed(name: str, error: BaseException) -> None:
        # without its timer a session sends no heartbeat and never notices a dead peer:
        # drop the connection (an initiator reconnects) rather than run on blind
        log.error("fix_timer_failed", session=session.settings.key, error=repr(error))
        session.disconnect(f"session timer failed: {error!r}")

    ticker: asyncio.Task[None] | None = None
    try:
        session.connection_made(transport.write, close, initiator=initiator)
        ticker = spawn(f"fix-tick-{session.settings.key}", _tick(session), on_crash=ticker_crashed)
        if first_data:
            session.data_received(first_data)
        while session.connected:
            try:
                data = await reader.read(READ_CHUNK)
            except (ConnectionError, OSError) as error:
                session.connection_lost(f"connection error: {error}")
                break
            if not data:
                session.connection_lost("connection closed by counterparty")
                break
            session.data_received(data)
    finally:
        if ticker is not None:
            ticker.cancel()
        session.connection_lost("connection closed")
        transport.close()
    return session.disconnect_reason


async def _tick(session: FixSession) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        session.tick()


class FixInitiator:
    """Keeps a session connected to ``host:port``."""

    def __init__(
        self,
        session: FixSession,
        host: str,
        port: int,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        rng: random.Random | None = None,
        clock: Clock,
    ) -> None:
        self.session = session
        self._clock = clock
        self.host = host
        self.port = port
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        self._stopping = False
        self.connects = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._on_failure: LoopFailed | None = None
        self._loop_failures = 0
        self._logons_at_failure = 0

    def start(self, name: str, *, on_failure: LoopFailed | None = None) -> None:
        """Run the connection loop as the task ``name`` until ``stop``. If the loop dies
        (a bug, the session store failing to write), the session is dropped, the failure
        reported to ``on_failure`` with the delay, and the loop started again after the
        reconnect backoff. Safe: nothing reaches the counterparty that the store did not
        commit, and inbound messages not committed are asked for again."""
        if self._task is None:
            self._on_failure = on_failure
            self._task = spawn(name, self.run(), on_crash=self._loop_crashed)

    def _loop_crashed(self, name: str, error: BaseException) -> None:
        logons = self.session.counters["logons"]
        self._loop_failures = 1 if logons > self._logons_at_failure else self._loop_failures + 1
        self._logons_at_failure = logons
        delay_s = self.backoff_s(self._loop_failures)
        self.session.disconnect(f"connection loop failed: {error!r}")
        if self._on_failure is not None:
            self._on_failure(error, delay_s)
        if self._stopping:
            self._task = None
            return
        self._task = spawn(name, self._run_after(delay_s), on_crash=self._loop_crashed)

    async def _run_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.run()

    def backoff_s(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (1-based): doubling, capped, ±50% jitter."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (attempt - 1))
        jitter: float = self._rng.uniform(0.5, 1.5)
        return base * jitter

    async def run(self) -> None:
        """Connect, serve, reconnect, until ``stop``."""
        attempt = 0
        session = self.session
        while not self._stopping:
            schedule = session.settings.schedule
            if schedule is not None:
                wait_s = schedule.seconds_until_open(self._clock.timestamp_ns())
                if wait_s > 0:
                    log.info("fix_waiting_for_session_start", seconds=round(wait_s))
                    await asyncio.sleep(min(wait_s, 60.0))
                    continue
            logons_before = session.counters["logons"]
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout_s
                )
            except (OSError, TimeoutError) as error:
                self.failures += 1
                reason = f"connect to {self.host}:{self.port} failed: {error or 'timeout'}"
            else:
                self.connects += 1
                log.info(
                    "fix_connected", session=session.settings.key, host=self.host, port=self.port
                )
                reason = await run_connection(session, reader, writer, initiator=True)
            if self._stopping:
                break
            attempt = 1 if session.counters["logons"] > logons_before else attempt + 1
            delay = self.backoff_s(attempt)
            log.warning(
                "fix_reconnecting",
                session=session.settings.key,
                reason=reason,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)

    async def stop(self, *, logout_timeout_s: float = 2.0) -> None:
        """Log out (waiting for the confirmation, bounded) and stop reconnecting."""
        self._stopping = True
        session = self.session
        if session.logged_on:
            session.logout("node stopping")
            deadline = self._clock.monotonic_s() + logout_timeout_s
            while session.connected and self._clock.monotonic_s() < deadline:
                await asyncio.sleep(0.01)
        session.disconnect("stopped")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class FixAcceptor:
    """Listens for initiators of the configured sessions."""

    def __init__(
        self,
        sessions: Mapping[tuple[str, str], FixSession],
        host: str,
        port: int,
        *,
        begin_string: str = "FIX.4.4",
        first_message_timeout_s: float = 10.0,
        clock: Clock,
    ) -> None:
        """``sessions`` are keyed by (our SenderCompID, their SenderCompID)."""
        self.sessions = dict(sessions)
        self._clock = clock
        self.host = host
        self.port = port
        self.begin_string = begin_string
        self.first_message_timeout_s = first_message_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.refused = 0

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        self.port = port
        return port

    async def stop(self, *, logout_timeout_s: float = 2.0) -> None:
        """Log every session out (waiting, bounded, for the answers), then close."""
        if self._server is not None:
            self._server.close()  # no new connections
        for session in self.sessions.values():
            if session.logged_on:
                session.logout("venue shutting down")
        deadline = self._clock.monotonic_s() + logout_timeout_s
        while (
            any(s.connected for s in self.sessions.values())
            and self._clock.monotonic_s() < deadline
        ):
            await asyncio.sleep(0.01)
        for session in self.sessions.values():
            session.disconnect("acceptor stopped")
        # each connection's task ends by itself once its session is disconnected; one
        # still waiting for its first message is cancelled
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=logout_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # stopping: end normally (asyncio before 3.13 logs a cancelled handler as an error)
            pass
        finally:
            self._connections.discard(task)
            writer.transport.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        parser = FixParser(self.begin_string)
        buffered = b""
        first: FixMessage | None = None
        deadline = self._clock.monotonic_s() + self.first_message_timeout_s
        while first is None:
            remaining = deadline - self._clock.monotonic_s()
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), max(remaining, 0.001))
            except (TimeoutError, ConnectionError, OSError):
                self._refuse(peer, "no Logon received")
                return
            if not data:
                return
            buffered += data
            if len(buffered) > MAX_FIRST_MESSAGE_BYTES:
                self._refuse(peer, "no Logon in the first 64 KiB")
                return
            parser.feed(data)
            for item in parser.messages():
                if isinstance(item, Garbled):
                    continue
                first = item
                break
        key = (first.get(56) or "", first.get(49) or "")
        session = self.sessions.get(key)
        if first.msg_type != "A" or session is None:
            self._refuse(
                peer,
                f"first message MsgType {first.msg_type!r} for unknown session {key}"
                if session is None
                else "first message is not a Logon",
            )
            return
        if session.connected:
            self._refuse(peer, f"session {session.settings.key} is already connected")
            return
        await run_connection(session, reader, writer, initiator=False, first_data=buffered)

    def _refuse(self, peer: object, reason: str) -> None:
        self.refused += 1
        log.warning("fix_connection_refused", peer=str(peer), reason=reason)

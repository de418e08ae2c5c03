"""asyncio drivers for FIX sessions: one TCP connection, an initiator and an acceptor.

``run_connection`` pumps bytes between a stream and a ``FixSession`` and ticks
its timers. ``FixInitiator`` keeps one session connected: it connects inside the
session's schedule, and after a drop reconnects with exponential backoff and
jitter (reset by a successful logon); started with ``start``, a loop that dies is
started again after the backoff. ``FixAcceptor`` listens, reads the first
message of each connection, which must be a Logon, and hands the connection to
the session named by its CompIDs; unknown sessions and second connections for a
session already connected are dropped, unless its ``LogonGate`` lets the newer Logon take
the session over. Both read time from the ``Clock`` they are
given, as their sessions do.

TLS: the initiator connects with the ``ssl.SSLContext`` it is given and, when a
``Pin`` is set, checks the venue's certificate against it before its session sends a
byte. The acceptor admits a connection before any session hears of it
(``bastion.fix.admission``): a locked-out address or one over the connection caps is
closed unread; then the TLS handshake and the first message, a Logon, must come within
the logon timeout; the session's ``AccessRule`` (source network, client certificate)
and its ``screen_logon`` (a well-formed Logon with good credentials) must pass. A
refusal is counted against the address and touches no session state.

Takeover: a ``LogonGate`` (the venue simulator's fence, ``bastion.venue_server.fencing``)
may refuse a Logon whose credentials passed (not counted against the address), or let
it replace the session's live connection: that connection is dropped, and its task must
have finished before the new one is served, since the old task's last act,
``connection_lost``, would otherwise drop the connection that took over.

Slow consumers (``bastion.fix.outbound``): at both ends each connection's unsent bytes
are watched against ``OutboundLimits`` (the acceptor's from its ``AcceptorLimits``); a
peer that stops reading has its connection aborted (``fix_slow_consumer``, counted in
the session's ``slow_consumer_drops`` and the acceptor's ``slow_consumers``) and its
session dropped as by any disconnect: the initiator reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from bastion.clock import Clock
from bastion.fix.admission import AcceptorLimits, AccessRule, AddressGuard, Peer
from bastion.fix.codec import FixMessage, FixParser, Garbled
from bastion.fix.outbound import OutboundLimits, OutboundWatch, open_connection, start_server
from bastion.fix.session import FixSession
from bastion.fix.tls import ClientTls, PeerCertificate
from bastion.tasks import spawn

log = structlog.get_logger("bastion.fix")

LoopFailed = Callable[[BaseException, float], None]
"""Told that a connection loop died: the error, and the delay before it starts again."""

TICK_S = 0.1
READ_CHUNK = 1 << 16
MAX_FIRST_MESSAGE_BYTES = 1 << 16


class LogonGate(Protocol):
    """Decides, once its credentials passed, whether a Logon gets its session."""

    def admit(self, session: FixSession, logon: FixMessage) -> str | None:
        """``None`` admits ``logon``; a text refuses it (a Logout with the text)."""
        ...

    def takes_over(self, session: FixSession, logon: FixMessage) -> str | None:
        """Why the admitted ``logon`` replaces the session's live connection, or ``None``
        to refuse it as a second connection."""
        ...


async def run_connection(
    session: FixSession,
    reader: asyncio.StreamReader,
    watch: OutboundWatch,
    *,
    initiator: bool,
    first_data: bytes = b"",
) -> str:
    """Serve one TCP connection until it closes; returns why it closed. The session
    writes and closes through ``watch``."""

    def ticker_crashed(name: str, error: BaseException) -> None:
        # without its timer a session sends no heartbeat and never notices a dead peer:
        # drop the connection (an initiator reconnects) rather than run on blind
        log.error("fix_timer_failed", session=session.settings.key, error=repr(error))
        session.disconnect(f"session timer failed: {error!r}")

    ticker: asyncio.Task[None] | None = None
    try:
        session.connection_made(watch.write, watch.close, initiator=initiator)
        ticker = spawn(f"fix-tick-{session.settings.key}", _tick(session), on_crash=ticker_crashed)
        if first_data:
            session.data_received(first_data)
        while session.connected:
            try:
                data = await reader.read(READ_CHUNK)
            except (ConnectionError, OSError) as error:
                session.connection_lost(watch.dropped or f"connection error: {error}")
                break
            if not data:  # also after the watch aborted the connection
                session.connection_lost(watch.dropped or "connection closed by counterparty")
                break
            session.data_received(data)
    finally:
        if ticker is not None:
            ticker.cancel()
        session.connection_lost(watch.dropped or "connection closed")
        watch.close()
    return session.disconnect_reason


def _watch(
    session: FixSession,
    writer: asyncio.StreamWriter,
    limits: OutboundLimits,
    clock: Clock,
    counters: Counter[str] | None = None,
) -> OutboundWatch:
    """The watch of ``session``'s new connection: a drop counted in the session's
    ``slow_consumer_drops`` and in ``counters``' ``slow_consumers``."""

    def dropped() -> None:
        session.counters["slow_consumer_drops"] += 1
        if counters is not None:
            counters["slow_consumers"] += 1

    return OutboundWatch(writer, limits, name=session.settings.key, clock=clock, on_drop=dropped)


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
        tls: ClientTls | None = None,
        outbound: OutboundLimits | None = None,
        clock: Clock,
    ) -> None:
        """``tls``: connect over TLS; its ``server_hostname`` is the name checked against
        the venue's certificate (default ``host``), its ``pin`` the certificate or
        public key the venue must show, checked before the Logon is sent. ``outbound``:
        how far behind the venue may fall in reading before the connection is dropped."""
        self.session = session
        self.tls = tls
        self.outbound = outbound or OutboundLimits()
        """Read at each connection."""
        self.watch: OutboundWatch | None = None
        """The current connection's (the last one's once it closed)."""
        self.last_failure = ""
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
            connection = await self._connect()
            if isinstance(connection, str):
                self.failures += 1
                self.last_failure = reason = connection
            else:
                self.connects += 1
                log.info(
                    "fix_connected",
                    session=session.settings.key,
                    host=self.host,
                    port=self.port,
                    tls=self.tls is not None,
                )
                reader, writer = connection
                self.watch = _watch(session, writer, self.outbound, self._clock)
                reason = await run_connection(session, reader, self.watch, initiator=True)
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

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """A connection, TLS handshake and pin checked; or why there is none."""
        where = f"{self.host}:{self.port}"
        tls = self.tls
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await open_connection(
                    self.host,
                    self.port,
                    ssl_context=None if tls is None else tls.context,
                    server_hostname=None if tls is None else (tls.server_hostname or self.host),
                    ssl_handshake_timeout=None if tls is None else self.connect_timeout_s,
                )
        except ssl.SSLError as error:
            log.error("fix_tls_failed", session=self.session.settings.key, error=str(error))
            detail = getattr(error, "verify_message", None)
            return f"TLS with {where} failed: {error.reason or error}" + (
                f" ({detail})" if detail else ""
            )
        except (OSError, TimeoutError) as error:
            return f"connect to {where} failed: {error!r}"
        if tls is not None and tls.pin is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            mismatch = tls.pin.mismatch(der)
            if mismatch is not None:
                writer.transport.abort()  # nothing of the session was written
                log.error("fix_tls_pin_mismatch", session=self.session.settings.key, error=mismatch)
                return f"TLS with {where}: pinned certificate mismatch: {mismatch}"
        return reader, writer

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
    """Listens for initiators of the configured sessions.

    ``counters``: ``refused`` (every connection closed before a session got it), and
    why: ``locked_out``, ``over_capacity``, ``logon_failures``, ``lockouts``;
    ``slow_consumers``: logged-on connections dropped for not reading."""

    def __init__(
        self,
        sessions: Mapping[tuple[str, str], FixSession],
        host: str,
        port: int,
        *,
        begin_string: str = "FIX.4.4",
        limits: AcceptorLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        access: Mapping[tuple[str, str], AccessRule] | None = None,
        gate: LogonGate | None = None,
        clock: Clock,
    ) -> None:
        """``sessions`` (and ``access``, each session's conditions) are keyed by (our
        SenderCompID, their SenderCompID). ``ssl_context``: serve TLS only. ``gate``:
        the last word on a Logon, and whether it takes a live session over."""
        self.gate = gate
        self.sessions = dict(sessions)
        self._clock = clock
        self.host = host
        self.port = port
        self.begin_string = begin_string
        self.limits = limits or AcceptorLimits()
        self.ssl_context = ssl_context
        self.access = dict(access or {})
        self.guard = AddressGuard(self.limits)
        self.counters: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._serving: dict[FixSession, asyncio.Task[None]] = {}  # the task serving each
        self._watches: dict[FixSession, OutboundWatch] = {}  # its connection's unsent bytes
        self._unauthenticated: Counter[str] = Counter()

    @property
    def refused(self) -> int:
        return self.counters["refused"]

    def watch(self, session: FixSession) -> OutboundWatch | None:
        """The unsent bytes of ``session``'s connection, while one serves it."""
        return self._watches.get(session)

    def unsent_bytes(self) -> int:
        """Bytes written to every connection and not yet sent."""
        return sum(watch.unsent_bytes for watch in self._watches.values())

    async def start(self) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        # TLS is started per connection, after the caps and the lockout are checked:
        # a refused address costs no handshake
        self._server = await start_server(self._on_connection, self.host, self.port)
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
        peername = writer.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) else str(peername)
        refusal = self._over_limits(address)
        if refusal is not None:
            writer.transport.abort()
            return
        self._connections.add(task)
        self._unauthenticated[address] += 1
        try:
            try:
                found = await self._admit(reader, writer, address)
            finally:
                self._unauthenticated[address] -= 1
                if self._unauthenticated[address] <= 0:
                    del self._unauthenticated[address]
            if found is not None:
                session, first_data = found
                watch = _watch(session, writer, self.limits.outbound(), self._clock, self.counters)
                self._serving[session] = task
                self._watches[session] = watch
                try:
                    await run_connection(
                        session, reader, watch, initiator=False, first_data=first_data
                    )
                finally:
                    if self._serving.get(session) is task:
                        del self._serving[session]
                    if self._watches.get(session) is watch:
                        del self._watches[session]
        except asyncio.CancelledError:
            # stopping: end normally (asyncio before 3.13 logs a cancelled handler as an error)
            pass
        finally:
            self._connections.discard(task)
            writer.transport.close()  # after what was written (a refusal's Logout)

    def _over_limits(self, address: str) -> str | None:
        """Why a new connection from ``address`` is closed unread, or ``None``."""
        limits = self.limits
        now_s = self._clock.monotonic_s()
        if self.guard.locked(address, now_s):
            self.counters["locked_out"] += 1
            return self._refuse(address, "address locked out after failed logons")
        if len(self._connections) >= limits.max_connections:
            self.counters["over_capacity"] += 1
            return self._refuse(address, "too many connections")
        if (
            sum(self._unauthenticated.values()) >= limits.max_unauthenticated
            or self._unauthenticated[address] >= limits.max_unauthenticated_per_address
        ):
            self.counters["over_capacity"] += 1
            return self._refuse(address, "too many connections not logged on")
        return None

    async def _admit(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str
    ) -> tuple[FixSession, bytes] | None:
        """The session this connection logs on to and the bytes read so far, or ``None``
        (refused and counted)."""
        deadline = self._clock.monotonic_s() + self.limits.logon_timeout_ms / 1000
        certificate: PeerCertificate | None = None
        if self.ssl_context is not None:
            try:
                # its own timeout: start_tls run under wait_for (another task) stalls
                await writer.start_tls(
                    self.ssl_context,
                    ssl_handshake_timeout=max(deadline - self._clock.monotonic_s(), 0.001),
                )
            except ConnectionError as error:
                # the peer left mid-handshake (a port check, a health probe): it tried
                # no credential and no certificate, so it is not held against the address
                self._refuse(address, f"TLS handshake not completed: {error!r}")
                return None
            except (TimeoutError, OSError) as error:  # ssl.SSLError: refused certificate
                self._failed(address, f"TLS handshake failed: {error!r}")
                return None
            certificate = PeerCertificate.of(writer.get_extra_info("ssl_object"))
        read = await self._first_message(reader, deadline)
        if isinstance(read, str):
            if read:
                self._failed(address, read)
            return None
        first, buffered = read
        key = (first.get(56) or "", first.get(49) or "")
        session = self.sessions.get(key)
        if session is None:
            self._failed(
                address, f"first message MsgType {first.msg_type!r} for unknown session {key}"
            )
            return None
        if first.msg_type != "A":
            self._failed(address, "first message is not a Logon")
            return None
        rule = self.access.get(key)
        refusal = None if rule is None else rule.refusal(Peer(address, certificate))
        if refusal is not None:
            session.counters["logons_refused"] += 1
        refusal = refusal or session.screen_logon(first)
        if refusal is not None:
            writer.write(session.refusal_logout(refusal))
            self._failed(address, f"session {session.settings.key}: {refusal}")
            return None
        if not await self._claim(session, first, writer, address):
            return None
        self.guard.succeeded(address)
        return session, buffered

    async def _claim(
        self, session: FixSession, logon: FixMessage, writer: asyncio.StreamWriter, address: str
    ) -> bool:
        """Whether the connection of ``logon`` (credentials good) gets ``session``: the
        gate's word, and the session free or taken over."""
        gate = self.gate
        while True:  # asked again after each takeover: a newer Logon may have come meanwhile
            refusal = None if gate is None else gate.admit(session, logon)
            if refusal is not None:
                writer.write(session.refusal_logout(refusal))
                self._refuse(address, f"session {session.settings.key}: {refusal}")
                return False
            if not session.connected:
                return True
            reason = None if gate is None else gate.takes_over(session, logon)
            if reason is None:
                self._refuse(address, f"session {session.settings.key} is already connected")
                return False
            await self._take_over(session, reason)

    async def _take_over(self, session: FixSession, reason: str) -> None:
        """Drop the session's live connection, and return once its task has finished."""
        self.counters["takeovers"] += 1
        log.warning("fix_session_taken_over", session=session.settings.key, reason=reason)
        task = self._serving.get(session)
        # no Logout to the old peer: it would use a sequence number of the session that
        # the new connection continues
        session.disconnect(reason)
        if task is None or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=self.limits.logon_timeout_ms / 1000)
        if not done:  # still not out of its read: it must not outlive the takeover
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _first_message(
        self, reader: asyncio.StreamReader, deadline: float
    ) -> tuple[FixMessage, bytes] | str:
        """The first well-framed message and the bytes read with it; or why there is
        none (empty: closed without a byte, not a logon attempt)."""
        parser = FixParser(self.begin_string)
        buffered = b""
        while True:
            remaining = deadline - self._clock.monotonic_s()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    data = await reader.read(READ_CHUNK)
            except (TimeoutError, ConnectionError, OSError):
                return "no Logon received in time"
            if not data:
                return "closed before a Logon" if buffered else ""
            buffered += data
            if len(buffered) > MAX_FIRST_MESSAGE_BYTES:
                return "no Logon in the first 64 KiB"
            parser.feed(data)
            for item in parser.messages():
                if isinstance(item, Garbled):  # an invalid Logon: closed at once
                    return f"garbled first message: {item.reason}"
                return item, buffered

    def _failed(self, address: str, reason: str) -> None:
        """A failed logon: refused, and counted against the address."""
        self.counters["logon_failures"] += 1
        self._refuse(address, reason)
        if self.guard.failed(address, self._clock.monotonic_s()):
            self.counters["lockouts"] += 1
            log.warning(
                "fix_address_locked_out",
                peer=address,
                failures=self.limits.max_logon_failures,
                lockout_s=self.limits.lockout_s,
            )

    def _refuse(self, address: str, reason: str) -> str:
        self.counters["refused"] += 1
        log.warning("fix_connection_refused", peer=address, reason=reason)
        return reason

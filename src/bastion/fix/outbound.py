"""Slow-consumer protection: how many bytes a FIX connection may leave unsent.

A counterparty that stops reading (hung, hostile, or behind a network black hole that
keeps the window open) leaves every byte its session writes in the transport's buffer,
in this process's memory. ``OutboundWatch`` sets the transport's write-buffer marks
from ``OutboundLimits`` and is told by asyncio's own flow control when the unsent bytes
pass the high mark (``pause_writing``) and when they are back at the low mark
(``resume_writing``), so the send path reads no buffer size while the peer keeps up.
Over the high mark for longer than the grace, or grown by one more high mark's worth
while over it, the connection is aborted: its buffer is freed at once, and no Logout is
sent (it would wait behind the bytes that are stuck). The session then goes the way of
any dropped connection; what it stored for resend stays stored.

``open_connection`` and ``start_server`` are asyncio's, with a protocol that passes
those two signals on to the connection's watch.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from bastion.clock import Cancelable, Clock
from bastion.errors import ConfigError

log = structlog.get_logger("bastion.fix")

MIN_OUTBOUND_BUFFER_BYTES = 1 << 16
"""asyncio's own default high mark: a limit under it would count an ordinary burst."""
DEFAULT_MAX_OUTBOUND_BUFFER_BYTES = 4 << 20
DEFAULT_SLOW_CONSUMER_TIMEOUT_MS = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundLimits:
    """How far behind a counterparty may fall before its connection is dropped.

    - ``max_outbound_buffer_bytes``: the high mark of the connection's unsent bytes;
      the low mark is a quarter of it.
    - ``slow_consumer_timeout_ms``: how long the unsent bytes may stay over the high
      mark without falling back to the low mark.

    While over the high mark they may grow by at most another
    ``max_outbound_buffer_bytes``: past that the connection is dropped at once, so a
    peer that asks for more (a ResendRequest of everything, again and again) while it
    reads nothing cannot make the buffer grow through the grace.
    """

    max_outbound_buffer_bytes: int = DEFAULT_MAX_OUTBOUND_BUFFER_BYTES
    slow_consumer_timeout_ms: int = DEFAULT_SLOW_CONSUMER_TIMEOUT_MS

    @property
    def low_water_bytes(self) -> int:
        return self.max_outbound_buffer_bytes // 4

    def check(self, key: str) -> None:
        """Raise ``ConfigError`` naming ``key.<field>`` for an invalid value."""
        limit = self.max_outbound_buffer_bytes
        if limit < MIN_OUTBOUND_BUFFER_BYTES:
            raise ConfigError(
                f"key '{key}.max_outbound_buffer_bytes': must be at least "
                f"{MIN_OUTBOUND_BUFFER_BYTES} (64 KiB), got {limit}"
            )
        if self.slow_consumer_timeout_ms <= 0:
            raise ConfigError(
                f"key '{key}.slow_consumer_timeout_ms': must be > 0, "
                f"got {self.slow_consumer_timeout_ms}"
            )


class OutboundWatch:
    """One connection's unsent bytes against its ``OutboundLimits``.

    The session writes through ``write`` and closes through ``close``. ``dropped``:
    why the watch aborted the connection (``None`` while it has not); the drop is
    logged as ``fix_slow_consumer`` and reported to ``on_drop``."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        limits: OutboundLimits,
        *,
        name: str,
        clock: Clock,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        """``writer``: a connection made by ``open_connection`` or ``start_server``;
        ``name``: the session's key, for the log; ``clock``: the grace's timer."""
        protocol = writer.transport.get_protocol()
        if not isinstance(protocol, _SignallingProtocol):
            raise TypeError("the connection was not made by bastion.fix.outbound")
        self.transport = writer.transport
        self.limits = limits
        self.name = name
        self.dropped: str | None = None
        self.over = False
        """Between the high mark passed and the low mark reached again."""
        self._on_drop = on_drop
        self._clock = clock
        self._over_at = 0.0
        self._ceiling = 0
        self._timer: Cancelable | None = None
        protocol.watch = self
        self.transport.set_write_buffer_limits(
            high=limits.max_outbound_buffer_bytes, low=limits.low_water_bytes
        )

    @property
    def unsent_bytes(self) -> int:
        """Bytes written and not yet taken by the kernel (TLS: not yet encrypted and sent)."""
        return 0 if self.dropped is not None else self.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        if self.dropped is not None:  # aborted: the session's store keeps what it sent
            return
        self.transport.write(data)
        if self.over and self.transport.get_write_buffer_size() > self._ceiling:
            self._drop("grew by another max_outbound_buffer_bytes while over the mark")

    def close(self) -> None:
        """Close once the unsent bytes are sent; aborted at once when over the high mark
        (a peer that far behind would hold the connection and its buffer open)."""
        self._cancel_timer()
        if self.dropped is not None:
            return  # aborted already
        if self.over:
            self.transport.abort()
        else:
            self.transport.close()

    def passed_high_mark(self) -> None:
        self.over = True
        self._over_at = self._clock.monotonic_s()
        limit = self.limits.max_outbound_buffer_bytes
        self._ceiling = self.transport.get_write_buffer_size() + limit
        self._cancel_timer()
        self._timer = self._clock.call_later(
            self.limits.slow_consumer_timeout_ms * 1_000_000, self._grace_over
        )

    def back_at_low_mark(self) -> None:
        self.over = False
        self._cancel_timer()

    def _grace_over(self, _ts_ns: int) -> None:
        self._timer = None
        self._drop("not back at the low mark within slow_consumer_timeout_ms")

    def _drop(self, why: str) -> None:
        if self.dropped is not None:
            return
        self._cancel_timer()
        unsent = self.transport.get_write_buffer_size()
        over_s = self._clock.monotonic_s() - self._over_at
        limits = self.limits
        self.dropped = (
            f"slow consumer: {unsent} bytes unsent, over the {limits.max_outbound_buffer_bytes}"
            f"-byte mark for {over_s:.1f} s ({why})"
        )
        log.warning(
            "fix_slow_consumer",
            session=self.name,
            buffered_bytes=unsent,
            max_outbound_buffer_bytes=limits.max_outbound_buffer_bytes,
            over_ms=round(over_s * 1000),
            reason=why,
        )
        # frees the buffer now; the connection's reader then sees it closed, and the
        # session is dropped with ``dropped`` as the reason. Never the session's
        # disconnect from here: this may run inside a write of another session's batch
        self.transport.abort()
        if self._on_drop is not None:
            self._on_drop()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _SignallingProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, passing the transport's flow-control signals on to
    the connection's ``OutboundWatch``."""

    watch: OutboundWatch | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.watch is not None:
            self.watch.passed_high_mark()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.watch is not None:
            self.watch.back_at_low_mark()


ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def open_connection(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection``, its connection ready for an ``OutboundWatch``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = _SignallingProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(
        lambda: protocol,
        host,
        port,
        ssl=ssl_context,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def start_server(on_connection: ClientConnected, host: str, port: int) -> asyncio.Server:
    """``asyncio.start_server``, each connection ready for an ``OutboundWatch``."""
    loop = asyncio.get_running_loop()

    def protocol() -> _SignallingProtocol:
        return _SignallingProtocol(asyncio.StreamReader(loop=loop), on_connection, loop=loop)

    return await loop.create_server(protocol, host, port)

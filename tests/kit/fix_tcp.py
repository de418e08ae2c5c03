"""A FIX initiator and acceptor session over real loopback sockets, raw Logons, a
client that speaks from a chosen source address, a hand-written counterparty that
connects or accepts and writes exactly the messages (and sequence numbers) a test gives
it (``RawCounterparty``), and a way to make the kernel hold little of what a peer does
not read (``shrink_send_buffer``)."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bastion.clock import Clock, LiveClock
from bastion.fix.codec import FixMessage, FixParser, Garbled, encode
from bastion.fix.outbound import OutboundWatch
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp
from bastion.fix.tls import ClientTls
from bastion.fix.transport import FixAcceptor, FixInitiator
from kit.fix_pair import ACC, INI, PASSWORD, RecordingApp, settings

DEADLINE_S = 10.0
CLOCK = LiveClock()


class Node:
    """One session with its store and recording application."""

    def __init__(self, path: Path, cfg: SessionSettings, app: RecordingApp) -> None:
        self.store = SqliteSessionStore(path, cfg.key, now_ns=time.time_ns())
        self.app = app
        self.session = FixSession(cfg, self.store, app, clock=CLOCK)


@contextmanager
def nodes(tmp_path: Path, *, password: str = PASSWORD) -> Iterator[tuple[Node, Node]]:
    """An initiator node (CLIENT, logging on with ``password``) and an acceptor node
    (VENUE, accepting ``PASSWORD``); stores closed at the end."""
    ini = Node(
        tmp_path / "ini.sqlite",
        settings(INI, ACC, heartbeat_s=30, username="trader", password=password),
        RecordingApp(),
    )
    acc = Node(tmp_path / "acc.sqlite", settings(ACC, INI, heartbeat_s=30), RecordingApp(PASSWORD))
    try:
        yield ini, acc
    finally:
        ini.store.close()
        acc.store.close()


def run(main: Callable[[], Awaitable[None]], timeout_s: float = 60) -> None:
    asyncio.run(asyncio.wait_for(main(), timeout_s))


def initiator(session: FixSession, port: int, tls: ClientTls | None = None) -> FixInitiator:
    return FixInitiator(
        session,
        "127.0.0.1",
        port,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        rng=random.Random(7),
        tls=tls,
        clock=CLOCK,
    )


def logon(
    *, seq: int = 1, password: str = PASSWORD, extra: tuple[tuple[int, str], ...] = ()
) -> bytes:
    """A Logon from CLIENT to VENUE as raw bytes."""
    fields = [(35, "A"), (49, INI), (56, ACC), (34, str(seq))]
    fields += [(52, format_utc_timestamp(time.time_ns())), (98, "0"), (108, "30")]
    fields += [(553, "trader"), (554, password), *extra]
    return encode("FIX.4.4", fields)


async def exchange(
    port: int,
    data: bytes,
    *,
    source: str = "127.0.0.1",
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Connect from ``source``, write ``data``, return what comes back until the close."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        port,
        local_addr=(source, 0),
        ssl=tls,
        server_hostname="127.0.0.1" if tls else None,
    )
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), DEADLINE_S)
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()
        with suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def acceptor(acc: Node, *, clock: Clock = CLOCK, **kwargs: Any) -> FixAcceptor:
    """An acceptor on 127.0.0.1 (port 0) for the VENUE session of ``acc``."""
    return FixAcceptor({(ACC, INI): acc.session}, "127.0.0.1", 0, clock=clock, **kwargs)


class RawCounterparty:
    """A FIX counterparty written by hand over TCP: it sends exactly the bytes a test
    makes (``send`` fills in the header with the next MsgSeqNum or the one given,
    ``send_raw`` sends anything) and reads what comes back, message by message, as a
    certification test tool does. It connects (``connect``) or plays the acceptor
    (``listen``/``accept``); every message received is kept in ``received``. It stops
    reading whenever a test stops calling ``receive``; ``receive_buffer_bytes`` shrinks
    its socket's receive buffer, so that little of what it does not read is taken off
    the other side."""

    def __init__(self, sender: str, target: str, *, begin_string: str = "FIX.4.4") -> None:
        self.sender, self.target, self.begin_string = sender, target, begin_string
        self.next_seq = 1
        self.received: list[FixMessage] = []
        """Every message received on any connection, in order."""
        self._parser = FixParser(begin_string)
        self._pending: list[FixMessage] = []
        self._parser_begin = begin_string
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._connections: (
            asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None
        ) = None

    async def connect(
        self,
        port: int,
        *,
        receive_buffer_bytes: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Connect to ``port`` on loopback (over TLS with ``tls``, checking the name
        127.0.0.1)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer_bytes is not None:  # before the connection: it sets the window
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        self._reader, self._writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=None if tls is None else "127.0.0.1"
        )

    async def listen(self, *, receive_buffer_bytes: int | None = None) -> int:
        """Play the acceptor: listen on a free loopback port and return it. Each
        connection made to it waits for ``accept``; ``receive_buffer_bytes`` is
        inherited by each."""
        connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        connections = self._connections = asyncio.Queue()

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await connections.put((reader, writer))

        self._server = await asyncio.start_server(connected, "127.0.0.1", 0)
        if receive_buffer_bytes is not None:
            listening = self._server.sockets[0]
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def accept(self, timeout_s: float = DEADLINE_S) -> None:
        """Take the next connection made to ``listen``'s port (the previous one closed)."""
        assert self._connections is not None, "listen first"
        await self.close()
        self._reader, self._writer = await asyncio.wait_for(self._connections.get(), timeout_s)
        self._parser = FixParser(self._parser_begin)
        self._pending.clear()

    def message(self, msg_type: str, *body: tuple[int, object], seq: int | None = None) -> bytes:
        """Wire bytes of ``msg_type`` with a standard header (the next MsgSeqNum unless
        ``seq``), then ``body``; the sequence number is used either way."""
        if seq is None:
            seq = self.next_seq
        self.next_seq = seq + 1
        fields = [(35, msg_type), (49, self.sender), (56, self.target), (34, str(seq))]
        fields.append((52, format_utc_timestamp(time.time_ns())))
        fields += [(tag, str(value)) for tag, value in body]
        return encode(self.begin_string, fields)

    def send(self, msg_type: str, *body: tuple[int, object], seq: int | None = None) -> int:
        """Write one message; returns its MsgSeqNum (the next ones follow it)."""
        number = self.next_seq if seq is None else seq
        self.send_raw(self.message(msg_type, *body, seq=seq))
        return number

    def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def receive(self, timeout_s: float = DEADLINE_S) -> FixMessage | None:
        """The next message; ``None`` when the counterparty closed the connection."""
        assert self._reader is not None
        deadline = time.monotonic() + timeout_s
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no message within {timeout_s} s")
            try:
                data = await asyncio.wait_for(self._reader.read(65536), remaining)
            except TimeoutError:
                raise AssertionError(f"no message within {timeout_s} s") from None
            except ConnectionError:
                data = b""
            if not data:
                return None
            self._parser.feed(data)
            for item in self._parser.messages():
                assert not isinstance(item, Garbled), item
                self._pending.append(item)
                self.received.append(item)
        return self._pending.pop(0)

    async def expect(
        self,
        msg_type: str,
        timeout_s: float = DEADLINE_S,
        *,
        skip_others: bool = False,
        **tags: str,
    ) -> FixMessage:
        """The next message of ``msg_type`` whose tags ``t<N>=value`` match. Only
        Heartbeats may come before it (unless a Heartbeat is expected), or, with
        ``skip_others``, any message; fails if the connection closes first."""
        want = {int(k[1:]): v for k, v in tags.items()}
        while True:
            msg = await self.receive(timeout_s)
            assert msg is not None, f"closed while waiting for MsgType {msg_type} {want}"
            if msg.msg_type == msg_type and all(msg.get(t) == v for t, v in want.items()):
                return msg
            assert skip_others or msg.msg_type == "0", f"expected MsgType {msg_type}, got {msg!r}"

    async def closed(self, timeout_s: float = DEADLINE_S) -> list[FixMessage]:
        """Every message not yet read until the connection closes (fails if it stays open)."""
        out = []
        while (msg := await self.receive(timeout_s)) is not None:
            out.append(msg)
        return out

    async def close(self) -> None:
        """Close the connection (``stop`` also stops listening)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):  # the other side aborted
                await writer.wait_closed()

    async def stop(self) -> None:
        await self.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def shrink_send_buffer(watch: OutboundWatch, send_buffer_bytes: int = 4096) -> None:
    """Shrink the kernel's send buffer under ``watch``'s connection: what its peer does
    not read then stays in the transport's buffer, the one the watch bounds, instead of
    the few MiB the kernel would otherwise take first."""
    sock = watch.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)

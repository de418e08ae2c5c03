"""A FIX initiator and acceptor session over real loopback sockets, raw Logons, and a
client that speaks from a chosen source address."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bastion.clock import Clock, LiveClock
from bastion.fix.codec import encode
from bastion.fix.session import FixSession, SessionSettings, format_utc_timestamp
from bastion.fix.store import SqliteSessionStore
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

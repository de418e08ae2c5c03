"""A ``VenueSimServer`` run in this process from ``kit.fix_desk.venue_sim_toml`` (``venue``),
and raw FIX peers of it over real TCP (``kit.fix_tcp.RawCounterparty``) that log on and
send the order messages a test says, by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bastion.config import load_config
from bastion.fix.codec import FixMessage
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from kit.fix_desk import listening_port, venue_sim_toml
from kit.fix_tcp import RawCounterparty

SYM = "XYZ.SIM"
"""The instrument of ``venue_sim_toml``, quoted by its synthetic feed around 100."""
TRANSACT_TIME = "20240102-14:30:00.000"


@asynccontextmanager
async def venue(
    root: Path,
    *,
    fencing: str | None = None,
    cancel_on_disconnect: bool = False,
    tail: str = "",
    extra: str = "",
    feed_interval_ms: int = 20,
) -> AsyncIterator[VenueSimServer]:
    """A simulator from ``venue_sim_toml`` (port 0) with ``tail`` (more tables, e.g.
    ``[[read_only_sessions]]``) appended and ``extra`` (``[limits]``) before its
    accounts, listening until the block ends."""
    toml = venue_sim_toml(
        0,
        fencing=fencing,
        cancel_on_disconnect=cancel_on_disconnect,
        extra=extra,
        feed_interval_ms=feed_interval_ms,
    )
    (root / "venue-sim.toml").write_text(toml + tail)
    server = VenueSimServer(load_config(root / "venue-sim.toml", VenueSimConfig), root)
    task = asyncio.create_task(server.run())
    await listening_port(server, task)
    try:
        yield server
    finally:
        server.stop_requested.set()
        await task


async def logon(
    port: int,
    *,
    password: str,
    sender: str = "NODE",
    username: str = "trader",
    seq: int = 1,
    fields: tuple[tuple[int, object], ...] = (),
    receive_buffer_bytes: int | None = None,
) -> RawCounterparty:
    """A connection from ``sender`` that sends a Logon with these credentials and
    ``fields`` after them (8013, 8014, ...); ``receive_buffer_bytes``: its socket's
    receive buffer, shrunk for a peer that will stop reading."""
    peer = RawCounterparty(sender, "SIM")
    await peer.connect(port, receive_buffer_bytes=receive_buffer_bytes)
    peer.send("A", (98, 0), (108, 30), (553, username), (554, password), *fields, seq=seq)
    return peer


def buy(peer: RawCounterparty, cl_ord_id: str, *, quantity: int = 1, price: str = "1.00") -> None:
    """A limit BUY (by default far under the synthetic market: it rests)."""
    peer.send(
        "D",
        (11, cl_ord_id),
        (55, SYM),
        (54, 1),
        (60, TRANSACT_TIME),
        (38, quantity),
        (40, 2),
        (44, price),
        (59, 1),
    )


def market_buy(peer: RawCounterparty, cl_ord_id: str, quantity: int) -> None:
    """A market BUY: it fills against the synthetic book at once (its size is 1000)."""
    peer.send(
        "D", (11, cl_ord_id), (55, SYM), (54, 1), (60, TRANSACT_TIME), (38, quantity), (40, 1)
    )


def cancel(peer: RawCounterparty, cl_ord_id: str, orig: str) -> None:
    """A cancel of the BUY ``orig``."""
    peer.send("F", (11, cl_ord_id), (41, orig), (55, SYM), (54, 1), (60, TRANSACT_TIME))


def replace(peer: RawCounterparty, cl_ord_id: str, orig: str, quantity: int) -> None:
    """A replace of the resting BUY ``orig`` with a new quantity, at the same price."""
    peer.send(
        "G",
        (11, cl_ord_id),
        (41, orig),
        (55, SYM),
        (54, 1),
        (60, TRANSACT_TIME),
        (38, quantity),
        (40, 2),
        (44, "1.00"),
        (59, 1),
    )


async def round_trip(peer: RawCounterparty, test_id: str) -> FixMessage:
    """The session answers a TestRequest: the connection is logged on and served; the
    Heartbeat that answers it is returned."""
    peer.send("1", (112, test_id))
    return await peer.expect("0", t112=test_id, skip_others=True)

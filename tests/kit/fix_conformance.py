"""The FIX session-layer conformance cases' shared steps: ``bastion venue sim`` (its
server, in this process, on a free port) with a hand-written counterparty logged on to
it, and the checks a certification script repeats (a logon, the session still in step)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bastion.config import load_config
from bastion.fix.codec import FixMessage
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from kit.fix_desk import listening_port, venue_sim_toml
from kit.fix_tcp import RawCounterparty

PASSWORD = "conformance-pw-41d7"
"""The account's password (``BASTION_FIX_PASSWORD`` in the simulator's config)."""
LIMITS = "[limits]\nmax_logon_failures = 1000\n"
ORDER = [
    (11, "C1"),
    (21, "1"),
    (55, "XYZ.SIM"),
    (54, "1"),
    (60, "20240102-14:30:00.000"),
    (38, "5"),
    (40, "2"),
    (44, "1.00"),
    (59, "0"),
]
"""The body of a valid NewOrderSingle."""
LOGON = ((98, "0"), (108, "30"), (553, "trader"), (554, PASSWORD))

Case = Callable[[RawCounterparty, VenueSimServer], Awaitable[None]]


def run(tmp_path: Path, case: Case, *, extra: str = "") -> VenueSimServer:
    """``case`` against a simulator, connected (the case logs on itself)."""
    (tmp_path / "venue-sim.toml").write_text(venue_sim_toml(0, extra=extra + LIMITS))
    server = VenueSimServer(load_config(tmp_path / "venue-sim.toml", VenueSimConfig), tmp_path)

    async def main() -> None:
        task = asyncio.create_task(server.run())
        try:
            await listening_port(server, task)
            client = RawCounterparty("NODE", "SIM")
            await client.connect(server.port)
            try:
                await case(client, server)
            finally:
                await client.close()
        finally:
            server.stop_requested.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(asyncio.wait_for(main(), 60))
    return server


async def logon(client: RawCounterparty, *more: tuple[int, object]) -> FixMessage:
    """Log on (``more``: extra Logon tags, a later one replacing one of ``LOGON``)."""
    replaced = {tag for tag, _ in more}
    client.send("A", *(f for f in LOGON if f[0] not in replaced), *more)
    return await client.expect("A")


async def still_in_step(client: RawCounterparty) -> None:
    """A TestRequest with the next sequence number is answered: nothing was lost or
    skipped (a number the venue did not consume would make this one too high)."""
    client.send("1", (112, "STEP"))
    heartbeat = await client.expect("0")
    assert heartbeat.get(112) == "STEP"

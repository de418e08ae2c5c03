"""Slow consumers (``bastion.fix.outbound``) over real loopback TCP: an acceptor's
session writing to a raw peer that stops reading is dropped once its unsent bytes stay
over the mark for the grace, or grow by the mark again meanwhile; a peer under the mark,
or one that falls behind and catches up within the grace, is served; the limits' config
names its keys."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bastion.certs import CertFiles, create_certs
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.fix.admission import AcceptorLimits
from bastion.fix.outbound import OutboundLimits, OutboundWatch
from bastion.fix.session import FixSession
from bastion.fix.tls import TlsServerConfig
from bastion.fix.transport import FixAcceptor
from bastion.venue_server.config import VenueSimConfig
from bastion.venues.fix.config import FixVenueConfig
from kit.fix_desk import venue_sim_toml
from kit.fix_pair import ACC, INI, PASSWORD, execution_report
from kit.fix_tcp import DEADLINE_S, RawCounterparty, acceptor, nodes, run, shrink_send_buffer
from kit.waiting import until


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return create_certs(tmp_path_factory.mktemp("tls") / "tls")


LIMIT = 1 << 16  # the smallest limit allowed
MESSAGE_BYTES = 256  # an execution report of these tests is under this


@asynccontextmanager
async def logged_on_peer(
    tmp_path: Path, timeout_ms: int, *, tls: CertFiles | None = None
) -> AsyncIterator[tuple[FixSession, FixAcceptor, RawCounterparty, OutboundWatch]]:
    """An acceptor limited to ``LIMIT`` unsent bytes for ``timeout_ms`` (serving TLS
    with ``tls``' venue certificate), and a raw peer logged on to its session, the
    kernel's buffers on both sides shrunk."""
    with nodes(tmp_path) as (_, acc):
        limits = AcceptorLimits(
            max_outbound_buffer_bytes=LIMIT, slow_consumer_timeout_ms=timeout_ms
        )
        server_tls = client_tls = None
        if tls is not None:
            server_config = TlsServerConfig(
                cert_file=str(tls.venue_cert), key_file=str(tls.venue_key)
            )
            server_tls = server_config.context(tmp_path, "tls")
            client_tls = ssl.create_default_context(cafile=str(tls.ca))
        server = acceptor(acc, limits=limits, ssl_context=server_tls)
        port = await server.start()
        peer = RawCounterparty(INI, ACC)
        try:
            await peer.connect(port, receive_buffer_bytes=4096, tls=client_tls)
            peer.send("A", (98, 0), (108, 30), (553, "trader"), (554, PASSWORD))
            await peer.expect("A")
            watch = server.watch(acc.session)
            assert watch is not None
            shrink_send_buffer(watch)
            yield acc.session, server, peer, watch
        finally:
            await peer.stop()
            await server.stop()


async def send_until(
    session: FixSession, done: Callable[[], bool], *, batch: int = 10, first: int = 0
) -> int:
    """Send execution reports (ExecIDs ``E-<first>`` on), ``batch`` at a time with the
    event loop run between, until ``done``; returns how many were sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    sent = 0
    while not done():
        assert loop.time() < deadline, "not done in time"
        for _ in range(batch):
            session.send(execution_report(f"E-{first + sent}"))
            sent += 1
        await asyncio.sleep(0)
    return sent


async def read_reports(peer: RawCounterparty, count: int) -> list[str]:
    """The ExecIDs of the next ``count`` execution reports (Heartbeats skipped)."""
    return [(await peer.expect("8")).get(17) or "" for _ in range(count)]


def test_when_peer_stops_reading_then_dropped_after_the_grace_without_a_logout(
    tmp_path: Path,
) -> None:
    """Over the mark, then nothing more written: the connection is aborted once the grace
    has passed (not before), the drop logged and counted, the session disconnected with
    the reason; the peer gets no Logout, and every report stays stored for resend."""
    timeout_ms = 300

    async def main() -> None:
        async with logged_on_peer(tmp_path, timeout_ms) as (session, server, peer, watch):
            loop = asyncio.get_running_loop()
            sent = await send_until(session, lambda: watch.over)
            over_at = loop.time()
            await until(lambda: not session.connected, what="the slow consumer dropped")
            waited_s = loop.time() - over_at
            assert timeout_ms / 1000 * 0.9 <= waited_s <= timeout_ms / 1000 + 1.0
            assert session.disconnect_reason.startswith("slow consumer: ")
            assert "low mark within slow_consumer_timeout_ms" in session.disconnect_reason
            assert session.counters["slow_consumer_drops"] == 1
            assert server.counters["slow_consumers"] == 1
            assert server.watch(session) is None and server.unsent_bytes() == 0
            unread = await peer.closed()
            assert "5" not in {m.msg_type for m in unread}
            assert session.store.next_sender_seq == 2 + sent  # the Logon, then the reports
            assert len(session.store.sent_messages(2, 1 + sent)) == sent

    run(main)


def test_when_peer_stops_reading_over_tls_then_dropped_after_the_grace(
    tmp_path: Path, certs: CertFiles
) -> None:
    """The same over TLS: the unsent bytes the watch sees are those not yet encrypted and
    sent, and the drop comes once the grace has passed."""
    timeout_ms = 300

    async def main() -> None:
        async with logged_on_peer(tmp_path, timeout_ms, tls=certs) as (session, server, _, watch):
            loop = asyncio.get_running_loop()
            await send_until(session, lambda: watch.over)
            over_at = loop.time()
            await until(lambda: not session.connected, what="the slow consumer dropped")
            assert timeout_ms / 1000 * 0.9 <= loop.time() - over_at <= timeout_ms / 1000 + 1.0
            assert "low mark within slow_consumer_timeout_ms" in session.disconnect_reason
            assert server.counters["slow_consumers"] == 1

    run(main)


def test_when_peer_stops_reading_and_more_is_written_then_dropped_at_twice_the_mark(
    tmp_path: Path,
) -> None:
    """Writing on into a peer that reads nothing: dropped long before a one-minute grace,
    once the unsent bytes grew by the mark again; they never exceeded twice the mark and
    a message."""

    async def main() -> None:
        async with logged_on_peer(tmp_path, 60_000) as (session, server, _, watch):
            peak = 0

            def dropped() -> bool:
                nonlocal peak
                peak = max(peak, watch.unsent_bytes)
                return not session.connected

            started = asyncio.get_running_loop().time()
            await send_until(session, dropped, batch=1)
            assert asyncio.get_running_loop().time() - started < 30
            assert "grew by another max_outbound_buffer_bytes" in session.disconnect_reason
            assert server.counters["slow_consumers"] == 1
            assert LIMIT < peak <= 2 * LIMIT + MESSAGE_BYTES

    run(main)


def test_when_unsent_bytes_stay_at_the_mark_then_not_dropped(tmp_path: Path) -> None:
    """Just under the mark and nothing read for three times the grace: served on, and
    the peer, reading again, gets every report in order."""
    timeout_ms = 200

    async def main() -> None:
        async with logged_on_peer(tmp_path, timeout_ms) as (session, server, peer, watch):
            sent = await send_until(
                session, lambda: watch.unsent_bytes >= LIMIT - MESSAGE_BYTES, batch=1
            )
            assert not watch.over
            await asyncio.sleep(3 * timeout_ms / 1000)  # the peer reads nothing meanwhile
            assert session.logged_on and not watch.over
            assert await read_reports(peer, sent) == [f"E-{n}" for n in range(sent)]
            assert server.counters["slow_consumers"] == 0

    run(main)


def test_when_peer_falls_behind_and_catches_up_within_the_grace_then_not_dropped(
    tmp_path: Path,
) -> None:
    """Twice over the mark, each time back at the low mark within the grace, for longer
    than the grace in all: the grace is per stretch over the mark, and nothing is lost."""
    timeout_ms = 600

    async def main() -> None:
        async with logged_on_peer(tmp_path, timeout_ms) as (session, server, peer, watch):
            received: list[str] = []
            sent = 0
            for _ in range(2):
                sent += await send_until(session, lambda: watch.over, first=sent)
                await asyncio.sleep(0.4 * timeout_ms / 1000)  # the peer is slow to read
                received += await read_reports(peer, sent - len(received))
                assert not watch.over
            await asyncio.sleep(0.4 * timeout_ms / 1000)  # past the first stretch's grace
            peer.send("1", (112, "STILL-THERE"))
            await peer.expect("0", t112="STILL-THERE")
            assert received == [f"E-{n}" for n in range(sent)]
            assert session.logged_on and server.counters["slow_consumers"] == 0

    run(main)


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [("max_outbound_buffer_bytes", LIMIT, LIMIT - 1), ("slow_consumer_timeout_ms", 1, 0)],
)
def test_when_outbound_limit_out_of_range_then_error_names_the_key(
    tmp_path: Path, field: str, good: int, bad: int
) -> None:
    """At the bound the limit is taken, one step past it refused naming the key: in the
    simulator's ``[limits]``, a node's ``[[venues]]`` FIX table and ``[fix_venue]``."""
    OutboundLimits(**{field: good}).check("x")  # type: ignore[arg-type]
    AcceptorLimits(**{field: good}).check("limits")  # type: ignore[arg-type]
    FixVenueConfig(port=1, sender_comp_id="N", target_comp_id="S", **{field: good})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=rf"key 'fix_venue\.{field}': must"):
        FixVenueConfig(port=1, sender_comp_id="N", target_comp_id="S", **{field: bad})  # type: ignore[arg-type]

    sim = tmp_path / "venue-sim.toml"
    sim.write_text(venue_sim_toml(0, extra=f"[limits]\n{field} = {bad}\n"))
    with pytest.raises(ConfigError, match=rf"key 'limits\.{field}': must"):
        load_config(sim, VenueSimConfig)

    (tmp_path / "s.py").write_text("# placeholder\n")
    node = tmp_path / "node.toml"
    node.write_text(
        '[[instruments]]\nid = "XYZ.SIM"\nvenue = "FIXSIM"\ntick_size = "0.01"\n'
        '[[strategies]]\nname = "s1"\npath = "s.py"\nclass = "S"\n'
        '[[venues]]\nkind = "fix"\nname = "FIXSIM"\nport = 9878\n'
        f'sender_comp_id = "NODE"\ntarget_comp_id = "SIM"\n{field} = {bad}\n'
    )
    with pytest.raises(ConfigError, match=rf"key 'venues\[0\]\.{field}': must"):
        load_config(node, PaperConfig)

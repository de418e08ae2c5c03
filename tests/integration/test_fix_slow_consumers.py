"""Slow consumers at both ends of a FIX connection, over real TCP (``bastion.fix.outbound``).

At the venue: the simulator runs in this process and streams market data to an
account whose raw peer stopped reading; it is dropped within its limit and grace, its
unsent bytes bounded meanwhile, another account served as before, its orders canceled
on disconnect, and everything it missed resent when it comes back. At the node: a raw
acceptor playing the venue stops reading what the node's FIX adapter sends; the node
drops the connection and reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bastion.clock import LiveClock
from bastion.venues.base import VenueContext
from bastion.venues.fix.adapter import FixVenueAdapter, build
from bastion.venues.fix.config import FixVenueConfig
from kit.fix_pair import new_order
from kit.fix_tcp import RawCounterparty, shrink_send_buffer
from kit.venuesim_peers import SYM, buy, logon, round_trip, venue
from kit.waiting import until

PASSWORD = "pw-slow-acct"
OTHER_PASSWORD = "pw-slow-other"
LIMIT = 1 << 16
GRACE_MS = 200
LIMITS = f"[limits]\nmax_outbound_buffer_bytes = {LIMIT}\nslow_consumer_timeout_ms = {GRACE_MS}\n"
OTHER = """
[[accounts]]
name = "other"
comp_id = "OTHER"
username = "other"
password_env = "BASTION_OTHER_PASSWORD"
"""
MESSAGE_BYTES = 512  # a market data update or an execution report is under this


@pytest.fixture(autouse=True)
def _passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)
    monkeypatch.setenv("BASTION_OTHER_PASSWORD", OTHER_PASSWORD)


def subscribe(peer: RawCounterparty) -> None:
    """A MarketDataRequest for top of book of ``SYM``, with its incremental updates."""
    peer.send(
        "V",
        (262, "md-1"),
        (263, 1),
        (264, 1),
        (265, 1),
        (267, 2),
        (269, 0),
        (269, 1),
        (146, 1),
        (55, SYM),
    )


def test_when_account_stops_reading_market_data_then_dropped_and_resent_on_return(
    tmp_path: Path,
) -> None:
    """The account rests an order, subscribes to market data every millisecond and reads
    nothing more: dropped within the limit and grace (no later than the grace after its
    unsent bytes passed the mark), which never exceeded twice the mark; the other
    account's TestRequests come back fast throughout; the order is canceled on
    disconnect; logging on again, a ResendRequest brings its New and the cancel."""

    async def main() -> None:
        async with venue(
            tmp_path, cancel_on_disconnect=True, extra=LIMITS, tail=OTHER, feed_interval_ms=1
        ) as server:
            loop = asyncio.get_running_loop()
            other = await logon(
                server.port, password=OTHER_PASSWORD, sender="OTHER", username="other"
            )
            await other.expect("A")
            stuck = await logon(server.port, password=PASSWORD, receive_buffer_bytes=4096)
            await stuck.expect("A", skip_others=True)
            await until(lambda: SYM in server.last_quotes, what="a quote")
            session = server.apps["acct"].session
            assert session is not None
            watch = server.acceptor.watch(session)
            assert watch is not None
            shrink_send_buffer(watch)
            buy(stuck, "stuck-1")
            subscribe(stuck)  # and from here on it reads nothing

            deadline = loop.time() + 20
            over_at: float | None = None
            peak = 0
            round_trips_s: list[float] = []
            while session.connected:
                assert loop.time() < deadline, "the slow consumer was not dropped"
                peak = max(peak, watch.unsent_bytes)
                if over_at is None and watch.over:
                    over_at = loop.time()
                sent_at = loop.time()
                await round_trip(other, f"RT-{len(round_trips_s)}")
                round_trips_s.append(loop.time() - sent_at)
            dropped_at = loop.time()

            assert over_at is not None and dropped_at - over_at <= GRACE_MS / 1000 + 0.5
            assert LIMIT < peak <= 2 * LIMIT + MESSAGE_BYTES
            assert session.disconnect_reason.startswith("slow consumer: ")
            assert server.acceptor.counters["slow_consumers"] == 1
            assert session.counters["slow_consumer_drops"] == 1
            assert server.acceptor.unsent_bytes() < LIMIT
            slowest_s = max(round_trips_s)
            assert len(round_trips_s) >= 5 and slowest_s < 0.25, slowest_s
            await until(
                lambda: server.counters["canceled_on_disconnect"] == 1, what="the order canceled"
            )

            back = await logon(server.port, password=PASSWORD, seq=stuck.next_seq)
            await back.expect("A")
            back.send("2", (7, 2), (16, 0))  # it read nothing after the Logon's answer
            new = await back.expect("8", t11="stuck-1", t150="0", skip_others=True)
            canceled = await back.expect("8", t11="stuck-1", t150="4", skip_others=True)
            assert (new.get(43), canceled.get(43)) == ("Y", "Y")
            await round_trip(back, "BACK")
            await round_trip(other, "OTHER-STILL-THERE")
            for peer in (other, stuck, back):
                await peer.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


async def answer_logon(fake_venue: RawCounterparty, adapter: FixVenueAdapter) -> None:
    """Take the node's next connection and answer its Logon: it is logged on."""
    await fake_venue.accept()
    logon_message = await fake_venue.expect("A")
    fake_venue.send("A", (98, "0"), (108, logon_message.get(108)))
    assert await adapter.wait_logged_on(10)


def test_when_venue_stops_reading_then_node_drops_and_reconnects(tmp_path: Path) -> None:
    """A raw acceptor plays the venue and, once logged on, reads nothing of the orders
    the node's FIX session sends (the adapter built from its config, limits included):
    the node drops the connection as a slow consumer (counted, reason kept),
    disconnects as from any drop, and logs on again."""

    async def main() -> None:
        fake_venue = RawCounterparty("SIM", "NODE")
        port = await fake_venue.listen(receive_buffer_bytes=4096)
        config = FixVenueConfig(
            name="SIM",
            port=port,
            sender_comp_id="NODE",
            target_comp_id="SIM",
            username="trader",
            store_path=str(tmp_path / "node.sqlite"),
            reconnect_initial_ms=50,
            reconnect_max_ms=200,
            market_data=False,
            max_outbound_buffer_bytes=LIMIT,
            slow_consumer_timeout_ms=GRACE_MS,
        )
        context = VenueContext(
            clock=LiveClock(), instruments={}, base_dir=tmp_path, epoch=1, live=False
        )
        adapter = build(config, context)
        adapter.bind(lambda event: None)
        await adapter.connect()
        try:
            await answer_logon(fake_venue, adapter)
            watch = adapter.initiator.watch
            assert watch is not None and watch.limits == config.outbound()
            shrink_send_buffer(watch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            sent = 0
            while adapter.session.connected:  # the venue reads none of it
                assert loop.time() < deadline, "the slow venue was not dropped"
                adapter.session.send(new_order(f"N-{sent}"))
                sent += 1
                if sent % 10 == 0:
                    await asyncio.sleep(0)
            assert adapter.session.disconnect_reason.startswith("slow consumer: ")
            assert adapter.session.counters["slow_consumer_drops"] == 1
            assert adapter.stats().disconnects == 1
            assert adapter.stats().slow_consumer_drops == 1  # the node's venue metrics

            await answer_logon(fake_venue, adapter)  # it reconnected by itself
            assert adapter.initiator.connects == 2
        finally:
            await adapter.initiator.stop(logout_timeout_s=0.2)
            await fake_venue.stop()
            adapter.store.close()

    asyncio.run(asyncio.wait_for(main(), 60))

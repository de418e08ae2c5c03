"""A FIX market data gap against the venue simulator: the node's FIX venue adapter and
the simulator's server, their sessions joined by in-memory pipes. One incremental
refresh (X) of a now quiet instrument is lost on the way to the node; the next message
(another instrument's X) shows the gap, the session asks for a resend, and the adapter
asks for snapshots (V, 263=0): the quiet instrument's book is right again at once,
not at its next change."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import LiveClock
from bastion.config import InstrumentConfig
from bastion.fix.codec import FixMessage, FixParser, Garbled
from bastion.fix.session import SessionSettings
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument
from bastion.vault import MemorySecrets
from bastion.venue_server.config import AccountConfig, VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from bastion.venues.fix.adapter import FixVenueAdapter

PASSWORD = "pw-md-gap-7a2"
QUIET, BUSY = "XYZ", "ABC"
T0 = 1_704_205_800_000_000_000


def _instrument(iid: str) -> Instrument:
    return Instrument(
        id=iid, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
    )


class Pipes:
    """The simulator's account session and the adapter's session, pumped by hand; what
    goes to the node can be dropped on the way."""

    def __init__(self, tmp_path: Path) -> None:
        config = VenueSimConfig(
            comp_id="SIM",
            accounts=[
                AccountConfig(name="acct", comp_id="NODE", username="u", password="secret:fix/acct")
            ],
            instruments=[
                InstrumentConfig(id=iid, tick_size=Decimal("0.01")) for iid in (QUIET, BUSY)
            ],
        )
        self.server = VenueSimServer(
            config, tmp_path, secrets=MemorySecrets({"fix/acct": PASSWORD})
        )
        with self.server._committing():
            self.server._start_engine()
        venue = self.server.apps["acct"].session
        assert venue is not None
        self.venue = venue
        self.quotes: list[QuoteTick] = []
        self.adapter = FixVenueAdapter(
            name="SIM",
            epoch=1,
            settings=SessionSettings(
                sender_comp_id="NODE", target_comp_id="SIM", username="u", password=PASSWORD
            ),
            store_path=tmp_path / "node.sqlite",
            host="127.0.0.1",
            port=1,
            clock=LiveClock(),
            instruments={iid: _instrument(iid) for iid in (QUIET, BUSY)},
            account="acct",
        )
        self.adapter.bind(lambda event: None)
        self.adapter.on_quote_sink = self.quotes.append
        self.to_venue: list[bytes] = []
        self.to_node: list[bytes] = []
        self.venue_saw: list[FixMessage] = []

    def connect(self) -> None:
        self.venue.connection_made(self.to_node.append, lambda: None, initiator=False)
        self.adapter.session.connection_made(self.to_venue.append, lambda: None, initiator=True)
        self.pump()
        assert self.adapter.session.logged_on

    def pump(self) -> None:
        for _ in range(50):
            if not (self.to_venue or self.to_node):
                return
            if self.to_venue:
                data = b"".join(self.to_venue)
                self.to_venue.clear()
                self._record(data)
                self.venue.data_received(data)
            if self.to_node:
                data = b"".join(self.to_node)
                self.to_node.clear()
                self.adapter.session.data_received(data)
        raise AssertionError("kept talking")

    def _record(self, data: bytes) -> None:
        parser = FixParser()
        parser.feed(data)
        self.venue_saw += [m for m in parser.messages() if not isinstance(m, Garbled)]

    def quote(self, iid: str, bid: int, ask: int) -> None:
        """A quote of the simulator's feed: to its matching, then X to the node."""
        self.server.on_quote(QuoteTick(iid, LiveClock().timestamp_ns(), bid, ask, 100, 100))

    def last(self, iid: str) -> tuple[int, int]:
        return next((q.bid, q.ask) for q in reversed(self.quotes) if q.instrument_id == iid)

    def close(self) -> None:
        for session in (self.venue, self.adapter.session):
            session.disconnect("test over")
        self.adapter.store.close()
        self.venue.store.close()
        self.server.ledger.close()


def test_when_market_data_is_lost_in_a_sequence_gap_then_a_snapshot_refreshes_the_book(
    tmp_path: Path,
) -> None:
    """XYZ's X to 100.05/100.07 is lost, then XYZ goes quiet; ABC's next X shows the gap:
    the adapter sends one V 263=0 for both symbols, and XYZ's book comes back as
    100.05/100.07 from the simulator's W, with no X of XYZ since."""
    pipes = Pipes(tmp_path)
    try:
        pipes.quote(QUIET, 10_000, 10_002)
        pipes.quote(BUSY, 5_000, 5_001)
        pipes.connect()
        assert pipes.last(QUIET) == (10_000, 10_002)  # the subscription's snapshot

        pipes.quote(QUIET, 10_005, 10_007)
        lost = b"".join(pipes.to_node)
        pipes.to_node.clear()  # the X goes missing
        assert b"35=X" in lost
        pipes.pump()
        assert pipes.last(QUIET) == (10_000, 10_002)  # wrong, and nothing says so yet

        pipes.quote(BUSY, 5_001, 5_002)  # the next message shows the gap
        pipes.pump()

        assert pipes.adapter.session.counters["gaps_detected"] == 1
        snapshots = [m for m in pipes.venue_saw if m.msg_type == "V" and m.get(263) == "0"]
        assert len(snapshots) == 1
        assert sorted(snapshots[0].get_all(55)) == [BUSY, QUIET]
        assert pipes.adapter.counters["market_data_snapshots_requested"] == 1
        assert pipes.last(QUIET) == (10_005, 10_007)  # refreshed from the snapshot
        assert pipes.last(BUSY) == (5_001, 5_002)
        assert pipes.server.apps["acct"].subscriptions  # still subscribed: X flows on
        pipes.quote(QUIET, 10_006, 10_008)
        pipes.pump()
        assert pipes.last(QUIET) == (10_006, 10_008)
        assert pipes.adapter.counters["market_data_snapshots_requested"] == 1
    finally:
        pipes.close()

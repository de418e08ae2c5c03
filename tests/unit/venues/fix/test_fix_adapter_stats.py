"""The FIX venue's ``stats`` for monitoring: session counters, round trip, market data
dropped by reason; ``probe_round_trip`` turns on the session's probes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.fix.codec import FixMessage
from bastion.venues.base import VenueStats
from kit.fix_link import IID, Link


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    """A logged-on adapter with a venue on the other end of the line."""
    lk = Link(tmp_path)
    lk.connect()
    yield lk
    lk.close()


def book(bid: str, ask: str) -> FixMessage:
    return FixMessage.of(
        "W", (262, "MD-1"), (55, IID), (268, 2), (269, "0"), (270, bid), (271, "1"),
        (269, "1"), (270, ask), (271, "1"),
    )  # fmt: skip


def test_when_logged_on_then_stats_count_the_logon_and_the_last_message(link: Link) -> None:
    """One logon, no drop, the last message received now; nothing dropped yet."""
    stats = link.adapter.stats()
    assert isinstance(stats, VenueStats)
    assert (stats.logons, stats.disconnects, stats.md_rejects) == (1, 0, {})
    assert stats.last_received_s == link.clock.monotonic_s()
    assert stats.heartbeat_rtt_s is None


def test_when_session_drops_and_logs_on_again_then_both_counted(link: Link) -> None:
    """A drop and a new logon: one disconnect, two logons."""
    link.session.disconnect("line drop")
    link.venue.disconnect("line drop")
    link.connect()
    stats = link.adapter.stats()
    assert (stats.logons, stats.disconnects) == (2, 1)


def test_when_bad_market_data_then_dropped_by_reason(link: Link) -> None:
    """A crossed book and an unknown symbol each count under their reason; a malformed
    price is answered by the session with a Reject (373=6) and never reaches the book."""
    link.send(book("101.40", "101.30"))
    unknown = book("1", "2")
    unknown.set(55, "NOPE")
    link.send(unknown)
    link.send(book("x", "2"))
    assert link.adapter.stats().md_rejects == {"crossed_book": 1, "unknown_symbol": 1}
    reject = link.venue_app.last("3")
    assert (reject.get(373), reject.get(371)) == ("6", "270")


def test_when_round_trip_probed_then_session_probes_at_that_interval(link: Link) -> None:
    """``probe_round_trip`` sets the session's probe interval; the answer is the stat."""
    link.adapter.probe_round_trip(5.0)
    assert link.session.rtt_probe_s == 5.0
    link.clock.advance_to(link.clock.timestamp_ns() + 5_000_000_000)
    link.session.tick()
    link.pump()
    assert link.adapter.stats().heartbeat_rtt_s == 0.0

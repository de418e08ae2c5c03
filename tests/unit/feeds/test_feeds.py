"""The feed kinds: a synthetic feed quotes each of its instruments, a replay feed delivers
its file in order re-stamped to now (and as recorded to a backtest), a venue feed passes
on only its own instruments' quotes from the venue's session."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.feeds import FeedContext, build_feed
from bastion.feeds.config import ReplayFeedEntry, SyntheticFeedEntry, VenueFeedEntry
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import QuoteSink, VenueAdapter, VenueStats

T0 = 1_704_205_800_000_000_000
INSTRUMENTS = {
    iid: Instrument(
        id=iid,
        venue="V",
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    )
    for iid in ("A", "B", "C")
}


class Sink:
    """Collects what a feed delivers; ``full`` is set after ``n`` quotes."""

    def __init__(self, n: int = 1 << 30) -> None:
        self.quotes: list[QuoteTick] = []
        self.bars: list[Bar] = []
        self.full = asyncio.Event()
        self._n = n

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote)
        if len(self.quotes) >= self._n:
            self.full.set()

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)


class MarketDataVenue(VenueAdapter):
    """A venue whose session carries market data (or none, ``sends=False``)."""

    def __init__(self, *, sends: bool = True) -> None:
        super().__init__("V")
        self.sink: QuoteSink | None = None
        self._sends = sends

    def subscribe_quotes(self, sink: QuoteSink) -> bool:
        self.sink = sink
        return self._sends

    def submit(self, order: Order) -> None:
        raise AssertionError("a feed sends no order")

    def cancel(self, order: Order) -> None:
        raise AssertionError("a feed sends no order")

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        raise AssertionError("a feed sends no order")

    async def open_order_ids(self) -> set[str]:
        return set()


def context(tmp_path: Path, venue: VenueAdapter | None = None) -> FeedContext:
    venues = {} if venue is None else {venue.name: venue}
    return FeedContext(instruments=INSTRUMENTS, venues=venues, base_dir=tmp_path)


def test_when_synthetic_feed_runs_then_each_instrument_is_quoted_in_turn(tmp_path: Path) -> None:
    """Two instruments, one quote each per interval, stamped by the clock, own walks."""
    feed = build_feed(
        SyntheticFeedEntry(name="house", instruments=["A", "B"], interval_ms=1), context(tmp_path)
    )
    assert (feed.kind, feed.paced, feed.instruments) == ("synthetic", True, {"A", "B"})
    sink = Sink(n=6)

    async def main() -> None:
        task = asyncio.create_task(feed.run(sink, SimClock(T0)))
        try:
            await asyncio.wait_for(sink.full.wait(), 5.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert [q.instrument_id for q in sink.quotes[:6]] == ["A", "B"] * 3
    assert {q.ts_ns for q in sink.quotes} == {T0}
    assert all(q.bid < q.ask for q in sink.quotes)
    assert feed.recorded() is None


def test_when_replay_feed_runs_then_file_delivered_in_order_restamped(tmp_path: Path) -> None:
    """Every row once, in file order, stamped with the clock's now; a backtest gets the
    recorded stamps from the same feed."""
    rows = [(T0 + n * 1_000_000, 10_000 + n, 10_002 + n) for n in range(3)]
    (tmp_path / "q.csv").write_text(
        "ts_ns,bid,ask,bid_size,ask_size\n"
        + "".join(f"{ts},{bid / 100},{ask / 100},5,5\n" for ts, bid, ask in rows)
    )
    feed = build_feed(ReplayFeedEntry(name="tape", path="q.csv", instrument="A"), context(tmp_path))
    assert (feed.kind, feed.paced, feed.instruments) == ("replay", True, {"A"})
    sink = Sink()
    asyncio.run(asyncio.wait_for(feed.run(sink, SimClock(T0 + 42)), 5.0))
    assert [(q.bid, q.ask) for q in sink.quotes] == [(bid, ask) for _, bid, ask in rows]
    assert {q.ts_ns for q in sink.quotes} == {T0 + 42}
    again = build_feed(
        ReplayFeedEntry(name="tape", path="q.csv", instrument="A"), context(tmp_path)
    )
    recorded = again.recorded()
    assert recorded is not None and recorded is again.recorded()
    assert [q.ts_ns for q in recorded] == [ts for ts, _, _ in rows]


def test_when_venue_feed_attached_then_only_its_instruments_pass(tmp_path: Path) -> None:
    """The venue's quotes of the feed's instruments reach the sink; others do not."""
    venue = MarketDataVenue()
    feed = build_feed(
        VenueFeedEntry(name="md", venue="V", instruments=["A", "B"]), context(tmp_path, venue)
    )
    assert (feed.kind, feed.paced) == ("venue", False)
    sink = Sink()
    feed.attach(sink)
    assert venue.sink is not None
    for iid in ("A", "C", "B"):
        venue.sink(QuoteTick(iid, T0, 10_000, 10_001, 1, 1))
    assert [q.instrument_id for q in sink.quotes] == ["A", "B"]


def test_when_venue_sends_no_market_data_then_attaching_its_feed_fails(tmp_path: Path) -> None:
    """A venue feed on a venue without market data is a config error, named."""
    feed = build_feed(
        VenueFeedEntry(name="md", venue="V", instruments=["A"]),
        context(tmp_path, MarketDataVenue(sends=False)),
    )
    with pytest.raises(ConfigError, match="feed 'md': venue 'V' sends no market data"):
        feed.attach(Sink())


# -- what each feed counts (for monitoring) --------------------------------------------------
class BadDataVenue(MarketDataVenue):
    """A venue that has dropped some of its market data as bad."""

    def stats(self) -> VenueStats:
        return VenueStats(md_rejects={"crossed_book": 2})


def test_when_synthetic_feed_runs_then_quotes_counted_per_instrument(tmp_path: Path) -> None:
    """Every quote delivered counts under its instrument; nothing is rejected."""
    feed = build_feed(
        SyntheticFeedEntry(name="house", instruments=["A", "B"], interval_ms=1), context(tmp_path)
    )
    assert feed.stats().quotes == {"A": 0, "B": 0}
    sink = Sink(n=6)

    async def main() -> None:
        task = asyncio.create_task(feed.run(sink, SimClock(T0)))
        try:
            await asyncio.wait_for(sink.full.wait(), 5.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    stats = feed.stats()
    assert sum(stats.quotes.values()) == len(sink.quotes)
    assert stats.quotes["A"] == sum(1 for q in sink.quotes if q.instrument_id == "A")
    assert stats.rejects == {}


def test_when_replay_feed_skips_bad_rows_then_they_count_by_reason(tmp_path: Path) -> None:
    """``on_bad_row = "skip"``: the good rows count as quotes, the crossed one as a reject."""
    (tmp_path / "q.csv").write_text(
        f"ts_ns,bid,ask,bid_size,ask_size\n{T0},100.00,100.02,5,5\n"
        f"{T0 + 1},100.05,100.01,5,5\n{T0 + 2},100.01,100.03,5,5\n"
    )
    feed = build_feed(
        ReplayFeedEntry(name="tape", path="q.csv", instrument="A", on_bad_row="skip"),
        context(tmp_path),
    )
    asyncio.run(asyncio.wait_for(feed.run(Sink(), SimClock(T0)), 5.0))
    assert feed.stats().quotes == {"A": 2}
    assert feed.stats().rejects == {"crossed_quote": 1}


def test_when_venue_feed_delivers_then_its_quotes_counted_and_venue_rejects_reported(
    tmp_path: Path,
) -> None:
    """Only the feed's instruments count; the venue's dropped market data is the feed's."""
    venue = BadDataVenue()
    feed = build_feed(
        VenueFeedEntry(name="v", venue="V", instruments=["A"]), context(tmp_path, venue)
    )
    feed.attach(Sink())
    assert venue.sink is not None
    for iid in ("A", "B", "A"):
        venue.sink(QuoteTick(iid, T0, 100, 102, 1, 1))
    assert feed.stats().quotes == {"A": 2}
    assert feed.stats().rejects == {"crossed_book": 2}

"""How the kernel wires the arbiter: skipped when every instrument has one feed; in front
of ``Kernel.on_quote`` (behind the validators) for an instrument with several; the
validators' gaps and rejections reach it; the risk gate and the node see only the
delivered stream; the monitor samples its state."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.feeds.arbiter import ArbitrationConfig, FeedPort
from bastion.feeds.config import SyntheticFeedEntry
from bastion.feeds.validation import ValidatedFeed
from bastion.model.data import Bar, QuoteTick
from bastion.model.events import FeedSwitched
from bastion.monitor.catalogue import check_series
from bastion.monitor.orders import OrderStats
from bastion.monitor.sample import SampleBuilder
from bastion.monitor.trading import TradingReadings
from bastion.node.kernel import Kernel

T0 = 1_704_205_800_000_000_000
MS = 1_000_000
X, Y = "X.SIM", "Y.SIM"


def kernel(tmp_path: Path, feeds: list[SyntheticFeedEntry]) -> Kernel:
    config = PaperConfig(
        instruments=[
            InstrumentConfig(id=X, tick_size=Decimal("0.01")),
            InstrumentConfig(id=Y, tick_size=Decimal("0.01")),
        ],
        strategies=[],
        feeds=feeds,
        arbitration=ArbitrationConfig(stale_ms=100, hold_ms=1_000, reject_limit=2),
    )
    return Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)


def test_when_each_instrument_has_one_feed_then_there_is_no_arbiter(tmp_path: Path) -> None:
    """Today's path: the validated feed delivers straight to the kernel."""
    k = kernel(tmp_path, [SyntheticFeedEntry(name="house", instruments=[X, Y])])
    assert k.arbiter is None
    sink = k.feed_sinks["house"]
    assert isinstance(sink, ValidatedFeed)
    assert sink._sink is k


def test_when_two_feeds_supply_an_instrument_then_only_it_is_arbitrated(tmp_path: Path) -> None:
    """X has two feeds (b preferred by priority), Y one: Y's quotes from feed a skip the
    arbiter; X's from a are dropped while b is healthy; feed c (Y only) is not touched."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X, Y], priority=2),
            SyntheticFeedEntry(name="b", instruments=[X], priority=1),
        ],
    )
    assert k.arbiter is not None
    assert list(k.arbiter.lines) == [X]
    assert [lane.feed for lane in k.arbiter.lines[X].lanes] == ["b", "a"]
    a, b = k.feed_sinks["a"], k.feed_sinks["b"]
    assert isinstance(a, ValidatedFeed) and isinstance(a._sink, FeedPort)
    a.on_quote(QuoteTick(Y, T0, 10_000, 10_002, 5, 5))
    assert k.last_quotes[Y].ts_ns == T0
    b.on_quote(QuoteTick(X, T0, 10_000, 10_002, 5, 5))
    a.on_quote(QuoteTick(X, T0 + 1, 10_001, 10_003, 5, 5))
    assert k.last_quotes[X].bid == 10_000  # a's quote went no further


def test_when_the_preferred_feed_is_rejected_repeatedly_then_the_node_follows_the_other(
    tmp_path: Path,
) -> None:
    """Two crossed quotes from b (dropped by the validators) reach reject_limit: a is
    followed, the switch is on the bus, and the node's last quote is a's."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X], priority=2),
            SyntheticFeedEntry(name="b", instruments=[X], priority=1),
        ],
    )
    switched: list[FeedSwitched] = []
    k.bus.subscribe(FeedSwitched, switched.append)
    a, b = k.feed_sinks["a"], k.feed_sinks["b"]
    clock = k.clock
    assert isinstance(clock, SimClock)
    b.on_quote(QuoteTick(X, T0, 10_000, 10_002, 5, 5))
    a.on_quote(QuoteTick(X, T0 + 1, 10_000, 10_002, 5, 5))
    for n in (2, 3):
        clock.set_time(T0 + n * MS)
        b.on_quote(QuoteTick(X, T0 + n * MS, 10_005, 10_000, 5, 5))  # crossed
    assert [(s.from_feed, s.to_feed, s.reason) for s in switched] == [("b", "a", "rejects")]
    a.on_quote(QuoteTick(X, T0 + 4 * MS, 10_001, 10_003, 5, 5))
    assert k.last_quotes[X].ts_ns == T0 + 4 * MS


def test_when_the_preferred_feed_gaps_then_the_validators_gap_moves_the_node(
    tmp_path: Path,
) -> None:
    """A sequence gap the validators flag on b (the quote itself passes them) switches."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X], priority=2),
            SyntheticFeedEntry(name="b", instruments=[X], priority=1),
        ],
    )
    switched: list[FeedSwitched] = []
    k.bus.subscribe(FeedSwitched, switched.append)
    a, b = k.feed_sinks["a"], k.feed_sinks["b"]
    b.on_quote(QuoteTick(X, T0, 10_000, 10_002, 5, 5, seq=1))
    a.on_quote(QuoteTick(X, T0 + 1, 10_000, 10_002, 5, 5))
    b.on_quote(QuoteTick(X, T0 + 2, 10_000, 10_002, 5, 5, seq=5))
    assert [(s.to_feed, s.reason) for s in switched] == [("a", "gap")]


def test_when_the_preferred_feeds_bars_gap_then_the_strategies_get_the_backup_ones_first(
    tmp_path: Path,
) -> None:
    """Through the validators and the kernel: b (preferred) skips a minute, a's bar for it
    reaches the strategies marked backfilled, before b's next one."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X], priority=2),
            SyntheticFeedEntry(name="b", instruments=[X], priority=1),
        ],
    )
    seen: list[Bar] = []
    k.strategies.on_bar = seen.append  # type: ignore[method-assign]
    a, b = k.feed_sinks["a"], k.feed_sinks["b"]
    minute = 60_000_000_000
    b.on_bar(Bar(X, T0, 1, 2, 1, 2, 10, minute))
    a.on_bar(Bar(X, T0 + minute, 1, 3, 1, 3, 10, minute))
    b.on_bar(Bar(X, T0 + 2 * minute, 1, 4, 1, 4, 10, minute))
    assert [(bar.close, bar.gap_before, bar.backfilled) for bar in seen] == [
        (2, 0, False),
        (3, 0, True),
        (4, 0, False),
    ]
    assert k.last_quotes[X].bid == 4


def test_when_sampled_then_the_arbiters_state_is_in_the_catalogues_series(tmp_path: Path) -> None:
    """Active feed per instrument, health per feed, failed over, switches: each series
    is in the catalogue with its labels."""
    k = kernel(
        tmp_path,
        [
            SyntheticFeedEntry(name="a", instruments=[X], priority=2),
            SyntheticFeedEntry(name="b", instruments=[X], priority=1),
        ],
    )
    clock = k.clock
    assert isinstance(clock, SimClock)
    k.feed_sinks["b"].on_quote(QuoteTick(X, T0, 10_000, 10_002, 5, 5))
    clock.set_time(T0 + 200 * MS)
    k.feed_sinks["a"].on_quote(QuoteTick(X, T0 + 200 * MS, 10_000, 10_002, 5, 5))  # b stale
    builder = SampleBuilder()
    orders = OrderStats(
        bus=k.bus,
        order=k.execution.order,
        orders_after=k.execution.orders_after,
        last_quotes=k.last_quotes,
        started_ns=T0,
    )
    TradingReadings(kernel=k, journal=None, orders=orders).market_data(builder)
    sample = builder.build(T0, 0.0)
    assert sample.get("bastion_feed_active", instrument=X, feed="a") == 1
    assert sample.get("bastion_feed_active", instrument=X, feed="b") == 0
    assert sample.get("bastion_feed_healthy", instrument=X, feed="b") == 0
    assert sample.get("bastion_feed_failed_over", instrument=X) == 1
    assert sample.get("bastion_feed_switches_total", instrument=X) == 1
    for name, series in sample.values.items():
        for labels in series:
            assert check_series(name, tuple(key for key, _ in labels)) is None, name

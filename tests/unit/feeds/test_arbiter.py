"""The feed arbiter's state machine: it follows the preferred healthy feed, leaves it
when it goes stale, gaps, fails validation repeatedly or is outvoted, goes back only
after the hold time, and what it delivers is strictly time-ordered and never repeats."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.feeds.arbiter import Arbiter, ArbitrationConfig
from bastion.model.data import Bar, QuoteTick
from bastion.model.events import Event, FeedStatus, FeedSwitched
from bastion.model.instruments import Instrument

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MS = 1_000_000
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
CONFIG = ArbitrationConfig(
    stale_ms=100, hold_ms=1_000, reject_limit=3, reject_window_ms=500, diverge_ticks=5,
    diverge_ms=200,
)  # fmt: skip


class Sink:
    """Records what the arbiter delivers."""

    def __init__(self) -> None:
        self.quotes: list[QuoteTick] = []
        self.bars: list[Bar] = []

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote)

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)


class Desk:
    """An arbiter over feeds ``a``, ``b`` (and ``c``), preferred in that order."""

    def __init__(self, feeds: tuple[str, ...] = ("a", "b"), config: ArbitrationConfig = CONFIG):
        self.clock = SimClock(T0)
        self.sink = Sink()
        self.events: list[Event] = []
        self.arbiter = Arbiter(
            instruments=[INSTRUMENT],
            lanes={IID: feeds},
            config=config,
            sink=self.sink,
            clock=self.clock,
            publish=self.events.append,
        )
        self.ports = {f: self.arbiter.port(f, self.sink) for f in feeds}
        self.gaps = {f: [0] for f in feeds}
        for f in feeds:
            self.arbiter.watch_gaps(f, IID, self.gaps[f], 0)

    def at(self, ms: int) -> Desk:
        self.clock.set_time(T0 + ms * MS)
        return self

    def quote(self, feed: str, mid: int = 10_000, *, ts_ms: int | None = None) -> QuoteTick:
        now = self.clock.timestamp_ns()
        ts = now if ts_ms is None else T0 + ts_ms * MS
        q = QuoteTick(IID, ts, mid - 1, mid + 1, 100, 100)
        self.ports[feed].on_quote(q)
        return q

    def tick_all(self, ms: int, feeds: tuple[str, ...] = ("a", "b"), mid: int = 10_000) -> None:
        self.at(ms)
        for n, f in enumerate(feeds):
            self.clock.set_time(T0 + ms * MS + n)  # distinct stamps per feed
            self.quote(f, mid)

    def delivered_from(self) -> list[int]:
        return [q.ts_ns for q in self.sink.quotes]

    def switches(self) -> list[tuple[str, str, str, bool]]:
        return [
            (e.from_feed, e.to_feed, e.reason, e.preferred)
            for e in self.events
            if isinstance(e, FeedSwitched)
        ]

    def statuses(self) -> list[tuple[bool, str]]:
        return [(e.healthy, e.feed) for e in self.events if isinstance(e, FeedStatus)]

    @property
    def active(self) -> str:
        (state,) = self.arbiter.states()
        return state.active


def test_when_both_feeds_tick_then_only_the_preferred_ones_quotes_are_delivered() -> None:
    """Feed b's quotes keep its lane current and are dropped."""
    desk = Desk()
    for ms in range(0, 50, 10):
        desk.tick_all(ms)
    assert len(desk.sink.quotes) == 5
    assert desk.active == "a"
    assert desk.events == []


def test_when_the_preferred_feed_goes_stale_while_the_other_ticks_then_it_switches() -> None:
    """No quote from a for stale_ms while b ticks: b is followed, its quote delivered."""
    desk = Desk()
    desk.tick_all(0)
    desk.at(100).quote("b")  # at the limit: a is not stale yet
    assert desk.active == "a"
    q = desk.at(101).quote("b")
    assert desk.active == "b"
    assert desk.sink.quotes[-1] is q
    assert desk.switches() == [("a", "b", "stale", False)]


def test_when_the_preferred_feed_is_silent_and_nothing_ticks_then_poll_switches() -> None:
    """The timer finds a silent active feed even when no other quote arrives."""
    desk = Desk()
    desk.tick_all(0)
    desk.at(60).quote("b")
    desk.at(101).arbiter.poll()
    assert desk.switches() == [("a", "b", "stale", False)]


def test_when_the_preferred_feed_returns_then_the_switch_back_waits_for_the_hold() -> None:
    """Hysteresis: a must tick healthily for hold_ms before the arbiter goes back."""
    desk = Desk()
    desk.tick_all(0)
    desk.at(101).quote("b")  # a stale: b followed
    for ms in range(200, 1_200, 50):  # a back at 200; hold_ms 1000 runs to 1200
        desk.tick_all(ms)
        assert desk.active == "b", ms
    desk.tick_all(1_200)
    assert desk.active == "a"
    assert desk.switches() == [("a", "b", "stale", False), ("b", "a", "return", True)]


def test_when_the_returning_feed_stalls_again_within_the_hold_then_the_hold_restarts() -> None:
    """A feed that flaps never gets followed: each silence restarts its healthy run."""
    desk = Desk()
    desk.tick_all(0)
    desk.at(101).quote("b")
    desk.tick_all(200)
    for ms in range(250, 1_400, 50):
        desk.at(ms).quote("b")
    desk.tick_all(1_400)  # a silent 200..1400: its run restarts at 1400
    assert desk.active == "b"
    for ms in range(1_450, 2_400, 50):
        desk.tick_all(ms)
    assert desk.active == "b"
    desk.tick_all(2_400)
    assert desk.active == "a"


def test_when_the_followed_feed_gaps_then_it_switches_and_returns_after_the_hold() -> None:
    """A sequence gap the validators flagged on a: b is followed; a comes back after
    hold_ms without another gap."""
    desk = Desk()
    desk.tick_all(0)
    desk.gaps["a"][0] += 1
    desk.tick_all(10)
    assert desk.switches() == [("a", "b", "gap", False)]
    assert desk.sink.quotes[-1].ts_ns == T0 + 10 * MS + 1  # b's quote of that moment
    for ms in range(20, 1_010, 10):
        desk.tick_all(ms)
        assert desk.active == "b", ms
    desk.tick_all(1_010)  # hold_ms after the gap
    assert desk.active == "a"


def test_when_a_gap_is_on_the_other_feed_then_nothing_switches() -> None:
    """A gap on a feed not followed only restarts its healthy run."""
    desk = Desk()
    desk.tick_all(0)
    desk.gaps["b"][0] += 1
    desk.tick_all(10)
    assert desk.active == "a"
    assert desk.events == []


def test_when_rejections_reach_the_limit_within_the_window_then_it_switches() -> None:
    """reject_limit rejections within reject_window_ms fail the feed; fewer, or spread
    wider, do not."""
    desk = Desk()
    desk.tick_all(0)
    port = desk.ports["a"]
    for ms in (10, 300, 600, 900):  # never 3 within 500 ms
        desk.tick_all(ms)
        port.rejected(IID)
    assert desk.active == "a"
    desk.tick_all(950)
    port.rejected(IID)  # 600, 900, 950
    assert desk.switches() == [("a", "b", "rejects", False)]


def test_when_one_of_three_feeds_diverges_then_the_majority_outvotes_it() -> None:
    """a drifts 20 ticks away from b and c for longer than diverge_ms: b is followed,
    and a is not taken back while it disagrees."""
    desk = Desk(("a", "b", "c"))
    abc = ("a", "b", "c")
    desk.tick_all(0, abc)
    for ms in range(10, 200, 10):
        desk.at(ms).quote("a", 10_040)
        desk.at(ms).quote("b")
        desk.at(ms).quote("c")
        assert desk.active == "a", ms
    desk.at(220).quote("b")
    assert desk.switches() == [("a", "b", "diverged", False)]
    for ms in range(230, 2_000, 10):
        desk.at(ms).quote("a", 10_040)
        desk.at(ms).quote("b")
    assert desk.active == "b"


def test_when_the_backup_diverges_then_it_is_outvoted_and_the_primary_stays() -> None:
    """c drifts: the vote keeps a, and c would not be a failover target."""
    desk = Desk(("a", "b", "c"))
    for ms in range(0, 400, 10):
        desk.at(ms).quote("a")
        desk.at(ms).quote("b")
        desk.at(ms).quote("c", 9_950)
    assert desk.active == "a"
    assert desk.events == []
    assert desk.arbiter.lane("c", IID).outvoted


def test_when_two_feeds_diverge_then_no_majority_and_no_switch() -> None:
    """Two feeds apart: neither is known to be right; the arbiter keeps its feed."""
    desk = Desk()
    for ms in range(0, 1_000, 10):
        desk.at(ms).quote("a")
        desk.at(ms).quote("b", 10_100)
    assert desk.active == "a"
    assert desk.events == []


def test_when_every_feed_falls_silent_then_feed_status_down_then_up_on_the_first_tick() -> None:
    """No feed for stale_ms: FeedStatus healthy false; the first feed to tick again is
    followed at once (FeedStatus healthy true), the preferred one after the hold."""
    desk = Desk()
    desk.tick_all(0)
    desk.at(150).arbiter.poll()
    assert desk.statuses() == [(False, "")]
    assert desk.active == ""
    q = desk.at(300).quote("b")
    assert desk.sink.quotes[-1] is q
    assert desk.statuses() == [(False, ""), (True, "b")]
    assert desk.switches() == [("a", "b", "stale", False)]


def test_when_a_feed_never_ticked_then_poll_does_not_report_a_loss() -> None:
    """Before any quote there is nothing to lose (a node still starting)."""
    desk = Desk()
    desk.at(5_000).arbiter.poll()
    assert desk.events == []


def test_when_the_backup_ticks_first_at_start_then_the_primary_gets_stale_ms() -> None:
    """The first quote of any feed starts the preferred feed's clock: no flap at start."""
    desk = Desk()
    desk.at(0).quote("b")
    desk.at(50).quote("a")
    desk.at(60).quote("b")
    assert desk.active == "a"
    assert desk.events == []


def test_when_the_new_feed_lags_then_its_older_quotes_are_dropped() -> None:
    """After a switch, b's quotes stamped before the last delivered one never reach the
    node: time does not go backwards."""
    desk = Desk()
    desk.at(0).quote("a", ts_ms=0)
    desk.at(90).quote("a", ts_ms=90)
    desk.at(200).quote("b", ts_ms=50)  # a stale; b followed; its quote is older
    desk.at(210).quote("b", ts_ms=95)
    assert desk.delivered_from() == [T0, T0 + 90 * MS, T0 + 95 * MS]
    (state,) = desk.arbiter.states()
    assert state.dropped_old == 1


def test_when_a_feed_has_other_instruments_then_they_go_straight_on() -> None:
    """The port sends an instrument it does not arbitrate to the fallback sink."""
    desk = Desk()
    other = QuoteTick("ABC.SIM", T0, 1, 2, 1, 1)
    desk.ports["b"].on_quote(other)
    assert desk.sink.quotes == [other]


def test_when_bars_come_from_both_feeds_then_only_the_followed_ones_go_on() -> None:
    desk = Desk()
    bar = Bar(IID, T0, 1, 2, 1, 2, 10, 60_000_000_000)
    desk.ports["a"].on_bar(bar)
    desk.ports["b"].on_bar(bar)
    assert desk.sink.bars == [bar]


@pytest.mark.parametrize("key", ["stale_ms", "hold_ms", "reject_limit", "poll_ms"])
def test_when_a_threshold_is_not_positive_then_the_config_names_it(key: str) -> None:
    with pytest.raises(ConfigError, match=f"arbitration.{key}"):
        ArbitrationConfig(**{key: 0})


# -- properties ----------------------------------------------------------------------

_step = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 150),  # ms since the previous step
    st.integers(-30, 30),  # the quote's stamp relative to now (a lagging or early feed)
    st.integers(-20, 20),  # its mid relative to 10_000
    st.sampled_from(["quote", "quote", "quote", "gap", "reject", "poll"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=200), st.sampled_from([("a", "b"), ("a", "b", "c")]))
def test_when_feeds_interleave_at_random_then_the_stream_is_ordered_and_never_repeats(
    steps: list[tuple[str, int, int, int, str]], feeds: tuple[str, ...]
) -> None:
    """Whatever the feeds do (stall, lag, gap, get rejected, disagree), each delivered
    quote is stamped strictly after the one before it, none is delivered twice, each
    came from the feed followed at that moment, and switches alternate with the
    FeedStatus events consistently."""
    desk = Desk(feeds)
    now = 0
    sent: list[tuple[str, QuoteTick]] = []
    delivered_seen = 0
    for feed, dt, skew, move, what in steps:
        if feed not in feeds:
            continue
        now += dt
        desk.at(now)
        if what == "gap":
            desk.gaps[feed][0] += 1
        elif what == "reject":
            desk.ports[feed].rejected(IID)
            continue
        elif what == "poll":
            desk.arbiter.poll()
            continue
        q = desk.quote(feed, 10_000 + move, ts_ms=max(0, now + skew))
        sent.append((feed, q))
        if len(desk.sink.quotes) > delivered_seen:
            assert desk.sink.quotes[-1] is q
            assert desk.active == feed
            delivered_seen = len(desk.sink.quotes)
    stamps = desk.delivered_from()
    assert all(later > earlier for earlier, later in itertools.pairwise(stamps))
    assert len({id(q) for q in desk.sink.quotes}) == len(desk.sink.quotes)
    downs = [healthy for healthy, _ in desk.statuses()]
    assert all(a != b for a, b in itertools.pairwise(downs))  # down, up, down...
    assert not downs or downs[0] is False

"""Bars through the feed arbiter: a gap in the followed feed's bars is marked and filled,
in time order, from the other feeds' recent bars; no bar is delivered twice or late."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.feeds.arbiter import Arbiter, ArbitrationConfig
from bastion.feeds.arbiter.bars import BAR_DEPTH
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MIN = 60_000_000_000
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class Sink:
    """Records the bars the arbiter delivers."""

    def __init__(self) -> None:
        self.bars: list[Bar] = []

    def on_quote(self, quote: QuoteTick) -> None:
        pass

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)


class Desk:
    """An arbiter over feeds ``a``, ``b`` (and ``c``) of one instrument, ``a`` followed."""

    def __init__(self, feeds: tuple[str, ...] = ("a", "b")) -> None:
        self.sink = Sink()
        self.arbiter = Arbiter(
            instruments=[INSTRUMENT],
            lanes={IID: feeds},
            config=ArbitrationConfig(),
            sink=self.sink,
            clock=SimClock(T0),
            publish=lambda event: None,
        )
        self.ports = {f: self.arbiter.port(f, self.sink) for f in feeds}

    def bar(self, feed: str, minute: int, close: int = 100) -> None:
        self.ports[feed].on_bar(Bar(IID, T0 + minute * MIN, 1, 200, 1, close, 10, MIN))

    def delivered(self) -> list[tuple[int, int, bool, int]]:
        """(minute, gap_before, backfilled, close) per delivered bar."""
        return [
            ((b.ts_ns - T0) // MIN, b.gap_before, b.backfilled, b.close) for b in self.sink.bars
        ]


def test_when_bars_follow_each_other_then_they_go_on_unmarked() -> None:
    """Consecutive bars of the followed feed are delivered as they are."""
    desk = Desk()
    for minute in range(3):
        desk.bar("a", minute)
    assert desk.delivered() == [(0, 0, False, 100), (1, 0, False, 100), (2, 0, False, 100)]
    assert desk.sink.bars[0] == Bar(IID, T0, 1, 200, 1, 100, 10, MIN)


def test_when_the_followed_feed_skips_bars_and_none_has_them_then_the_next_is_marked() -> None:
    """Two minutes missing: the bar after them says gap_before = 2; the stats count them."""
    desk = Desk()
    desk.bar("a", 0)
    desk.bar("a", 3)
    assert desk.delivered() == [(0, 0, False, 100), (3, 2, False, 100)]
    (state,) = desk.arbiter.states()
    assert (state.bar_gaps, state.bars_backfilled, state.bars_missing) == (1, 0, 2)


def test_when_another_feed_has_the_missing_bars_then_they_go_first_in_order() -> None:
    """Feed b's bars for minutes 1 and 2 fill a's gap, marked backfilled, before a's 3."""
    desk = Desk()
    desk.bar("a", 0)
    desk.bar("b", 0, close=90)
    desk.bar("b", 2, close=92)
    desk.bar("b", 1, close=91)  # b's own order does not matter
    desk.bar("a", 3)
    assert desk.delivered() == [
        (0, 0, False, 100),
        (1, 0, True, 91),
        (2, 0, True, 92),
        (3, 0, False, 100),
    ]
    (state,) = desk.arbiter.states()
    assert (state.bar_gaps, state.bars_backfilled, state.bars_missing) == (1, 2, 0)


def test_when_the_backfill_is_partial_then_the_bar_after_each_hole_is_marked() -> None:
    """Of minutes 1-3 only b's 2 exists: it is delivered with gap_before 1, then a's 4 too."""
    desk = Desk()
    desk.bar("a", 0)
    desk.bar("b", 2, close=92)
    desk.bar("a", 4)
    assert desk.delivered() == [(0, 0, False, 100), (2, 1, True, 92), (4, 1, False, 100)]


def test_when_two_other_feeds_have_a_bar_then_the_preferred_ones_fills() -> None:
    """Feed b (priority before c) wins a close time both have."""
    desk = Desk(("a", "b", "c"))
    desk.bar("a", 0)
    desk.bar("c", 1, close=81)
    desk.bar("b", 1, close=91)
    desk.bar("a", 2)
    assert desk.delivered() == [(0, 0, False, 100), (1, 0, True, 91), (2, 0, False, 100)]


def test_when_the_followed_feed_repeats_or_goes_back_then_the_bar_is_dropped() -> None:
    """A bar not closing after the last delivered (one backfilled too) is not delivered."""
    desk = Desk()
    desk.bar("a", 0)
    desk.bar("b", 1, close=91)
    desk.bar("a", 2)
    desk.bar("a", 2)
    desk.bar("a", 1)
    assert desk.delivered() == [(0, 0, False, 100), (1, 0, True, 91), (2, 0, False, 100)]
    (state,) = desk.arbiter.states()
    assert state.bars_backfilled == 1


def test_when_the_other_feeds_bars_are_older_than_its_buffer_then_they_are_not_used() -> None:
    """Only a feed's last BAR_DEPTH bars are kept."""
    desk = Desk()
    desk.bar("a", 0)
    for minute in range(1, BAR_DEPTH + 2):
        desk.bar("b", minute)
    desk.bar("a", BAR_DEPTH + 2)
    filled = [m for m, _, backfilled, _ in desk.delivered() if backfilled]
    assert filled == list(range(2, BAR_DEPTH + 2))
    assert desk.delivered()[1][1] == 1  # minute 1 had left b's buffer


def test_when_bars_of_another_interval_are_there_then_they_do_not_fill() -> None:
    """A five-minute bar does not fill a gap in one-minute bars."""
    desk = Desk()
    desk.bar("a", 0)
    desk.ports["b"].on_bar(Bar(IID, T0 + MIN, 1, 2, 1, 2, 10, 5 * MIN))
    desk.bar("a", 2)
    assert desk.delivered() == [(0, 0, False, 100), (2, 1, False, 100)]


_step = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-3, 6))


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=120))
def test_when_feeds_send_bars_at_random_then_the_delivered_close_times_strictly_increase(
    steps: list[tuple[str, int]],
) -> None:
    """Whatever the feeds send (lagging, repeating, skipping), each delivered bar closes
    after the one before it, its gap_before counts the intervals missing right before it,
    and every backfilled bar was sent by a feed other than a."""
    desk = Desk(("a", "b", "c"))
    clocks = {"a": 0, "b": 0, "c": 0}
    sent: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}
    for feed, move in steps:
        clocks[feed] = max(0, clocks[feed] + move)
        sent[feed].add(clocks[feed])
        desk.bar(feed, clocks[feed])
    delivered = desk.delivered()
    minutes = [m for m, _, _, _ in delivered]
    assert minutes == sorted(set(minutes))
    for before, (minute, gap, backfilled, _) in zip([None, *minutes], delivered, strict=False):
        assert gap == (0 if before is None else minute - before - 1)
        assert minute in (sent["b"] | sent["c"] if backfilled else sent["a"])

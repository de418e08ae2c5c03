"""The market data validators, one by one: each stops (or flags) what it is for and lets
a valid stream through; a hit is counted by reason and logged once per interval; the
config names a bad key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.feeds.validation import REASONS, ValidatedFeed, ValidationConfig
from bastion.feeds.validation.config import DEFAULT_ACTIONS, ActionsConfig
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.instruments import Instrument

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MS = 1_000_000
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class Sink:
    """Records what gets through."""

    def __init__(self) -> None:
        self.quotes: list[QuoteTick] = []
        self.trades: list[TradeTick] = []

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote)

    def on_bar(self, bar: Bar) -> None:
        raise AssertionError("no bars here")


class Harness:
    """A ``ValidatedFeed`` on a ``SimClock`` at ``T0``, its pauses recorded."""

    def __init__(self, **config: Any) -> None:
        self.clock = SimClock(T0)
        self.sink = Sink()
        self.pauses: list[tuple[str, int, str]] = []
        self.feed = ValidatedFeed(
            feed="f",
            instruments=[INSTRUMENT],
            config=msgspec.convert(config, ValidationConfig),
            sink=self.sink,
            clock=self.clock,
            pause=self.pause,
            trade_sink=self.sink.trades.append,
        )

    def pause(self, iid: str, pause_ms: int, reason: str, key: str) -> bool:
        self.pauses.append((iid, pause_ms, reason))
        return True

    def quote(self, bid: int, ask: int, *, ts: int | None = None, size: int = 10, seq: int = 0):
        q = QuoteTick(
            IID, self.clock.timestamp_ns() if ts is None else ts, bid, ask, size, size, seq
        )
        self.feed.on_quote(q)
        return q

    def passed(self, q: QuoteTick) -> bool:
        return bool(self.sink.quotes) and self.sink.quotes[-1] is q

    def count(self, reason: str) -> int:
        return sum(h.hits for h in self.feed.counts() if h.reason == reason)

    def step(self, ms: int = 1) -> None:
        self.clock.advance_to(self.clock.timestamp_ns() + ms * MS)


def test_when_valid_quote_then_it_reaches_the_sink_unchanged() -> None:
    """A valid quote is delivered as it came, and nothing is counted."""
    h = Harness()
    q = h.quote(10_000, 10_001)
    assert h.sink.quotes == [q] and h.feed.counts() == []


@pytest.mark.parametrize(
    ("bid", "ask", "size", "reason"),
    [
        (0, 10_001, 10, "non_positive_price"),
        (10_000, -1, 10, "non_positive_price"),
        (10_000, 10_001, 0, "bad_size"),
        (10_000, 10_001, -5, "bad_size"),
        (10_000, 10_001, 10, None),
        (10_002, 10_001, 10, "crossed"),
        (10_001, 10_001, 10, "locked"),
    ],
)
def test_when_price_or_size_bad_then_dropped_and_counted(
    bid: int, ask: int, size: int, reason: str | None
) -> None:
    """Non-positive prices, zero or negative sizes, crossed and locked books are dropped
    and counted under their reason."""
    h = Harness()
    q = h.quote(bid, ask, size=size)
    assert h.passed(q) is (reason is None)
    if reason is not None:
        assert h.count(reason) == 1


def test_when_price_off_tick_then_dropped() -> None:
    """A price that is not a multiple of the tick is dropped (``off_tick``)."""
    tick5 = Instrument(
        id=IID, venue="SIM", tick_size=Decimal("0.05"), lot_size=Decimal(1), quote_currency="USD"
    )
    sink = Sink()
    feed = ValidatedFeed(
        feed="f", instruments=[tick5], config=ValidationConfig(), sink=sink, clock=SimClock(T0)
    )
    feed.on_quote(QuoteTick(IID, T0, 10_000, 10_005, 1, 1))
    feed.on_quote(QuoteTick(IID, T0 + 1, 10_000, 10_003, 1, 1))
    assert len(sink.quotes) == 1
    assert [(c.reason, c.hits) for c in feed.counts()] == [("off_tick", 1)]


def test_when_timestamp_ahead_or_behind_clock_then_dropped_at_the_limit_plus_one() -> None:
    """At ``max_ahead_ms`` / ``max_age_ms`` a quote passes; one nanosecond past, it is
    ``clock_ahead`` / ``stale``."""
    h = Harness(max_ahead_ms=100, max_age_ms=200)
    now = T0
    assert h.passed(h.quote(10_000, 10_001, ts=now - 200 * MS))
    assert not h.passed(h.quote(10_000, 10_001, ts=now - 200 * MS - 1))
    assert h.passed(h.quote(10_000, 10_001, ts=now + 100 * MS))
    assert not h.passed(h.quote(10_000, 10_001, ts=now + 100 * MS + 1))
    assert h.count("stale") == 1 and h.count("clock_ahead") == 1


def test_when_timestamp_goes_back_or_repeats_then_out_of_order_or_duplicate() -> None:
    """An earlier timestamp is out of order; the same quote again is a duplicate; the same
    timestamp with new prices is a new quote."""
    h = Harness()
    first = h.quote(10_000, 10_002, ts=T0)
    assert h.passed(first)
    h.feed.on_quote(first)
    assert h.count("duplicate") == 1
    assert not h.passed(h.quote(10_000, 10_002, ts=T0 - 1))
    assert h.count("out_of_order") == 1
    assert h.passed(h.quote(10_001, 10_002, ts=T0))


def test_when_sequence_repeats_goes_back_or_jumps_then_each_has_its_reason() -> None:
    """Seq 1, 2, 2 (duplicate), 1 (out of order), 5 (a gap: flagged, delivered), 6."""
    h = Harness()
    passed = [
        h.passed(h.quote(10_000, 10_002, seq=s, ts=T0 + i))
        for i, s in enumerate([1, 2, 2, 1, 5, 6])
    ]
    assert passed == [True, True, False, False, True, True]
    assert (h.count("duplicate"), h.count("out_of_order"), h.count("seq_gap")) == (1, 1, 1)
    assert {c.reason: c.action for c in h.feed.counts()}["seq_gap"] == "flag"


def test_when_a_quote_in_sequence_is_dropped_for_its_content_then_the_next_is_no_gap() -> None:
    """Seq 1, 2 (crossed: dropped), 3: the crossed quote consumed its number, so 3 is in
    order; a gap dropped (action drop) consumes its number too."""
    h = Harness()
    assert h.passed(h.quote(10_000, 10_002, seq=1, ts=T0))
    assert not h.passed(h.quote(10_003, 10_002, seq=2, ts=T0 + 1))
    assert h.passed(h.quote(10_000, 10_002, seq=3, ts=T0 + 2))
    assert (h.count("crossed"), h.count("seq_gap")) == (1, 0)
    h = Harness(actions={"seq_gap": "drop"})
    assert h.passed(h.quote(10_000, 10_002, seq=1, ts=T0))
    assert not h.passed(h.quote(10_000, 10_002, seq=5, ts=T0 + 1))
    assert h.passed(h.quote(10_000, 10_002, seq=6, ts=T0 + 2))
    assert h.count("seq_gap") == 1


def test_when_the_same_book_comes_again_under_a_new_sequence_number_then_duplicate() -> None:
    """Seq 1, then the same time, prices and sizes as seq 2: a resend, dropped; the same
    time with another price passes."""
    h = Harness()
    assert h.passed(h.quote(10_000, 10_002, seq=1, ts=T0))
    assert not h.passed(h.quote(10_000, 10_002, seq=2, ts=T0))
    assert h.count("duplicate") == 1
    assert h.passed(h.quote(10_001, 10_002, seq=3, ts=T0))


def test_when_mid_moves_beyond_ticks_then_spike_dropped_at_limit_passes() -> None:
    """``spike_ticks = 10``: a mid 10 ticks away passes, 11 ticks away is a spike."""
    h = Harness(spike_ticks=10, spike_pct=None)
    h.quote(10_000, 10_002)
    h.step()
    assert h.passed(h.quote(10_010, 10_012))
    h.step()
    assert not h.passed(h.quote(10_021, 10_023))
    assert h.count("spike") == 1


def test_when_mid_moves_beyond_percentage_then_spike() -> None:
    """The default ``spike_pct = 5``: a 6% jump is dropped, a 4% one passes."""
    h = Harness()
    h.quote(10_000, 10_000 + 2)
    h.step()
    assert not h.passed(h.quote(10_600, 10_602))
    h.step()
    assert h.passed(h.quote(10_400, 10_402))


def test_when_spike_repeats_at_one_level_then_the_move_is_accepted() -> None:
    """``spike_confirm = 3``: two spikes at a new level are dropped, the third passes,
    and quotes at the new level pass after it."""
    h = Harness(spike_ticks=10, spike_pct=None)
    h.quote(10_000, 10_002)
    seen = []
    for _ in range(4):
        h.step()
        seen.append(h.passed(h.quote(10_500, 10_502)))
    assert seen == [False, False, True, True]


def test_when_z_score_set_then_an_outlier_change_is_a_spike() -> None:
    """With ``spike_z``, once the window is full a change far beyond the usual ones is a
    spike even within the tick and percentage limits."""
    h = Harness(spike_z=5, spike_window=16, spike_pct=None)
    mid = 10_000
    for i in range(40):
        mid += 1 if i % 2 else -1
        h.step()
        assert h.passed(h.quote(mid, mid + 2))
    h.step()
    assert not h.passed(h.quote(mid + 40, mid + 42))
    assert h.count("spike") == 1


def test_when_action_pause_then_dropped_and_instrument_paused_once_per_half_pause() -> None:
    """A ``pause`` hit drops the quote and pauses the instrument; more bad quotes during
    the first half of the pause do not pause it again."""
    h = Harness(pause_ms=1_000, actions={"crossed": "pause"})
    h.quote(10_002, 10_001)
    h.step(400)
    h.quote(10_002, 10_001)
    assert len(h.pauses) == 1 and h.pauses[0][:2] == (IID, 1_000)
    assert "crossed" in h.pauses[0][2]
    h.step(200)
    h.quote(10_002, 10_001)
    assert len(h.pauses) == 2 and not h.sink.quotes


def test_when_action_flag_then_delivered_counted_and_later_checks_still_run() -> None:
    """A flagged hit lets the quote on to the next validators: a locked quote flagged
    and also a spike is dropped as the spike."""
    h = Harness(spike_ticks=5, spike_pct=None, actions={"locked": "flag"})
    h.quote(10_000, 10_002)
    h.step()
    assert h.passed(h.quote(10_001, 10_001))
    h.step()
    assert not h.passed(h.quote(20_000, 20_000))
    assert (h.count("locked"), h.count("spike")) == (2, 1)


def test_when_action_off_then_not_counted() -> None:
    """``off``: the validator does nothing."""
    h = Harness(actions={"crossed": "off"})
    assert h.passed(h.quote(10_002, 10_001))
    assert h.feed.counts() == []


def test_when_many_rejections_then_logged_once_per_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A flood of one bad kind logs its first hit and then one per ``log_interval_ms``,
    every hit counted."""
    from structlog.testing import capture_logs

    h = Harness(log_interval_ms=1_000)
    with capture_logs() as logs:
        for _ in range(500):
            h.step(1)
            h.quote(10_002, 10_001)
    rejected = [e for e in logs if e["event"] == "feed_data_rejected"]
    assert len(rejected) == 1 and h.count("crossed") == 500
    with capture_logs() as logs:
        h.step(1_000)
        h.quote(10_002, 10_001)
    assert [e["unlogged_since_last"] for e in logs] == [499]


def test_when_trade_bad_then_dropped_and_good_trade_delivered() -> None:
    """Trades: off tick, zero size, time back, a print far from the quote are dropped."""
    h = Harness(spike_ticks=10, spike_pct=None)
    h.quote(10_000, 10_002)
    good = TradeTick(IID, T0, 10_001, 5)
    h.feed.on_trade(good)
    for bad in (
        TradeTick(IID, T0, 10_001, 0),
        TradeTick(IID, T0 - 1, 10_001, 5),
        TradeTick(IID, T0, 10_100, 5),
        TradeTick(IID, T0, -1, 5),
    ):
        h.feed.on_trade(bad)
    assert h.sink.trades == [good]
    assert {c.reason for c in h.feed.counts()} == {
        "bad_size",
        "out_of_order",
        "spike",
        "non_positive_price",
    }


def test_reasons_and_actions_config_name_the_same_validators() -> None:
    """Every reason has an action key and a default, and nothing else does."""
    assert set(REASONS[1:]) == set(ActionsConfig.__struct_fields__) == set(DEFAULT_ACTIONS)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"spike_ticks": 0}, "validation.spike_ticks"),
        ({"spike_pct": "-1"}, "validation.spike_pct"),
        ({"pause_ms": -5}, "validation.pause_ms"),
        ({"spike_window": 4}, "validation.spike_window"),
        ({"instruments": {IID: {"max_age_ms": 0}}}, f'validation.instruments."{IID}".max_age_ms'),
    ],
)
def test_when_threshold_bad_then_config_error_names_the_key(table: dict, key: str) -> None:
    """A bad threshold is a ``ConfigError`` naming its key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        msgspec.convert(table, ValidationConfig)


def test_when_instrument_override_then_it_wins_and_the_rest_inherit() -> None:
    """An instrument's table overrides its keys and actions; the others keep the defaults."""
    config = msgspec.convert(
        {
            "spike_ticks": 50,
            "instruments": {IID: {"spike_ticks": 5, "actions": {"spike": "pause"}}},
        },
        ValidationConfig,
    )
    mine, other = config.for_instrument(IID), config.for_instrument("OTHER")
    assert (mine.spike_ticks, mine.actions["spike"], mine.max_age_ms) == (5, "pause", 5_000)
    assert (other.spike_ticks, other.actions["spike"]) == (50, "drop")
    with pytest.raises(ConfigError, match=r"validation\.instruments"):
        config.check_instruments({"ABC"})


# -- properties -------------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.integers(-3, 3), st.integers(1, 5), st.integers(1, 1_000)), max_size=200
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_property_valid_stream_never_dropped(walk: list[tuple[int, int, int]]) -> None:
    """A stream of valid quotes (on tick, positive, not crossed, time forward, moves of
    a few ticks, sequence in order) is delivered whole."""
    h = Harness()
    mid = 10_000
    for n, (move, spread, size) in enumerate(walk, start=1):
        mid += move
        h.step()
        h.quote(mid, mid + spread, size=size, seq=n)
    assert len(h.sink.quotes) == len(walk) and h.feed.counts() == []


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**9), st.integers(1, 10**6), st.integers(-(10**6), 10**6))
def test_property_crossed_always_dropped(ask: int, cross: int, skew_ms: int) -> None:
    """A crossed quote never gets through, whatever came before and whatever its time."""
    h = Harness()
    h.quote(ask, ask + 1)
    h.quote(ask + cross, ask, ts=T0 + skew_ms * MS)
    assert all(q.bid <= q.ask for q in h.sink.quotes)


anything = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(anything, anything, anything, anything, anything, anything), max_size=30))
def test_property_garbage_never_raises(rows: list[tuple[int, ...]]) -> None:
    """Random integers in every field of quotes and trades never raise, and what gets
    through is positive, on tick and not crossed."""
    h = Harness(spike_z=3, spike_window=8, spike_ticks=100)
    for ts, bid, ask, bsz, asz, seq in rows:
        h.feed.on_quote(QuoteTick(IID, ts, bid, ask, bsz, asz, seq))
        h.feed.on_trade(TradeTick(IID, ts, bid, bsz, None, seq))
    for q in h.sink.quotes:
        assert 0 < q.bid < q.ask and q.bid_size > 0 and q.ask_size > 0

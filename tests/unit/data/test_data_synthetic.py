"""The synthetic quote feed: deterministic, on the tick grid, never crossed."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from bastion.data import SyntheticFeedConfig, SyntheticQuoteFeed
from bastion.errors import ConfigError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

XYZ = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.05"),
    lot_size=Decimal("10"),
    quote_currency="USD",
)
START_NS = 1_700_000_000_000_000_000


def feed(**overrides: object) -> SyntheticQuoteFeed:
    config = SyntheticFeedConfig(instrument="XYZ.SIM", **overrides)  # type: ignore[arg-type]
    return SyntheticQuoteFeed(XYZ, config, START_NS)


def test_when_the_seed_is_the_same_then_the_quotes_are_the_same() -> None:
    """Two feeds with one seed produce identical series; another seed differs."""
    first = list(feed(seed=7).take(2_000))
    again = list(feed(seed=7).take(2_000))
    other = list(feed(seed=8).take(2_000))

    assert first == again
    assert first != other


def test_when_the_feed_starts_then_the_first_quote_straddles_the_start_price() -> None:
    """The first bid is the start price less half the spread, on the grid."""
    first = feed(start_price=Decimal("100"), spread_ticks=2, size=Decimal("30")).next_quote(5)

    assert first == QuoteTick("XYZ.SIM", 5, 9995, 10005, 30, 30)


def test_when_the_walk_runs_then_every_quote_is_on_tick_and_not_crossed() -> None:
    """Bid and ask are multiples of the tick, exactly spread_ticks apart, bid >= 1 tick."""
    quotes = list(feed(spread_ticks=3, volatility_bps=Decimal(50)).take(5_000))

    for q in quotes:
        assert q.bid % XYZ.tick_raw == 0
        assert q.ask - q.bid == 3 * XYZ.tick_raw
        assert q.bid >= XYZ.tick_raw
        assert q.bid_size == q.ask_size == XYZ.size_raw(Decimal(100))
    assert len({q.bid for q in quotes}) > 10


def test_when_volatility_is_extreme_then_the_bid_stays_at_least_one_tick() -> None:
    """A price crashing toward zero is floored at one tick, still not crossed."""
    quotes = list(feed(start_price=Decimal("0.10"), volatility_bps=Decimal(5_000)).take(2_000))

    assert min(q.bid for q in quotes) == XYZ.tick_raw
    assert all(q.bid < q.ask for q in quotes)


def test_when_taking_quotes_then_timestamps_step_from_start_across_calls() -> None:
    """take() continues the clock where the previous call stopped."""
    f = feed(interval_ms=250)

    first = [q.ts_ns for q in f.take(3)]
    second = [q.ts_ns for q in f.take(2, interval_ns=1)]

    assert first == [START_NS, START_NS + 250_000_000, START_NS + 500_000_000]
    assert second == [START_NS + 750_000_000, START_NS + 750_000_001]
    assert all(b > a for a, b in pairwise(first + second))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instrument": "ABC.SIM"}, "does not match"),
        ({"spread_ticks": 0}, "spread_ticks"),
        ({"start_price": Decimal(0)}, "start_price"),
        ({"volatility_bps": Decimal(-1)}, "volatility_bps"),
        ({"size": Decimal(15)}, "size"),
        ({"size": Decimal("0.5")}, "size"),
    ],
)
def test_when_the_config_does_not_fit_the_instrument_then_it_is_a_config_error(
    overrides: dict[str, object], message: str
) -> None:
    """Bad settings are refused when the feed is built, naming the setting."""
    config = SyntheticFeedConfig(**{"instrument": "XYZ.SIM", **overrides})  # type: ignore[arg-type]

    with pytest.raises(ConfigError, match=message):
        SyntheticQuoteFeed(XYZ, config, START_NS)

"""A deterministic, seeded random walk of quotes for demos, tests and paper trading."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from decimal import Decimal

from bastion.data.config import SyntheticFeedConfig
from bastion.errors import ConfigError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument


class SyntheticQuoteFeed:
    """Quotes around a mid that moves by a normal step of ``volatility_bps`` per quote.

    The walk runs in floats (``random.Random(config.seed)``, so the same seed gives
    the same quotes), but every quote is exact: the bid is the mid less half the
    spread, rounded to the tick grid and never below one tick; the ask is the bid
    plus ``spread_ticks`` ticks; both sides show ``config.size``. The first quote is
    at ``start_price``.
    """

    def __init__(self, instrument: Instrument, config: SyntheticFeedConfig, start_ns: int) -> None:
        where = f"synthetic feed for {config.instrument}"
        if config.instrument != instrument.id:
            raise ConfigError(f"{where}: instrument {instrument.id!r} does not match")
        if config.spread_ticks < 1:
            raise ConfigError(f"{where}: spread_ticks must be at least 1")
        if not config.start_price.is_finite() or config.start_price <= 0:
            raise ConfigError(f"{where}: start_price must be positive")
        if not config.volatility_bps.is_finite() or config.volatility_bps < 0:
            raise ConfigError(f"{where}: volatility_bps must not be negative")
        try:
            self._size = instrument.size_raw(config.size)
        except ValueError as e:
            raise ConfigError(f"{where}: size: {e}") from e
        if self._size <= 0 or not instrument.is_on_lot(self._size):
            raise ConfigError(f"{where}: size {config.size} is not a positive number of lots")
        self.instrument = instrument
        self.config = config
        self._id = instrument.id
        self._rng = random.Random(config.seed)
        self._sigma = float(config.volatility_bps / Decimal(10_000))
        self._tick = instrument.tick_raw
        self._spread = config.spread_ticks * self._tick
        self._mid_raw = float(config.start_price) * instrument.price_scale
        self._next_ts = start_ns

    def next_quote(self, ts_ns: int) -> QuoteTick:
        """The next quote of the walk, stamped ``ts_ns``."""
        tick = self._tick
        bid = round((self._mid_raw - self._spread / 2) / tick) * tick
        bid = max(bid, tick)
        quote = QuoteTick(self._id, ts_ns, bid, bid + self._spread, self._size, self._size)
        # exp keeps the mid positive however large the step.
        self._mid_raw *= math.exp(self._sigma * self._rng.gauss(0.0, 1.0))
        return quote

    def take(self, n: int, interval_ns: int | None = None) -> Iterator[QuoteTick]:
        """The next ``n`` quotes, ``interval_ns`` apart (default ``config.interval_ms``).

        Timestamps continue from ``start_ns`` across calls.
        """
        step = self.config.interval_ms * 1_000_000 if interval_ns is None else interval_ns
        for _ in range(n):
            ts = self._next_ts
            self._next_ts = ts + step
            yield self.next_quote(ts)

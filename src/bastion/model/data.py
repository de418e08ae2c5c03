"""Market data: quotes, bars and trade ticks.

Every price and size is a raw integer in the instrument's fixed-point scale
(see ``Instrument.price_raw``); timestamps are UNIX epoch nanoseconds.
These are hot-path objects: msgspec structs, no validation in the constructor
(validation happens once, at the feed's edge: files in ``bastion.data``, every live
quote and trade in ``bastion.feeds.validation``).
"""

from __future__ import annotations

import msgspec


class QuoteTick(msgspec.Struct, frozen=True, gc=False):
    """Top of book: best bid and ask with their displayed sizes."""

    instrument_id: str
    ts_ns: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int
    seq: int = 0
    """The source's sequence number for the instrument (0: the source numbers none)."""


class Bar(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV bar; ``ts_ns`` is the bar's close time. ``interval_ns`` is its length."""

    instrument_id: str
    ts_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    interval_ns: int
    gap_before: int = 0
    """Bars missing right before this one in the stream delivered (set by the feed arbiter)."""
    backfilled: bool = False
    """The followed feed missed this bar; the arbiter took it from another feed."""


class TradeTick(msgspec.Struct, frozen=True, gc=False):
    """A public trade print at the venue."""

    instrument_id: str
    ts_ns: int
    price: int
    size: int
    aggressor_buy: bool | None = None
    seq: int = 0
    """The source's sequence number for the instrument (0: the source numbers none)."""


MarketData = QuoteTick | Bar | TradeTick

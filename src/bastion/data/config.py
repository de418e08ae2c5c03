"""Market data sources: recorded files to replay and the synthetic feed."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec


class ReplaySourceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A recorded file of quotes or bars (CSV or Parquet, chosen by the file's suffix).

    Quote columns: ``ts_ns,bid,ask,bid_size,ask_size``.
    Bar columns: ``ts_ns,open,high,low,close,volume`` (``ts_ns`` is the bar's close).
    ``on_bad_row``: ``fail`` stops with the file and line of the first bad row;
    ``skip`` drops bad rows and counts them by reason.
    """

    path: str
    instrument: str
    kind: Literal["quotes", "bars"] = "quotes"
    on_bad_row: Literal["fail", "skip"] = "fail"
    bar_interval_s: int = 60


class SyntheticFeedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A seeded random-walk quote feed, paced in real time by the live node.

    The mid moves by a normal step of ``volatility_bps`` per quote; the spread is
    ``spread_ticks`` ticks; both sides show ``size`` units.
    """

    instrument: str
    seed: int = 42
    start_price: Decimal = Decimal(100)
    volatility_bps: Decimal = Decimal(2)
    spread_ticks: int = 1
    size: Decimal = Decimal(100)
    interval_ms: int = 100

"""The ``[[feeds]]`` tables of a node config: which source supplies which instruments.

``kind`` picks the source: ``synthetic`` (a seeded random walk per instrument, paced in
real time), ``replay`` (a recorded file, paced at its recorded rate), ``venue`` (the
market data a venue sends over its own session, e.g. a FIX venue's top of book),
``nats`` (the validated quotes a feed handler, ``bastion feed``, publishes on NATS),
``recording`` (a node's own recording, ``bastion.feeds.recorder``).

Several feeds may supply one instrument, each with its own ``priority`` (lower is
preferred; 1 by default): the feed arbiter (``bastion.feeds.arbiter``) follows the
preferred healthy one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.feeds.nats.config import NatsFeedEntry


class SyntheticFeedEntry(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="synthetic",
    tag_field="kind",
):
    """Synthetic quotes for ``instruments``: one random walk each (seeds ``seed``,
    ``seed + 1``, ... in list order), a quote every ``interval_ms`` per instrument."""

    name: str
    instruments: list[str]
    seed: int = 42
    start_price: Decimal = Decimal(100)
    volatility_bps: Decimal = Decimal(2)
    spread_ticks: int = 1
    size: Decimal = Decimal(100)
    interval_ms: int = 100
    priority: int = 1

    def walk(self, instrument_id: str) -> SyntheticFeedConfig:
        """The walk of one instrument."""
        return SyntheticFeedConfig(
            instrument=instrument_id,
            seed=self.seed + self.instruments.index(instrument_id),
            start_price=self.start_price,
            volatility_bps=self.volatility_bps,
            spread_ticks=self.spread_ticks,
            size=self.size,
            interval_ms=self.interval_ms,
        )


class ReplayFeedEntry(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="replay",
    tag_field="kind",
):
    """A recorded file of ``instrument``'s quotes or bars (``data``), replayed at its
    recorded pace and re-stamped to now; columns as in ``ReplaySourceConfig``."""

    name: str
    path: str
    instrument: str
    data: Literal["quotes", "bars"] = "quotes"
    on_bad_row: Literal["fail", "skip"] = "fail"
    bar_interval_s: int = 60
    priority: int = 1

    @property
    def instruments(self) -> list[str]:
        return [self.instrument]

    def source(self) -> ReplaySourceConfig:
        return ReplaySourceConfig(
            path=self.path,
            instrument=self.instrument,
            kind=self.data,
            on_bad_row=self.on_bad_row,
            bar_interval_s=self.bar_interval_s,
        )


class VenueFeedEntry(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="venue",
    tag_field="kind",
):
    """The market data of the configured venue ``venue`` (its own session), for
    ``instruments`` (empty: every instrument of that venue)."""

    name: str
    venue: str
    instruments: list[str] = []
    priority: int = 1


class RecordingFeedEntry(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="recording",
    tag_field="kind",
):
    """A node's recording (``[recording]``, directory ``path``) played back for
    ``instruments``: its ``stream`` ``delivered`` (what the node got: a backtest of it
    makes the node's decisions again) or ``raw`` (as the feeds sent it; of feed ``feed``
    only, when given). Live, at its recorded pace, re-stamped to now."""

    name: str
    path: str
    instruments: list[str]
    stream: Literal["delivered", "raw"] = "delivered"
    feed: str = ""
    priority: int = 1


FeedEntry = (
    SyntheticFeedEntry | ReplayFeedEntry | VenueFeedEntry | NatsFeedEntry | RecordingFeedEntry
)
"""A ``[[feeds]]`` table, chosen by ``kind``."""

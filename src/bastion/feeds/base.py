"""The feed seam: a source of market data for some instruments, separate from execution.

A node config names which feed supplies which instrument (``[[feeds]]``), so a node can
trade on one venue with quotes from another source. Three ways a feed delivers:

- ``attach``: a feed that pushes on its own (a venue's market data over its session) is
  wired to the node when the node is built;
- ``run``: a feed the node paces (synthetic quotes, a recorded file replayed in real
  time) delivers until it is exhausted, from when the strategies start;
- ``recorded``: a recorded feed's events in time order, for a backtest, which drives
  its own clock through them.

Each live feed counts the quotes it delivers per instrument and the data it dropped as
bad, by reason (``stats``, for monitoring): counted here, at the source, so the node's
per-quote path (``Kernel.on_quote``) stays as it is.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bastion.clock import Clock
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.instruments import Instrument
from bastion.vault import SecretSource
from bastion.venues.base import VenueAdapter

if TYPE_CHECKING:
    from bastion.data.replay import ReplaySource


class FeedSink(Protocol):
    """Where a feed delivers (the node's kernel)."""

    def on_quote(self, quote: QuoteTick) -> None: ...

    def on_bar(self, bar: Bar) -> None: ...


@dataclass(frozen=True, kw_only=True)
class FeedContext:
    """What building a feed may use (given by the node)."""

    instruments: dict[str, Instrument]
    venues: dict[str, VenueAdapter]
    base_dir: Path
    secrets: SecretSource | None = None
    """The vault's secrets the feeds refer to (a NATS feed's credentials)."""


@dataclass(frozen=True, slots=True)
class FeedStats:
    """A feed's counts since the node started (``Feed.stats``)."""

    quotes: dict[str, int]
    """Quotes delivered, per instrument."""
    rejects: dict[str, int] = field(default_factory=dict)
    """Data dropped as bad before it reached the node, by reason."""


class Feed(ABC):  # noqa: B024 - every delivery mode is optional
    """A market data source for ``instruments``."""

    kind: str = "feed"
    paced: bool = False
    """True for a feed the node runs (``run``); False for one that pushes (``attach``)."""

    def __init__(self, name: str, instruments: Iterable[str]) -> None:
        self.name = name
        self.instruments = frozenset(instruments)
        self.quote_counts: dict[str, int] = dict.fromkeys(sorted(self.instruments), 0)
        """Quotes delivered per instrument (the feed's own delivery loop counts them)."""

    def stats(self) -> FeedStats:
        """Quotes delivered and data rejected so far (read on the node's loop)."""
        return FeedStats(dict(self.quote_counts))

    def attach(self, sink: FeedSink) -> None:  # noqa: B027 - optional hook
        """Wire a feed that pushes on its own to ``sink`` (when the node is built)."""

    def attach_trades(self, on_trade: Callable[[TradeTick], None]) -> None:  # noqa: B027
        """Wire the trade prints of a feed that carries them to ``on_trade`` (in place
        of their default route; when the node is built)."""

    async def run(self, sink: FeedSink, clock: Clock) -> None:  # noqa: B027
        """Deliver to ``sink`` in real time, stamped by ``clock``, until exhausted."""

    def recorded(self) -> ReplaySource[Any] | None:
        """The recorded events in time order (a backtest's data); None if live only."""
        return None

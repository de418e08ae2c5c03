"""The venue feed: the market data a venue sends over its own session (a FIX venue's
top of book), for the instruments the config gives it."""

from __future__ import annotations

from collections.abc import Callable

from bastion.errors import ConfigError
from bastion.feeds.base import Feed, FeedContext, FeedSink, FeedStats
from bastion.feeds.config import VenueFeedEntry
from bastion.model.data import QuoteTick, TradeTick
from bastion.venues.base import VenueAdapter


class VenueFeed(Feed):
    """Quotes of ``instruments`` from ``venue``'s session, as they arrive."""

    kind = "venue"

    def __init__(self, name: str, venue: VenueAdapter, instruments: list[str]) -> None:
        super().__init__(name, instruments)
        self.venue = venue

    def attach(self, sink: FeedSink) -> None:
        counts = self.quote_counts  # a key per wanted instrument
        on_quote = sink.on_quote

        def deliver(quote: QuoteTick) -> None:
            iid = quote.instrument_id
            if iid in counts:
                counts[iid] += 1
                on_quote(quote)

        if not self.venue.subscribe_quotes(deliver):
            raise ConfigError(
                f"feed '{self.name}': venue '{self.venue.name}' sends no market data "
                "(a FIX venue needs market_data = true)"
            )

    def attach_trades(self, on_trade: Callable[[TradeTick], None]) -> None:
        """The venue's trade prints of this feed's instruments go to ``on_trade``; those
        of its other instruments keep their route."""
        previous = self.venue.on_trade_sink
        mine = self.instruments

        def route(trade: TradeTick) -> None:
            if trade.instrument_id in mine:
                on_trade(trade)
            elif previous is not None:
                previous(trade)

        self.venue.on_trade_sink = route

    def stats(self) -> FeedStats:
        """Quotes delivered, and the venue's market data it dropped as bad."""
        return FeedStats(dict(self.quote_counts), dict(self.venue.stats().md_rejects))


def build(config: VenueFeedEntry, context: FeedContext) -> VenueFeed:
    return VenueFeed(config.name, context.venues[config.venue], config.instruments)

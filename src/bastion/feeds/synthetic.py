"""The synthetic feed: a seeded random walk of quotes per instrument, paced in real time."""

from __future__ import annotations

import asyncio

from bastion.clock import Clock
from bastion.data.synthetic import SyntheticQuoteFeed
from bastion.feeds.base import Feed, FeedContext, FeedSink
from bastion.feeds.config import SyntheticFeedEntry


class SyntheticFeed(Feed):
    """Every ``interval_ms`` one quote for each of its instruments."""

    kind = "synthetic"
    paced = True

    def __init__(self, config: SyntheticFeedEntry, context: FeedContext) -> None:
        super().__init__(config.name, config.instruments)
        self.config = config
        self._instruments = [context.instruments[iid] for iid in config.instruments]

    async def run(self, sink: FeedSink, clock: Clock) -> None:
        start = clock.timestamp_ns()
        walks = [
            SyntheticQuoteFeed(instrument, self.config.walk(instrument.id), start)
            for instrument in self._instruments
        ]
        interval_s = self.config.interval_ms / 1000
        next_at = clock.monotonic_s()
        counts = self.quote_counts
        while True:
            for walk in walks:
                quote = walk.next_quote(clock.timestamp_ns())
                counts[quote.instrument_id] += 1
                sink.on_quote(quote)
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - clock.monotonic_s()))


def build(config: SyntheticFeedEntry, context: FeedContext) -> SyntheticFeed:
    return SyntheticFeed(config, context)

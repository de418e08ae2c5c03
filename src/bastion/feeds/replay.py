"""The replay feed: a recorded file of one instrument's quotes or bars.

Live, it is replayed at its recorded pace, each event re-stamped to now; a backtest
takes its events as recorded (``recorded``). The file readers (numpy, pyarrow) load on
first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from bastion.clock import Clock
from bastion.data.config import ReplaySourceConfig
from bastion.feeds.base import Feed, FeedContext, FeedSink, FeedStats
from bastion.feeds.config import ReplayFeedEntry
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument


class ReplayFeed(Feed):
    """One recorded file."""

    kind = "replay"
    paced = True

    def __init__(
        self, name: str, source: ReplaySourceConfig, instrument: Instrument, base_dir: Path
    ) -> None:
        super().__init__(name, [source.instrument])
        self.source = source
        self._instrument = instrument
        self._base_dir = base_dir
        self._opened: Any = None

    def recorded(self) -> Any:
        """The file's events in time order (opened once)."""
        if self._opened is None:
            from bastion.data.replay import replay_from_config  # numpy, pyarrow: on use

            self._opened = replay_from_config(
                self.source, self._instrument, base_dir=self._base_dir
            )
        return self._opened

    async def run(self, sink: FeedSink, clock: Clock) -> None:
        await play(self.recorded(), sink, clock, self.quote_counts)

    def stats(self) -> FeedStats:
        """Quotes replayed, and the file's bad rows skipped by reason (``on_bad_row =
        "skip"``)."""
        skipped = {} if self._opened is None else dict(self._opened.stats.skipped_by_reason)
        return FeedStats(dict(self.quote_counts), skipped)


async def play(
    events: Iterable[QuoteTick | Bar], sink: FeedSink, clock: Clock, counts: dict[str, int]
) -> None:
    """Deliver recorded ``events`` to ``sink`` at their recorded pace, re-stamped to now
    (counting quotes per instrument in ``counts``)."""
    first_ts: int | None = None
    start = clock.monotonic_s()
    for event in events:
        if first_ts is None:
            first_ts = event.ts_ns
        delay = start + (event.ts_ns - first_ts) / 1e9 - clock.monotonic_s()
        if delay > 0:
            await asyncio.sleep(delay)
        event = msgspec.structs.replace(event, ts_ns=clock.timestamp_ns())
        if isinstance(event, QuoteTick):
            counts[event.instrument_id] += 1
            sink.on_quote(event)
        else:
            sink.on_bar(event)


def build(config: ReplayFeedEntry, context: FeedContext) -> ReplayFeed:
    return ReplayFeed(
        config.name, config.source(), context.instruments[config.instrument], context.base_dir
    )

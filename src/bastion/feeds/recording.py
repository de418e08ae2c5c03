"""The recording feed: a node's own recording (``bastion.feeds.recorder``) played back.

A backtest takes its quotes as recorded (``recorded``): the ``delivered`` stream is what
the recording node's kernel got, so the same strategies make the same decisions on it.
Live, it is played at its recorded pace, each quote re-stamped to now, as a replay is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.clock import Clock
from bastion.feeds.base import Feed, FeedContext, FeedSink
from bastion.feeds.config import RecordingFeedEntry
from bastion.feeds.replay import play
from bastion.model.instruments import Instrument


class RecordingFeed(Feed):
    """One stream of a recording, for some of its instruments."""

    kind = "recording"
    paced = True

    def __init__(
        self, config: RecordingFeedEntry, instruments: dict[str, Instrument], base_dir: Path
    ) -> None:
        super().__init__(config.name, config.instruments)
        self.config = config
        self._instruments = {iid: instruments[iid] for iid in config.instruments}
        path = Path(config.path).expanduser()
        self.path = path if path.is_absolute() else base_dir / path
        self._opened: Any = None

    def recorded(self) -> Any:
        """The stream's quotes in the order received (read once)."""
        if self._opened is None:
            from bastion.feeds.recorder.reader import read_quotes  # pyarrow: on use

            self._opened = read_quotes(
                self.path, self._instruments, stream=self.config.stream, feed=self.config.feed
            )
        return self._opened

    async def run(self, sink: FeedSink, clock: Clock) -> None:
        await play(self.recorded(), sink, clock, self.quote_counts)


def build(config: RecordingFeedEntry, context: FeedContext) -> RecordingFeed:
    return RecordingFeed(config, context.instruments, context.base_dir)

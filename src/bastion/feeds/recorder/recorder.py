"""The recorder's taps on a feed path, and their one writer.

Whoever builds a feed path (the node's kernel, a feed handler process) asks the
``Recorder`` for a tap at each point it wants recorded and puts the tap in the path:

    feed ─► raw(feed, ·) ─► ValidatedFeed(on_verdict=verdicts(feed)) ─► [arbiter]
         ─► delivered(·) ─► kernel (or a publisher)

- ``raw(feed, sink)``: a ``FeedSink`` that keeps each quote, then hands it to ``sink``;
- ``delivered(sink)``: the same, for what reaches ``sink`` (the kernel, a publisher);
- ``verdicts(feed)``: the ``on_verdict`` of that feed's ``ValidatedFeed``.

Each returns its argument (or None) when its stream is not recorded, so a path without
recording is the path as it was. A tap keeps the quote object itself (immutable) in a
list, and hands the list to the writer every ``_BATCH_ROWS`` records and on ``flush``:
per quote an append, a length test and a call. The owner starts the writer (``start``),
runs ``run`` (a flush every ``flush_interval_ms``) as a task on its loop, and ``close``-s
it on stop, which writes what is left. Bars and trade prints are not recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bastion.clock import Clock
from bastion.feeds.base import FeedSink
from bastion.feeds.recorder.config import RecordingConfig, Stream
from bastion.feeds.recorder.writer import RecordingWriter
from bastion.feeds.validation.rules import Verdict
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

_BATCH_ROWS: Final = 1024
"""Records a tap hands over at once: one queue put per batch, not per record."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """The recording's counts since it started (``Recorder.stats``)."""

    received: int
    """Records taken by the taps."""
    written: int
    dropped: int
    """Dropped because ``max_buffered_rows`` were waiting for the disk."""
    failed: int
    """Lost to a failed write (logged ``recording_write_failed``)."""
    buffered: int
    files: int


class _Tap:
    """Keeps each quote of one stream (and feed) and passes it on to ``sink``."""

    __slots__ = ("_batch_rows", "_next_quote", "_records", "_sink", "_writer", "feed", "stream")

    def __init__(self, writer: RecordingWriter, stream: Stream, feed: str, sink: FeedSink) -> None:
        self._writer = writer
        self.stream: Stream = stream
        self.feed = feed
        self._sink = sink
        self._next_quote = sink.on_quote  # bound once: the per-quote path does no lookup
        self._records: list[Any] = []
        self._batch_rows = _BATCH_ROWS

    def on_quote(self, quote: QuoteTick) -> None:
        records = self._records
        records.append(quote)
        if len(records) >= self._batch_rows:
            self.hand_over()
        self._next_quote(quote)

    def on_bar(self, bar: Bar) -> None:
        self._sink.on_bar(bar)

    @property
    def waiting(self) -> int:
        """Records not yet handed to the writer."""
        return len(self._records)

    def hand_over(self) -> None:
        records = self._records
        if records:
            self._records = []
            self._writer.submit(self.stream, self.feed, records)


class _VerdictTap:
    """Keeps every validator hit of one feed."""

    __slots__ = ("_records", "_writer", "feed", "stream")

    def __init__(self, writer: RecordingWriter, feed: str) -> None:
        self._writer = writer
        self.stream: Stream = "verdicts"
        self.feed = feed
        self._records: list[Any] = []

    def __call__(self, iid: str, reason: int, action: int, now: int, data: object) -> None:
        self._records.append((iid, reason, action, now, data))
        if len(self._records) >= _BATCH_ROWS:
            self.hand_over()

    @property
    def waiting(self) -> int:
        return len(self._records)

    def hand_over(self) -> None:
        records = self._records
        if records:
            self._records = []
            self._writer.submit(self.stream, self.feed, records)


class Recorder:
    """Records the streams of ``config`` under ``root`` (see the module docstring)."""

    def __init__(
        self,
        config: RecordingConfig,
        *,
        root: Path,
        instruments: Mapping[str, Instrument],
        clock: Clock,
    ) -> None:
        self.config = config
        self.root = root
        self.streams = frozenset(config.streams)
        self.writer = RecordingWriter(
            root,
            instruments,
            session_ns=clock.timestamp_ns(),
            flush_interval_ms=config.flush_interval_ms,
            max_rows_per_file=config.max_rows_per_file,
            max_buffered_rows=config.max_buffered_rows,
            monotonic_s=clock.monotonic_s,
        )
        self._taps: list[_Tap | _VerdictTap] = []

    # -- taps ------------------------------------------------------------------------------
    def raw(self, feed: str, sink: FeedSink) -> FeedSink:
        """``sink``, behind a tap that records feed ``feed``'s quotes as received."""
        return self._tap("raw", feed, sink)

    def delivered(self, sink: FeedSink) -> FeedSink:
        """``sink``, behind a tap that records what reaches it."""
        return self._tap("delivered", "", sink)

    def verdicts(self, feed: str) -> Verdict | None:
        """The ``on_verdict`` of feed ``feed``'s validators (None: not recorded)."""
        if "verdicts" not in self.streams:
            return None
        tap = _VerdictTap(self.writer, feed)
        self._taps.append(tap)
        return tap

    def _tap(self, stream: Stream, feed: str, sink: FeedSink) -> FeedSink:
        if stream not in self.streams:
            return sink
        tap = _Tap(self.writer, stream, feed, sink)
        self._taps.append(tap)
        return tap

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.writer.start()

    def flush(self) -> None:
        """Hand every tap's records to the writer and have them written (not waiting)."""
        for tap in self._taps:
            tap.hand_over()
        self.writer.flush()

    async def run(self) -> None:
        """Flush every ``flush_interval_ms`` (a task of the owner's loop)."""
        interval_s = self.config.flush_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            self.flush()

    def close(self) -> None:
        """Write everything recorded and stop the writer (on stop, after the feeds)."""
        for tap in self._taps:
            tap.hand_over()
        self.writer.close()

    def stats(self) -> RecorderStats:
        w = self.writer
        return RecorderStats(
            received=w.handed_rows + w.dropped_rows + sum(t.waiting for t in self._taps),
            written=w.written_rows,
            dropped=w.dropped_rows,
            failed=w.failed_rows,
            buffered=w.buffered_rows,
            files=w.files_written,
        )

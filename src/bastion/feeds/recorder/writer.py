"""The recording's writer: batches of records handed over by the trading loop become
Parquet files on a worker thread.

The trading loop only hands over lists (``submit``: a length check and a queue put per
batch, never per record) and never waits: when the records handed over and not yet
written would pass ``max_buffered_rows``, the batch is dropped and counted
(``dropped_rows``, logged ``recording_dropped`` at most once per flush interval). The
worker converts batches to Arrow (the only part that holds the GIL; Parquet encoding
and the disk do not) and keeps them until ``flush`` (every ``flush_interval_ms``, on
stop) or until a stream holds ``max_rows_per_file`` rows; then it writes each partition
(``stream/date=/instrument=/``) as closed files of at most ``max_rows_per_file`` rows,
each written under a temporary name and renamed, so a crash leaves no torn file and
loses only what was not yet flushed. A failed write is logged and its rows counted as
lost (``failed_rows``); recording goes on.

Counters: ``handed_rows``, ``dropped_rows`` are written by the trading loop only;
``written_rows``, ``failed_rows``, ``files_written`` by the worker only (each read
anywhere), so no counter is shared between writers and none needs a lock.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote as percent_encode

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from bastion.feeds.recorder.config import Stream
from bastion.feeds.recorder.schema import (
    DAY,
    INSTRUMENT,
    SCHEMAS,
    date_of,
    file_metadata,
    quote_table,
    verdict_table,
)
from bastion.model.instruments import Instrument

log = structlog.get_logger("bastion.feeds.recorder")

_FLUSH: Final = "flush"
_STOP: Final = "stop"
Batch = tuple[Stream, str, list[Any]]
"""(stream, feed, records): quotes, or verdict tuples for ``verdicts``."""


class RecordingWriter:
    """Writes ``submit``-ted batches under ``root`` on its own thread (``start``);
    ``monotonic_s`` (the node clock's) paces the dropped-records log."""

    def __init__(
        self,
        root: Path,
        instruments: Mapping[str, Instrument],
        *,
        session_ns: int,
        flush_interval_ms: int,
        max_rows_per_file: int,
        max_buffered_rows: int,
        monotonic_s: Callable[[], float],
    ) -> None:
        self.root = root
        self.session_ns = session_ns
        self.max_rows_per_file = max_rows_per_file
        self.max_buffered_rows = max_buffered_rows
        self.flush_interval_s = flush_interval_ms / 1000
        self._instruments = instruments
        self._monotonic = monotonic_s
        self._queue: queue.SimpleQueue[Batch | str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._dropped_logged_at = float("-inf")
        self._dropped_unlogged = 0
        # worker state
        self._pending: dict[Stream, list[pa.Table]] = {}
        self._pending_rows: dict[Stream, int] = {}
        self._next_rec: dict[Stream, int] = {}
        self._files = 0
        self._flushed = threading.Condition()
        self._flushes_done = 0
        self._flushes_asked = 0
        # counters (see the module docstring for which thread writes which)
        self.handed_rows = 0
        self.dropped_rows = 0
        self.written_rows = 0
        self.failed_rows = 0
        self.files_written = 0

    # -- the trading loop's side -----------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="recorder", daemon=True)
            self._thread.start()

    def submit(self, stream: Stream, feed: str, records: list[Any]) -> bool:
        """Hand over ``records`` (the caller lets go of the list); False if dropped."""
        n = len(records)
        if self.handed_rows - self.written_rows - self.failed_rows + n > self.max_buffered_rows:
            self.dropped_rows += n
            self._log_dropped(n)
            return False
        self.handed_rows += n
        self._queue.put((stream, feed, records))
        return True

    def flush(self) -> None:
        """Ask for everything handed over so far to be written (does not wait)."""
        self._flushes_asked += 1
        self._queue.put(_FLUSH)

    def wait_flushed(self, timeout_s: float) -> bool:
        """Wait until the flushes asked so far are done (tests, ``close``)."""
        asked = self._flushes_asked
        with self._flushed:
            return self._flushed.wait_for(lambda: self._flushes_done >= asked, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything handed over and stop the thread."""
        if self._thread is None:
            return
        self.flush()
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("recording_close_timeout", timeout_s=timeout_s, path=str(self.root))
        self._thread = None

    @property
    def buffered_rows(self) -> int:
        """Handed over, not yet written (nor lost)."""
        return self.handed_rows - self.written_rows - self.failed_rows

    def _log_dropped(self, n: int) -> None:
        self._dropped_unlogged += n
        now = self._monotonic()
        if now - self._dropped_logged_at < self.flush_interval_s:
            return
        self._dropped_logged_at = now
        log.warning(
            "recording_dropped",
            rows=self._dropped_unlogged,
            dropped_total=self.dropped_rows,
            buffered_rows=self.buffered_rows,
            max_buffered_rows=self.max_buffered_rows,
            path=str(self.root),
        )
        self._dropped_unlogged = 0

    # -- the worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item == _STOP:
                return
            if item == _FLUSH:
                for stream in list(self._pending):
                    self._write(stream)
                with self._flushed:
                    self._flushes_done += 1
                    self._flushed.notify_all()
                continue
            assert not isinstance(item, str)
            stream, feed, records = item
            try:
                self._add(stream, feed, records)
            except Exception as error:  # a batch that cannot be converted is lost, counted
                self.failed_rows += len(records)
                log.error(
                    "recording_batch_failed", stream=stream, rows=len(records), error=repr(error)
                )
                continue
            if self._pending_rows[stream] >= self.max_rows_per_file:
                self._write(stream)

    def _add(self, stream: Stream, feed: str, records: list[Any]) -> None:
        first = self._next_rec.get(stream, 0)
        if stream == "verdicts":
            table = verdict_table(feed, records, first)
        else:
            table = quote_table(stream, feed, records, first)
        self._next_rec[stream] = first + len(records)
        self._pending.setdefault(stream, []).append(table)
        self._pending_rows[stream] = self._pending_rows.get(stream, 0) + len(records)

    def _write(self, stream: Stream) -> None:
        tables = self._pending.pop(stream, [])
        self._pending_rows.pop(stream, None)
        if not tables:
            return
        table = pa.concat_tables(tables)
        keys = table.select([INSTRUMENT, DAY]).group_by([INSTRUMENT, DAY]).aggregate([])
        for iid, day in zip(
            keys.column(INSTRUMENT).to_pylist(), keys.column(DAY).to_pylist(), strict=True
        ):
            mask = pc.and_(pc.equal(table[INSTRUMENT], iid), pc.equal(table[DAY], day))
            part = table.filter(mask).drop_columns([INSTRUMENT, DAY])
            try:
                self._write_partition(stream, iid, day, part)
            except (OSError, pa.ArrowException) as error:
                self.failed_rows += part.num_rows
                log.error(
                    "recording_write_failed",
                    stream=stream,
                    instrument=iid,
                    rows=part.num_rows,
                    error=repr(error),
                )

    def _write_partition(self, stream: Stream, iid: str, day: int, table: pa.Table) -> None:
        instrument = percent_encode(iid, safe="")
        directory = self.root / stream / f"date={date_of(day)}" / f"instrument={instrument}"
        directory.mkdir(parents=True, exist_ok=True)
        meta = file_metadata(stream, self._instruments.get(iid), iid, self.session_ns)
        if table.schema != SCHEMAS[stream]:
            raise pa.ArrowTypeError(f"{stream}: columns {table.schema} are not the stream's")
        step = self.max_rows_per_file
        for start in range(0, table.num_rows, step):
            chunk = table.slice(start, step).replace_schema_metadata(meta)
            self._files += 1
            name = f"part-{self.session_ns:020d}-{self._files:06d}.parquet"
            temporary = directory / f".{name}.tmp"  # readers skip dot files
            pq.write_table(chunk, temporary, compression="zstd")
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, directory / name)
            self.files_written += 1
            self.written_rows += chunk.num_rows

"""The journals' writer: the append queue, group commit, durability and the failure latch.

``SqliteJournal`` and ``PostgresJournal`` each own one ``GroupCommitWriter``, which
holds everything they do alike, and keep only their storage (a ``Store``: one method
per kind of transaction and two hooks around a failure).

- Seq accounting: ``last_seq`` counts every event appended (committed or queued),
  ``committed_seq`` the last one committed. The encoder (``_codec.RecordEncoder``)
  assigns seqs and hashes, on the thread that commits.
- ``group``: ``append`` puts the event on a queue. A writer thread (started here,
  joined by ``close``) takes whatever is queued every ``commit_interval_ms``, or as soon
  as ``max_batch`` events wait, encodes and chains it and hands it to
  ``Store.write_batch``: one transaction. ``fsync_each``: ``append`` encodes the event
  and ``Store.write_event`` commits it before ``append`` returns.
- Snapshots are queued among events and committed in the same transaction as the
  events before them, with the seq and chain hash of the last of those: a snapshot
  always covers exactly the events up to its seq.
- The failure latch: the first failed write makes ``append``, ``snapshot``, ``flush`` and
  ``close`` raise from then on (``FencedError`` if the write was fenced, else
  ``OperationalError``), naming the journal as ``where``.
- Anchors (keyed chains): the committed head, written when the writer opens, every
  ``anchor_interval_s`` after a commit, and on close; never while a batch is encoded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, Protocol

import structlog

from bastion.errors import FencedError, OperationalError
from bastion.journal._codec import RecordEncoder, Row
from bastion.journal.anchors import AnchorWriter
from bastion.journal.base import JournalStats
from bastion.journal.config import Durability

__all__ = ["GroupCommitWriter", "PendingSnapshot", "QueuedSnapshot", "Store", "WriterBacked"]

log = structlog.get_logger("bastion.journal")

_ENCODE_CHUNK: Final = 128


class QueuedSnapshot(NamedTuple):
    """A snapshot waiting in the writer's queue among events."""

    ts_ns: int
    payload: bytes


PendingSnapshot = tuple[int, bytes, QueuedSnapshot]
"""A snapshot to store: (seq, the chain hash of event ``seq``, the snapshot)."""


class Store(Protocol):
    """A journal's storage as its writer uses it. Each ``write_*`` is one transaction:
    it commits whole or raises (and the writer then refuses everything after it)."""

    def write_batch(self, rows: list[Row], snapshots: list[PendingSnapshot]) -> None:
        """Commit ``rows`` (chained, in seq order) and ``snapshots``, either possibly
        empty, in one transaction (on the writer thread)."""
        ...

    def write_event(self, row: Row) -> None:
        """Commit one row (``fsync_each``, on the caller's thread)."""
        ...

    def write_snapshot(self, snapshot: PendingSnapshot) -> None:
        """Commit one snapshot (``fsync_each``, on the caller's thread)."""
        ...

    def failing(self, error: BaseException) -> BaseException:
        """A write failed: what the journal reports it as. Called before the refusal is
        in force, so it may tell whoever must stop before anything else is refused."""
        ...

    def failed(self, error: BaseException) -> None:
        """The refusal is in force and waiters are woken."""
        ...


class GroupCommitWriter:
    """Queues, encodes and commits one journal's events through its ``Store``."""

    def __init__(
        self,
        store: Store,
        encoder: RecordEncoder,
        *,
        durability: Durability,
        commit_interval_ms: int,
        max_batch: int,
        thread_name: str,
        where: str,
        log_at: Mapping[str, str],
        error_text: Callable[[BaseException], str],
        snapshot_ts_ns: int | None,
        anchors: AnchorWriter | None,
        anchor_interval_s: float,
    ) -> None:
        """``where`` names the journal in errors, ``log_at`` in log lines; ``error_text``
        renders a failed write's error in the refusal. In ``group`` durability the
        writer thread starts here: ``store`` must be ready to write."""
        self._store = store
        self._encoder = encoder
        self._where = where
        self._log_at = dict(log_at)
        self._error_text = error_text
        self.commits = 0
        self._base_seq = encoder.last_seq
        self._appended = 0
        self._committed_seq = encoder.last_seq
        self._committed_hash = encoder.last_hash
        self._refused: str | None = None  # why append is refused (closed, or writes failed)
        self._error: BaseException | None = None
        self._closed = False
        self._queue: deque[Any] = deque()
        # when the queue last went from empty to not (``append``), and the oldest append
        # of the batch the writer is committing: ``stats`` ages the commit lag from them
        self._queued_since = 0.0
        self._committing_since: float | None = None
        self.snapshot_ts_ns = snapshot_ts_ns
        # snapshots queued (caller's thread) and taken (writer thread): each counter has
        # one writing thread, so the two never race; equal, a batch holds only events
        self._snapshots_queued = 0
        self._snapshots_taken = 0
        self._max_batch = max_batch
        self._interval_s = commit_interval_ms / 1000
        self._wake = threading.Event()
        self._committed = threading.Condition()
        self._stopping = False
        self.anchors = anchors
        self._anchor_interval_s = anchor_interval_s
        self._next_anchor_at = time.monotonic() + anchor_interval_s
        self._anchored_seq = -1
        self._thread: threading.Thread | None = None
        if anchors is not None:
            self._write_anchor()  # the head as found: a later cut is caught against it
        if durability == "group":
            self._thread = threading.Thread(target=self._run, name=thread_name, daemon=False)
            self._thread.start()

    # -- the caller's side ---------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._base_seq + self._appended

    @property
    def committed_seq(self) -> int:
        return self._committed_seq

    def append(self, event: Any) -> None:
        """Journal one event: queued (``group``) or committed before returning (``fsync_each``).

        Raises ``OperationalError`` (``FencedError`` once fenced) once the journal is
        closed or refused, or a write has failed.
        """
        if self._refused is not None:
            raise self._refusal() from self._error
        self._appended += 1
        if self._thread is None:
            self._write_now(event)
            return
        queue = self._queue
        if not queue:
            self._queued_since = time.monotonic()
        queue.append(event)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def snapshot(self, payload: bytes, ts_ns: int) -> int:
        """Store a snapshot covering every event appended so far; return its seq.

        Queued behind those events (``group``) or written now (``fsync_each``).
        """
        if self._refused is not None:
            raise self._refusal() from self._error
        seq = self.last_seq
        marker = QueuedSnapshot(ts_ns, payload)
        self.snapshot_ts_ns = ts_ns
        if self._thread is None:
            try:
                self._store.write_snapshot((seq, self._encoder.last_hash, marker))
            except Exception as error:
                self.fail(error)
                raise self._refusal() from self._error
            return seq
        if not self._queue:
            self._queued_since = time.monotonic()
        self._snapshots_queued += 1  # before the marker: the writer never sees it uncounted
        self._queue.append(marker)
        self._wake.set()
        return seq

    def stats(self, size: int) -> JournalStats:
        """Where the journal stands, ``size`` bytes stored (any thread, no lock taken)."""
        committing = self._committing_since
        oldest = (
            committing if committing is not None else (self._queued_since if self._queue else None)
        )
        return JournalStats(
            last_seq=self.last_seq,
            committed_seq=self._committed_seq,
            queue_depth=len(self._queue),
            bytes=size,
            commit_lag_s=0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            writable=self._refused is None,
            snapshot_ts_ns=self.snapshot_ts_ns,
        )

    def flush(self) -> int:
        """Wait until everything appended so far is committed; return the committed seq."""
        target = self.last_seq
        if self._thread is None:
            return self._committed_seq
        self._wake.set()
        with self._committed:
            self._committed.wait_for(lambda: self._committed_seq >= target or self._error)
        self.raise_failure()
        return self._committed_seq

    def refuse(self, reason: str) -> None:
        """Accept no more events (those appended before are still committed)."""
        if self._refused is None:
            self._refused = reason

    def check(self) -> None:
        """Raise what ``append`` would raise now, if anything."""
        if self._refused is not None:
            raise self._refusal() from self._error

    def raise_failure(self) -> None:
        """Raise the refusal if a write has failed."""
        if self._error is not None:
            raise self._refusal() from self._error

    def close(self) -> bool:
        """Refuse new events, commit everything queued, stop the writer thread, write
        the closing anchor; False if closed before. ``raise_failure`` then tells the
        caller, once its storage is closed too, whether a write failed."""
        if self._closed:
            return False
        self._closed = True
        if self._refused is None:
            self._refused = "journal is closed"
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
        if self.anchors is not None:
            if self._error is None:
                self._write_anchor()
            self.anchors.close()
        return True

    def fail(self, error: BaseException) -> None:
        """Latch a failed write: everything after it is refused."""
        error = self._store.failing(error)
        self._error = error
        self._refused = (
            f"write failed: {self._error_text(error)}; the journal accepts no more events"
        )
        if isinstance(error, FencedError):
            log.critical("journal_fenced", **self._log_at, error=str(error))
        else:
            log.error("journal_write_failed", **self._log_at, error=repr(error))
        with self._committed:
            self._committed.notify_all()
        self._store.failed(error)

    def _refusal(self) -> OperationalError:
        kind = FencedError if isinstance(self._error, FencedError) else OperationalError
        return kind(f"{self._where}: {self._refused}")

    def _write_now(self, event: Any) -> None:
        try:
            row = self._encoder.encode(event)
            self._store.write_event(row)
        except Exception as error:
            self.fail(error)
            raise self._refusal() from self._error
        self._committed_to(row)
        if self.anchors is not None and time.monotonic() >= self._next_anchor_at:
            self._write_anchor()

    def _committed_to(self, last: Row) -> None:
        self.commits += 1
        with self._committed:
            self._committed_seq = last[0]
            self._committed_hash = last[6]
            self._committed.notify_all()

    # -- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        main = threading.main_thread()
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            # read before draining: whatever was appended before close() is in the queue
            stopping = self._stopping or not main.is_alive()
            try:
                self._commit_queued()
            except Exception as error:
                self.fail(error)
                return
            if self.anchors is not None and time.monotonic() >= self._next_anchor_at:
                self._write_anchor()
            if stopping:
                return

    def _commit_queued(self) -> None:
        queue = self._queue
        n = len(queue)
        if n == 0:
            return
        self._committing_since = self._queued_since
        try:
            self._commit_batch(queue, n)
        finally:
            self._committing_since = None

    def _commit_batch(self, queue: deque[Any], n: int) -> None:
        encoder = self._encoder
        encode = encoder.encode
        popleft = queue.popleft
        rows: list[Row] = []
        snapshots: list[PendingSnapshot] = []
        if self._snapshots_taken != self._snapshots_queued:
            for i in range(n):
                item = popleft()
                if type(item) is QueuedSnapshot:
                    self._snapshots_taken += 1
                    snapshots.append((encoder.last_seq, encoder.last_hash, item))
                else:
                    rows.append(encode(item))
                if i % _ENCODE_CHUNK == _ENCODE_CHUNK - 1:
                    time.sleep(0)  # as below
        else:
            for start in range(0, n, _ENCODE_CHUNK):
                rows += [encode(popleft()) for _ in range(min(_ENCODE_CHUNK, n - start))]
                # Encoding holds the GIL; yield it so the trading thread is not held up
                # for a whole switch interval (5 ms) behind a large batch.
                time.sleep(0)
        if queue:  # appended while this batch was taken: about now (stats' commit lag)
            self._queued_since = time.monotonic()
        self._store.write_batch(rows, snapshots)
        if rows:
            self._committed_to(rows[-1])
        else:
            self.commits += 1

    def _write_anchor(self) -> None:
        """Anchor the committed head (if it moved since the last anchor): on the thread
        that commits, after a commit; on open and close; never while a batch is encoded."""
        self._next_anchor_at = time.monotonic() + self._anchor_interval_s
        if self.anchors is None or self._committed_seq == self._anchored_seq:
            return
        seq, digest = self._committed_seq, self._committed_hash
        try:
            self.anchors.write(seq, digest, time.time_ns())
        except OSError as error:
            # the journal itself is intact; the anchor is a check against later edits
            log.error("journal_anchor_failed", **self._log_at, seq=seq, error=repr(error))
            return
        self._anchored_seq = seq


class WriterBacked:
    """What a journal answers straight from its ``GroupCommitWriter`` (``_writer``)."""

    _writer: GroupCommitWriter

    @property
    def commits(self) -> int:
        """Transactions committed (a group batch is one)."""
        return self._writer.commits

    @property
    def last_seq(self) -> int:
        """Seq of the last event appended (committed or still queued)."""
        return self._writer.last_seq

    @property
    def committed_seq(self) -> int:
        """Seq of the last event committed."""
        return self._writer.committed_seq

    def snapshot(self, payload: bytes, ts_ns: int) -> int:
        """Store a snapshot of state covering every event appended so far; return its seq.

        Queued behind those events (``group``) or written now (``fsync_each``).
        """
        return self._writer.snapshot(payload, ts_ns)

    def flush(self) -> int:
        """Wait until everything appended so far is committed; return the committed seq."""
        return self._writer.flush()

    def refuse(self, reason: str) -> None:
        """Accept no more events (those appended before are still committed)."""
        self._writer.refuse(reason)

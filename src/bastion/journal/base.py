"""What every journal backend is to its callers: the ``Journal`` protocol.

The kernel subscribes ``append`` to the bus; the runner records the run
(``begin_run``), takes snapshots and flushes; recovery reads the newest snapshot and
the events after it; the monitor reads ``stats``. ``SqliteJournal`` (the embedded
default) and ``PostgresJournal`` (what HA runs on) both implement it and produce the
same records, hashes included, for the same events.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from bastion.journal._codec import JournalEvent
    from bastion.journal.config import Durability


class StoredSnapshot(NamedTuple):
    """A snapshot as stored: it covers every event with seq <= ``seq``."""

    seq: int
    ts_ns: int
    payload: bytes


class JournalStats(NamedTuple):
    """The journal's figures for monitoring (``Journal.stats``)."""

    last_seq: int
    """Seq of the last event appended (committed or queued)."""
    committed_seq: int
    queue_depth: int
    """Events and snapshots waiting for the writer thread."""
    bytes: int
    """The database file and its write-ahead log (PostgreSQL: this journal's rows)."""
    commit_lag_s: float
    """Age of the oldest event appended and not committed yet (0: none waits)."""
    writable: bool
    """False once closed or after a failed write (``append`` raises)."""
    snapshot_ts_ns: int | None
    """When the newest snapshot was taken (None: never)."""

    @property
    def commit_lag_events(self) -> int:
        return self.last_seq - self.committed_seq


class Journal(Protocol):
    """An append-only, hash-chained event journal open for writing by one writer.

    ``path``: a local path the node derives its own files from (control socket, audit
    trail, anchors); for SQLite the database file itself.
    """

    path: Path
    durability: Durability
    torn_tail: int | None
    migrated_from: int

    @property
    def commits(self) -> int:
        """Transactions committed (a group batch is one)."""
        ...

    @property
    def last_seq(self) -> int: ...

    @property
    def committed_seq(self) -> int: ...

    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run; return the epoch its client order ids carry."""
        ...

    def append(self, event: Any) -> None:
        """Journal one event; ``OperationalError`` once closed or after a failed write."""
        ...

    def snapshot(self, payload: bytes, ts_ns: int) -> int:
        """Store a snapshot covering every event appended so far; return its seq."""
        ...

    def flush(self) -> int:
        """Wait until everything appended is committed; return the committed seq."""
        ...

    def close(self) -> None: ...

    def refuse(self, reason: str) -> None:
        """Accept no more events from now on (``append`` and ``snapshot`` raise
        ``OperationalError`` with ``reason``); those appended before are still committed.
        A deposed HA leader's halt must stay its own, never reach the group's journal."""
        ...

    def stats(self) -> JournalStats: ...

    def read(self, after: int = 0) -> Iterator[tuple[int, JournalEvent]]:
        """Every committed event with seq > ``after``, in order, decoded."""
        ...

    def latest_snapshot(self) -> StoredSnapshot | None:
        """The newest snapshot that checks out, or None."""
        ...

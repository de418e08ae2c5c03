"""The event journal: every state change appended to SQLite (WAL), hash-chained.

One table of events, each with a gapless sequence number, its time, its type, the
order it concerns, a msgpack payload (the tagged event struct, so it decodes back
to the same type) and a hash chained to the previous record (see ``_codec``). The
``runs`` table hands out the run epoch that makes client order ids unique across
restarts. The schema is versioned in ``meta`` and migrated on open (``_schema``).

Durability (``JournalConfig.durability``):

- ``group``: ``append`` only puts the event on a queue. A writer thread owned by
  the journal (started in ``__init__``, joined in ``close``) encodes, chains and
  commits whatever is queued every ``commit_interval_ms``, or as soon as
  ``max_batch`` events wait, with one fsync per batch. A crash loses at most the
  events still queued.
- ``fsync_each``: ``append`` encodes, chains and commits the event with an fsync
  before it returns.

Both produce the same records, hashes included, for the same events.

Snapshots (``snapshot``) bound replay time: a snapshot is queued like an event and
committed in the same transaction as the events before it, so it always covers
exactly the events up to its ``seq``; it carries that event's chain hash and a
digest of its own. The last ``KEEP_SNAPSHOTS`` are kept. ``latest_snapshot``
returns the newest one that checks out.

If the last record is torn (cut mid-write, corrupt), opening the journal for
writing moves it to ``torn_records`` (kept, never deleted), logs
``journal_torn_tail`` and sets ``torn_tail`` to its seq: the chain continues from
the last whole record, so ``verify`` passes again and recovery replays up to it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

import msgspec
import structlog

from bastion.errors import OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    JournalEvent,
    RecordEncoder,
    Row,
    new_decoder,
    record_problem,
    snapshot_digest,
)
from bastion.journal._schema import SCHEMA_VERSION, prepare
from bastion.journal.config import Durability, JournalConfig

__all__ = ["SCHEMA_VERSION", "JournalEvent", "SqliteJournal", "StoredSnapshot"]

log = structlog.get_logger("bastion.journal")

WRITER_THREAD_NAME: Final = "bastion-journal-writer"
_ENCODE_CHUNK: Final = 128
_INSERT: Final = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)"
_COLUMNS: Final = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"
_INSERT_SNAPSHOT: Final = "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)"
_PRUNE_SNAPSHOTS: Final = (
    "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)"
)
_READ_CHUNK: Final = 4096
KEEP_SNAPSHOTS: Final = 3


class StoredSnapshot(NamedTuple):
    """A snapshot as stored: it covers every event with seq <= ``seq``."""

    seq: int
    ts_ns: int
    payload: bytes


class _Snapshot(NamedTuple):
    """A snapshot waiting in the writer's queue among events."""

    ts_ns: int
    payload: bytes


def _lock_exclusively(path: Path) -> IO[str]:
    """Hold ``<journal>.lock`` for as long as the journal is open for writing: two
    processes appending to one journal would fork its chain. The OS releases the
    lock when the process dies, however it dies."""
    lock_file = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise OperationalError(
            f"journal {path} is in use by another bastion process (pid {holder}); "
            "a journal has one writer at a time"
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


class SqliteJournal:
    """Append-only, hash-chained event journal in a SQLite file (WAL mode)."""

    def __init__(
        self,
        path: Path,
        *,
        durability: Durability = "group",
        commit_interval_ms: int = 5,
        max_batch: int = 1024,
    ) -> None:
        if durability not in ("group", "fsync_each"):
            raise ValueError(f"unknown durability {durability!r}")
        self.path = path
        self.durability: Durability = durability
        self.commits = 0
        self.torn_tail: int | None = None
        self._db_lock = threading.Lock()  # one connection, shared by writer and caller
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = _lock_exclusively(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise OperationalError(f"journal {path}: {error}") from error
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # fsync each commit (each batch)
            self.migrated_from = prepare(self._db, path)
            tail = self._db.execute(
                f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT 2"
            ).fetchall()
        except (sqlite3.Error, OperationalError) as error:
            self._db.close()
            self._lock_file.close()
            if isinstance(error, OperationalError):
                raise
            raise OperationalError(f"journal {path}: {error}") from error
        if self.migrated_from not in (0, SCHEMA_VERSION):
            log.info("journal_migrated", path=str(path), from_version=self.migrated_from)
        last_seq, last_hash = 0, GENESIS_HASH
        if tail:
            self.torn_tail = self._set_aside_torn_tail(tail)
            whole = tail[1:] if self.torn_tail is not None else tail[:1]
            if whole:
                last_seq, last_hash = whole[0][0], whole[0][6]
        self._encoder = RecordEncoder(last_seq, last_hash)
        self._base_seq = last_seq
        self._appended = 0
        self._committed_seq = last_seq
        self._refused: str | None = None  # why append is refused (closed, or writes failed)
        self._error: BaseException | None = None
        self._closed = False
        self._queue: deque[Any] = deque()
        self._snapshots_queued = 0
        self._max_batch = max_batch
        self._interval_s = commit_interval_ms / 1000
        self._wake = threading.Event()
        self._committed = threading.Condition()
        self._stopping = False
        self._writer: threading.Thread | None = None
        if durability == "group":
            self._writer = threading.Thread(
                target=self._run_writer, name=WRITER_THREAD_NAME, daemon=False
            )
            self._writer.start()

    @classmethod
    def from_config(cls, path: Path, config: JournalConfig) -> SqliteJournal:
        """A journal at ``path`` (``config.path`` resolved by the caller) as configured."""
        return cls(
            path,
            durability=config.durability,
            commit_interval_ms=config.flush_interval_ms,
            max_batch=config.group_commit_max_events,
        )

    def _set_aside_torn_tail(self, tail: list[Any]) -> int | None:
        """Move a torn last record to ``torn_records``; return its seq (None if whole).

        Snapshots at or after it go too: they were committed with it.
        """
        last = tail[0]
        expected_prev = tail[1][6] if len(tail) > 1 else GENESIS_HASH
        problem = record_problem(last, last[0], expected_prev, new_decoder())
        if problem is None:
            return None
        seq = int(last[0])
        try:
            with self._db_lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT INTO torn_records SELECT seq, ?, ?, ts_ns, type, "
                        "client_order_id, payload, prev_hash, hash FROM events WHERE seq = ?",
                        (time.time_ns(), problem, seq),
                    )
                    self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                    self._db.execute("DELETE FROM snapshots WHERE seq >= ?", (seq,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            self._db.close()
            self._lock_file.close()
            raise OperationalError(f"journal {self.path}: {error}") from error
        log.warning(
            "journal_torn_tail",
            path=str(self.path),
            seq=seq,
            problem=problem,
            note="set aside in torn_records; recovery continues from the last whole record",
        )
        return seq

    # -- writing -----------------------------------------------------------------------
    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run and return its epoch (1, 2, 3…)."""
        try:
            with self._db_lock:
                cursor = self._db.execute(
                    "INSERT INTO runs (node_id, started_ns) VALUES (?, ?)", (node_id, started_ns)
                )
        except sqlite3.Error as error:
            raise OperationalError(f"journal {self.path}: {error}") from error
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @property
    def last_seq(self) -> int:
        """Seq of the last event appended (committed or still queued)."""
        return self._base_seq + self._appended

    @property
    def committed_seq(self) -> int:
        """Seq of the last event committed to the file."""
        return self._committed_seq

    def append(self, event: Any) -> None:
        """Journal one event: queued (``group``) or committed before returning (``fsync_each``).

        Raises ``OperationalError`` once the journal is closed or a write has failed.
        """
        if self._refused is not None:
            raise OperationalError(f"journal {self.path}: {self._refused}") from self._error
        self._appended += 1
        if self._writer is None:
            self._write_now(event)
            return
        queue = self._queue
        queue.append(event)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    def snapshot(self, payload: bytes, ts_ns: int) -> int:
        """Store a snapshot of state covering every event appended so far; return its seq.

        Queued behind those events (``group``) or written now (``fsync_each``).
        """
        if self._refused is not None:
            raise OperationalError(f"journal {self.path}: {self._refused}") from self._error
        seq = self.last_seq
        marker = _Snapshot(ts_ns, payload)
        if self._writer is None:
            try:
                with self._db_lock:
                    self._db.execute("BEGIN")
                    try:
                        self._insert_snapshot(self._db, seq, self._encoder.last_hash, marker)
                        self._db.execute("COMMIT")
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
            except Exception as error:
                self._fail(error)
                raise OperationalError(f"journal {self.path}: {self._refused}") from error
            return seq
        self._snapshots_queued += 1
        self._queue.append(marker)
        self._wake.set()
        return seq

    @staticmethod
    def _insert_snapshot(
        db: sqlite3.Connection, seq: int, event_hash: bytes, marker: _Snapshot
    ) -> None:
        digest = snapshot_digest(seq, event_hash, marker.payload)
        db.execute(_INSERT_SNAPSHOT, (seq, marker.ts_ns, event_hash, marker.payload, digest))
        db.execute(_PRUNE_SNAPSHOTS, (KEEP_SNAPSHOTS,))

    def flush(self) -> int:
        """Wait until everything appended so far is committed; return the committed seq."""
        target = self.last_seq
        if self._writer is None:
            return self._committed_seq
        self._wake.set()
        with self._committed:
            self._committed.wait_for(lambda: self._committed_seq >= target or self._error)
        if self._error is not None:
            raise OperationalError(f"journal {self.path}: {self._refused}") from self._error
        return self._committed_seq

    def close(self) -> None:
        """Commit everything queued, stop the writer thread and close the file."""
        if self._closed:
            return
        self._closed = True
        if self._refused is None:
            self._refused = "journal is closed"
        if self._writer is not None:
            self._stopping = True
            self._wake.set()
            self._writer.join()
        with self._db_lock:
            self._db.close()
        self._lock_file.close()  # releases the lock
        if self._error is not None:
            raise OperationalError(f"journal {self.path}: {self._refused}") from self._error

    def _write_now(self, event: Any) -> None:
        try:
            row = self._encoder.encode(event)
            with self._db_lock:
                self._db.execute(_INSERT, row)  # autocommit: one fsync'd transaction
        except Exception as error:
            self._fail(error)
            raise OperationalError(f"journal {self.path}: {self._refused}") from error
        self._committed_seq = row[0]
        self.commits += 1

    def _run_writer(self) -> None:
        main = threading.main_thread()
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            # read before draining: whatever was appended before close() is in the queue
            stopping = self._stopping or not main.is_alive()
            try:
                self._commit_queued()
            except Exception as error:
                self._fail(error)
                return
            if stopping:
                return

    def _commit_queued(self) -> None:
        queue = self._queue
        n = len(queue)
        if n == 0:
            return
        encoder = self._encoder
        encode = encoder.encode
        popleft = queue.popleft
        rows: list[Row] = []
        snapshots: list[tuple[int, bytes, _Snapshot]] = []
        if self._snapshots_queued:
            for _ in range(n):
                item = popleft()
                if type(item) is _Snapshot:
                    self._snapshots_queued -= 1
                    snapshots.append((encoder.last_seq, encoder.last_hash, item))
                else:
                    rows.append(encode(item))
        else:
            for start in range(0, n, _ENCODE_CHUNK):
                rows += [encode(popleft()) for _ in range(min(_ENCODE_CHUNK, n - start))]
                # Encoding holds the GIL; yield it so the trading thread is not held up
                # for a whole switch interval (5 ms) behind a large batch.
                time.sleep(0)
        db = self._db
        with self._db_lock:
            db.execute("BEGIN")
            try:
                db.executemany(_INSERT, rows)
                for seq, event_hash, marker in snapshots:
                    self._insert_snapshot(db, seq, event_hash, marker)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.commits += 1
        if rows:
            with self._committed:
                self._committed_seq = rows[-1][0]
                self._committed.notify_all()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._refused = f"write failed: {error!r}; the journal accepts no more events"
        log.error("journal_write_failed", path=str(self.path), error=repr(error))
        with self._committed:
            self._committed.notify_all()

    # -- reading -----------------------------------------------------------------------
    def read(self, after: int = 0) -> Iterator[tuple[int, JournalEvent]]:
        """Every committed event with seq > ``after``, in sequence order, decoded.

        A record that does not decode raises ``OperationalError`` naming its seq.
        """
        decoder = new_decoder().decode
        last = after
        while True:
            with self._db_lock:
                rows = self._db.execute(
                    "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, _READ_CHUNK),
                ).fetchall()
            if not rows:
                return
            for seq, payload in rows:
                try:
                    event = decoder(payload)
                except (msgspec.DecodeError, TypeError) as error:
                    raise OperationalError(
                        f"journal {self.path}: record {seq} does not decode ({error}); "
                        "`bastion journal verify` names the damage"
                    ) from error
                yield seq, event
            last = rows[-1][0]

    def latest_snapshot(self) -> StoredSnapshot | None:
        """The newest snapshot whose digest and chain hash check out, or None.

        A damaged one is logged and skipped (an older one, or a full replay, is used).
        """
        with self._db_lock:
            candidates = self._db.execute(
                "SELECT s.seq, s.ts_ns, s.event_hash, s.digest, e.hash "
                "FROM snapshots s LEFT JOIN events e ON e.seq = s.seq ORDER BY s.seq DESC"
            ).fetchall()
        for seq, ts_ns, event_hash, digest, chained in candidates:
            with self._db_lock:
                row = self._db.execute(
                    "SELECT payload FROM snapshots WHERE seq = ?", (seq,)
                ).fetchone()
            payload = row[0] if row is not None else None
            expected = GENESIS_HASH if seq == 0 else chained
            if (
                isinstance(payload, bytes)
                and event_hash == expected
                and digest == snapshot_digest(seq, event_hash, payload)
            ):
                return StoredSnapshot(seq, ts_ns, payload)
            log.error("journal_snapshot_damaged", path=str(self.path), seq=seq)
        return None

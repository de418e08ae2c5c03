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
writing moves it to ``torn_records`` (kept, never deleted), journals a
``JournalTailSetAside`` event, logs ``journal_tail_set_aside`` (error) and sets
``torn_tail`` to its seq: the chain continues from the last whole record, so
``verify`` passes again and recovery replays up to it.

Keys (``JournalKeys``): with an encryption key the file is a SQLCipher database
(``bastion.storage.connect``); with a chain key the chain is HMAC-SHA256, snapshots
are sealed with it, and the chain head is anchored outside the file (``anchors``).
Opening a keyed journal checks all of it first (``_integrity``) and refuses a file
that does not verify with ``IntegrityError`` naming the first forged record.
"""

from __future__ import annotations

import contextlib
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

from bastion.errors import IntegrityError, OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    Chain,
    JournalEvent,
    RecordEncoder,
    Row,
    new_decoder,
    record_problem,
)
from bastion.journal._integrity import check_keying, read_keying, scan, write_keying
from bastion.journal._schema import SCHEMA_VERSION, prepare
from bastion.journal.anchors import AnchorWriter, anchor_path, read_anchors
from bastion.journal.base import JournalStats, StoredSnapshot
from bastion.journal.config import Durability, JournalConfig
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.model.events import JournalTailSetAside
from bastion.storage.connect import DB_ERRORS, connect
from bastion.vault.files import make_private_dir

__all__ = ["SCHEMA_VERSION", "JournalEvent", "JournalStats", "SqliteJournal", "StoredSnapshot"]

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


class _Snapshot(NamedTuple):
    """A snapshot waiting in the writer's queue among events."""

    ts_ns: int
    payload: bytes


def _lock_exclusively(path: Path) -> IO[str]:
    """Hold ``<journal>.lock`` for as long as the journal is open for writing: two
    processes appending to one journal would fork its chain. The OS releases the
    lock when the process dies, however it dies."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    lock_file = open(fd, "a+")  # noqa: SIM115
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
        keys: JournalKeys = PLAINTEXT,
        anchor_interval_s: float = 10.0,
    ) -> None:
        if durability not in ("group", "fsync_each"):
            raise ValueError(f"unknown durability {durability!r}")
        self.path = path
        self.durability: Durability = durability
        self.commits = 0
        self.torn_tail: int | None = None
        self._chain = Chain(keys.chain)
        self._anchors: AnchorWriter | None = None
        self._db_lock = threading.Lock()  # one connection, shared by writer and caller
        try:
            make_private_dir(path.parent)
            self._lock_file = _lock_exclusively(path)
        except OSError as error:
            raise OperationalError(f"journal {path}: {error}") from error
        try:
            self._db = connect(
                path,
                key=keys.encryption,
                isolation_level=None,
                check_same_thread=False,
                what="journal",
            )
        except BaseException as error:
            self._lock_file.close()
            if isinstance(error, DB_ERRORS):
                raise OperationalError(f"journal {path}: {error}") from error
            raise
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # fsync each commit (each batch)
            self.migrated_from = prepare(self._db, path)
            last_seq, last_hash, torn = self._check_integrity(keys.chain)
        except BaseException as error:
            self._db.close()
            self._lock_file.close()
            if isinstance(error, DB_ERRORS):
                raise OperationalError(f"journal {path}: {error}") from error
            raise
        if self.migrated_from not in (0, SCHEMA_VERSION):
            log.info("journal_migrated", path=str(path), from_version=self.migrated_from)
        if torn is not None:
            torn_event = self._set_aside_torn_tail(*torn)
            self.torn_tail = torn_event.first_seq
        self._encoder = RecordEncoder(last_seq, last_hash, self._chain)
        self._base_seq = last_seq
        self._appended = 0
        self._committed_seq = last_seq
        self._refused: str | None = None  # why append is refused (closed, or writes failed)
        self._error: BaseException | None = None
        self._closed = False
        self._queue: deque[Any] = deque()
        # when the queue last went from empty to not (``append``), and the oldest append
        # of the batch the writer is committing: ``stats`` ages the commit lag from them
        self._queued_since = 0.0
        self._committing_since: float | None = None
        self._snapshot_ts_ns = self._newest_snapshot_ts()
        self._snapshots_queued = 0
        self._max_batch = max_batch
        self._interval_s = commit_interval_ms / 1000
        self._wake = threading.Event()
        self._committed = threading.Condition()
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._anchor_interval_s = anchor_interval_s
        self._next_anchor_at = time.monotonic() + anchor_interval_s
        self._committed_hash = last_hash
        self._anchored_seq = -1
        if self._chain.keyed:
            assert keys.chain is not None
            try:
                self._anchors = AnchorWriter(
                    anchor_path(path), keys.chain, written=self._anchors_read
                )
                self._write_anchor()  # the head as found: a later cut is caught against it
            except OSError as error:
                self._db.close()
                self._lock_file.close()
                raise OperationalError(f"journal {path}: anchors: {error}") from error
        if durability == "group":
            self._writer = threading.Thread(
                target=self._run_writer, name=WRITER_THREAD_NAME, daemon=False
            )
            self._writer.start()
        if torn is not None:
            self.append(torn_event)

    @classmethod
    def from_config(
        cls, path: Path, config: JournalConfig, *, keys: JournalKeys = PLAINTEXT
    ) -> SqliteJournal:
        """A journal at ``path`` (``config.path`` resolved by the caller) as configured,
        with the keys ``journal_keys(config, vault)`` resolved."""
        return cls(
            path,
            durability=config.durability,
            commit_interval_ms=config.flush_interval_ms,
            max_batch=config.group_commit_max_events,
            keys=keys,
            anchor_interval_s=config.anchor_interval_s,
        )

    def _check_integrity(
        self, chain_key: bytes | None
    ) -> tuple[int, bytes, tuple[int, str] | None]:
        """Check the file before writing to it; return the last whole record (seq, hash)
        and the torn last record (seq, problem) to set aside, if any.

        A keyed journal is checked whole (chain, snapshots, anchors): a forged, deleted
        or cut record raises ``IntegrityError`` naming it. An unkeyed one only has its
        last record checked, as before keying (its chain proves nothing to an insider).
        """
        db, chain, path = self._db, self._chain, self.path
        events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        anchors_file = anchor_path(path)
        stored = read_keying(db)
        if check_keying(path, stored, chain, events=events, anchors_exist=anchors_file.exists()):
            db.execute("BEGIN IMMEDIATE")
            write_keying(db, chain)
            db.execute("COMMIT")
        self._anchors_read = 0
        if not chain.keyed:
            tail = db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT 2").fetchall()
            if not tail:
                return 0, GENESIS_HASH, None
            expected_prev = tail[1][6] if len(tail) > 1 else GENESIS_HASH
            problem = record_problem(tail[0], tail[0][0], expected_prev, new_decoder())
            if problem is None:
                return tail[0][0], tail[0][6], None
            whole = tail[1] if len(tail) > 1 else None
            last = (whole[0], whole[6]) if whole is not None else (0, GENESIS_HASH)
            return last[0], last[1], (tail[0][0], problem)
        assert chain_key is not None
        anchors = read_anchors(anchors_file, chain_key)
        self._anchors_read = len(anchors)
        if events and not anchors:
            raise IntegrityError(
                f"journal {path}: its anchors ({anchors_file.name}) are missing or empty, "
                "but a keyed journal with events always has some: they were deleted"
            )
        result = scan(db, chain, anchors)
        if result.problem is not None and not result.torn_tail:
            where = f"first bad record seq {result.broken_seq}: " if result.broken_seq else ""
            raise IntegrityError(
                f"journal {path}: {where}{result.problem}; refusing to start from it "
                "(`bastion journal verify` with the key names the damage; restore a backup)"
            )
        if result.snapshot_problem is not None:
            raise IntegrityError(
                f"journal {path}: {result.snapshot_problem}; refusing to start from it"
            )
        last_seq = result.broken_seq - 1 if result.torn_tail and result.broken_seq else None
        if last_seq is None:
            return result.last_seq or 0, result.last_hash, None
        assert result.problem is not None and result.broken_seq is not None
        return last_seq, result.last_hash, (result.broken_seq, result.problem)

    def _set_aside_torn_tail(self, seq: int, problem: str) -> JournalTailSetAside:
        """Move a torn last record to ``torn_records``; return the event that says so.

        Snapshots at or after it go too: they were committed with it.
        """
        try:
            with self._db_lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    size = self._db.execute(
                        "SELECT length(payload) + length(type) + ifnull(length(prev_hash), 0) "
                        "+ ifnull(length(hash), 0) + ifnull(length(client_order_id), 0) + 16 "
                        "FROM events WHERE seq = ?",
                        (seq,),
                    ).fetchone()[0]
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
        except DB_ERRORS as error:
            self._db.close()
            self._lock_file.close()
            raise OperationalError(f"journal {self.path}: {error}") from error
        log.error(
            "journal_tail_set_aside",
            path=str(self.path),
            first_seq=seq,
            last_seq=seq,
            byte_count=size,
            problem=problem,
            note="moved to torn_records; recovery continues from the last whole record",
        )
        return JournalTailSetAside(
            ts_ns=time.time_ns(), first_seq=seq, last_seq=seq, byte_count=size, problem=problem
        )

    # -- anchors -----------------------------------------------------------------------
    def _write_anchor(self) -> None:
        """Anchor the committed head (if it moved since the last anchor).

        Called on the writer thread after a commit, on close, and in ``fsync_each`` mode
        from ``append`` once per ``anchor_interval_s``; never while a batch is encoded.
        """
        self._next_anchor_at = time.monotonic() + self._anchor_interval_s
        if self._anchors is None or self._committed_seq == self._anchored_seq:
            return
        seq, digest = self._committed_seq, self._committed_hash
        try:
            self._anchors.write(seq, digest, time.time_ns())
        except OSError as error:
            # the journal itself is intact; the anchor is a check against later edits
            log.error("journal_anchor_failed", path=str(self.path), seq=seq, error=repr(error))
            return
        self._anchored_seq = seq

    # -- writing -----------------------------------------------------------------------
    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run and return its epoch (1, 2, 3…)."""
        try:
            with self._db_lock:
                cursor = self._db.execute(
                    "INSERT INTO runs (node_id, started_ns) VALUES (?, ?)", (node_id, started_ns)
                )
        except DB_ERRORS as error:
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
        if not queue:
            self._queued_since = time.monotonic()
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
        self._snapshot_ts_ns = ts_ns
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
        if not self._queue:
            self._queued_since = time.monotonic()
        self._queue.append(marker)
        self._wake.set()
        return seq

    def stats(self) -> JournalStats:
        """Where the journal stands (for monitoring; any thread, no lock taken)."""
        committing = self._committing_since
        oldest = (
            committing if committing is not None else (self._queued_since if self._queue else None)
        )
        size = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):  # no WAL right after a checkpoint
                size += path.stat().st_size
        return JournalStats(
            last_seq=self.last_seq,
            committed_seq=self._committed_seq,
            queue_depth=len(self._queue),
            bytes=size,
            commit_lag_s=0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            writable=self._refused is None,
            snapshot_ts_ns=self._snapshot_ts_ns,
        )

    def _newest_snapshot_ts(self) -> int | None:
        try:
            with self._db_lock:
                row = self._db.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()
        except DB_ERRORS:
            return None
        return None if row is None or row[0] is None else int(row[0])

    def _insert_snapshot(
        self, db: sqlite3.Connection, seq: int, event_hash: bytes, marker: _Snapshot
    ) -> None:
        digest = self._chain.seal(seq, event_hash, marker.payload)
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

    def refuse(self, reason: str) -> None:
        """Accept no more events (those appended before are still committed)."""
        if self._refused is None:
            self._refused = reason

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
        if self._anchors is not None:
            if self._error is None:
                self._write_anchor()
            self._anchors.close()
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
        self._committed_hash = row[6]
        self.commits += 1
        if self._anchors is not None and time.monotonic() >= self._next_anchor_at:
            self._write_anchor()

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
            if self._anchors is not None and time.monotonic() >= self._next_anchor_at:
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
        if queue:  # appended while this batch was taken: about now (stats' commit lag)
            self._queued_since = time.monotonic()
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
                self._committed_hash = rows[-1][6]
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
                and digest == self._chain.seal(seq, event_hash, payload)
            ):
                return StoredSnapshot(seq, ts_ns, payload)
            log.error("journal_snapshot_damaged", path=str(self.path), seq=seq)
        return None

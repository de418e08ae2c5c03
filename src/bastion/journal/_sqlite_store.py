"""The SQLite journal's file as its writer uses it: the one-writer lock and the write
transactions (``_writer.Store``), on the journal's one connection and its lock.

A group batch is one transaction (``synchronous=FULL``: one fsync), snapshots in it
after the events they cover, the last ``KEEP_SNAPSHOTS`` kept; ``fsync_each`` commits
one row in autocommit. A failed write is reported as it was raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

from bastion.errors import OperationalError
from bastion.journal._codec import Chain, Row
from bastion.journal._writer import PendingSnapshot

KEEP_SNAPSHOTS: Final = 3
_INSERT: Final = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_SNAPSHOT: Final = "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)"
_PRUNE_SNAPSHOTS: Final = (
    "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)"
)


def lock_exclusively(path: Path) -> IO[str]:
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


class SqliteStore:
    """Writes to the journal's connection ``db``, holding ``lock`` (shared with the
    journal's reads) for each transaction."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, chain: Chain) -> None:
        self._db = db
        self._lock = lock
        self._chain = chain

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        db = self._db
        with self._lock:
            db.execute(begin)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def write_batch(self, rows: list[Row], snapshots: list[PendingSnapshot]) -> None:
        with self._transaction() as db:
            db.executemany(_INSERT, rows)
            for snapshot in snapshots:
                self._insert_snapshot(db, snapshot)

    def write_event(self, row: Row) -> None:
        with self._lock:
            self._db.execute(_INSERT, row)  # autocommit: one fsync'd transaction

    def write_snapshot(self, snapshot: PendingSnapshot) -> None:
        with self._transaction() as db:
            self._insert_snapshot(db, snapshot)

    def _insert_snapshot(self, db: sqlite3.Connection, snapshot: PendingSnapshot) -> None:
        seq, event_hash, marker = snapshot
        digest = self._chain.seal(seq, event_hash, marker.payload)
        db.execute(_INSERT_SNAPSHOT, (seq, marker.ts_ns, event_hash, marker.payload, digest))
        db.execute(_PRUNE_SNAPSHOTS, (KEEP_SNAPSHOTS,))

    def set_aside(self, seq: int, problem: str, now_ns: int) -> int:
        """Move record ``seq`` to ``torn_records`` (noting ``problem`` and ``now_ns``),
        with the snapshots at or after it (they were committed with it); its size."""
        with self._transaction("BEGIN IMMEDIATE") as db:
            size: int = db.execute(
                "SELECT length(payload) + length(type) + ifnull(length(prev_hash), 0) "
                "+ ifnull(length(hash), 0) + ifnull(length(client_order_id), 0) + 16 "
                "FROM events WHERE seq = ?",
                (seq,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO torn_records SELECT seq, ?, ?, ts_ns, type, "
                "client_order_id, payload, prev_hash, hash FROM events WHERE seq = ?",
                (now_ns, problem, seq),
            )
            db.execute("DELETE FROM events WHERE seq = ?", (seq,))
            db.execute("DELETE FROM snapshots WHERE seq >= ?", (seq,))
        return size

    def failing(self, error: BaseException) -> BaseException:
        return error

    def failed(self, error: BaseException) -> None:
        pass

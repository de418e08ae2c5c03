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

If the last record is torn (cut mid-write, corrupt), opening the journal logs
``journal_torn_tail`` and sets ``torn_tail`` to its seq; nothing is deleted.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import structlog

from bastion.errors import OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    JournalEvent,
    RecordEncoder,
    Row,
    new_decoder,
    record_problem,
)
from bastion.journal._schema import SCHEMA_VERSION, prepare
from bastion.journal.config import Durability, JournalConfig

__all__ = ["SCHEMA_VERSION", "JournalEvent", "SqliteJournal"]

log = structlog.get_logger("bastion.journal")

WRITER_THREAD_NAME: Final = "bastion-journal-writer"
_ENCODE_CHUNK: Final = 128
_INSERT: Final = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)"
_COLUMNS: Final = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"


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
            if isinstance(error, OperationalError):
                raise
            raise OperationalError(f"journal {path}: {error}") from error
        if self.migrated_from not in (0, SCHEMA_VERSION):
            log.info("journal_migrated", path=str(path), from_version=self.migrated_from)
        last_seq, last_hash = 0, GENESIS_HASH
        if tail:
            last_seq = tail[0][0]
            last_hash = tail[0][6] if isinstance(tail[0][6], bytes) else GENESIS_HASH
            self.torn_tail = self._check_tail(tail)
        self._encoder = RecordEncoder(last_seq, last_hash)
        self._base_seq = last_seq
        self._appended = 0
        self._committed_seq = last_seq
        self._refused: str | None = None  # why append is refused (closed, or writes failed)
        self._error: BaseException | None = None
        self._closed = False
        self._queue: deque[Any] = deque()
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

    def _check_tail(self, tail: list[Any]) -> int | None:
        last = tail[0]
        expected_prev = tail[1][6] if len(tail) > 1 else GENESIS_HASH
        problem = record_problem(last, last[0], expected_prev, new_decoder())
        if problem is None:
            return None
        log.warning("journal_torn_tail", path=str(self.path), seq=last[0], problem=problem)
        return int(last[0])

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
        encode = self._encoder.encode
        popleft = queue.popleft
        rows: list[Row] = []
        for start in range(0, n, _ENCODE_CHUNK):
            rows += [encode(popleft()) for _ in range(min(_ENCODE_CHUNK, n - start))]
            # Encoding holds the GIL; yield it so the trading thread is not held up for
            # a whole switch interval (5 ms) behind a large batch.
            time.sleep(0)
        db = self._db
        with self._db_lock:
            db.execute("BEGIN")
            try:
                db.executemany(_INSERT, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.commits += 1
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
    def read(self) -> Iterator[tuple[int, JournalEvent]]:
        """Every committed event in sequence order, decoded."""
        decoder = new_decoder()
        with self._db_lock:
            rows = self._db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
        for seq, payload in rows:
            yield seq, decoder.decode(payload)

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

Both produce the same records, hashes included, for the same events. The queue, the
thread and the failure latch are the ``GroupCommitWriter`` (``_writer``) that the
PostgreSQL journal uses too; the file's lock and transactions are ``_sqlite_store``'s.

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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import structlog

from bastion.errors import IntegrityError, OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    Chain,
    JournalEvent,
    RecordEncoder,
    new_decoder,
    record_problem,
)
from bastion.journal._integrity import check_keying, read_keying, scan, write_keying
from bastion.journal._schema import SCHEMA_VERSION, prepare
from bastion.journal._sqlite_store import KEEP_SNAPSHOTS, SqliteStore, lock_exclusively
from bastion.journal._writer import GroupCommitWriter, WriterBacked
from bastion.journal.anchors import AnchorWriter, anchor_path, read_anchors
from bastion.journal.base import JournalStats, StoredSnapshot
from bastion.journal.config import Durability, JournalConfig
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.model.events import JournalTailSetAside
from bastion.storage.connect import DB_ERRORS, connect
from bastion.vault.files import make_private_dir

__all__ = [
    "KEEP_SNAPSHOTS",
    "SCHEMA_VERSION",
    "JournalEvent",
    "JournalStats",
    "SqliteJournal",
    "StoredSnapshot",
]

log = structlog.get_logger("bastion.journal")

WRITER_THREAD_NAME: Final = "bastion-journal-writer"
_COLUMNS: Final = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"
_READ_CHUNK: Final = 4096


class SqliteJournal(WriterBacked):
    """Append-only, hash-chained event journal in a SQLite file (WAL mode)."""

    append: Callable[[Any], None]
    """Journal one event: queued (``group``) or committed before returning (``fsync_each``).
    Raises ``OperationalError`` once the journal is closed or a write has failed. The
    writer's own bound method (``GroupCommitWriter.append``): the order path calls it,
    and a call through this class would add a frame to every event."""

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
        self.torn_tail: int | None = None
        self._chain = Chain(keys.chain)
        self._db_lock = threading.Lock()  # one connection, shared by writer and caller
        try:
            make_private_dir(path.parent)
            self._lock_file = lock_exclusively(path)
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
        self._store = SqliteStore(self._db, self._db_lock, self._chain)
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
        snapshot_ts_ns = self._newest_snapshot_ts()
        anchors: AnchorWriter | None = None
        if self._chain.keyed:
            assert keys.chain is not None
            try:
                anchors = AnchorWriter(anchor_path(path), keys.chain, written=self._anchors_read)
            except OSError as error:
                self._db.close()
                self._lock_file.close()
                raise OperationalError(f"journal {path}: anchors: {error}") from error
        self._writer = GroupCommitWriter(
            self._store,
            RecordEncoder(last_seq, last_hash, self._chain),
            durability=durability,
            commit_interval_ms=commit_interval_ms,
            max_batch=max_batch,
            thread_name=WRITER_THREAD_NAME,
            where=f"journal {path}",
            log_at={"path": str(path)},
            error_text=repr,
            snapshot_ts_ns=snapshot_ts_ns,
            anchors=anchors,
            anchor_interval_s=anchor_interval_s,
        )
        self.append = self._writer.append
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
            size = self._store.set_aside(seq, problem, time.time_ns())
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

    def stats(self) -> JournalStats:
        """Where the journal stands (for monitoring; any thread, no lock taken)."""
        size = 0
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            with contextlib.suppress(OSError):  # no WAL right after a checkpoint
                size += path.stat().st_size
        return self._writer.stats(size)

    def _newest_snapshot_ts(self) -> int | None:
        try:
            with self._db_lock:
                row = self._db.execute("SELECT MAX(ts_ns) FROM snapshots").fetchone()
        except DB_ERRORS:
            return None
        return None if row is None or row[0] is None else int(row[0])

    def close(self) -> None:
        """Commit everything queued, stop the writer thread and close the file."""
        if not self._writer.close():
            return
        with self._db_lock:
            self._db.close()
        self._lock_file.close()  # releases the lock
        self._writer.raise_failure()

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

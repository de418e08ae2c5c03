"""The event journal in PostgreSQL: the same records, chain and snapshots as
``SqliteJournal``, in a database that several machines (an HA group) can reach.

Every table is keyed by the journal's ``name`` (``_pg_schema``). Writing works as in
SQLite, through the same ``GroupCommitWriter`` (``_writer``): ``group`` durability
queues events for a writer thread that commits each batch in one transaction
(snapshots in the same transaction as the events before them, the last
``KEEP_SNAPSHOTS`` kept); ``fsync_each`` commits before ``append`` returns. The
transactions are ``_pg_store``'s; each commit announces its last seq on
``notify_channel(name)`` for tailers.

Fencing (``fence_epoch``): every write transaction first reads the lease row
``SELECT epoch FROM bastion_leases WHERE name = %s FOR SHARE``; unless it is this
writer's epoch the transaction rolls back with ``FencedError``, the journal refuses
every later event and ``on_fenced(error)`` is called once (on the thread that wrote:
the caller hands it to its own loop). Any other failed write (the connection dropped,
the server restarted or stopped answering) refuses every later event too and calls
``on_failed(error)`` once, on the thread that wrote, before the refusal is in force: a
leader must stop sending at once, since no later event can be journaled before its send.
The share lock makes a takeover, which updates that row, wait for a batch in flight, and
every batch after the takeover fail. Without fencing, a session advisory lock per journal
name keeps a second writer out.

Keys: the encryption key seals payloads before they leave the process
(``_pg_records``); the chain key makes the chain HMAC-SHA256 and seals snapshots, as
in SQLite. Anchors of a keyed journal go to ``<path>.anchors`` on this machine and are
checked when present: they catch a tail cut by the database's operator, but only up to
what this machine wrote (another machine's anchors are its own).

Opening checks integrity as SQLite does (keyed: the whole chain; unkeyed: the last
record) and sets aside a last record that fails (``bastion_torn_records``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import psycopg
import structlog

from bastion.errors import FencedError, IntegrityError, OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    Chain,
    JournalEvent,
    RecordEncoder,
    new_decoder,
    record_problem,
)
from bastion.journal._integrity import (
    META_CHAIN,
    META_KEY_CHECK,
    Keying,
    check_keying,
    scan_records,
)
from bastion.journal._pg_records import (
    EVENT,
    RAW_COLUMNS,
    READ_CHUNK,
    SNAPSHOT,
    Sealer,
    check_sealing,
    iter_stored,
    plain_row,
)
from bastion.journal._pg_schema import (
    LEASES_DDL,
    connect,
    describe,
    notify_channel,
    pg_error,
    prepare,
    read_meta,
    write_meta,
)
from bastion.journal._pg_store import KEEP_SNAPSHOTS, Conn, PgStore
from bastion.journal._pg_watchdog import Watchdog
from bastion.journal._writer import GroupCommitWriter, WriterBacked
from bastion.journal.anchors import AnchorWriter, anchor_path, read_anchors
from bastion.journal.base import JournalStats, StoredSnapshot
from bastion.journal.config import Durability
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.model.events import JournalTailSetAside
from bastion.vault.files import make_private_dir

__all__ = ["KEEP_SNAPSHOTS", "LEASES_DDL", "PostgresJournal", "notify_channel"]

log = structlog.get_logger("bastion.journal")

WRITER_THREAD_NAME: Final = "bastion-pg-journal-writer"


def write_marker(path: Path, where: str) -> None:
    """The journal's local path: a small file (0600, in a private directory) naming the
    database journal. The node's control socket and anchors sit beside it, and the
    control channel takes its owner as the node's uid, as for a SQLite file."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as marker:
        marker.write(f"bastion {where}: the events are in the database\n")


class PostgresJournal(WriterBacked):
    """Append-only, hash-chained event journal ``name`` in a PostgreSQL database."""

    append: Callable[[Any], None]
    """Journal one event: queued (``group``) or committed before returning (``fsync_each``).
    Raises ``OperationalError`` (``FencedError`` once fenced) after a failed write. The
    writer's own bound method (``GroupCommitWriter.append``): the order path calls it."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        path: Path,
        password: str | None = None,
        durability: Durability = "group",
        commit_interval_ms: int = 5,
        max_batch: int = 1024,
        keys: JournalKeys = PLAINTEXT,
        anchor_interval_s: float = 10.0,
        statement_timeout_ms: int = 5_000,
        connect_timeout_s: int = 5,
        fence_epoch: int | None = None,
        on_fenced: Callable[[FencedError], None] | None = None,
        on_failed: Callable[[OperationalError], None] | None = None,
    ) -> None:
        if durability not in ("group", "fsync_each"):
            raise ValueError(f"unknown durability {durability!r}")
        self.name = name
        self.path = path
        self.durability: Durability = durability
        self.fence_epoch = fence_epoch
        self.torn_tail: int | None = None
        self._password = password
        self._chain = Chain(keys.chain)
        self._sealer = Sealer(keys.encryption, name)
        self._db_lock = threading.Lock()
        self._db: Conn = connect(
            url,
            password=password,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
        )
        self.where = describe(self._db, name)
        try:
            write_marker(path, self.where)
        except OSError as error:
            self._db.close()
            raise OperationalError(f"{self.where}: local path {path}: {error}") from error
        # the server bounds statements; this bounds a server that never answers
        self._watchdog = Watchdog(self._db, statement_timeout_ms / 1000 + 1.0, self.where)
        self._store = PgStore(
            self._db,
            self._db_lock,
            self._watchdog,
            name=name,
            where=self.where,
            password=password,
            chain=self._chain,
            sealer=self._sealer,
            fence_epoch=fence_epoch,
            on_fenced=on_fenced,
            on_failed=on_failed,
        )
        anchors: AnchorWriter | None = None
        try:
            self.migrated_from = prepare(self._db)
            if fence_epoch is None:
                self._store.lock_writer()
            last_seq, last_hash, torn = self._check_integrity(keys.chain)
            self._store.bytes = self._stored_bytes()
            torn_event = self._set_aside(*torn) if torn is not None else None
            snapshot_ts_ns = self._newest_snapshot_ts()
            if self._chain.keyed:
                assert keys.chain is not None
                anchors = AnchorWriter(anchor_path(path), keys.chain, written=self._anchors_read)
        except psycopg.Error as error:
            self._db.close()
            raise pg_error(self.where, error, password) from None
        except BaseException:
            self._db.close()
            raise
        self._writer = GroupCommitWriter(
            self._store,
            RecordEncoder(last_seq, last_hash, self._chain),
            durability=durability,
            commit_interval_ms=commit_interval_ms,
            max_batch=max_batch,
            thread_name=WRITER_THREAD_NAME,
            where=self.where,
            log_at={"journal": self.where},
            error_text=str,
            snapshot_ts_ns=snapshot_ts_ns,
            anchors=anchors,
            anchor_interval_s=anchor_interval_s,
        )
        self.append = self._writer.append
        if torn_event is not None:
            self.torn_tail = torn_event.first_seq
            self.append(torn_event)

    # -- opening -----------------------------------------------------------------------
    def _check_integrity(
        self, chain_key: bytes | None
    ) -> tuple[int, bytes, tuple[int, str] | None]:
        db, name, chain, sealer = self._db, self.name, self._chain, self._sealer
        count_row = db.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM bastion_events WHERE name = %s", (name,)
        ).fetchone()
        assert count_row is not None
        events, first_seq, last_seq = int(count_row[0]), count_row[1], count_row[2]
        meta = read_meta(db, name)
        check_sealing(db, name, self.where, sealer, meta, events=events)
        anchors_file = anchor_path(self.path)
        stored = Keying(meta.get(META_CHAIN, "sha256"), meta.get(META_KEY_CHECK))
        if check_keying(
            self.where, stored, chain, events=events, anchors_exist=anchors_file.exists()
        ):
            with db.transaction():
                assert chain.key_check is not None
                write_meta(db, name, {META_CHAIN: chain.name, META_KEY_CHECK: chain.key_check})
        self._anchors_read = 0
        decoder = new_decoder()
        if not chain.keyed:
            tail = db.execute(
                f"SELECT {RAW_COLUMNS} FROM bastion_events WHERE name = %s "
                "ORDER BY seq DESC LIMIT 2",
                (name,),
            ).fetchall()
            if not tail:
                return 0, GENESIS_HASH, None
            last = plain_row(tail[0], sealer)
            expected_prev = bytes(tail[1][6]) if len(tail) > 1 else GENESIS_HASH
            problem = record_problem(last, last[0], expected_prev, decoder)
            if problem is None:
                return last[0], last[6], None
            whole = (int(tail[1][0]), bytes(tail[1][6])) if len(tail) > 1 else (0, GENESIS_HASH)
            return whole[0], whole[1], (last[0], problem)
        assert chain_key is not None
        anchors = read_anchors(anchors_file, chain_key)
        self._anchors_read = len(anchors)
        result = scan_records(
            (events, first_seq, last_seq),
            (plain_row(raw, sealer) for raw in iter_stored(db, name)),
            lambda: self._snapshot_rows(db),
            chain,
            anchors,
        )
        if result.problem is not None and not result.torn_tail:
            where = f"first bad record seq {result.broken_seq}: " if result.broken_seq else ""
            raise IntegrityError(
                f"{self.where}: {where}{result.problem}; refusing to start from it "
                "(`bastion journal verify` with the key names the damage)"
            )
        if result.snapshot_problem is not None:
            raise IntegrityError(
                f"{self.where}: {result.snapshot_problem}; refusing to start from it"
            )
        if result.torn_tail and result.broken_seq:
            assert result.problem is not None
            return result.broken_seq - 1, result.last_hash, (result.broken_seq, result.problem)
        return result.last_seq or 0, result.last_hash, None

    def _snapshot_rows(self, db: Conn) -> Iterator[tuple[int, object, object, object, object]]:
        rows = db.execute(
            "SELECT s.seq, s.event_hash, s.payload, s.digest, e.hash FROM bastion_snapshots s "
            "LEFT JOIN bastion_events e ON e.name = s.name AND e.seq = s.seq "
            "WHERE s.name = %s ORDER BY s.seq",
            (self.name,),
        ).fetchall()
        for seq, event_hash, payload, digest, chained in rows:
            plain = self._sealer.open(SNAPSHOT, seq, bytes(payload))
            yield (
                int(seq),
                bytes(event_hash),
                plain,
                bytes(digest),
                None if chained is None else bytes(chained),
            )

    def _stored_bytes(self) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(octet_length(payload) + octet_length(type) + 80), 0) "
            "FROM bastion_events WHERE name = %s",
            (self.name,),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def _set_aside(self, seq: int, problem: str) -> JournalTailSetAside:
        """Move a failing last record to ``bastion_torn_records``; the event that says so."""
        size = self._store.set_aside(seq, problem, time.time_ns())
        log.error(
            "journal_tail_set_aside",
            journal=self.where,
            first_seq=seq,
            last_seq=seq,
            byte_count=size,
            problem=problem,
            note="moved to bastion_torn_records; recovery continues from the last whole record",
        )
        return JournalTailSetAside(
            ts_ns=time.time_ns(), first_seq=seq, last_seq=seq, byte_count=size, problem=problem
        )

    def _newest_snapshot_ts(self) -> int | None:
        row = self._db.execute(
            "SELECT MAX(ts_ns) FROM bastion_snapshots WHERE name = %s", (self.name,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- writing -----------------------------------------------------------------------
    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run; return its epoch: the run number (1, 2, 3…), or with
        fencing the fencing epoch (which then makes client order ids unique)."""
        self._writer.check()
        try:
            with self._db_lock, self._watchdog.armed(), self._db.transaction():
                self._store.check_fence(self._db)
                row = self._db.execute(
                    "SELECT COALESCE(MAX(run), 0) + 1 FROM bastion_runs WHERE name = %s",
                    (self.name,),
                ).fetchone()
                assert row is not None
                run = int(row[0])
                epoch = run if self.fence_epoch is None else self.fence_epoch
                self._db.execute(
                    "INSERT INTO bastion_runs VALUES (%s, %s, %s, %s, %s)",
                    (self.name, run, node_id, started_ns, epoch),
                )
        except FencedError as error:
            self._writer.fail(error)
            raise
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error
        return epoch

    def stats(self) -> JournalStats:
        return self._writer.stats(self._store.bytes)

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close the connection
        (which releases the writer's advisory lock)."""
        if not self._writer.close():
            return
        self._watchdog.close()
        with self._db_lock:
            self._db.close()
        self._writer.raise_failure()

    # -- reading -----------------------------------------------------------------------
    def read(self, after: int = 0) -> Iterator[tuple[int, JournalEvent]]:
        """Every committed event with seq > ``after``, in seq order, decoded."""
        decoder = new_decoder().decode
        last = after
        while True:
            with self._db_lock:
                rows = self._db.execute(
                    "SELECT seq, payload FROM bastion_events WHERE name = %s AND seq > %s "
                    "ORDER BY seq LIMIT %s",
                    (self.name, last, READ_CHUNK),
                ).fetchall()
            if not rows:
                return
            for seq, payload in rows:
                plain = self._sealer.open(EVENT, seq, bytes(payload))
                try:
                    event = decoder(plain)
                except (msgspec.DecodeError, TypeError) as error:
                    raise OperationalError(
                        f"{self.where}: record {seq} does not decode ({error}); "
                        "`bastion journal verify` names the damage"
                    ) from error
                yield seq, event
            last = rows[-1][0]

    def latest_snapshot(self) -> StoredSnapshot | None:
        """The newest snapshot whose digest and chain hash check out, or None."""
        with self._db_lock:
            candidates = list(self._snapshot_rows(self._db))
            ts: dict[int, int] = dict(
                self._db.execute(
                    "SELECT seq, ts_ns FROM bastion_snapshots WHERE name = %s", (self.name,)
                ).fetchall()
            )
        for seq, event_hash, payload, digest, chained in reversed(candidates):
            expected = GENESIS_HASH if seq == 0 else chained
            if (
                isinstance(payload, bytes)
                and isinstance(event_hash, bytes)
                and event_hash == expected
                and digest == self._chain.seal(seq, event_hash, payload)
            ):
                return StoredSnapshot(seq, int(ts[seq]), payload)
            log.error("journal_snapshot_damaged", journal=self.where, seq=seq)
        return None

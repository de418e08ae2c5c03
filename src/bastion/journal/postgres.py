"""The event journal in PostgreSQL: the same records, chain and snapshots as
``SqliteJournal``, in a database that several machines (an HA group) can reach.

Every table is keyed by the journal's ``name`` (``_pg_schema``). Writing works as in
SQLite: ``group`` durability queues events for a writer thread that commits each batch
in one transaction (snapshots in the same transaction as the events before them, the
last ``KEEP_SNAPSHOTS`` kept); ``fsync_each`` commits before ``append`` returns. Each
commit announces its last seq on ``notify_channel(name)`` for tailers.

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
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec
import psycopg
import structlog

from bastion.errors import FencedError, IntegrityError, OperationalError, StorageKeyError
from bastion.journal._codec import (
    GENESIS_HASH,
    Chain,
    JournalEvent,
    RecordEncoder,
    Row,
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
    META_SEAL,
    META_SEAL_CHECK,
    RAW_COLUMNS,
    READ_CHUNK,
    SEAL_NAME,
    SNAPSHOT,
    Sealer,
    iter_stored,
    plain_row,
    stored_row,
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
    writer_lock_key,
)
from bastion.journal._pg_watchdog import Watchdog
from bastion.journal.anchors import AnchorWriter, anchor_path, read_anchors
from bastion.journal.base import JournalStats, StoredSnapshot
from bastion.journal.config import Durability
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.model.events import JournalTailSetAside
from bastion.vault.files import make_private_dir

__all__ = ["KEEP_SNAPSHOTS", "LEASES_DDL", "PostgresJournal", "notify_channel"]

log = structlog.get_logger("bastion.journal")

WRITER_THREAD_NAME: Final = "bastion-pg-journal-writer"
KEEP_SNAPSHOTS: Final = 3
_COPY: Final = (
    "COPY bastion_events (name, seq, ts_ns, type, client_order_id, payload, prev_hash, hash) "
    "FROM STDIN"
)
_INSERT: Final = "INSERT INTO bastion_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
_FENCE: Final = "SELECT epoch FROM bastion_leases WHERE name = %s FOR SHARE"

Conn = psycopg.Connection[tuple[Any, ...]]


class _Snapshot(NamedTuple):
    ts_ns: int
    payload: bytes


def write_marker(path: Path, where: str) -> None:
    """The journal's local path: a small file (0600, in a private directory) naming the
    database journal. The node's control socket and anchors sit beside it, and the
    control channel takes its owner as the node's uid, as for a SQLite file."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as marker:
        marker.write(f"bastion {where}: the events are in the database\n")


class PostgresJournal:
    """Append-only, hash-chained event journal ``name`` in a PostgreSQL database."""

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
        self.commits = 0
        self.torn_tail: int | None = None
        self._on_fenced = on_fenced
        self._on_failed = on_failed
        self._password = password
        self._chain = Chain(keys.chain)
        self._sealer = Sealer(keys.encryption, name)
        self._channel = notify_channel(name)
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
        self._anchors: AnchorWriter | None = None
        try:
            self.migrated_from = prepare(self._db)
            if fence_epoch is None:
                self._lock_writer()
            last_seq, last_hash, torn = self._check_integrity(keys.chain)
            self._bytes = self._stored_bytes()
            torn_event = self._set_aside(*torn) if torn is not None else None
            self._snapshot_ts_ns = self._newest_snapshot_ts()
            if self._chain.keyed:
                assert keys.chain is not None
                self._anchors = AnchorWriter(
                    anchor_path(path), keys.chain, written=self._anchors_read
                )
        except psycopg.Error as error:
            self._db.close()
            raise pg_error(self.where, error, password) from None
        except BaseException:
            self._db.close()
            raise
        self._encoder = RecordEncoder(last_seq, last_hash, self._chain)
        self._base_seq = last_seq
        self._appended = 0
        self._committed_seq = last_seq
        self._committed_hash = last_hash
        self._refused: str | None = None
        self._error: BaseException | None = None
        self._failure_told = False
        self._closed = False
        self._queue: deque[Any] = deque()
        self._queued_since = 0.0
        self._committing_since: float | None = None
        self._snapshots_queued = 0
        self._max_batch = max_batch
        self._interval_s = commit_interval_ms / 1000
        self._wake = threading.Event()
        self._committed = threading.Condition()
        self._stopping = False
        self._anchor_interval_s = anchor_interval_s
        self._next_anchor_at = time.monotonic() + anchor_interval_s
        self._anchored_seq = -1
        self._writer: threading.Thread | None = None
        if self._anchors is not None:
            self._write_anchor()
        if durability == "group":
            self._writer = threading.Thread(
                target=self._run_writer, name=WRITER_THREAD_NAME, daemon=False
            )
            self._writer.start()
        if torn_event is not None:
            self.torn_tail = torn_event.first_seq
            self.append(torn_event)

    # -- opening -----------------------------------------------------------------------
    def _lock_writer(self) -> None:
        row = self._db.execute(
            "SELECT pg_try_advisory_lock(%s)", (writer_lock_key(self.name),)
        ).fetchone()
        if row is None or not row[0]:
            raise OperationalError(
                f"{self.where} is in use by another bastion process; a journal has one "
                "writer at a time (an HA group fences its writers with an epoch instead)"
            )

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
        self._check_sealing(meta, events)
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

    def _check_sealing(self, meta: dict[str, str], events: int) -> None:
        stored_check = meta.get(META_SEAL_CHECK)
        sealer = self._sealer
        if stored_check is not None:
            if not sealer.sealed:
                raise StorageKeyError(f"{self.where} is encrypted: its encryption key is needed")
            if stored_check != sealer.key_check:
                raise StorageKeyError(
                    f"{self.where}: wrong encryption key (the journal's key check value does "
                    "not match the key given)"
                )
            return
        if sealer.sealed:
            if events:
                raise StorageKeyError(
                    f"{self.where} holds plaintext records but an encryption key is "
                    "configured (start a new journal name for an encrypted journal)"
                )
            assert sealer.key_check is not None
            with self._db.transaction():
                write_meta(
                    self._db, self.name, {META_SEAL: SEAL_NAME, META_SEAL_CHECK: sealer.key_check}
                )

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
        db = self._db
        with db.transaction():
            self._check_fence(db)
            row = db.execute(
                "SELECT octet_length(payload) + octet_length(type) + 80 FROM bastion_events "
                "WHERE name = %s AND seq = %s",
                (self.name, seq),
            ).fetchone()
            size = 0 if row is None else int(row[0])
            db.execute(
                "INSERT INTO bastion_torn_records SELECT name, seq, %s, %s, ts_ns, type, "
                "client_order_id, payload, prev_hash, hash FROM bastion_events "
                "WHERE name = %s AND seq = %s",
                (time.time_ns(), problem, self.name, seq),
            )
            db.execute("DELETE FROM bastion_events WHERE name = %s AND seq = %s", (self.name, seq))
            db.execute(
                "DELETE FROM bastion_snapshots WHERE name = %s AND seq >= %s", (self.name, seq)
            )
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

    # -- fencing -----------------------------------------------------------------------
    def _check_fence(self, db: Conn) -> None:
        """Inside a write transaction: refuse unless the lease still holds our epoch."""
        if self.fence_epoch is None:
            return
        row = db.execute(_FENCE, (self.name,)).fetchone()
        current = None if row is None else int(row[0])
        if current != self.fence_epoch:
            raise FencedError(
                f"{self.where}: fenced: this writer's epoch is {self.fence_epoch} but the "
                f"lease's current epoch is {current}; another node leads, nothing was written"
            )

    # -- anchors -----------------------------------------------------------------------
    def _write_anchor(self) -> None:
        self._next_anchor_at = time.monotonic() + self._anchor_interval_s
        if self._anchors is None or self._committed_seq == self._anchored_seq:
            return
        seq, digest = self._committed_seq, self._committed_hash
        try:
            self._anchors.write(seq, digest, time.time_ns())
        except OSError as error:
            log.error("journal_anchor_failed", journal=self.where, seq=seq, error=repr(error))
            return
        self._anchored_seq = seq

    # -- writing -----------------------------------------------------------------------
    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run; return its epoch: the run number (1, 2, 3…), or with
        fencing the fencing epoch (which then makes client order ids unique)."""
        self._refuse_if_failed()
        try:
            with self._db_lock, self._watchdog.armed(), self._db.transaction():
                self._check_fence(self._db)
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
            self._fail(error)
            raise
        except psycopg.Error as error:
            raise pg_error(self.where, error, self._password) from error
        return epoch

    @property
    def last_seq(self) -> int:
        return self._base_seq + self._appended

    @property
    def committed_seq(self) -> int:
        return self._committed_seq

    def _refuse_if_failed(self) -> None:
        if self._refused is not None:
            if isinstance(self._error, FencedError):
                raise FencedError(f"{self.where}: {self._refused}") from self._error
            raise OperationalError(f"{self.where}: {self._refused}") from self._error

    def append(self, event: Any) -> None:
        """Journal one event: queued (``group``) or committed before returning (``fsync_each``).

        Raises ``OperationalError`` (``FencedError`` once fenced) after a failed write."""
        self._refuse_if_failed()
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
        """Store a snapshot covering every event appended so far; return its seq."""
        self._refuse_if_failed()
        seq = self.last_seq
        marker = _Snapshot(ts_ns, payload)
        self._snapshot_ts_ns = ts_ns
        if self._writer is None:
            try:
                with self._db_lock, self._watchdog.armed(), self._db.transaction():
                    self._check_fence(self._db)
                    self._insert_snapshot(self._db, seq, self._encoder.last_hash, marker)
            except Exception as error:
                self._fail(error)
                self._refuse_if_failed()
            return seq
        self._snapshots_queued += 1
        if not self._queue:
            self._queued_since = time.monotonic()
        self._queue.append(marker)
        self._wake.set()
        return seq

    def _insert_snapshot(self, db: Conn, seq: int, event_hash: bytes, marker: _Snapshot) -> None:
        digest = self._chain.seal(seq, event_hash, marker.payload)
        sealed = self._sealer.seal(SNAPSHOT, seq, marker.payload)
        db.execute(
            "INSERT INTO bastion_snapshots VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name, seq) DO UPDATE SET ts_ns = EXCLUDED.ts_ns, "
            "event_hash = EXCLUDED.event_hash, payload = EXCLUDED.payload, "
            "digest = EXCLUDED.digest",
            (self.name, seq, marker.ts_ns, event_hash, sealed, digest),
        )
        db.execute(
            "DELETE FROM bastion_snapshots WHERE name = %s AND seq NOT IN (SELECT seq FROM "
            "bastion_snapshots WHERE name = %s ORDER BY seq DESC LIMIT %s)",
            (self.name, self.name, KEEP_SNAPSHOTS),
        )

    def stats(self) -> JournalStats:
        committing = self._committing_since
        oldest = (
            committing if committing is not None else (self._queued_since if self._queue else None)
        )
        return JournalStats(
            last_seq=self.last_seq,
            committed_seq=self._committed_seq,
            queue_depth=len(self._queue),
            bytes=self._bytes,
            commit_lag_s=0.0 if oldest is None else max(0.0, time.monotonic() - oldest),
            writable=self._refused is None,
            snapshot_ts_ns=self._snapshot_ts_ns,
        )

    def flush(self) -> int:
        target = self.last_seq
        if self._writer is None:
            return self._committed_seq
        self._wake.set()
        with self._committed:
            self._committed.wait_for(lambda: self._committed_seq >= target or self._error)
        if self._error is not None:
            self._refuse_if_failed()
        return self._committed_seq

    def refuse(self, reason: str) -> None:
        """Accept no more events (those appended before are still committed)."""
        if self._refused is None:
            self._refused = reason

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close the connection
        (which releases the writer's advisory lock)."""
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
        self._watchdog.close()
        with self._db_lock:
            self._db.close()
        if self._error is not None:
            self._refuse_if_failed()

    def _write_now(self, event: Any) -> None:
        try:
            row = self._encoder.encode(event)
            with self._db_lock, self._watchdog.armed(), self._db.transaction():
                self._check_fence(self._db)
                self._db.execute(_INSERT, (self.name, *stored_row(row, self._sealer)))
                self._db.execute("SELECT pg_notify(%s, %s)", (self._channel, str(row[0])))
        except Exception as error:
            self._fail(error)
            self._refuse_if_failed()
        self._committed_to(row, len(row[4]) + len(row[2]) + 80)
        if self._anchors is not None and time.monotonic() >= self._next_anchor_at:
            self._write_anchor()

    def _committed_to(self, last: Row, size: int) -> None:
        with self._committed:
            self._committed_seq = last[0]
            self._committed_hash = last[6]
            self._committed.notify_all()
        self._bytes += size
        self.commits += 1

    def _run_writer(self) -> None:
        main = threading.main_thread()
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
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
        n = len(self._queue)
        if n == 0:
            return
        self._committing_since = self._queued_since
        try:
            self._commit_batch(n)
        finally:
            self._committing_since = None

    def _commit_batch(self, n: int) -> None:
        encoder, queue, sealer, name = self._encoder, self._queue, self._sealer, self.name
        rows: list[Row] = []
        snapshots: list[tuple[int, bytes, _Snapshot]] = []
        for i in range(n):
            item = queue.popleft()
            if type(item) is _Snapshot:
                self._snapshots_queued -= 1
                snapshots.append((encoder.last_seq, encoder.last_hash, item))
            else:
                rows.append(encoder.encode(item))
            if i % 128 == 127:
                time.sleep(0)  # encoding holds the GIL: let the trading thread in
        if queue:
            self._queued_since = time.monotonic()
        db = self._db
        size = 0
        with self._db_lock, self._watchdog.armed(), db.transaction():
            self._check_fence(db)
            if rows:
                with db.cursor() as cursor, cursor.copy(_COPY) as copy:
                    for row in rows:
                        stored = stored_row(row, sealer)
                        size += len(stored[4]) + len(stored[2]) + 80
                        copy.write_row((name, *stored))
            for seq, event_hash, marker in snapshots:
                self._insert_snapshot(db, seq, event_hash, marker)
            if rows:
                db.execute("SELECT pg_notify(%s, %s)", (self._channel, str(rows[-1][0])))
        if rows:
            self._committed_to(rows[-1], size)
        else:
            self.commits += 1

    def _fail(self, error: BaseException) -> None:
        if self._watchdog.fired:
            error = OperationalError(
                f"{self.where}: the database did not answer within "
                f"{self._watchdog.limit_s:g} s (stalled or partitioned): {error}"
            )
        elif isinstance(error, psycopg.Error):
            error = pg_error(self.where, error, self._password)
        if not isinstance(error, FencedError) and not self._failure_told:
            self._failure_told = True  # one call, of either kind
            if self._on_failed is not None:
                failed = error if isinstance(error, OperationalError) else None
                self._on_failed(failed or OperationalError(f"{self.where}: {error!r}"))
        self._error = error
        self._refused = f"write failed: {error}; the journal accepts no more events"
        if isinstance(error, FencedError):
            log.critical("journal_fenced", journal=self.where, error=str(error))
        else:
            log.error("journal_write_failed", journal=self.where, error=repr(error))
        with self._committed:
            self._committed.notify_all()
        if isinstance(error, FencedError) and not self._failure_told:
            self._failure_told = True
            if self._on_fenced is not None:
                self._on_fenced(error)

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

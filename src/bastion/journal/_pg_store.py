"""The PostgreSQL journal's writes: its writer's transactions (``_writer.Store``), the
advisory lock that keeps a second unfenced writer out, and setting a bad last record
aside when the journal opens.

Every write transaction first checks the fence (``check_fence``: the lease row read
``FOR SHARE``, so a takeover waits for the transaction in flight and every one after it
fails). The writer's also run under the watchdog (``_pg_watchdog``) and announce their
last seq on ``notify_channel(name)`` for tailers; a group batch goes in with ``COPY``.

A failed write is reported as a stalled server when the watchdog fired, as
``pg_error`` (password scrubbed) for a psycopg error, as itself otherwise. It is told
once, of either kind: ``on_failed`` before the journal's refusal is in force (a leader
must stop sending at once), ``on_fenced`` after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import psycopg

from bastion.errors import FencedError, OperationalError
from bastion.journal._codec import Chain, Row
from bastion.journal._pg_records import SNAPSHOT, Sealer, stored_row
from bastion.journal._pg_schema import notify_channel, pg_error, writer_lock_key
from bastion.journal._pg_watchdog import Watchdog
from bastion.journal._writer import PendingSnapshot

KEEP_SNAPSHOTS: Final = 3
_COPY: Final = (
    "COPY bastion_events (name, seq, ts_ns, type, client_order_id, payload, prev_hash, hash) "
    "FROM STDIN"
)
_INSERT: Final = "INSERT INTO bastion_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
_FENCE: Final = "SELECT epoch FROM bastion_leases WHERE name = %s FOR SHARE"
_NOTIFY: Final = "SELECT pg_notify(%s, %s)"

Conn = psycopg.Connection[tuple[Any, ...]]


class PgStore:
    """Journal ``name``'s writes on ``db`` (``lock`` held), fenced by ``fence_epoch``."""

    def __init__(
        self,
        db: Conn,
        lock: threading.Lock,
        watchdog: Watchdog,
        *,
        name: str,
        where: str,
        password: str | None,
        chain: Chain,
        sealer: Sealer,
        fence_epoch: int | None,
        on_fenced: Callable[[FencedError], None] | None,
        on_failed: Callable[[OperationalError], None] | None,
    ) -> None:
        self._db = db
        self._lock = lock
        self._watchdog = watchdog
        self._name = name
        self._where = where
        self._password = password
        self._chain = chain
        self._sealer = sealer
        self._channel = notify_channel(name)
        self._fence_epoch = fence_epoch
        self._on_fenced = on_fenced
        self._on_failed = on_failed
        self._failure_told = False
        self.bytes = 0
        """What this journal's rows take (as ``stats`` counts them), kept up by each commit."""

    def lock_writer(self) -> None:
        """Without fencing: hold the session advisory lock of this journal's name, or
        refuse (another process writes it)."""
        row = self._db.execute(
            "SELECT pg_try_advisory_lock(%s)", (writer_lock_key(self._name),)
        ).fetchone()
        if row is None or not row[0]:
            raise OperationalError(
                f"{self._where} is in use by another bastion process; a journal has one "
                "writer at a time (an HA group fences its writers with an epoch instead)"
            )

    def check_fence(self, db: Conn) -> None:
        """Inside a write transaction: refuse unless the lease still holds our epoch."""
        if self._fence_epoch is None:
            return
        row = db.execute(_FENCE, (self._name,)).fetchone()
        current = None if row is None else int(row[0])
        if current != self._fence_epoch:
            raise FencedError(
                f"{self._where}: fenced: this writer's epoch is {self._fence_epoch} but the "
                f"lease's current epoch is {current}; another node leads, nothing was written"
            )

    def set_aside(self, seq: int, problem: str, now_ns: int) -> int:
        """Move record ``seq`` to ``bastion_torn_records`` (noting ``problem`` and
        ``now_ns``), with the snapshots at or after it; its size as ``bytes`` counts it."""
        db, name = self._db, self._name
        with db.transaction():
            self.check_fence(db)
            row = db.execute(
                "SELECT octet_length(payload) + octet_length(type) + 80 FROM bastion_events "
                "WHERE name = %s AND seq = %s",
                (name, seq),
            ).fetchone()
            size = 0 if row is None else int(row[0])
            db.execute(
                "INSERT INTO bastion_torn_records SELECT name, seq, %s, %s, ts_ns, type, "
                "client_order_id, payload, prev_hash, hash FROM bastion_events "
                "WHERE name = %s AND seq = %s",
                (now_ns, problem, name, seq),
            )
            db.execute("DELETE FROM bastion_events WHERE name = %s AND seq = %s", (name, seq))
            db.execute("DELETE FROM bastion_snapshots WHERE name = %s AND seq >= %s", (name, seq))
        return size

    def write_batch(self, rows: list[Row], snapshots: list[PendingSnapshot]) -> None:
        db, sealer, name = self._db, self._sealer, self._name
        size = 0
        with self._lock, self._watchdog.armed(), db.transaction():
            self.check_fence(db)
            if rows:
                with db.cursor() as cursor, cursor.copy(_COPY) as copy:
                    for row in rows:
                        stored = stored_row(row, sealer)
                        size += len(stored[4]) + len(stored[2]) + 80
                        copy.write_row((name, *stored))
            for snapshot in snapshots:
                self._insert_snapshot(db, snapshot)
            if rows:
                db.execute(_NOTIFY, (self._channel, str(rows[-1][0])))
        self.bytes += size

    def write_event(self, row: Row) -> None:
        db = self._db
        stored = stored_row(row, self._sealer)
        with self._lock, self._watchdog.armed(), db.transaction():
            self.check_fence(db)
            db.execute(_INSERT, (self._name, *stored))
            db.execute(_NOTIFY, (self._channel, str(row[0])))
        self.bytes += len(stored[4]) + len(stored[2]) + 80  # as stored, as a batch counts

    def write_snapshot(self, snapshot: PendingSnapshot) -> None:
        db = self._db
        with self._lock, self._watchdog.armed(), db.transaction():
            self.check_fence(db)
            self._insert_snapshot(db, snapshot)

    def _insert_snapshot(self, db: Conn, snapshot: PendingSnapshot) -> None:
        seq, event_hash, marker = snapshot
        digest = self._chain.seal(seq, event_hash, marker.payload)
        sealed = self._sealer.seal(SNAPSHOT, seq, marker.payload)
        db.execute(
            "INSERT INTO bastion_snapshots VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name, seq) DO UPDATE SET ts_ns = EXCLUDED.ts_ns, "
            "event_hash = EXCLUDED.event_hash, payload = EXCLUDED.payload, "
            "digest = EXCLUDED.digest",
            (self._name, seq, marker.ts_ns, event_hash, sealed, digest),
        )
        db.execute(
            "DELETE FROM bastion_snapshots WHERE name = %s AND seq NOT IN (SELECT seq FROM "
            "bastion_snapshots WHERE name = %s ORDER BY seq DESC LIMIT %s)",
            (self._name, self._name, KEEP_SNAPSHOTS),
        )

    def failing(self, error: BaseException) -> BaseException:
        if self._watchdog.fired:
            error = OperationalError(
                f"{self._where}: the database did not answer within "
                f"{self._watchdog.limit_s:g} s (stalled or partitioned): {error}"
            )
        elif isinstance(error, psycopg.Error):
            error = pg_error(self._where, error, self._password)
        if not isinstance(error, FencedError) and not self._failure_told:
            self._failure_told = True  # one call, of either kind
            if self._on_failed is not None:
                failed = error if isinstance(error, OperationalError) else None
                self._on_failed(failed or OperationalError(f"{self._where}: {error!r}"))
        return error

    def failed(self, error: BaseException) -> None:
        if isinstance(error, FencedError) and not self._failure_told:
            self._failure_told = True
            if self._on_fenced is not None:
                self._on_fenced(error)

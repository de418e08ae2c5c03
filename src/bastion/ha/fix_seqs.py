"""Outgoing FIX sequence numbers shared by the members of an HA group, reserved in
blocks in PostgreSQL.

Each member keeps its own FIX session store, so a new leader does not know the
session's next outgoing MsgSeqNum; logging on with a lower one gets "MsgSeqNum too
low" and a Logout. Instead of a database round trip per message, the leader reserves
numbers in blocks (``bastion_fix_seqs``: one row per group and session, the highest
number any leader may have used, and the epoch that reserved it):

- at its first logon (``SenderSeqBlock.begin``) it raises its store's next outgoing
  number to ``max(its own, reserved_through + 1)`` and reserves a block above it;
- a worker thread reserves the next block once half of the current one is used;
- a number past the reservation waits for it, bounded (``wait_ms``), then fails
  (``SequenceUnavailable``: the message is neither stored nor sent).

Every reservation is fenced like the journal: in the same transaction it reads the
lease row ``FOR SHARE`` and fails (``FencedError``) unless the epoch is still the
writer's. A new leader's numbers are therefore above every number an older leader
may have sent: the venue sees a gap, asks for a resend, and the node answers with a
SequenceReset-GapFill (it never resends messages stored before its logon).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import psycopg
import structlog

from bastion.errors import FencedError, OperationalError
from bastion.journal._pg_schema import LEASES_DDL, connect, pg_error

log = structlog.get_logger("bastion.ha.fix_seqs")

BLOCK: Final = 10_000
"""Numbers reserved at a time."""
TABLE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bastion_fix_seqs (name text NOT NULL, "
    "session_key text NOT NULL, reserved_through bigint NOT NULL, epoch bigint NOT NULL, "
    "PRIMARY KEY (name, session_key))"
)
_FENCE: Final = "SELECT epoch FROM bastion_leases WHERE name = %s FOR SHARE"
_READ: Final = (
    "SELECT reserved_through FROM bastion_fix_seqs WHERE name = %s AND session_key = %s FOR UPDATE"
)
_WRITE: Final = (
    "INSERT INTO bastion_fix_seqs VALUES (%s, %s, %s, %s) ON CONFLICT (name, session_key) "
    "DO UPDATE SET reserved_through = EXCLUDED.reserved_through, epoch = EXCLUDED.epoch"
)


class SequenceUnavailable(OperationalError):
    """An outgoing FIX sequence number is not reserved (the database did not confirm a
    block in time, or this member was deposed): nothing was sent with it."""


class SeqReservations:
    """Group ``group``'s reservations under ``epoch``, on one connection of its own
    (used by one thread at a time: the methods hold a lock)."""

    def __init__(
        self,
        *,
        url: str,
        password: str | None,
        group: str,
        epoch: int,
        block: int = BLOCK,
        timeout_ms: int = 1_000,
    ) -> None:
        self.group = group
        self.epoch = epoch
        self.block = block
        self.timeout_ms = timeout_ms
        self._url = url
        self._password = password
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SeqReservations(group={self.group!r}, epoch={self.epoch})"

    def reserve(self, session_key: str, from_seq: int) -> tuple[int, int]:
        """Reserve a block for ``session_key`` starting at ``from_seq`` or above every
        number reserved before; ``(first, last)`` of the block. ``FencedError`` once the
        epoch is no longer the group's; ``OperationalError`` if the database failed."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    row = conn.execute(_FENCE, (self.group,)).fetchone()
                    current = None if row is None else int(row[0])
                    if current != self.epoch:
                        raise FencedError(
                            f"HA group '{self.group}': FIX sequence numbers not reserved: "
                            f"this member's epoch is {self.epoch} but the lease's is {current}"
                        )
                    found = conn.execute(_READ, (self.group, session_key)).fetchone()
                    reserved = 0 if found is None else int(found[0])
                    first = max(from_seq, reserved + 1)
                    last = first + self.block - 1
                    conn.execute(_WRITE, (self.group, session_key, last, self.epoch))
            except psycopg.Error as error:
                self._drop()
                raise pg_error(
                    f"HA group '{self.group}': FIX sequence reservation", error, self._password
                ) from None
        log.info(
            "fix_seqs_reserved",
            group=self.group,
            session=session_key,
            epoch=self.epoch,
            first=first,
            last=last,
            previously_reserved=reserved,
        )
        return first, last

    def session(self, session_key: str, *, wait_ms: int | None = None) -> SenderSeqBlock:
        """The block keeper of one FIX session."""
        return SenderSeqBlock(self, session_key, wait_ms=wait_ms or self.timeout_ms)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = connect(
            self._url,
            password=self._password,
            connect_timeout_s=2,
            statement_timeout_ms=self.timeout_ms,
            application_name="bastion-ha-fix-seqs",
        )
        try:
            conn.execute(LEASES_DDL)
            conn.execute(TABLE_DDL)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            pass  # another member created it at the same moment
        except psycopg.Error as error:
            conn.close()
            raise pg_error(f"HA group '{self.group}'", error, self._password) from None
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("fix_seqs_close_failed", group=self.group)


class SenderSeqBlock:
    """One FIX session's reserved outgoing numbers: ``begin`` before the first logon,
    then ``check`` before each number is used (the session store calls it)."""

    def __init__(self, reservations: SeqReservations, session_key: str, *, wait_ms: int) -> None:
        self.reservations = reservations
        self.session_key = session_key
        self.wait_s = wait_ms / 1000
        self.through = 0
        """The last number reserved (0: none yet)."""
        self.failures = 0
        self._refill_at = 0
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def begin(self, next_seq: int) -> int:
        """Reserve the first block (blocking: call it off the loop); the number the
        session must send next: ``max(next_seq, every number reserved before + 1)``."""
        first, last = self.reservations.reserve(self.session_key, next_seq)
        self._reserved(last)
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._refill_loop, name=f"fix-seqs-{self.session_key}", daemon=True
            )
            self._worker.start()
        return first

    def check(self, seq: int) -> None:
        """Before ``seq`` is used: at once when reserved (the next block is asked for
        once half of this one is used); else wait, bounded, for the next block, then
        ``SequenceUnavailable``."""
        if seq <= self._refill_at:
            return
        self._wake.set()
        if seq <= self.through:
            return
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while seq > self.through:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    raise SequenceUnavailable(
                        f"FIX session {self.session_key}: MsgSeqNum {seq} is past the "
                        f"reserved {self.through} and no new block was confirmed in "
                        f"{self.wait_s:g} s: not sent"
                    )
                self._wake.set()
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5)

    def _reserved(self, last: int) -> None:
        block = self.reservations.block
        with self._cond:
            self.through = max(self.through, last)
            self._refill_at = self.through - block // 2
            self._cond.notify_all()

    def _refill_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                _first, last = self.reservations.reserve(self.session_key, self.through + 1)
            except FencedError as error:
                log.critical("fix_seqs_fenced", session=self.session_key, error=str(error))
                self._stop.set()
                with self._cond:
                    self._cond.notify_all()
                return
            except OperationalError as error:
                self.failures += 1
                log.error("fix_seqs_reserve_failed", session=self.session_key, error=str(error))
                self._stop.wait(0.05)
                self._wake.set()  # try again
                continue
            self._reserved(last)

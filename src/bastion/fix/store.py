"""Persistent FIX session state: sequence numbers and the messages sent.

One SQLite file (WAL) can hold many sessions, keyed by
``BeginString:SenderCompID->TargetCompID``. Each outgoing application message is
stored with its sequence number in the same transaction that advances the
next-sender number, before it is written to the socket, so a restarted process
resumes the session where it was and can answer a ResendRequest for anything it
ever sent. Admin messages are not stored: a resend replaces them with a
SequenceReset-GapFill, as the FIX specification says.

``synchronous=NORMAL``: a committed message survives the process being killed;
a power loss may lose the last few, which the counterparty's ResendRequest (or
our own gap detection) recovers. WAL checkpoints (the only fsyncs) run on a
background thread (``bastion.storage.wal``), never inside a commit.

With an ``encryption_key`` the file is encrypted (SQLCipher, ``bastion.storage.connect``):
it holds every order sent, with the account and prices. Its files are 0600.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bastion.errors import ConfigError, StorageKeyError
from bastion.storage.connect import DB_DATABASE_ERRORS, connect
from bastion.storage.wal import WalCheckpointer
from bastion.vault.files import make_private_dir

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fix_sessions (
    session_key TEXT PRIMARY KEY,
    next_sender_seq INTEGER NOT NULL,
    next_target_seq INTEGER NOT NULL,
    creation_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_messages (
    session_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (session_key, seq)
) WITHOUT ROWID;
"""


class SessionStoreError(ConfigError):
    """The session store file is unusable (wrong schema, not a database): the user points
    ``store_path`` at a good file or moves the bad one aside. The message names the file."""


class _StoreFile:
    """One open store file, shared by every session of this process that uses it.

    Sessions of one acceptor share a file; with one connection, a batch opened by one
    session takes in what another session writes meanwhile (a fill reported to a
    second account while the first account's order is processed), instead of the two
    waiting on each other's write lock.
    """

    def __init__(self, path: Path, key: bytes | None) -> None:
        self.path = path
        self.key = key
        self.db = _open(path, key)
        self.checkpointer = WalCheckpointer(path, self.db, key=key)
        self.lock = threading.RLock()
        self.in_batch = False
        self.dirty: set[SqliteSessionStore] = set()
        self.users = 0


_FILES: dict[Path, _StoreFile] = {}
_FILES_LOCK = threading.Lock()


def _acquire(path: Path, encryption_key: bytes | None) -> _StoreFile:
    key = path.resolve()
    with _FILES_LOCK:
        shared = _FILES.get(key)
        if shared is None:
            shared = _FILES[key] = _StoreFile(path, encryption_key)
        elif shared.key != encryption_key:
            raise StorageKeyError(
                f"FIX session store {path} is open with another encryption key in this process"
            )
        shared.users += 1
        return shared


def _release(shared: _StoreFile) -> None:
    with _FILES_LOCK:
        shared.users -= 1
        if shared.users == 0:
            _FILES.pop(shared.path.resolve(), None)
            shared.checkpointer.stop()
            with shared.lock:
                shared.db.close()


class SqliteSessionStore:
    """Sequence numbers and sent messages of one FIX session, in SQLite."""

    def __init__(
        self, path: Path, session_key: str, *, now_ns: int, encryption_key: bytes | None = None
    ) -> None:
        self.path = path
        self.session_key = session_key
        make_private_dir(path.parent)
        self._file = _acquire(path, encryption_key)
        self._db = self._file.db
        self._lock = self._file.lock
        self._closed = False
        row = self._db.execute(
            "SELECT next_sender_seq, next_target_seq, creation_ns FROM fix_sessions "
            "WHERE session_key = ?",
            (session_key,),
        ).fetchone()
        if row is None:
            self._db.execute("INSERT INTO fix_sessions VALUES (?, 1, 1, ?)", (session_key, now_ns))
            row = (1, 1, now_ns)
        self.next_sender_seq: int = row[0]
        self.next_target_seq: int = row[1]
        self.creation_ns: int = row[2]
        self.sender_guard: Callable[[int], None] | None = None
        """Called with each outgoing number before it is used; raises if it may not be
        (an HA group's reserved numbers: ``bastion.ha.fix_seqs``), and then nothing is
        stored or sent."""

    def store_sent(self, seq: int, raw: bytes | None) -> None:
        """Record that ``seq`` was used (with its bytes for an application message)."""
        if self.sender_guard is not None:
            self.sender_guard(seq)
        with self._lock, self._transaction():
            if raw is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO fix_messages VALUES (?, ?, ?)",
                    (self.session_key, seq, raw),
                )
            self.next_sender_seq = seq + 1
            self._save_seqs()

    def set_next_sender_seq(self, seq: int) -> None:
        with self._lock, self._transaction():
            self.next_sender_seq = seq
            self._save_seqs()

    def set_next_target_seq(self, seq: int) -> None:
        with self._lock, self._transaction():
            self.next_target_seq = seq
            self._save_seqs()

    def _save_seqs(self) -> None:
        """Write both numbers now, or once at the end of the open batch."""
        if self._file.in_batch:
            self._file.dirty.add(self)
            return
        self._write_seqs()

    def _write_seqs(self) -> None:
        self._db.execute(
            "UPDATE fix_sessions SET next_sender_seq = ?, next_target_seq = ? "
            "WHERE session_key = ?",
            (self.next_sender_seq, self.next_target_seq, self.session_key),
        )

    def sent_messages(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """Stored application messages with ``begin <= seq <= end``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, raw FROM fix_messages WHERE session_key = ? AND seq BETWEEN ? AND ? "
                "ORDER BY seq",
                (self.session_key, begin, end),
            ).fetchall()
        return [(seq, bytes(raw)) for seq, raw in rows]

    def reset(self, now_ns: int) -> None:
        """A new session: both sequence numbers back to 1, stored messages dropped."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM fix_messages WHERE session_key = ?", (self.session_key,))
            self._db.execute(
                "UPDATE fix_sessions SET next_sender_seq = 1, next_target_seq = 1, "
                "creation_ns = ? WHERE session_key = ?",
                (now_ns, self.session_key),
            )
        self.next_sender_seq = 1
        self.next_target_seq = 1
        self.creation_ns = now_ns

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every change made inside (nested calls join the outer one).

        The session processes a whole read of inbound messages in one batch, so a
        burst costs one commit, not one per message.
        """
        shared = self._file
        with self._lock:
            if shared.in_batch:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            shared.in_batch = True
            try:
                yield
                for store in shared.dirty:
                    store._write_seqs()
            except BaseException:
                shared.in_batch = False
                dirty, shared.dirty = shared.dirty, set()
                self._db.execute("ROLLBACK")
                for store in dirty | {self}:
                    store._reload()
                raise
            shared.in_batch = False
            shared.dirty.clear()
            self._db.execute("COMMIT")

    def _reload(self) -> None:
        """Take the sequence numbers back from the file (after a rolled-back batch)."""
        row = self._db.execute(
            "SELECT next_sender_seq, next_target_seq, creation_ns FROM fix_sessions "
            "WHERE session_key = ?",
            (self.session_key,),
        ).fetchone()
        if row is not None:
            self.next_sender_seq, self.next_target_seq, self.creation_ns = row

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._file.in_batch:
            yield
            return
        with _transaction(self._db):
            yield

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self._file)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _open(path: Path, key: bytes | None) -> sqlite3.Connection:
    try:
        db = connect(
            path,
            key=key,
            isolation_level=None,
            check_same_thread=False,
            what="FIX session store",
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise SessionStoreError(
                f"{path}: FIX session store schema {version} is newer than this bastion "
                f"({SCHEMA_VERSION})"
            )
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except DB_DATABASE_ERRORS as error:
        raise SessionStoreError(f"{path}: not a FIX session store: {error}") from error
    except StorageKeyError as error:
        if key is not None:
            raise
        raise SessionStoreError(f"{path}: not a FIX session store: {error}") from error
    return db

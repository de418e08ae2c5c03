"""Opening bastion's SQLite files, in plaintext or encrypted with SQLCipher.

``connect(path, key=None)`` is plain ``sqlite3``; ``connect(path, key=32 bytes)`` is
``sqlcipher3`` (SQLite with every page encrypted, AES-256 with a per-page HMAC), with
the raw key given as the first statement, so no key derivation runs. Either way the
connection is checked by reading ``sqlite_master`` before it is returned.

A file is never modified by a failed open. Which kind of file it is comes from its
first 16 bytes (a plaintext database starts with ``SQLite format 3``), so the three
mistakes are told apart, each as a ``StorageKeyError`` naming the file: an encrypted
file opened without a key, a plaintext file opened with one, and a wrong key.

Those bytes are read only when the process has no connection to the file yet: closing
any descriptor of a file drops every POSIX lock the process holds on it (``fcntl``
semantics), SQLite's included. A WAL database whose shared lock was dropped looks
unused to other processes: the next one to close its connection checkpoints and
deletes the WAL under the writer, whose later commits then go to a deleted file that
no new reader sees. A second connection (the WAL checkpointer's) says what the file
is instead (``encrypted=``).

A file or directory created here is readable by its owner only (0600 / 0700); SQLite
gives its ``-wal`` and ``-shm`` files the mode of the database file.

``sqlcipher3``'s exceptions do not derive from ``sqlite3``'s: code that may hold either
connection catches ``DB_ERRORS`` (or ``DB_DATABASE_ERRORS``, ``DB_OPERATIONAL_ERRORS``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final, cast

import sqlcipher3.dbapi2 as _cipher

from bastion.errors import StorageKeyError
from bastion.storage.keys import KEY_BYTES
from bastion.vault.files import make_private_dir

_PLAIN_HEADER: Final = b"SQLite format 3\x00"

DB_ERRORS: Final[tuple[type[Exception], ...]] = (sqlite3.Error, _cipher.Error)
DB_DATABASE_ERRORS: Final[tuple[type[Exception], ...]] = (
    sqlite3.DatabaseError,
    _cipher.DatabaseError,
)
DB_OPERATIONAL_ERRORS: Final[tuple[type[Exception], ...]] = (
    sqlite3.OperationalError,
    _cipher.OperationalError,
)
STORAGE_ERRORS: Final[tuple[type[Exception], ...]] = (OSError, *DB_ERRORS)
"""What opening a file can raise besides ``StorageKeyError``: the disk's or the driver's."""


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (before SQLite opens it,
    so it is never readable by others, even for an instant)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def is_encrypted(path: Path) -> bool | None:
    """True if ``path`` holds an encrypted database, False if plaintext, None if it is
    empty or missing (a new database, either kind)."""
    try:
        with path.open("rb") as f:
            header = f.read(len(_PLAIN_HEADER))
    except FileNotFoundError:
        return None
    if not header:
        return None
    return header != _PLAIN_HEADER


def connect(
    path: Path,
    *,
    key: bytes | None,
    readonly: bool = False,
    create: bool = True,
    check_same_thread: bool = True,
    isolation_level: str | None = None,
    what: str = "database",
    encrypted: bool | None = None,
) -> sqlite3.Connection:
    """An open, checked connection to ``path``, encrypted iff ``key`` is given.

    ``readonly`` opens with ``mode=ro`` (never creates or changes the file). Otherwise a
    missing file is created 0600 (with its directory, 0700) unless ``create`` is False.
    ``what`` names the file in errors ("journal", "FIX session store"…).
    ``encrypted``: what the file is, given by a caller whose process already holds a
    connection to it, so its first bytes are not read (see the module docstring).
    Raises ``StorageKeyError`` for a key mismatch; other failures as the driver's error.
    """
    if key is not None and len(key) != KEY_BYTES:
        raise StorageKeyError(f"{what} {path}: an encryption key is {KEY_BYTES} bytes")
    if encrypted is None:
        encrypted = is_encrypted(path)
    if encrypted and key is None:
        raise StorageKeyError(
            f"{what} {path} is encrypted (or is not a SQLite database): "
            "it cannot be opened without its encryption key"
        )
    if encrypted is False and key is not None:
        raise StorageKeyError(
            f"{what} {path} is a plaintext database but an encryption key was given: "
            "it was not written encrypted (refusing rather than guessing)"
        )
    if not readonly and create:
        make_private_dir(path.parent)
        create_private_file(path)
    target = f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path)
    driver = sqlite3 if key is None else _cipher
    db = driver.connect(
        target,
        uri=readonly,
        isolation_level=isolation_level,
        check_same_thread=check_same_thread,
    )
    try:
        if key is not None:
            db.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our error, not stderr
            db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        db.execute("SELECT count(*) FROM sqlite_master").fetchall()  # stepped to its end
    except DB_DATABASE_ERRORS as error:
        db.close()
        if key is not None and encrypted:
            raise StorageKeyError(
                f"{what} {path}: wrong encryption key (the file is encrypted with another key, "
                "or is damaged)"
            ) from error
        raise
    return cast(sqlite3.Connection, db)

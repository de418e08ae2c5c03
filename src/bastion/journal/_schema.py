"""The journal's SQLite schema, its version and the migrations between versions.

``MIGRATIONS[n]`` takes a file from version ``n + 1`` to ``n + 2``; a later
version appends one step. Each step runs inside the one transaction that also
records the new version, so a migration is applied entirely or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bastion.errors import OperationalError
from bastion.journal._codec import GENESIS_HASH, chain_hash
from bastion.storage.connect import DB_OPERATIONAL_ERRORS

SCHEMA_VERSION: Final = 3

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    epoch INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    started_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    type TEXT NOT NULL,
    client_order_id TEXT,
    payload BLOB NOT NULL,
    prev_hash BLOB,
    hash BLOB
);
CREATE INDEX IF NOT EXISTS events_order ON events (client_order_id);
"""

# Version 3: snapshots of the node's state, and torn records set aside on open.
_SNAPSHOTS: Final = """
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    event_hash BLOB NOT NULL,
    payload BLOB NOT NULL,
    digest BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS torn_records (
    seq INTEGER NOT NULL,
    found_ns INTEGER NOT NULL,
    problem TEXT NOT NULL,
    ts_ns INTEGER,
    type TEXT,
    client_order_id TEXT,
    payload BLOB,
    prev_hash BLOB,
    hash BLOB
);
"""


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Add ``prev_hash``/``hash`` and chain the existing rows in seq order."""
    db.execute("ALTER TABLE events ADD COLUMN prev_hash BLOB")
    db.execute("ALTER TABLE events ADD COLUMN hash BLOB")
    prev = GENESIS_HASH
    rows = db.execute("SELECT seq, ts_ns, type, payload FROM events ORDER BY seq")
    updates = []
    for seq, ts_ns, type_name, payload in rows:
        digest = chain_hash(prev, seq, ts_ns, type_name, payload)
        updates.append((prev, digest, seq))
        prev = digest
    db.executemany("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", updates)


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """Add the ``snapshots`` and ``torn_records`` tables."""
    for statement in _statements(_SNAPSHOTS):
        db.execute(statement)


MIGRATIONS: Final[list[Callable[[sqlite3.Connection], None]]] = [_v1_to_v2, _v2_to_v3]
assert len(MIGRATIONS) == SCHEMA_VERSION - 1


def read_version(db: sqlite3.Connection) -> int | None:
    """The file's schema version, or None if it has no journal tables."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except DB_OPERATIONAL_ERRORS:
        return None
    return None if row is None else int(row[0])


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return row.fetchone() is not None


def prepare(db: sqlite3.Connection, path: Path) -> int:
    """Create or migrate the schema to ``SCHEMA_VERSION`` in one transaction.

    Returns the version the file had (0 for a new file). A file from a newer bastion
    is refused with ``OperationalError``.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = read_version(db)
        if found is None:
            # a version-1 writer could stop between creating tables and writing meta
            found = 1 if _has_table(db, "events") else 0
            if found == 0:
                for statement in _statements(_SCHEMA + _SNAPSHOTS):
                    db.execute(statement)
            else:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        elif found > SCHEMA_VERSION:
            raise OperationalError(
                f"journal {path} has schema version {found}, newer than this "
                f"bastion ({SCHEMA_VERSION}); upgrade bastion"
            )
        if 0 < found < SCHEMA_VERSION:
            for step in MIGRATIONS[found - 1 :]:
                step(db)
        if found != SCHEMA_VERSION:
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return found

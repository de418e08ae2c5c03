"""Online copies of the SQLite files a running node writes, and the journal's head.

A copy reads one snapshot: it opens the file read-only (``mode=ro``: never the node's
writer lock), begins a read transaction and holds it while SQLite's backup API copies
``pages`` pages a step with a pause between steps. In WAL mode a reader never blocks
the writer: the node keeps appending to the WAL, and only its checkpoint waits for the
copy to end (the WAL grows by what was journaled meanwhile). Holding the one read
transaction is also what keeps the backup from restarting each time the node commits,
as it would if every step took a new snapshot.

An encrypted file (SQLCipher) is copied with its key into a new file with the same
key: the copy is encrypted exactly as the original.
"""

from __future__ import annotations

from pathlib import Path

from bastion.backup.manifest import JournalHead
from bastion.errors import BackupError
from bastion.storage.connect import DB_ERRORS, connect


def copy_database(
    source: Path, target: Path, *, key: bytes | None, pages: int, pause_s: float, what: str
) -> None:
    """A consistent copy of the database ``source`` into the new file ``target``."""
    try:
        src = connect(source, key=key, readonly=True, what=what)
    except DB_ERRORS as error:
        raise BackupError(f"{what} {source}: cannot open for the backup: {error}") from None
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot, held
        dst = connect(target, key=key, what=f"{what} (backup copy)")
        try:
            src.backup(dst, pages=pages, sleep=pause_s)
            # one self-contained file (no -wal beside it); a node reopening it sets WAL again
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            dst.close()
        src.execute("COMMIT")
    except DB_ERRORS as error:
        raise BackupError(f"{what} {source}: the online copy failed: {error}") from None
    finally:
        src.close()


def journal_head(copy: Path, *, key: bytes | None, archive_path: str) -> JournalHead:
    """The journal copy's event count, last seq and that record's hash."""
    try:
        db = connect(copy, key=key, readonly=True, what="journal (backup copy)")
        try:
            events, last = db.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
            row = db.execute("SELECT hash FROM events WHERE seq = ?", (last,)).fetchone()
        finally:
            db.close()
    except DB_ERRORS as error:
        raise BackupError(f"journal {copy}: cannot read its head: {error}") from None
    head = row[0].hex() if row is not None and row[0] is not None else None
    return JournalHead(
        backend="sqlite",
        path=archive_path,
        events=int(events),
        last_seq=int(last or 0),
        head_hash=head,
        encrypted=key is not None,
    )

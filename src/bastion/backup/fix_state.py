"""The FIX session stores' state, shipped with every journal segment and brought
current on restore.

A full backup's session store is as old as the backup. Restored as it is, its next
outgoing MsgSeqNum is below what the venue has seen (every logon refused "MsgSeqNum
too low") and its sent messages lack the orders placed since (the venue's resent
reports for them name orders the node does not know). Each segment therefore carries,
read *after* the journal's rows (the store is committed before each send, so it is
ahead of the rows it ships with):

- every session's sequence numbers and creation time;
- the session's last ``MESSAGES_PER_SEGMENT`` stored messages (the orders sent since
  the journal's last ``VenueMark``, which recovery adopts from the store).

On restore (``apply``) each session's inbound number is set to the shipped one (the
node's recovery then rewinds it to the journal's last ``VenueMark``, and the venue
resends what the journal lacks; fills are applied once, by ExecID), and its outbound
number to the shipped one plus ``SENDER_SEQ_MARGIN``: the node may have sent that many
messages between the last segment and the loss. A number above the venue's expectation
is answered by a ResendRequest, which the node fills with a SequenceReset-GapFill (its
resend floor: nothing stored before the restart is ever resent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
import structlog

from bastion.errors import BackupError
from bastion.storage.connect import DB_ERRORS, connect

log = structlog.get_logger("bastion.backup")

MESSAGES_PER_SEGMENT: Final = 2_000
SENDER_SEQ_MARGIN: Final = 10_000
"""Outgoing numbers skipped on restore: more than a node sends between two segments."""


class ShippedSession(msgspec.Struct, frozen=True, kw_only=True):
    """One session of a store, as it stood when the segment was read."""

    store: str  # the store's path in the backup (``desk/REL`` or ``outside/ABS``)
    session_key: str
    next_sender_seq: int
    next_target_seq: int
    creation_ns: int
    messages: list[tuple[int, bytes]]


def read(store: Path, archive_name: str, key: bytes | None) -> list[ShippedSession]:
    """Every session of ``store`` (read-only; nothing when the file does not exist yet)."""
    if not store.is_file():
        return []
    try:
        db = connect(store, key=key, readonly=True, what="FIX session store")
    except DB_ERRORS as error:
        raise BackupError(f"FIX session store {store}: cannot open to ship: {error}") from None
    try:
        db.execute("BEGIN")
        sessions = db.execute(
            "SELECT session_key, next_sender_seq, next_target_seq, creation_ns FROM fix_sessions"
        ).fetchall()
        shipped = []
        for session_key, sender, target, creation in sessions:
            rows = db.execute(
                "SELECT seq, raw FROM fix_messages WHERE session_key = ? ORDER BY seq DESC LIMIT ?",
                (session_key, MESSAGES_PER_SEGMENT),
            ).fetchall()
            shipped.append(
                ShippedSession(
                    store=archive_name,
                    session_key=session_key,
                    next_sender_seq=sender,
                    next_target_seq=target,
                    creation_ns=creation,
                    messages=[(seq, bytes(raw)) for seq, raw in reversed(rows)],
                )
            )
        db.execute("COMMIT")
    except DB_ERRORS as error:
        raise BackupError(f"FIX session store {store}: cannot read to ship: {error}") from None
    finally:
        db.close()
    return shipped


def apply(unpacked: Path, sessions: list[ShippedSession], key_for: dict[str, bytes | None]) -> int:
    """Bring the restored stores under ``unpacked`` to the last shipped state; how many
    sessions were changed. ``key_for`` maps a store's archive name to its key."""
    latest: dict[tuple[str, str], ShippedSession] = {}
    for session in sessions:
        latest[(session.store, session.session_key)] = session  # later segments win
    by_store: dict[str, list[ShippedSession]] = {}
    for (store, _), session in latest.items():
        by_store.setdefault(store, []).append(session)
    changed = 0
    for store, shipped in by_store.items():
        path = unpacked / store
        if not path.is_file():
            raise BackupError(
                f"restore: a segment ships FIX session store {store}, the backup holds none"
            )
        try:
            db = connect(path, key=key_for.get(store), what="restored FIX session store")
        except DB_ERRORS as error:
            raise BackupError(f"restored FIX session store {store}: {error}") from None
        try:
            db.execute("BEGIN IMMEDIATE")
            for s in shipped:
                row = db.execute(
                    "SELECT next_sender_seq, creation_ns FROM fix_sessions WHERE session_key = ?",
                    (s.session_key,),
                ).fetchone()
                if row is not None and row[1] != s.creation_ns:
                    # the session was reset since the backup: its old messages are void
                    db.execute("DELETE FROM fix_messages WHERE session_key = ?", (s.session_key,))
                sender = s.next_sender_seq + SENDER_SEQ_MARGIN
                db.execute(
                    "INSERT INTO fix_sessions VALUES (?, ?, ?, ?) ON CONFLICT (session_key) "
                    "DO UPDATE SET next_sender_seq = excluded.next_sender_seq, "
                    "next_target_seq = excluded.next_target_seq, "
                    "creation_ns = excluded.creation_ns",
                    (s.session_key, sender, s.next_target_seq, s.creation_ns),
                )
                db.executemany(
                    "INSERT OR REPLACE INTO fix_messages VALUES (?, ?, ?)",
                    [(s.session_key, seq, raw) for seq, raw in s.messages],
                )
                log.info(
                    "backup_fix_session_restored",
                    store=store,
                    session=s.session_key,
                    next_sender_seq=sender,
                    next_target_seq=s.next_target_seq,
                    messages=len(s.messages),
                )
                changed += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()
    return changed

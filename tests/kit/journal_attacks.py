"""Keyed journals for tests, and what an insider with write access does to them: edit,
delete, cut, re-chain with bastion's own unkeyed functions, downgrade to unkeyed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from bastion.journal import SqliteJournal
from bastion.journal._codec import GENESIS_HASH, chain_hash, snapshot_digest
from bastion.journal.anchors import anchor_path
from bastion.journal.keys import JournalKeys
from bastion.model import events as ev
from kit.journal_samples import T0, fills

CHAIN_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
ENCRYPTION_KEY = bytes(range(100, 132))
KEYED = JournalKeys(chain=CHAIN_KEY)
ENCRYPTED = JournalKeys(encryption=ENCRYPTION_KEY, chain=CHAIN_KEY)


def keyed_journal(path: Path, keys: JournalKeys = KEYED, n: int = 10) -> None:
    """``n`` fills, a snapshot after the 6th, closed (so anchored at ``n``)."""
    journal = SqliteJournal(path, keys=keys)
    try:
        for i, fill in enumerate(fills(n)):
            journal.append(fill)
            if i == 5:
                journal.snapshot(b"state after six fills", T0 + 6)
    finally:
        journal.close()


def edit_fill_price(path: Path, seq: int, price: int) -> None:
    """Change the fill price of record ``seq`` (its hash left as it was)."""
    db = sqlite3.connect(path)
    try:
        payload = db.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()[0]
        event = msgspec.msgpack.decode(payload, type=ev.OrderFilled)
        forged = msgspec.msgpack.encode(msgspec.structs.replace(event, last_px=price))
        with db:
            db.execute("UPDATE events SET payload = ? WHERE seq = ?", (forged, seq))
    finally:
        db.close()


def rechain_unkeyed(path: Path) -> None:
    """Recompute every hash, and re-seal every snapshot, with the unkeyed functions (what
    an insider without the chain key can do), renumbering seq from 1."""
    db = sqlite3.connect(path)
    try:
        with db:
            stored = db.execute(
                "SELECT seq, ts_ns, type, client_order_id, payload FROM events ORDER BY seq"
            ).fetchall()
            db.execute("DELETE FROM events")
            prev = GENESIS_HASH
            hashes = {0: GENESIS_HASH}
            for new_seq, (old_seq, ts_ns, type_name, order_id, payload) in enumerate(
                stored, start=1
            ):
                digest = chain_hash(prev, new_seq, ts_ns, type_name, payload)
                db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (new_seq, ts_ns, type_name, order_id, payload, prev, digest),
                )
                hashes[old_seq] = digest
                prev = digest
            for seq, payload in db.execute("SELECT seq, payload FROM snapshots").fetchall():
                event_hash = hashes.get(seq, GENESIS_HASH)
                db.execute(
                    "UPDATE snapshots SET event_hash = ?, digest = ? WHERE seq = ?",
                    (event_hash, snapshot_digest(seq, event_hash, payload), seq),
                )
    finally:
        db.close()


def downgrade(path: Path) -> None:
    """Mark the journal unkeyed and re-chain it with plain SHA-256."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("DELETE FROM meta WHERE key IN ('chain', 'chain_key_check')")
    finally:
        db.close()
    rechain_unkeyed(path)


def drop_last_anchor_line(path: Path) -> None:
    lines = anchor_path(path).read_bytes().splitlines(keepends=True)
    anchor_path(path).write_bytes(b"".join(lines[:-1]))


def anchor_lines(path: Path) -> list[bytes]:
    return anchor_path(path).read_bytes().splitlines()

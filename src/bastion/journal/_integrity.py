"""Checking a journal as a whole: its keying, its chain, its snapshots and its anchors.

One place, used by ``verify`` (read-only) and by ``SqliteJournal`` as it opens a keyed
journal for writing (a node refuses to start from a file that fails here).

Keying is stored in ``meta``: ``chain`` (``sha256`` or ``hmac-sha256``; absent means
``sha256``, the journals written before keying) and, when keyed, ``chain_key_check``
(HMAC of a fixed string with the chain key), so a wrong key is told apart from a forged
record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from bastion.errors import IntegrityError, StorageKeyError
from bastion.journal._codec import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    GENESIS_HASH,
    Chain,
    new_decoder,
    record_problem,
)
from bastion.journal.anchors import Anchor

META_CHAIN: Final = "chain"
META_KEY_CHECK: Final = "chain_key_check"
COLUMNS: Final = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"


class Keying(NamedTuple):
    """How the file says its chain is computed."""

    chain: str
    key_check: str | None

    @property
    def keyed(self) -> bool:
        return self.chain != CHAIN_SHA256


def read_keying(db: sqlite3.Connection) -> Keying:
    rows = dict(
        db.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (META_CHAIN, META_KEY_CHECK)
        ).fetchall()
    )
    return Keying(rows.get(META_CHAIN, CHAIN_SHA256), rows.get(META_KEY_CHECK))


def write_keying(db: sqlite3.Connection, chain: Chain) -> None:
    """Mark a journal keyed (inside the caller's transaction)."""
    assert chain.key_check is not None
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_CHAIN, chain.name))
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (META_KEY_CHECK, chain.key_check))


def check_keying(
    path: Path | str, stored: Keying, chain: Chain, *, events: int, anchors_exist: bool
) -> bool:
    """Refuse a journal whose keying does not go with ``chain``; True if it is to be keyed
    now (a journal with no events yet, opened with a chain key).

    ``StorageKeyError``: a keyed journal without the chain key, or with another key.
    ``IntegrityError``: a journal expected keyed (a key is given, or anchors exist beside
    it) that says it is unkeyed — its chain was downgraded to plain SHA-256.
    """
    if stored.keyed:
        if stored.chain != CHAIN_HMAC:
            raise IntegrityError(f"journal {path}: unknown chain {stored.chain!r} in its meta")
        if not chain.keyed:
            raise StorageKeyError(
                f"journal {path} is keyed (HMAC-SHA256 chain): its chain key is needed"
            )
        if stored.key_check != chain.key_check:
            raise StorageKeyError(
                f"journal {path}: wrong chain key (the journal's key check value does not "
                "match the key given)"
            )
        return False
    if anchors_exist:
        raise IntegrityError(
            f"journal {path} says its chain is unkeyed, but it has anchors (written only for "
            "a keyed journal): its chain was downgraded; restore it from a backup"
        )
    if chain.keyed:
        if events == 0:
            return True
        raise IntegrityError(
            f"journal {path} says its chain is unkeyed (plain SHA-256) but a chain key is "
            "configured: its chain was downgraded, or it was written before keying "
            "(start a new journal for a keyed chain)"
        )
    return False


class ScanResult(NamedTuple):
    """What a whole scan found. ``problem``/``broken_seq``: the first bad record (or
    a cut against an anchor, with ``broken_seq`` None); ``torn_tail``: that record is
    the last and not anchored (a write cut short, not a forgery anchors disprove);
    ``snapshot_problem``: the first bad snapshot before it."""

    events: int
    first_seq: int | None
    last_seq: int | None
    last_hash: bytes
    broken_seq: int | None
    problem: str | None
    torn_tail: bool
    snapshots: int
    snapshot_problem: str | None
    anchors: int


def scan(db: sqlite3.Connection, chain: Chain, anchors: Sequence[Anchor]) -> ScanResult:
    """Check every record, every snapshot and every anchor of a SQLite journal."""
    events, first_seq, last_seq = db.execute(
        "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events"
    ).fetchone()
    return scan_records(
        (events, first_seq, last_seq),
        db.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq"),
        lambda: db.execute(
            "SELECT s.seq, s.event_hash, s.payload, s.digest, e.hash FROM snapshots s "
            "LEFT JOIN events e ON e.seq = s.seq ORDER BY s.seq"
        ),
        chain,
        anchors,
    )


# seq, event_hash, payload, digest, the chain's hash at seq (None: no such event)
SnapshotRow = tuple[int, object, object, object, object]


def scan_records(
    counts: tuple[int, int | None, int | None],
    records: Iterable[tuple[int, int, str, str | None, bytes, Any, Any]],
    snapshots: Callable[[], Iterable[SnapshotRow]],
    chain: Chain,
    anchors: Sequence[Anchor],
) -> ScanResult:
    """Check every record (in seq order), every snapshot and every anchor, whatever
    stores them: ``counts`` is (events, first seq, last seq)."""
    events, first_seq, last_seq = counts
    by_seq = {anchor.seq: anchor for anchor in anchors}
    top = max(anchors, key=lambda a: a.seq, default=None)
    top_seq = top.seq if top is not None else 0
    decoder = new_decoder()
    expected_seq, prev = 1, GENESIS_HASH
    broken_seq: int | None = None
    problem: str | None = None
    torn = False
    for row in records:
        seq = row[0]
        problem = record_problem(row, expected_seq, prev, decoder, chain)
        anchor = by_seq.get(seq)
        if problem is None and anchor is not None and anchor.hash != row[6]:
            problem = f"does not match anchor {anchor.n} (the chain was rewritten)"
        if problem is not None:
            broken_seq = seq
            torn = seq == last_seq and not problem.startswith("gap") and seq > top_seq
            if seq <= top_seq and top is not None:
                problem += f"; anchor {top.n} (seq {top.seq}) covers it"
            break
        expected_seq, prev = seq + 1, row[6]
    whole_seq = (broken_seq - 1) if broken_seq is not None else (last_seq or 0)
    if problem is None and top is not None and top.seq > whole_seq:
        problem = (
            f"the journal ends at seq {whole_seq} but anchor {top.n} names seq {top.seq}: "
            f"records after seq {whole_seq} were cut off"
        )
    if problem is None:
        for anchor in anchors:
            if anchor.seq == 0 and anchor.hash != GENESIS_HASH:
                problem = f"anchor {anchor.n} names seq 0 with a hash that is not the genesis"
                break
    snapshot_count, snapshot_problem = _scan_snapshots(snapshots(), chain, below=broken_seq)
    return ScanResult(
        events=events,
        first_seq=first_seq,
        last_seq=last_seq,
        last_hash=prev,
        broken_seq=broken_seq,
        problem=problem,
        torn_tail=torn,
        snapshots=snapshot_count,
        snapshot_problem=snapshot_problem,
        anchors=len(anchors),
    )


def _scan_snapshots(
    rows: Iterable[SnapshotRow], chain: Chain, *, below: int | None
) -> tuple[int, str | None]:
    """How many snapshots, and the first one that does not check out (before ``below``)."""
    count = 0
    for seq, event_hash, payload, digest, chained in rows:
        if below is not None and seq >= below:
            break
        count += 1
        problem = snapshot_problem(seq, event_hash, payload, digest, chained, chain)
        if problem is not None:
            return count, problem
    return count, None


def snapshot_problem(
    seq: int, event_hash: object, payload: object, digest: object, chained: object, chain: Chain
) -> str | None:
    """What is wrong with a stored snapshot, or None."""
    if not isinstance(payload, bytes) or not isinstance(event_hash, bytes):
        return f"snapshot at seq {seq}: not a blob"
    if event_hash != (GENESIS_HASH if seq == 0 else chained):
        return f"snapshot at seq {seq}: its event hash is not the chain's hash at that seq"
    if digest != chain.seal(seq, event_hash, payload):
        return f"snapshot at seq {seq}: digest mismatch (damaged)"
    return None

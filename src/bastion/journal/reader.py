"""Read-only journal tools behind ``bastion journal``: verify, stats, export.

Each opens the SQLite file with ``mode=ro``, so inspecting a journal never changes
it (a live node may be writing it meanwhile; readers see its last commit). Each takes
the journal's ``JournalKeys``: the encryption key to open an encrypted file, the chain
key for ``verify`` to check a keyed chain, its snapshots and its anchors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import msgspec

from bastion.errors import BastionError, IntegrityError, OperationalError, StorageKeyError
from bastion.journal._codec import HASH_NAME, Chain, JournalEvent, new_decoder
from bastion.journal._integrity import check_keying, read_keying, scan
from bastion.journal._schema import SCHEMA_VERSION, read_version
from bastion.journal.anchors import anchor_path, read_anchors
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.storage.connect import DB_DATABASE_ERRORS, DB_ERRORS, connect, is_encrypted

MAX_SEQ: Final = 2**63 - 1
"""Above every seq either backend stores (both keep it in a signed 64-bit integer)."""


class NotAJournalError(BastionError):
    """The path is missing or is not a bastion journal (a usage error)."""


class NoJournalYet(NotAJournalError):
    """Nothing is journaled there yet: the SQLite file does not exist, or the PostgreSQL
    database holds none of bastion's tables (a node creates them at its first start)."""


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking a journal's whole chain.

    ``broken_seq``/``problem`` name the first bad record; ``torn_tail`` is True when
    that record is the last one (cut mid-write). ``keyed``: the chain is HMAC-SHA256
    with a chain key (False: plain SHA-256, which anyone can recompute after an edit);
    ``anchors``: how many anchors were checked against the chain.
    """

    path: str
    schema_version: int
    events: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None
    torn_tail: bool = False
    snapshots: int = 0
    keyed: bool = False
    anchors: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


class JournalStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and extents of a journal."""

    path: str
    schema_version: int
    file_bytes: int
    events: int
    by_type: dict[str, int]
    runs: int
    first_seq: int | None
    last_seq: int | None
    first_ts_ns: int | None
    last_ts_ns: int | None
    snapshots: int = 0
    last_snapshot_seq: int | None = None
    torn_records: int = 0


class ExportedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``bastion journal export`` (Decimals are JSON strings)."""

    seq: int
    ts_ns: int
    type: str
    client_order_id: str | None
    event: JournalEvent


@contextmanager
def open_readonly(path: Path, key: bytes | None = None) -> Iterator[tuple[sqlite3.Connection, int]]:
    """The journal opened read-only (decrypted with ``key``), with its schema version;
    else ``NotAJournalError`` (or ``StorageKeyError`` for a key that does not fit)."""
    if not path.exists():
        raise NoJournalYet(f"{path}: journal file not found")
    if not path.is_file():
        raise NotAJournalError(f"{path}: not a file")
    try:
        db = connect(path, key=key, readonly=True, what="journal")
    except DB_ERRORS as error:
        raise NotAJournalError(f"{path}: cannot open: {error}") from error
    except StorageKeyError as error:
        if key is not None or is_encrypted(path) is None:
            raise
        raise NotAJournalError(
            f"{path}: not a bastion journal, or an encrypted one (it needs its encryption key)"
        ) from error
    try:
        try:
            version = read_version(db)
        except DB_DATABASE_ERRORS as error:
            raise NotAJournalError(f"{path}: not a bastion journal ({error})") from error
        if version is None:
            raise NotAJournalError(f"{path}: not a bastion journal (no schema version)")
        if version > SCHEMA_VERSION:
            raise NotAJournalError(
                f"{path}: schema version {version} is newer than this bastion ({SCHEMA_VERSION})"
            )
        yield db, version
    except DB_ERRORS as error:
        raise OperationalError(f"{path}: cannot read the journal: {error}") from error
    finally:
        db.close()


def verify_journal(path: Path, *, keys: JournalKeys = PLAINTEXT) -> VerifyResult:
    """Check every record: gapless seq from 1, the chain (keyed with ``keys.chain``),
    decodable payloads, every snapshot's seal, and each anchor against the chain.

    A keyed journal without the chain key, or a journal downgraded to an unkeyed chain,
    is reported (not ok). A wrong chain key raises ``StorageKeyError``."""
    chain = Chain(keys.chain)
    with open_readonly(path, keys.encryption) as (db, version):
        events, first_seq, last_seq = db.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events"
        ).fetchone()
        base = {
            "path": str(path),
            "schema_version": version,
            "events": events,
            "first_seq": first_seq,
            "last_seq": last_seq,
        }
        if version < 2:
            return VerifyResult(
                **base,
                last_hash=None,
                problem=f"schema version {version} has no hash chain; it is added when "
                "bastion next opens the journal for writing",
            )
        stored = read_keying(db)
        if stored.keyed and not chain.keyed:
            return VerifyResult(
                **base,
                last_hash=None,
                keyed=True,
                problem="the journal's chain is keyed (HMAC-SHA256): it cannot be checked "
                "without the chain key",
            )
        anchors_file = anchor_path(path)
        try:
            check_keying(path, stored, chain, events=events, anchors_exist=anchors_file.exists())
            anchors = read_anchors(anchors_file, keys.chain) if keys.chain else []
        except IntegrityError as error:
            return VerifyResult(**base, last_hash=None, keyed=stored.keyed, problem=str(error))
        if stored.keyed and events and not anchors:
            return VerifyResult(
                **base,
                last_hash=None,
                keyed=True,
                problem=f"its anchors ({anchors_file.name}) are missing or empty, but a keyed "
                "journal with events always has some: they were deleted",
            )
        result = scan(db, chain, anchors)
        if result.problem is not None:
            return VerifyResult(
                **base,
                keyed=stored.keyed,
                anchors=result.anchors,
                snapshots=result.snapshots,
                last_hash=None,
                broken_seq=result.broken_seq,
                problem=result.problem,
                torn_tail=result.torn_tail,
            )
        last_hash = result.last_hash.hex() if events else None
        return VerifyResult(
            **base,
            keyed=stored.keyed,
            anchors=result.anchors,
            snapshots=result.snapshots,
            last_hash=last_hash,
            problem=result.snapshot_problem,
        )


def journal_stats(path: Path, *, keys: JournalKeys = PLAINTEXT) -> JournalStats:
    """Event counts (total and by type), runs, seq and time extents, file size."""
    with open_readonly(path, keys.encryption) as (db, version):
        events, first_seq, last_seq = db.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events"
        ).fetchone()
        by_type = dict(
            db.execute("SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type").fetchall()
        )
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        first_ts = db.execute("SELECT ts_ns FROM events ORDER BY seq LIMIT 1").fetchone()
        last_ts = db.execute("SELECT ts_ns FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        snapshots, last_snapshot, torn = 0, None, 0
        if version >= 3:
            snapshots, last_snapshot = db.execute(
                "SELECT COUNT(*), MAX(seq) FROM snapshots"
            ).fetchone()
            torn = db.execute("SELECT COUNT(*) FROM torn_records").fetchone()[0]
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)
    return JournalStats(
        path=str(path),
        schema_version=version,
        file_bytes=size,
        events=events,
        by_type=by_type,
        runs=runs,
        first_seq=first_seq,
        last_seq=last_seq,
        first_ts_ns=first_ts[0] if first_ts else None,
        last_ts_ns=last_ts[0] if last_ts else None,
        snapshots=snapshots,
        last_snapshot_seq=last_snapshot,
        torn_records=torn,
    )


def export_jsonl(
    path: Path,
    out: IO[bytes],
    *,
    from_seq: int = 1,
    to_seq: int | None = None,
    keys: JournalKeys = PLAINTEXT,
) -> int:
    """Write events with ``from_seq <= seq <= to_seq`` (None: to the last) to ``out`` as
    JSON lines; return how many.

    An undecodable payload stops the export with ``OperationalError`` naming its seq
    (the lines before it are written).
    """
    decoder = new_decoder()
    encoder = msgspec.json.Encoder()
    n = 0
    with open_readonly(path, keys.encryption) as (db, _version):
        rows = db.execute(
            "SELECT seq, ts_ns, type, client_order_id, payload FROM events "
            "WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (from_seq, MAX_SEQ if to_seq is None else to_seq),
        )
        for seq, ts_ns, type_name, client_order_id, payload in rows:
            try:
                event = decoder.decode(payload)
            except (msgspec.DecodeError, TypeError) as error:
                raise OperationalError(
                    f"{path}: seq {seq}: undecodable payload: {error}"
                ) from error
            record = ExportedRecord(
                seq=seq, ts_ns=ts_ns, type=type_name, client_order_id=client_order_id, event=event
            )
            out.write(encoder.encode(record) + b"\n")
            n += 1
    return n


def read_events(
    path: Path, type_name: str, *, keys: JournalKeys = PLAINTEXT
) -> list[tuple[int, JournalEvent]]:
    """Every event of type ``type_name`` (its journal tag) as ``(seq, event)``, in order.
    An undecodable payload is an ``OperationalError`` naming its seq."""
    decoder = new_decoder()
    found: list[tuple[int, JournalEvent]] = []
    with open_readonly(path, keys.encryption) as (db, _version):
        rows = db.execute(
            "SELECT seq, payload FROM events WHERE type = ? ORDER BY seq", (type_name,)
        )
        for seq, payload in rows:
            try:
                found.append((seq, decoder.decode(payload)))
            except (msgspec.DecodeError, TypeError) as error:
                raise OperationalError(
                    f"{path}: seq {seq}: undecodable payload: {error}"
                ) from error
    return found


__all__ = [
    "HASH_NAME",
    "ExportedRecord",
    "JournalStats",
    "NoJournalYet",
    "NotAJournalError",
    "VerifyResult",
    "export_jsonl",
    "journal_stats",
    "read_events",
    "verify_journal",
]

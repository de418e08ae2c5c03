"""Read-only journal tools behind ``bastion journal``: verify, stats, export.

Each opens the SQLite file with ``mode=ro``, so inspecting a journal never changes
it (a live node may be writing it meanwhile; readers see its last commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import msgspec

from bastion.errors import BastionError, OperationalError
from bastion.journal._codec import (
    GENESIS_HASH,
    HASH_NAME,
    JournalEvent,
    new_decoder,
    record_problem,
    snapshot_digest,
)
from bastion.journal._schema import SCHEMA_VERSION, read_version

_COLUMNS = "seq, ts_ns, type, client_order_id, payload, prev_hash, hash"


class NotAJournalError(BastionError):
    """The path is missing or is not a bastion journal (a usage error)."""


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking a journal's whole chain.

    ``broken_seq``/``problem`` name the first bad record; ``torn_tail`` is True when
    that record is the last one (cut mid-write).
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
def open_readonly(path: Path) -> Iterator[tuple[sqlite3.Connection, int]]:
    """The journal opened read-only, with its schema version; else ``NotAJournalError``."""
    if not path.exists():
        raise NotAJournalError(f"{path}: journal file not found")
    if not path.is_file():
        raise NotAJournalError(f"{path}: not a file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise NotAJournalError(f"{path}: cannot open: {error}") from error
    try:
        try:
            version = read_version(db)
        except sqlite3.DatabaseError as error:
            raise NotAJournalError(f"{path}: not a bastion journal ({error})") from error
        if version is None:
            raise NotAJournalError(f"{path}: not a bastion journal (no schema version)")
        if version > SCHEMA_VERSION:
            raise NotAJournalError(
                f"{path}: schema version {version} is newer than this bastion ({SCHEMA_VERSION})"
            )
        yield db, version
    except sqlite3.Error as error:
        raise OperationalError(f"{path}: cannot read the journal: {error}") from error
    finally:
        db.close()


def verify_journal(path: Path) -> VerifyResult:
    """Check every record: gapless seq from 1, hash chain, decodable payloads."""
    with open_readonly(path) as (db, version):
        count = db.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM events").fetchone()
        events, first_seq, last_seq = count
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
        decoder = new_decoder()
        expected_seq, prev = 1, GENESIS_HASH
        for row in db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq"):
            problem = record_problem(row, expected_seq, prev, decoder)
            if problem is not None:
                return VerifyResult(
                    **base,
                    last_hash=None,
                    broken_seq=row[0],
                    problem=problem,
                    torn_tail=row[0] == last_seq and not problem.startswith("gap"),
                )
            expected_seq, prev = row[0] + 1, row[6]
        last_hash = prev.hex() if events else None
        snapshots = 0
        if version >= 3:
            for seq, event_hash, payload, digest, chained in db.execute(
                "SELECT s.seq, s.event_hash, s.payload, s.digest, e.hash FROM snapshots s "
                "LEFT JOIN events e ON e.seq = s.seq ORDER BY s.seq"
            ):
                snapshots += 1
                problem = _snapshot_problem(seq, event_hash, payload, digest, chained)
                if problem is not None:
                    return VerifyResult(
                        **base, last_hash=last_hash, snapshots=snapshots, problem=problem
                    )
        return VerifyResult(**base, last_hash=last_hash, snapshots=snapshots)


def _snapshot_problem(
    seq: int, event_hash: object, payload: object, digest: object, chained: object
) -> str | None:
    """What is wrong with a stored snapshot (recovery would skip it), or None."""
    if not isinstance(payload, bytes) or not isinstance(event_hash, bytes):
        return f"snapshot at seq {seq}: not a blob"
    if event_hash != (GENESIS_HASH if seq == 0 else chained):
        return f"snapshot at seq {seq}: its event hash is not the chain's hash at that seq"
    if digest != snapshot_digest(seq, event_hash, payload):
        return f"snapshot at seq {seq}: digest mismatch (damaged)"
    return None


def journal_stats(path: Path) -> JournalStats:
    """Event counts (total and by type), runs, seq and time extents, file size."""
    with open_readonly(path) as (db, version):
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


def export_jsonl(path: Path, out: IO[bytes], *, from_seq: int = 1) -> int:
    """Write events with ``seq >= from_seq`` to ``out`` as JSON lines; return how many.

    An undecodable payload stops the export with ``OperationalError`` naming its seq
    (the lines before it are written).
    """
    decoder = new_decoder()
    encoder = msgspec.json.Encoder()
    n = 0
    with open_readonly(path) as (db, _version):
        rows = db.execute(
            "SELECT seq, ts_ns, type, client_order_id, payload FROM events "
            "WHERE seq >= ? ORDER BY seq",
            (from_seq,),
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


def read_events(path: Path, type_name: str) -> list[tuple[int, JournalEvent]]:
    """Every event of type ``type_name`` (its journal tag) as ``(seq, event)``, in order.
    An undecodable payload is an ``OperationalError`` naming its seq."""
    decoder = new_decoder()
    found: list[tuple[int, JournalEvent]] = []
    with open_readonly(path) as (db, _version):
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
    "NotAJournalError",
    "VerifyResult",
    "export_jsonl",
    "journal_stats",
    "read_events",
    "verify_journal",
]

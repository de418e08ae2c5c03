"""Journal shipping: between full backups, the events journaled since the last shipped
seq leave the node every ``ship_interval_s`` as an encrypted segment, so losing the
node loses at most that interval (the RPO), not the time since the last full backup.

A segment holds the journal's rows as they are stored (seq, time, type, payload, and
each row's ``prev_hash`` and ``hash``), the snapshots taken in that range, the runs
table and the anchors file as read before the rows (every anchor names a shipped or
earlier record), and the FIX session stores' sequence numbers and last sent messages
(``bastion.backup.fix_state``: restore brings the stores current). Its record states
its seq range, the hash its first row chains from (``prev_hash``) and its last row's
hash: restore applies a segment only where it continues the restored journal's chain.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Final

import msgspec
import structlog

from bastion import __version__
from bastion.backup import fix_state, pg_journal
from bastion.backup.catalog import fetch_record, fulls, segments
from bastion.backup.create import archive_path, seal_and_store, work_dir
from bastion.backup.desk import Desk
from bastion.backup.destinations import Destination
from bastion.backup.manifest import (
    MANIFEST_NAME,
    JournalHead,
    Manifest,
    Piece,
    Record,
    encode_manifest,
    segment_id,
    sha256_file,
)
from bastion.backup.signing import Signers
from bastion.clock import Clock
from bastion.errors import BackupError, BastionError
from bastion.journal.anchors import anchor_path
from bastion.storage.connect import DB_ERRORS, connect

log = structlog.get_logger("bastion.backup")

SEGMENT_NAME: Final = "segment.msgpack"
MAX_SEGMENT_EVENTS: Final = 200_000

EventRow = tuple[int, int, str, str | None, bytes, bytes | None, bytes | None]
SnapshotRow = tuple[int, int, bytes, bytes, bytes]
RunRow = tuple[int, str, int]


class SegmentData(msgspec.Struct, frozen=True, kw_only=True):
    events: list[EventRow]
    snapshots: list[SnapshotRow]
    runs: list[RunRow]
    anchors: bytes | None
    fix_sessions: list[fix_state.ShippedSession] = msgspec.field(default_factory=list)
    backend: str = "sqlite"
    """``postgres``: ``events`` and ``snapshots`` are rows as that journal stores them
    (sealed payloads stay sealed), and ``runs`` is empty: they are in ``pg_runs``."""
    pg_runs: list[pg_journal.PgRunRow] = msgspec.field(default_factory=list)


def shipped_through(
    destination: Destination, signers: Signers, *, node_id: str | None = None
) -> int:
    """The last seq already at the destination (a segment's or else a full backup's).
    With ``signers``, the record that says so must be signed by one of them, and with
    ``node_id`` be that node's: a forged name far ahead, or another desk's genuine
    record copied in, would otherwise stop the shipping of every event up to it."""
    found = [*segments(destination), *fulls(destination)]
    if not found:
        return 0
    newest = max(found, key=lambda e: e.last_seq)
    if signers.required:
        fetch_record(destination, newest.id, signers, node_id=node_id)
    return newest.last_seq


def read_segment(desk: Desk, after_seq: int) -> SegmentData:
    anchors = anchor_path(desk.journal)
    anchor_bytes = anchors.read_bytes() if anchors.is_file() else None
    if desk.pg is not None:
        pg_events, pg_snapshots, pg_runs = pg_journal.rows_after(
            desk.pg, after_seq, MAX_SEGMENT_EVENTS
        )
        return SegmentData(
            events=pg_events,
            snapshots=pg_snapshots,
            runs=[],
            anchors=anchor_bytes,
            fix_sessions=_fix_sessions(desk),
            backend="postgres",
            pg_runs=pg_runs,
        )
    try:
        db = connect(desk.journal, key=desk.journal_key, readonly=True, what="journal")
    except DB_ERRORS as error:
        raise BackupError(f"journal {desk.journal}: cannot open to ship: {error}") from None
    try:
        db.execute("BEGIN")
        events = [
            tuple(row)
            for row in db.execute(
                "SELECT seq, ts_ns, type, client_order_id, payload, prev_hash, hash FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, MAX_SEGMENT_EVENTS),
            )
        ]
        last = events[-1][0] if events else after_seq
        snapshots = [
            tuple(row)
            for row in db.execute(
                "SELECT seq, ts_ns, event_hash, payload, digest FROM snapshots "
                "WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after_seq, last),
            )
        ]
        runs = [tuple(row) for row in db.execute("SELECT epoch, node_id, started_ns FROM runs")]
        db.execute("COMMIT")
    except DB_ERRORS as error:
        raise BackupError(f"journal {desk.journal}: cannot read to ship: {error}") from None
    finally:
        db.close()
    return SegmentData(
        events=events,
        snapshots=snapshots,
        runs=runs,
        anchors=anchor_bytes,
        fix_sessions=_fix_sessions(desk),
    )


def _fix_sessions(desk: Desk) -> list[fix_state.ShippedSession]:
    """Read after the rows: the stores are then at or ahead of every order they hold."""
    return [
        session
        for source in desk.sources
        if source.kind == "fix_store"
        for session in fix_state.read(source.path, archive_path(desk, source.path), source.key)
    ]


def ship_once(
    desk: Desk, destination: Destination, *, after_seq: int, clock: Clock
) -> Record | None:
    """Ship the events after ``after_seq`` as one segment; None when there are none."""
    data = read_segment(desk, after_seq)
    if not data.events:
        return None
    first, last = data.events[0][0], data.events[-1][0]
    if first != after_seq + 1:
        raise BackupError(
            f"journal {desk.journal}: the next event to ship is seq {first}, expected "
            f"{after_seq + 1} (the journal does not continue what was shipped)"
        )
    prev = data.events[0][5]
    head = data.events[-1][6]
    created_ns = clock.timestamp_ns()
    work = work_dir(desk)
    try:
        staging = work / "staging"
        staging.mkdir(mode=0o700)
        (staging / SEGMENT_NAME).write_bytes(msgspec.msgpack.encode(data))
        piece = Piece(
            path=SEGMENT_NAME,
            kind="segment",
            size=(staging / SEGMENT_NAME).stat().st_size,
            sha256=sha256_file(staging / SEGMENT_NAME),
            source=str(desk.journal),
        )
        manifest = Manifest(
            id=segment_id(first, last, created_ns),
            kind="segment",
            node_id=desk.node_id,
            created_ns=created_ns,
            bastion_version=__version__,
            config_path="",
            config_sha256="",
            journal=JournalHead(
                backend=data.backend,
                path=None,
                events=len(data.events),
                last_seq=last,
                head_hash=head.hex() if head else None,
                encrypted=desk.config.journal.encryption_key is not None,
            ),
            pieces=[piece],
            first_seq=first,
            last_seq=last,
            prev_hash=prev.hex() if prev else None,
        )
        (staging / MANIFEST_NAME).write_bytes(encode_manifest(manifest))
        record = seal_and_store(
            work,
            staging,
            manifest,
            desk.backup.recipients,
            destination,
            head_hash=manifest.journal.head_hash,
            signer=desk.signer,
        )
    except BackupError:
        raise
    except (BastionError, OSError) as error:
        raise BackupError(f"journal shipping of {desk.config_path}: {error}") from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("backup_segment_shipped", id=record.id, first_seq=first, last_seq=last)
    return record


OnRound = Callable[[Record | None, BackupError | None, int], None]
"""Told after each round: the segment shipped (None: nothing new), the error (None: the
round worked) and the last seq at the destination."""


def ship_forever(
    desk: Desk,
    destination: Destination,
    *,
    interval_s: float,
    clock: Clock,
    rounds: int | None = None,
    on_round: OnRound | None = None,
) -> int:
    """Ship every ``interval_s`` (``rounds`` times, or until interrupted); how many
    segments were shipped. A failed round is logged (``backup_failed``) and retried at
    the next interval from the same seq; the last of ``rounds`` raises instead."""
    shipped = 0
    after = shipped_through(destination, desk.backup.signers(), node_id=desk.node_id)
    n = 0
    while rounds is None or n < rounds:
        n += 1
        started = time.monotonic()
        failed: BackupError | None = None
        try:
            record = ship_once(desk, destination, after_seq=after, clock=clock)
        except BackupError as error:
            if rounds is not None and n >= rounds:
                raise
            log.error("backup_failed", command="ship", error=str(error))
            record, failed = None, error
        if record is not None:
            after = record.last_seq
            shipped += 1
        if on_round is not None:
            on_round(record, failed, after)
        if rounds is not None and n >= rounds:
            break
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return shipped

"""``bastion backup restore``: rebuild a desk in a new directory from a full backup and
the journal segments shipped after it.

Everything happens in a scratch directory beside the target (same filesystem): fetch
the record and the blob, check the blob's size and SHA-256 against the record, decrypt
it, unpack it, check that the manifest inside agrees with the record and that every
piece is there with its size and SHA-256 (and nothing else), apply the segments whose
rows continue the journal's chain, check the restored journal's whole chain, and only
then rename the result into place. Any failure removes the scratch directory: a
restore gives a whole desk or nothing.

The restored directory holds the desk's files where they were relative to its config,
files that were elsewhere under ``outside/`` (their absolute path below it), and the
backup's manifest as ``.bastion-restore.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import structlog

from bastion.backup import archive, encryption, fix_state
from bastion.backup.catalog import Entry, fetch_record, find, segments
from bastion.backup.destinations import Destination
from bastion.backup.manifest import (
    MANIFEST_NAME,
    Manifest,
    Record,
    check_agrees,
    decode_manifest,
    sha256_file,
)
from bastion.backup.shipping import SEGMENT_NAME, SegmentData
from bastion.errors import BackupError, UsageError
from bastion.journal.anchors import anchor_path
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.storage.connect import DB_ERRORS, connect

log = structlog.get_logger("bastion.backup")

RESTORE_MANIFEST: Final = ".bastion-restore.json"

KeysFor = Callable[[Path, Manifest], JournalKeys]
"""The restored journal's keys, given the restored desk and the manifest (an encrypted
or keyed journal needs them from the desk's vault); ``PLAINTEXT`` otherwise."""
StoreKeysFor = Callable[[Path], dict[str, bytes | None]]
"""The restored FIX session stores' keys by their path in the backup, given the restored
config (an encrypted store's from the desk's vault)."""


@dataclass(frozen=True)
class Restored:
    """What was restored: the full backup, the segments applied and the journal's head."""

    target: Path
    backup_id: str
    segments: list[str]
    last_seq: int
    head_hash: str | None
    journal: Path
    config: Path
    seconds: float
    fix_sessions: int = 0
    phases_s: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: ``fetch`` (the full backup fetched, checked, decrypted,
    unpacked), ``segments`` (fetched and applied), ``verify`` (the journal's chain)."""


def no_store_keys(_config: Path) -> dict[str, bytes | None]:
    return {}


def plaintext_keys(_desk: Path, _manifest: Manifest) -> JournalKeys:
    return PLAINTEXT


def check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"restore target {target}: exists and is not an empty directory")


def fetch_verified(
    destination: Destination, entry_id: str, scratch: Path, identities: list[Any] | None
) -> tuple[Record, Path]:
    """The record and the blob, the blob checked against the record; with identities,
    also decrypted and unpacked into ``scratch/<id>`` (the path returned then)."""
    record = fetch_record(destination, entry_id)
    blob = scratch / record.blob
    destination.get(record.blob, blob)
    size = blob.stat().st_size
    if size != record.blob_size:
        raise BackupError(
            f"backup {record.id}: the blob is {size:,} bytes, its record says "
            f"{record.blob_size:,} (truncated or replaced)"
        )
    if sha256_file(blob) != record.blob_sha256:
        raise BackupError(f"backup {record.id}: the blob's SHA-256 does not match its record")
    if identities is None:
        blob.unlink()
        return record, scratch
    tar = scratch / (record.id + ".tar")
    encryption.decrypt_file(blob, tar, identities, name=record.id)
    blob.unlink()
    into = scratch / record.id
    into.mkdir(mode=0o700)
    archive.unpack(tar, into, name=record.id)
    tar.unlink()
    return record, into


def open_contents(record: Record, unpacked: Path) -> Manifest:
    """The manifest inside, checked against the record; every piece checked."""
    manifest_file = unpacked / MANIFEST_NAME
    if not manifest_file.is_file():
        raise BackupError(f"backup {record.id}: holds no {MANIFEST_NAME}")
    manifest = decode_manifest(manifest_file.read_bytes())
    check_agrees(record, manifest)
    listed = {MANIFEST_NAME}
    for piece in manifest.pieces:
        path = unpacked / piece.path
        listed.add(piece.path)
        if not path.is_file():
            raise BackupError(f"backup {record.id}: piece {piece.path} ({piece.kind}) is missing")
        if path.stat().st_size != piece.size or sha256_file(path) != piece.sha256:
            raise BackupError(
                f"backup {record.id}: piece {piece.path} ({piece.kind}) does not match its "
                "size or SHA-256"
            )
    extra = sorted(
        p.relative_to(unpacked).as_posix()
        for p in unpacked.rglob("*")
        if p.is_file() and p.relative_to(unpacked).as_posix() not in listed
    )
    if extra:
        raise BackupError(f"backup {record.id}: holds files its manifest does not list: {extra}")
    return manifest


def restore(
    destination: Destination,
    backup_id: str,
    target: Path,
    *,
    identities: list[Any],
    keys_for: KeysFor = plaintext_keys,
    with_segments: bool = True,
    store_keys_for: StoreKeysFor = no_store_keys,
) -> Restored:
    """Restore ``backup_id`` (or ``latest``) and the segments after it into ``target``; the
    FIX session stores are brought to the last segment's state (``fix_state``)."""
    from bastion.journal import verify_journal

    started = time.monotonic()
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".bastion-restore-", dir=target.parent))
    try:
        entry = find(destination, backup_id)
        if entry.kind != "full":
            raise UsageError(f"backup {entry.id}: a journal segment; restore a full backup")
        record, unpacked = fetch_verified(destination, entry.id, scratch, identities)
        manifest = open_contents(record, unpacked)
        phases = {"fetch": time.monotonic() - started}
        tree = unpacked / "desk"
        journal = unpacked / manifest.journal.path if manifest.journal.path else None
        if journal is None or not journal.is_file():
            raise BackupError(f"backup {record.id}: holds no journal")
        config = unpacked / manifest.config_path
        keys = keys_for(config, manifest)
        applied: list[str] = []
        sessions: list[fix_state.ShippedSession] = []
        last_seq, head = manifest.journal.last_seq, manifest.journal.head_hash
        if with_segments:
            for seg in _segments_after(destination, manifest.journal.last_seq):
                seg_record, seg_dir = fetch_verified(destination, seg.id, scratch, identities)
                open_contents(seg_record, seg_dir)
                data = msgspec.msgpack.decode(
                    (seg_dir / SEGMENT_NAME).read_bytes(), type=SegmentData
                )
                last_seq, head = _apply(journal, keys, data, last_seq, head, seg.id)
                sessions += data.fix_sessions
                applied.append(seg.id)
                shutil.rmtree(seg_dir)
        phases["segments"] = time.monotonic() - started - phases["fetch"]
        result = verify_journal(journal, keys=keys)
        phases["verify"] = time.monotonic() - started - phases["fetch"] - phases["segments"]
        if not result.ok:
            raise BackupError(
                f"backup {record.id}: the restored journal fails its check: {result.problem}"
            )
        fix_sessions = (
            fix_state.apply(unpacked, sessions, store_keys_for(config)) if sessions else 0
        )
        (unpacked / MANIFEST_NAME).rename(tree / RESTORE_MANIFEST)
        outside = unpacked / "outside"
        if outside.is_dir():
            outside.rename(tree / "outside")
        for extra in unpacked.iterdir():
            if extra.name != "desk":
                (extra.unlink() if extra.is_file() else shutil.rmtree(extra))
        if target.exists():
            target.rmdir()
        os.rename(tree, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    rel = (
        Path(manifest.config_path).relative_to("desk")
        if manifest.config_path.startswith("desk/")
        else None
    )
    restored = Restored(
        target=target,
        backup_id=record.id,
        segments=applied,
        last_seq=last_seq,
        head_hash=head,
        journal=target / Path(manifest.journal.path or "").relative_to("desk"),
        config=target / rel if rel is not None else target,
        seconds=time.monotonic() - started,
        fix_sessions=fix_sessions,
        phases_s=phases,
    )
    log.info(
        "backup_restored",
        id=record.id,
        target=str(target),
        segments=len(applied),
        last_seq=last_seq,
        seconds=round(restored.seconds, 3),
    )
    return restored


def _segments_after(destination: Destination, last_seq: int) -> list[Entry]:
    return [s for s in segments(destination) if s.last_seq > last_seq]


def _apply(
    journal: Path,
    keys: JournalKeys,
    data: SegmentData,
    last_seq: int,
    head: str | None,
    seg_id: str,
) -> tuple[int, str | None]:
    """Append the segment's rows after ``last_seq`` to the restored journal, each one
    continuing the chain; the new last seq and head."""
    rows = [r for r in data.events if r[0] > last_seq]
    if not rows:
        return last_seq, head
    if rows[0][0] != last_seq + 1:
        raise BackupError(
            f"segment {seg_id}: starts at seq {rows[0][0]}, the journal ends at {last_seq} "
            "(a segment is missing)"
        )
    try:
        db = connect(journal, key=keys.encryption, what="restored journal")
    except DB_ERRORS as error:
        raise BackupError(f"restored journal: cannot open to apply {seg_id}: {error}") from None
    try:
        db.execute("BEGIN IMMEDIATE")
        for row in rows:
            prev = row[5].hex() if row[5] is not None else None
            if row[0] != last_seq + 1 or prev != head:
                raise BackupError(
                    f"segment {seg_id}: seq {row[0]} does not continue the journal's chain "
                    f"at seq {last_seq}"
                )
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            last_seq, head = row[0], row[6].hex() if row[6] is not None else None
        db.executemany(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?)",
            [s for s in data.snapshots if s[0] <= last_seq],
        )
        db.executemany("INSERT OR IGNORE INTO runs VALUES (?, ?, ?)", data.runs)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    anchors = anchor_path(journal)
    if data.anchors is not None and (
        not anchors.is_file() or len(data.anchors) > anchors.stat().st_size
    ):
        anchors.write_bytes(data.anchors)
        anchors.chmod(0o600)
    return last_seq, head

"""``bastion backup create``: one full, online, consistent backup of a desk.

Steps: copy every piece into a private staging directory (databases through SQLite's
backup API from one read snapshot, files as they are), write ``manifest.json``, tar
the lot, encrypt the tar with age to the configured recipients, delete the plaintext,
then put the blob and, last, its record (signed with ``[backup] signing_key`` when one
is set) to the destination. The staging directory is
in the desk's own directory (same disk, same permissions as what it copies) and is
removed whatever happens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

from bastion import __version__
from bastion.backup import archive, encryption, pg_journal
from bastion.backup.desk import Desk, Source
from bastion.backup.destinations import Destination
from bastion.backup.manifest import (
    BLOB_SUFFIX,
    MANIFEST_NAME,
    RECORD_SUFFIX,
    Manifest,
    Piece,
    PieceKind,
    Record,
    encode_manifest,
    encode_record,
    full_id,
    sha256_file,
)
from bastion.backup.online import copy_database, journal_head
from bastion.backup.signing import RecordSigner
from bastion.clock import Clock
from bastion.errors import BackupError, BastionError
from bastion.vault.files import make_private_dir

log = structlog.get_logger("bastion.backup")

RUN_MANIFEST_NAME = "run-manifest.json"


@dataclass(frozen=True)
class Created:
    record: Record
    manifest: Manifest
    seconds: float


def archive_path(desk: Desk, path: Path) -> str:
    """Where a file goes in the archive: ``desk/REL`` under the config's directory,
    ``outside/ABS`` elsewhere (restored under ``DIR/outside``)."""
    resolved = path.resolve()
    try:
        return "desk/" + resolved.relative_to(desk.base_dir).as_posix()
    except ValueError:
        return "outside/" + resolved.as_posix().lstrip("/")


def work_dir(desk: Desk) -> Path:
    make_private_dir(desk.base_dir)
    return Path(tempfile.mkdtemp(prefix=".bastion-backup-", dir=desk.base_dir))


def create_backup(desk: Desk, destination: Destination, *, clock: Clock) -> Created:
    """Make one full backup of ``desk`` and store it; ``BackupError`` if any step fails
    (nothing is listed at the destination then)."""
    started = time.monotonic()
    work = work_dir(desk)
    try:
        staging = work / "staging"
        staging.mkdir(mode=0o700)
        created_ns = clock.timestamp_ns()
        pieces = [_stage(desk, source, staging) for source in desk.sources]
        kept = [p for p in pieces if p is not None]
        if desk.pg is not None:  # after the anchors: each names a record the dump holds
            head = pg_journal.dump(
                desk.pg,
                staging / pg_journal.DUMP_NAME,
                encrypted=desk.config.journal.encryption_key is not None,
            )
            kept.append(_piece(staging, pg_journal.DUMP_NAME, "journal", desk.pg.url))
        else:
            journal_piece = next(p for p in kept if p.kind == "journal")
            head = journal_head(
                staging / journal_piece.path, key=desk.journal_key, archive_path=journal_piece.path
            )
        kept.append(_run_manifest(desk, staging, created_ns))
        config_piece = next(p for p in kept if p.kind == "config")
        backup_id = full_id(created_ns, head.last_seq)
        manifest = Manifest(
            id=backup_id,
            kind="full",
            node_id=desk.node_id,
            created_ns=created_ns,
            bastion_version=__version__,
            config_path=config_piece.path,
            config_sha256=config_piece.sha256,
            journal=head,
            pieces=kept,
            first_seq=1 if head.last_seq else 0,
            last_seq=head.last_seq,
        )
        (staging / MANIFEST_NAME).write_bytes(encode_manifest(manifest))
        record = seal_and_store(
            work,
            staging,
            manifest,
            desk.backup.recipients,
            destination,
            head_hash=head.head_hash,
            signer=desk.signer,
        )
    except BackupError:
        raise
    except (BastionError, OSError) as error:
        raise BackupError(f"backup of {desk.config_path}: {error}") from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info(
        "backup_created",
        id=record.id,
        destination=destination.where,
        last_seq=record.last_seq,
        bytes=record.blob_size,
        seconds=round(seconds, 3),
    )
    return Created(record=record, manifest=manifest, seconds=seconds)


def seal_and_store(
    work: Path,
    staging: Path,
    manifest: Manifest,
    recipients: list[str],
    destination: Destination,
    *,
    head_hash: str | None,
    signer: RecordSigner | None,
) -> Record:
    """Tar ``staging``, encrypt it, put the blob then its record (signed by ``signer``);
    the record as stored."""
    tar = work / "archive.tar"
    archive.pack(staging, tar)
    shutil.rmtree(staging)
    blob = work / (manifest.id + BLOB_SUFFIX)
    encryption.encrypt_file(tar, blob, recipients)
    tar.unlink()
    record = Record(
        id=manifest.id,
        kind=manifest.kind,
        node_id=manifest.node_id,
        created_ns=manifest.created_ns,
        blob=blob.name,
        blob_size=blob.stat().st_size,
        blob_sha256=sha256_file(blob),
        first_seq=manifest.first_seq,
        last_seq=manifest.last_seq,
        head_hash=head_hash,
        prev_hash=manifest.prev_hash,
        recipients=list(recipients),
    )
    record = record.sealed() if signer is None else record.signed_by(signer)
    record_file = work / (manifest.id + RECORD_SUFFIX)
    record_file.write_bytes(encode_record(record))
    destination.put(blob.name, blob)
    destination.put(record_file.name, record_file)  # last: the backup now exists
    return record


def _stage(desk: Desk, source: Source, staging: Path) -> Piece | None:
    where = archive_path(desk, source.path)
    target = staging / where
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not source.path.exists():
        if source.kind in ("journal_anchors", "fix_store", "venue_store", "venue_ledger"):
            return None  # not made yet (no keyed chain; no session so far)
        raise BackupError(f"backup of {desk.config_path}: {source.kind} {source.path} not found")
    if source.database:
        copy_database(
            source.path,
            target,
            key=source.key,
            pages=desk.backup.copy_pages_per_step,
            pause_s=desk.backup.copy_pause_ms / 1000,
            what=source.kind.replace("_", " "),
        )
    else:
        shutil.copyfile(source.path, target)
    return _piece(staging, where, source.kind, str(source.path))


def _piece(staging: Path, where: str, kind: PieceKind, source: str) -> Piece:
    target = staging / where
    os.chmod(target, 0o600)
    return Piece(
        path=where, kind=kind, size=target.stat().st_size, sha256=sha256_file(target), source=source
    )


def _run_manifest(desk: Desk, staging: Path, ts_ns: int) -> Piece:
    """The desk's run manifest as of the backup: config and strategy hashes, git state."""
    from bastion.live.preflight import node_manifest

    manifest = node_manifest(
        desk.config, base_dir=desk.base_dir, source=str(desk.config_path), who="backup", ts_ns=ts_ns
    )
    target = staging / RUN_MANIFEST_NAME
    target.write_bytes(msgspec.json.encode(manifest))
    return Piece(
        path=RUN_MANIFEST_NAME,
        kind="run_manifest",
        size=target.stat().st_size,
        sha256=sha256_file(target),
        source="",
    )

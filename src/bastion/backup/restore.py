"""``bastion backup restore``: rebuild a desk in a new directory from a full backup and
the journal segments shipped after it.

Everything happens in a scratch directory beside the target (same filesystem): fetch
the record (its signature checked when public keys are given: ``bastion.backup.
signing``) and the blob, check the blob's size and SHA-256 against the record, decrypt
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

from bastion.backup import archive, encryption, fix_state, pg_journal
from bastion.backup.catalog import Entry, fetch_record, find, segments
from bastion.backup.destinations import Destination, ObjectTooLarge
from bastion.backup.manifest import (
    MANIFEST_NAME,
    Manifest,
    Record,
    check_agrees,
    decode_manifest,
    sha256_file,
)
from bastion.backup.shipping import SEGMENT_NAME, SegmentData
from bastion.backup.signing import Signers
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
    journal_where: str | None = None
    """A PostgreSQL journal: the database and name it was restored into."""
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
    destination: Destination,
    entry_id: str,
    scratch: Path,
    identities: list[Any] | None,
    signers: Signers,
    *,
    node_id: str | None = None,
) -> tuple[Record, Path]:
    """The record (signed by one of ``signers``, when any is given; ``node_id``'s, when
    given) and the blob, the blob checked against the record; with identities, also
    decrypted and unpacked into ``scratch/<id>`` (the path returned then)."""
    record = fetch_record(destination, entry_id, signers, node_id=node_id)
    blob = scratch / record.blob
    try:
        destination.get(record.blob, blob, max_bytes=record.blob_size)
    except ObjectTooLarge:
        raise BackupError(
            f"backup {record.id}: the blob is over its record's {record.blob_size:,} bytes "
            "(replaced)"
        ) from None
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
    signers: Signers,
    keys_for: KeysFor = plaintext_keys,
    with_segments: bool = True,
    store_keys_for: StoreKeysFor = no_store_keys,
    to_pg: PgTarget | None = None,
    node_id: str | None = None,
) -> Restored:
    """Restore ``backup_id`` (or ``latest``) and the segments after it into ``target``; the
    FIX session stores are brought to the last segment's state (``fix_state``). A
    PostgreSQL journal's backup writes the journal into ``to_pg``'s database instead of
    a file (the desk's other files still go to ``target``). With ``signers``, the full
    backup's record and every segment's must be signed by one of them. Every segment
    must be of the full backup's node, and that one ``node_id``'s when given (a
    record copied in from another desk's backups is refused, signed or not)."""
    started = time.monotonic()
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".bastion-restore-", dir=target.parent))
    try:
        entry = find(destination, backup_id)
        if entry.kind != "full":
            raise UsageError(f"backup {entry.id}: a journal segment; restore a full backup")
        record, unpacked = fetch_verified(
            destination, entry.id, scratch, identities, signers, node_id=node_id
        )
        manifest = open_contents(record, unpacked)
        phases = {"fetch": time.monotonic() - started}
        tree = unpacked / "desk"
        config = unpacked / manifest.config_path
        keys = keys_for(config, manifest)
        segs = _segments_after(destination, manifest.journal.last_seq) if with_segments else []
        fetching = _Fetching(destination, scratch, identities, signers, record.node_id)
        if manifest.journal.backend == "postgres":
            if to_pg is None:
                raise UsageError(
                    f"backup {record.id}: holds a PostgreSQL journal; name the database to "
                    "restore it into (bastion backup restore --to-url; the drill: [dr] "
                    "scratch_url)"
                )
            done = _restore_pg(fetching, record, manifest, unpacked, segs, keys, phases)
        else:
            done = _restore_sqlite(fetching, record, manifest, unpacked, segs, keys, phases)
        last_seq, head, applied = done.last_seq, done.head, done.applied
        fix_sessions = (
            fix_state.apply(unpacked, done.sessions, store_keys_for(config)) if done.sessions else 0
        )
        where = None
        if done.pg is not None:  # last: a restore that failed before wrote no database
            assert to_pg is not None
            mark = time.monotonic()
            where = done.pg.load(to_pg.url, to_pg.password_for(config))
            phases["load"] = time.monotonic() - mark
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
        journal=_restored_journal(target, manifest),
        config=target / rel if rel is not None else target,
        seconds=time.monotonic() - started,
        fix_sessions=fix_sessions,
        phases_s=phases,
        journal_where=where,
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


@dataclass(frozen=True)
class PgTarget:
    """Where a PostgreSQL journal's backup is restored: a libpq URL without a password,
    and the password given the restored config (``PGPASSWORD``, or its vault's)."""

    url: str
    password_for: Callable[[Path], str | None]


@dataclass(frozen=True)
class _Fetching:
    destination: Destination
    scratch: Path
    identities: list[Any]
    signers: Signers
    node_id: str
    """The full backup's node: every segment applied must be of it."""

    def segment(self, seg: Entry) -> SegmentData:
        seg_record, seg_dir = fetch_verified(
            self.destination,
            seg.id,
            self.scratch,
            self.identities,
            self.signers,
            node_id=self.node_id,
        )
        open_contents(seg_record, seg_dir)
        data = msgspec.msgpack.decode((seg_dir / SEGMENT_NAME).read_bytes(), type=SegmentData)
        shutil.rmtree(seg_dir)
        return data


@dataclass
class _Journal:
    last_seq: int
    head: str | None
    applied: list[str] = field(default_factory=list)
    sessions: list[fix_state.ShippedSession] = field(default_factory=list)
    pg: pg_journal.Restoring | None = None


def _restore_sqlite(
    fetching: _Fetching,
    record: Record,
    manifest: Manifest,
    unpacked: Path,
    segs: list[Entry],
    keys: JournalKeys,
    phases: dict[str, float],
) -> _Journal:
    from bastion.journal import verify_journal

    mark = time.monotonic()
    journal = unpacked / manifest.journal.path if manifest.journal.path else None
    if journal is None or not journal.is_file():
        raise BackupError(f"backup {record.id}: holds no journal")
    done = _Journal(manifest.journal.last_seq, manifest.journal.head_hash)
    for seg in segs:
        data = fetching.segment(seg)
        done.last_seq, done.head = _apply(journal, keys, data, done.last_seq, done.head, seg.id)
        done.sessions += data.fix_sessions
        done.applied.append(seg.id)
    phases["segments"] = time.monotonic() - mark
    mark = time.monotonic()
    result = verify_journal(journal, keys=keys)
    phases["verify"] = time.monotonic() - mark
    if not result.ok:
        raise BackupError(
            f"backup {record.id}: the restored journal fails its check: {result.problem}"
        )
    return done


def _restore_pg(
    fetching: _Fetching,
    record: Record,
    manifest: Manifest,
    unpacked: Path,
    segs: list[Entry],
    keys: JournalKeys,
    phases: dict[str, float],
) -> _Journal:
    """The dump and the segments' rows checked (offline, with the restored keys), to be
    loaded into the database once the rest of the desk is in place."""
    mark = time.monotonic()
    pg = pg_journal.Restoring.open(unpacked / (manifest.journal.path or pg_journal.DUMP_NAME))
    anchors = local_anchors(unpacked, manifest)
    done = _Journal(pg.last_seq, pg.head_hash, pg=pg)
    for seg in segs:
        data = fetching.segment(seg)
        if data.backend != "postgres":
            raise BackupError(f"segment {seg.id}: not of a PostgreSQL journal")
        pg.add_segment(seg.id, data.events, data.snapshots, data.pg_runs)
        if anchors is not None:
            _apply_anchors(anchors, data.anchors)
        done.sessions += data.fix_sessions
        done.applied.append(seg.id)
    done.last_seq, done.head = pg.last_seq, pg.head_hash
    phases["segments"] = time.monotonic() - mark
    mark = time.monotonic()
    problem = pg.check(keys, anchors)
    phases["verify"] = time.monotonic() - mark
    if problem is not None:
        raise BackupError(f"backup {record.id}: the restored journal fails its check: {problem}")
    return done


def local_anchors(unpacked: Path, manifest: Manifest) -> Path | None:
    """The restored anchors file of a PostgreSQL journal (beside its local path)."""
    from bastion.config import PaperConfig, load_config
    from bastion.journal.factory import journal_local_path

    config = unpacked / manifest.config_path
    if not config.is_file():
        return None
    node = load_config(config, PaperConfig)
    return anchor_path(journal_local_path(node.journal, config.parent))


def _restored_journal(target: Path, manifest: Manifest) -> Path:
    if manifest.journal.backend == "postgres" or not manifest.journal.path:
        return target
    return target / Path(manifest.journal.path).relative_to("desk")


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
    _apply_anchors(anchor_path(journal), data.anchors)
    return last_seq, head


def _apply_anchors(anchors: Path, shipped: bytes | None) -> None:
    """The shipped anchors file, when it holds more than the restored one."""
    if shipped is not None and (not anchors.is_file() or len(shipped) > anchors.stat().st_size):
        anchors.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        anchors.write_bytes(shipped)
        anchors.chmod(0o600)

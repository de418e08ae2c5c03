"""The backups at a destination, read from their names (no blob is fetched to list
them): full backups by time, journal segments by seq range. A blob without its record
is an unfinished upload and is not listed. ``fetch_record`` reads one record back,
checked for damage and, when public keys are given, for its signature."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bastion.backup.destinations import Destination
from bastion.backup.manifest import (
    BLOB_SUFFIX,
    RECORD_SUFFIX,
    Record,
    check_signature,
    decode_record,
)
from bastion.backup.signing import Signers
from bastion.errors import BackupError

_FULL: Final = re.compile(r"full-(\d{8}T\d{9}Z)-(\d{12})")
_SEGMENT: Final = re.compile(r"seg-(\d{12})-(\d{12})-(\d{8}T\d{9}Z)")


@dataclass(frozen=True, order=True)
class Entry:
    """One finished backup: its id, kind and journal seq range (from its name)."""

    id: str
    kind: str
    first_seq: int
    last_seq: int
    stamp: str


def entries(destination: Destination) -> list[Entry]:
    names = set(destination.names())
    found = []
    for name in names:
        if not name.endswith(RECORD_SUFFIX):
            continue
        backup_id = name[: -len(RECORD_SUFFIX)]
        if backup_id + BLOB_SUFFIX not in names:
            continue
        if m := _FULL.fullmatch(backup_id):
            found.append(Entry(backup_id, "full", 1, int(m.group(2)), m.group(1)))
        elif m := _SEGMENT.fullmatch(backup_id):
            found.append(Entry(backup_id, "segment", int(m.group(1)), int(m.group(2)), m.group(3)))
    return sorted(found, key=lambda e: (e.stamp, e.id))


def fulls(destination: Destination) -> list[Entry]:
    """Full backups, oldest first."""
    return [e for e in entries(destination) if e.kind == "full"]


def segments(destination: Destination) -> list[Entry]:
    """Journal segments in seq order."""
    return sorted(
        (e for e in entries(destination) if e.kind == "segment"),
        key=lambda e: (e.first_seq, e.last_seq, e.stamp),
    )


def latest_full(destination: Destination) -> Entry:
    found = fulls(destination)
    if not found:
        raise BackupError(f"backup destination {destination.where}: holds no full backup")
    return found[-1]


def find(destination: Destination, backup_id: str) -> Entry:
    """The backup called ``backup_id`` (``latest``: the newest full backup)."""
    if backup_id == "latest":
        return latest_full(destination)
    for entry in entries(destination):
        if entry.id == backup_id:
            return entry
    names = destination.names()
    if backup_id + BLOB_SUFFIX in names or backup_id + BLOB_SUFFIX + ".partial" in names:
        raise BackupError(
            f"backup {backup_id} at {destination.where}: incomplete (its record was never "
            "written: the upload did not finish)"
        )
    raise BackupError(f"backup {backup_id}: not found at {destination.where}")


def fetch_record(destination: Destination, backup_id: str, signers: Signers) -> Record:
    """The record of ``backup_id``: ``IntegrityError`` if it is damaged, names another
    backup, or lacks a valid signature by one of ``signers`` (when any is given)."""
    with tempfile.TemporaryDirectory(prefix="bastion-record-") as tmp:
        path = Path(tmp) / "record.json"
        destination.get(backup_id + RECORD_SUFFIX, path)
        record = decode_record(path.read_bytes(), backup_id + RECORD_SUFFIX)
    if record.id != backup_id or record.blob != backup_id + BLOB_SUFFIX:
        raise BackupError(f"backup record {backup_id}: names another backup ({record.id})")
    check_signature(record, signers, backup_id)
    return record

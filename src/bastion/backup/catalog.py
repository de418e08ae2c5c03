"""The backups at a destination, read from their names (no blob is fetched to list
them): full backups by time, journal segments by seq range. A blob without its record
is an unfinished upload and is not listed. ``fetch_record`` reads one record back,
checked for damage and, when public keys are given, for its signature; given the node
it must belong to, for that too: each desk's backups have a folder of their own, and a
record copied in from another desk's (signed by a key both desks share) is refused."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bastion.backup.destinations import Destination, ObjectTooLarge
from bastion.backup.manifest import (
    BLOB_SUFFIX,
    RECORD_SUFFIX,
    Record,
    check_signature,
    decode_record,
)
from bastion.backup.signing import Signers
from bastion.errors import BackupError, IntegrityError

_FULL: Final = re.compile(r"full-(\d{8}T\d{9}Z)-(\d{12})")
_SEGMENT: Final = re.compile(r"seg-(\d{12})-(\d{12})-(\d{8}T\d{9}Z)")
MAX_RECORD_BYTES: Final = 1 << 20
"""A record is a few hundred bytes (each recipient adds one line): one larger is not
read (it would be held in memory whole by every command that lists or checks backups)."""


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


def fetch_record(
    destination: Destination, backup_id: str, signers: Signers, *, node_id: str | None = None
) -> Record:
    """The record of ``backup_id``: ``IntegrityError`` if it is damaged, over
    ``MAX_RECORD_BYTES``, names another backup, lacks a valid signature by one of
    ``signers`` (when any is given) or, with ``node_id``, is another node's."""
    name = backup_id + RECORD_SUFFIX
    with tempfile.TemporaryDirectory(prefix="bastion-record-") as tmp:
        path = Path(tmp) / "record.json"
        try:
            destination.get(name, path, max_bytes=MAX_RECORD_BYTES)
        except ObjectTooLarge as error:
            raise IntegrityError(f"backup record {name}: not a backup record ({error})") from None
        record = decode_record(path.read_bytes(), name)
    if record.id != backup_id or record.blob != backup_id + BLOB_SUFFIX:
        raise BackupError(f"backup record {backup_id}: names another backup ({record.id})")
    check_signature(record, signers, backup_id)
    if node_id is not None and record.node_id != node_id:
        raise IntegrityError(
            f"backup {backup_id}: its record is of node {record.node_id[:64]!r}, not "
            f"{node_id!r} (copied in from another desk's backups)"
        )
    return record

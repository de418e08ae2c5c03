"""What a backup says about itself.

Two manifests:

- the **record** (``<id>.json``, plaintext beside the encrypted blob): what a machine
  without the private key can check, the blob's size and SHA-256, the backup's kind
  (``full`` or a journal ``segment``), its journal seq range and chain head, a checksum
  of the record itself and, with ``[backup] signing_key``, the signer's public key and
  an Ed25519 signature (``bastion.backup.signing``) of the record's canonical bytes
  (``signed_bytes``). It is written last: a backup without its record was never
  finished (a partial upload) and is not listed.
- the **manifest** (``manifest.json`` inside the encrypted archive): every piece's
  path, kind, size and SHA-256, the journal's last seq and head hash, the node, the
  config's SHA-256, the time and the bastion version. Restore checks that it agrees
  with the record, so a record edited to point at another blob is caught once
  decrypted.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Final, Literal

import msgspec

from bastion.backup.signing import RecordSigner, Signers
from bastion.errors import IntegrityError

FORMAT: Final = "bastion-backup/1"
SIGNING_CONTEXT: Final = b"bastion-backup-record/1\n"
"""Prefixed to what a record's signature covers: the key signs nothing else that could
be taken for a record."""
_OPTIONAL: Final = ("signer", "signature")
"""Left out of a record's bytes when unset, so that records made before signing keep
their checksum."""
RECORD_SUFFIX: Final = ".json"
BLOB_SUFFIX: Final = ".age"
MANIFEST_NAME: Final = "manifest.json"

Kind = Literal["full", "segment"]
PieceKind = Literal[
    "config",
    "strategy",
    "vault",
    "journal",
    "journal_anchors",
    "fix_store",
    "venue_config",
    "venue_ledger",
    "venue_store",
    "run_manifest",
    "file",
    "segment",
]


class Piece(msgspec.Struct, frozen=True, kw_only=True):
    """One file in the archive: ``path`` inside it (``desk/...`` for a file under the
    config's directory, ``outside/...`` for one elsewhere), ``source`` where it was."""

    path: str
    kind: PieceKind
    size: int
    sha256: str
    source: str


class JournalHead(msgspec.Struct, frozen=True, kw_only=True):
    """The journal as backed up: its file in the archive, the last seq and its hash."""

    backend: str
    path: str | None
    events: int
    last_seq: int
    head_hash: str | None
    encrypted: bool


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """``manifest.json`` inside the archive."""

    format: str = FORMAT
    id: str
    kind: Kind
    node_id: str
    created_ns: int
    bastion_version: str
    config_path: str
    config_sha256: str
    journal: JournalHead
    pieces: list[Piece]
    first_seq: int
    last_seq: int
    prev_hash: str | None = None


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """``<id>.json`` beside the blob: what verify checks without the private key."""

    format: str = FORMAT
    id: str
    kind: Kind
    node_id: str
    created_ns: int
    blob: str
    blob_size: int
    blob_sha256: str
    first_seq: int
    last_seq: int
    head_hash: str | None
    prev_hash: str | None = None
    recipients: list[str] = []
    signer: str | None = None
    """The public key (``ed25519:...``) that signed the record; None: unsigned."""
    signature: str | None = None
    """Base64 Ed25519 signature of ``signed_bytes``; None: unsigned."""
    checksum: str = ""

    def sealed(self) -> Record:
        return msgspec.structs.replace(self, checksum=_record_checksum(self))

    def signed_by(self, signer: RecordSigner) -> Record:
        """This record signed by ``signer`` (and sealed)."""
        named = msgspec.structs.replace(self, signer=signer.public, signature=None)
        signature = base64.b64encode(signer.sign(signed_bytes(named))).decode("ascii")
        return msgspec.structs.replace(named, signature=signature).sealed()


def _canonical(record: Record, *, leave_out: tuple[str, ...]) -> bytes:
    """The record as sorted, compact JSON without ``leave_out`` and the unset optional
    fields (the bytes a checksum or a signature covers)."""
    fields = msgspec.structs.asdict(record)
    for name in leave_out:
        del fields[name]
    for name in _OPTIONAL:
        if name in fields and fields[name] is None:
            del fields[name]
    return msgspec.json.encode(fields, order="sorted")


def signed_bytes(record: Record) -> bytes:
    """What a record's signature covers: every field but the signature and the checksum
    (which covers the signature), after ``SIGNING_CONTEXT``. The blob's SHA-256 is one
    of them, so the signature authenticates the blob too."""
    return SIGNING_CONTEXT + _canonical(record, leave_out=("signature", "checksum"))


def _record_checksum(record: Record) -> str:
    body = _canonical(msgspec.structs.replace(record, checksum=""), leave_out=())
    return hashlib.sha256(body).hexdigest()


def encode_record(record: Record) -> bytes:
    return msgspec.json.format(_canonical(record.sealed(), leave_out=()), indent=2)


def decode_record(data: bytes, name: str) -> Record:
    """A record read back; ``IntegrityError`` if it is not one or its checksum fails."""
    try:
        record = msgspec.json.decode(data, type=Record)
    except msgspec.DecodeError as error:
        raise IntegrityError(f"backup record {name}: not a backup record ({error})") from None
    if record.format != FORMAT:
        raise IntegrityError(f"backup record {name}: unknown format {record.format!r}")
    if record.checksum != _record_checksum(record):
        raise IntegrityError(f"backup record {name}: checksum does not match (edited or damaged)")
    return record


def check_signature(record: Record, signers: Signers, backup_id: str) -> None:
    """``IntegrityError`` naming ``backup_id`` unless ``record`` carries a valid
    signature by one of ``signers`` (none given: nothing is checked)."""
    signers.check(backup_id, record.signer, record.signature, signed_bytes(record))


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest, order="sorted"), indent=2)


def decode_manifest(data: bytes) -> Manifest:
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as error:
        raise IntegrityError(f"backup {MANIFEST_NAME}: not a backup manifest ({error})") from None


def check_agrees(record: Record, manifest: Manifest) -> None:
    """The record and the manifest inside the blob describe the same backup."""
    for field in ("id", "kind", "node_id", "created_ns", "first_seq", "last_seq", "prev_hash"):
        if getattr(record, field) != getattr(manifest, field):
            raise IntegrityError(
                f"backup {record.id}: its record and the manifest inside it disagree on "
                f"{field} (the record was edited, or belongs to another blob)"
            )
    if record.head_hash != manifest.journal.head_hash:
        raise IntegrityError(
            f"backup {record.id}: its record and the manifest inside it disagree on head_hash"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def full_id(created_ns: int, last_seq: int) -> str:
    """``full-20261207T062540123Z-000000001234``: sorts by time."""
    return f"full-{_stamp(created_ns)}-{last_seq:012d}"


def segment_id(first_seq: int, last_seq: int, created_ns: int) -> str:
    """``seg-000000001235-000000001300-20261207T062545123Z``: sorts by seq."""
    return f"seg-{first_seq:012d}-{last_seq:012d}-{_stamp(created_ns)}"


def _stamp(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"{rest // 1_000_000:03d}Z"

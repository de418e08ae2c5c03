"""``bastion backup verify``: check backups where they are stored.

Without the private key (integrity): each record's checksum and, when public signing
keys are given, its signature, and its blob's size and SHA-256 against it, so the
machine that stores backups can check them daily. With the identity (contents): the
blob decrypted, the manifest inside checked against the record, every piece's
SHA-256, and a full backup's journal chain verified on a temporary copy
(``bastion.journal.verify_journal``)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.backup.catalog import entries, find
from bastion.backup.destinations import Destination
from bastion.backup.manifest import Manifest
from bastion.backup.pg_journal import Restoring
from bastion.backup.restore import (
    KeysFor,
    fetch_verified,
    local_anchors,
    open_contents,
    plaintext_keys,
)
from bastion.backup.signing import Signers
from bastion.errors import BackupError
from bastion.journal.keys import JournalKeys


@dataclass(frozen=True)
class Checked:
    id: str
    kind: str
    contents: bool
    """True when the blob was decrypted and its contents checked too."""
    last_seq: int
    signed: bool = False
    """The record carries a signature (checked when signers were given)."""


def verify(
    destination: Destination,
    backup_id: str | None,
    *,
    identities: list[Any] | None,
    signers: Signers,
    keys_for: KeysFor = plaintext_keys,
    node_id: str | None = None,
) -> list[Checked]:
    """Check one backup (``latest`` for the newest full one), or all (``None``);
    ``BackupError`` (``IntegrityError``) naming the first that fails. With ``signers``,
    each record must be signed by one of them; with ``node_id``, be that node's."""
    chosen = entries(destination) if backup_id is None else [find(destination, backup_id)]
    checked = []
    for entry in chosen:
        scratch = Path(tempfile.mkdtemp(prefix="bastion-verify-"))
        try:
            record, unpacked = fetch_verified(
                destination, entry.id, scratch, identities, signers, node_id=node_id
            )
            if identities is not None:
                manifest = open_contents(record, unpacked)
                if manifest.kind == "full" and manifest.journal.path is not None:
                    config = unpacked / manifest.config_path
                    problem = _journal_problem(unpacked, manifest, keys_for(config, manifest))
                    if problem is not None:
                        raise BackupError(
                            f"backup {record.id}: its journal fails its check: {problem}"
                        )
            checked.append(
                Checked(
                    record.id,
                    record.kind,
                    identities is not None,
                    record.last_seq,
                    signed=record.signature is not None,
                )
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return checked


def _journal_problem(unpacked: Path, manifest: Manifest, keys: JournalKeys) -> str | None:
    """The backed-up journal's first problem (chain, snapshots, anchors), or None."""
    from bastion.journal import verify_journal

    assert manifest.journal.path is not None
    if manifest.journal.backend == "postgres":
        dump = Restoring.open(unpacked / manifest.journal.path)
        return dump.check(keys, local_anchors(unpacked, manifest))
    return verify_journal(unpacked / manifest.journal.path, keys=keys).problem

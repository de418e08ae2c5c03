"""Full backups to a directory and their restore: a whole desk or nothing."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from bastion.backup import encryption
from bastion.backup.catalog import entries, fetch_record
from bastion.backup.create import create_backup
from bastion.backup.desk import open_desk
from bastion.backup.destinations import DirDestination, open_destination
from bastion.backup.manifest import (
    BLOB_SUFFIX,
    MANIFEST_NAME,
    RECORD_SUFFIX,
    decode_manifest,
    encode_manifest,
    encode_record,
)
from bastion.backup.restore import RESTORE_MANIFEST, restore
from bastion.backup.signing import UNCHECKED
from bastion.backup.verify import verify
from bastion.clock import LiveClock
from bastion.errors import BackupError, BackupKeyError, IntegrityError, UsageError
from bastion.journal import verify_journal
from bastion.vault.keysource import KEY_FILE_ENV
from kit.backup_desk import (
    CANARY,
    BackupDesk,
    dir_destination,
    flip_byte,
    make_desk,
    secret_forms,
    stored_files,
)

CLOCK = LiveClock()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "offsite"


@pytest.fixture
def desk(tmp_path: Path, store: Path) -> BackupDesk:
    return make_desk(tmp_path / "desk", dir_destination(store))


def backup(desk: BackupDesk) -> tuple[DirDestination, str]:
    opened = open_desk(desk.config, clock=CLOCK)
    destination = open_destination(
        opened.backup, base_dir=opened.base_dir, node_id=opened.node_id, secrets=opened.secrets
    )
    assert isinstance(destination, DirDestination)
    created = create_backup(opened, destination, clock=CLOCK)
    return destination, created.record.id


def identities(desk: BackupDesk) -> list[object]:
    return encryption.load_identities(desk.identity)


def test_when_restored_then_every_file_is_back_and_the_journal_verifies(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A restore gives back the config, strategy, vault and journal, chain intact."""
    destination, backup_id = backup(desk)
    target = tmp_path / "restored"
    restored = restore(
        destination, "latest", target, identities=identities(desk), signers=UNCHECKED
    )
    assert restored.backup_id == backup_id
    assert restored.last_seq == 50
    for name in ("paper.toml", "strategies/idle.py", "vault.bastion"):
        assert (target / name).read_bytes() == (desk.root / name).read_bytes()
    result = verify_journal(target / "state" / "journal.sqlite")
    assert result.ok and result.last_seq == 50
    assert restored.head_hash == result.last_hash
    assert (target / RESTORE_MANIFEST).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bastion-restore")] == []


def test_when_the_journal_is_encrypted_and_keyed_then_the_copy_stays_encrypted(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encrypted journal is copied online with its key and restored still encrypted."""
    desk = make_desk(tmp_path / "desk", dir_destination(store), keyed=True)
    assert desk.vault_key is not None
    monkeypatch.setenv(KEY_FILE_ENV, str(desk.vault_key))
    destination, _ = backup(desk)
    target = tmp_path / "restored"
    from bastion.cli.backup import desk_journal_keys

    restore(
        destination,
        "latest",
        target,
        identities=identities(desk),
        signers=UNCHECKED,
        keys_for=desk_journal_keys,
    )
    journal = target / "state" / "journal.sqlite"
    assert not journal.read_bytes().startswith(b"SQLite format 3")
    result = verify_journal(journal, keys=desk.keys)
    assert result.ok and result.keyed and result.last_seq == 50


def test_when_restoring_into_a_non_empty_directory_then_it_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Restore never writes over an existing desk."""
    destination, _ = backup(desk)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not an empty directory"):
        restore(destination, "latest", target, identities=identities(desk), signers=UNCHECKED)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def assert_nothing_restored(tmp_path: Path, target: Path) -> None:
    assert not target.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bastion-restore")] == []


def test_when_the_key_is_wrong_then_the_restore_is_refused_and_leaves_nothing(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Another identity cannot open the backup: a key error, nothing written."""
    destination, _ = backup(desk)
    other = tmp_path / "other.key"
    encryption.new_identity(other)
    target = tmp_path / "restored"
    with pytest.raises(BackupKeyError, match="not one the backup was encrypted to"):
        restore(
            destination,
            "latest",
            target,
            identities=encryption.load_identities(other),
            signers=UNCHECKED,
        )
    assert_nothing_restored(tmp_path, target)


@pytest.mark.parametrize("where", ["header", "middle", "last byte"])
def test_when_a_byte_of_the_blob_is_flipped_then_it_is_refused(
    desk: BackupDesk, store: Path, tmp_path: Path, where: str
) -> None:
    """A damaged blob fails its checksum (and age's authentication) before any file lands."""
    destination, backup_id = backup(desk)
    blob = destination.root / (backup_id + BLOB_SUFFIX)
    offset = {"header": 10, "middle": blob.stat().st_size // 2, "last byte": -1}[where]
    flip_byte(blob, offset)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match="SHA-256 does not match"):
        restore(destination, "latest", target, identities=identities(desk), signers=UNCHECKED)
    assert_nothing_restored(tmp_path, target)
    with pytest.raises(BackupError, match="SHA-256"):
        verify(destination, backup_id, identities=None, signers=UNCHECKED)


def test_when_the_blob_is_truncated_then_it_is_refused(desk: BackupDesk, tmp_path: Path) -> None:
    """A cut-off blob is refused by its size."""
    destination, backup_id = backup(desk)
    blob = destination.root / (backup_id + BLOB_SUFFIX)
    blob.write_bytes(blob.read_bytes()[:-4096])
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match="truncated or replaced"):
        restore(destination, "latest", target, identities=identities(desk), signers=UNCHECKED)
    assert_nothing_restored(tmp_path, target)


def test_when_the_record_is_edited_then_its_checksum_refuses_it(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A record changed without re-sealing fails its own checksum."""
    destination, backup_id = backup(desk)
    path = destination.root / (backup_id + RECORD_SUFFIX)
    path.write_bytes(path.read_bytes().replace(b'"last_seq": 50', b'"last_seq": 99'))
    with pytest.raises(IntegrityError, match="checksum does not match"):
        restore(
            destination,
            "latest",
            tmp_path / "restored",
            identities=identities(desk),
            signers=UNCHECKED,
        )
    assert_nothing_restored(tmp_path, tmp_path / "restored")


def test_when_the_record_is_resealed_with_other_values_then_the_manifest_inside_disagrees(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Someone who rewrites a record and its checksum is caught once the blob is opened."""
    import msgspec

    destination, backup_id = backup(desk)
    record = fetch_record(destination, backup_id, UNCHECKED)
    forged = msgspec.structs.replace(record, head_hash="00" * 32)
    (destination.root / (backup_id + RECORD_SUFFIX)).write_bytes(encode_record(forged))
    with pytest.raises(IntegrityError, match="disagree on head_hash"):
        restore(
            destination,
            "latest",
            tmp_path / "restored",
            identities=identities(desk),
            signers=UNCHECKED,
        )
    assert_nothing_restored(tmp_path, tmp_path / "restored")


def reseal_without(
    desk: BackupDesk, destination: DirDestination, backup_id: str, kind: str
) -> None:
    """Rebuild the backup without its ``kind`` piece, encrypted to the same recipient and
    with a valid record (what anyone holding the public key can do)."""
    import msgspec

    from bastion.backup import archive
    from bastion.backup.manifest import sha256_file

    work = desk.root.parent / "forge"
    work.mkdir()
    blob = destination.root / (backup_id + BLOB_SUFFIX)
    encryption.decrypt_file(blob, work / "a.tar", identities(desk), name=backup_id)
    unpacked = work / "unpacked"
    unpacked.mkdir()
    archive.unpack(work / "a.tar", unpacked, name=backup_id)
    manifest = decode_manifest((unpacked / MANIFEST_NAME).read_bytes())
    piece = next(p for p in manifest.pieces if p.kind == kind)
    (unpacked / piece.path).unlink()
    (unpacked / MANIFEST_NAME).write_bytes(encode_manifest(manifest))
    archive.pack(unpacked, work / "b.tar")
    encryption.encrypt_file(work / "b.tar", blob, [desk.recipient])
    record = fetch_record(destination, backup_id, UNCHECKED)
    record = msgspec.structs.replace(
        record, blob_size=blob.stat().st_size, blob_sha256=sha256_file(blob)
    )
    (destination.root / (backup_id + RECORD_SUFFIX)).write_bytes(encode_record(record))
    shutil.rmtree(work)


@pytest.mark.parametrize("kind", ["journal", "vault", "strategy"])
def test_when_a_piece_is_missing_then_the_restore_is_refused(
    desk: BackupDesk, tmp_path: Path, kind: str
) -> None:
    """A backup whose manifest lists a piece it does not hold restores nothing."""
    destination, backup_id = backup(desk)
    reseal_without(desk, destination, backup_id, kind)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=f"\\({kind}\\) is missing"):
        restore(destination, "latest", target, identities=identities(desk), signers=UNCHECKED)
    assert_nothing_restored(tmp_path, target)


def test_when_an_upload_did_not_finish_then_the_backup_is_not_listed_nor_restored(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A blob without its record (or a .partial file) is an unfinished upload."""
    destination, backup_id = backup(desk)
    (destination.root / (backup_id + RECORD_SUFFIX)).unlink()
    (destination.root / "full-20990101T000000000Z-000000000099.age.partial").write_bytes(b"x")
    assert entries(destination) == []
    with pytest.raises(BackupError, match="incomplete"):
        restore(
            destination,
            backup_id,
            tmp_path / "restored",
            identities=identities(desk),
            signers=UNCHECKED,
        )
    with pytest.raises(BackupError, match="no full backup"):
        restore(
            destination,
            "latest",
            tmp_path / "restored",
            identities=identities(desk),
            signers=UNCHECKED,
        )
    assert_nothing_restored(tmp_path, tmp_path / "restored")


def test_when_verified_with_the_key_then_contents_and_journal_are_checked(
    desk: BackupDesk,
) -> None:
    """verify: integrity without the key, contents and journal chain with it."""
    destination, backup_id = backup(desk)
    (checked,) = verify(destination, None, identities=None, signers=UNCHECKED)
    assert (checked.id, checked.contents) == (backup_id, False)
    (checked,) = verify(destination, "latest", identities=identities(desk), signers=UNCHECKED)
    assert checked.contents and checked.last_seq == 50


def test_when_stored_then_no_secret_is_readable_without_the_private_key(
    desk: BackupDesk, store: Path
) -> None:
    """Canary: the vault's secret and the config's comment appear in no stored byte."""
    backup(desk)
    assert CANARY.encode() in desk.config.read_bytes()  # the canary is in the plain config
    files = stored_files(store)
    assert files
    for path in files:
        data = path.read_bytes()
        for form in secret_forms(CANARY):
            assert form not in data, path
        assert b"SQLite format 3" not in data
        assert b"[backup]" not in data


def test_when_the_archive_holds_a_path_outside_it_then_unpack_refuses(tmp_path: Path) -> None:
    """An archive member with '..' is refused before anything is extracted."""
    from bastion.backup import archive

    evil = tmp_path / "evil.tar"
    payload = tmp_path / "p"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="../escape")
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(BackupError, match="not a plain file inside it"):
        archive.unpack(evil, into, name="evil")
    assert not (tmp_path / "escape").exists()

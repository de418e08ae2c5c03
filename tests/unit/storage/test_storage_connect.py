"""Encrypted SQLite files (``bastion.storage.connect``) and the journal, FIX store and
venue ledger written through it: the three key mistakes are told apart, a failed open
never changes the file, and what is created is readable by its owner only."""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path

import pytest

from bastion.errors import ConfigError, StorageKeyError
from bastion.fix.store import SqliteSessionStore
from bastion.journal import (
    NotAJournalError,
    SqliteJournal,
    export_jsonl,
    journal_stats,
    verify_journal,
)
from bastion.journal.config import JournalConfig
from bastion.journal.keys import JournalKeys, journal_keys, require_keys
from bastion.storage.connect import connect, is_encrypted
from bastion.vault import MemorySecrets, SecretNotFound
from bastion.venue_server.ledger import VenueLedger
from kit.journal_attacks import CHAIN_KEY, ENCRYPTED, ENCRYPTION_KEY, OTHER_KEY, keyed_journal
from kit.journal_samples import fills


def digest_of(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    path = tmp_path / "j.sqlite"
    keyed_journal(path, ENCRYPTED)
    return path


def test_when_encrypted_then_no_plaintext_reaches_the_disk(encrypted: Path) -> None:
    """The file does not start as SQLite does and no order id appears in any file."""
    assert is_encrypted(encrypted) is True
    for file in encrypted.parent.iterdir():
        assert b"O-node-1-1-" not in file.read_bytes(), file.name
        assert b"SQLite format 3" not in file.read_bytes()[:16], file.name


def test_when_the_encryption_key_is_wrong_then_the_file_is_byte_identical(
    encrypted: Path,
) -> None:
    """A wrong key is a StorageKeyError naming the file, for the writer and the readers;
    no file in the directory changes and none is added."""
    before = digest_of(encrypted.parent)
    wrong = JournalKeys(encryption=OTHER_KEY, chain=CHAIN_KEY)
    with pytest.raises(StorageKeyError, match="wrong encryption key") as caught:
        SqliteJournal(encrypted, keys=wrong)
    assert str(encrypted) in str(caught.value)
    with pytest.raises(StorageKeyError, match="wrong encryption key"):
        verify_journal(encrypted, keys=wrong)
    after = digest_of(encrypted.parent)
    after.pop("j.sqlite.lock", None)  # the writer's lock file (empty, 0600) is its own
    before.pop("j.sqlite.lock", None)
    assert after == before


def test_when_an_encrypted_file_is_opened_without_a_key_then_it_is_refused(
    encrypted: Path,
) -> None:
    """No key for an encrypted file: one clear error, file unchanged."""
    before = encrypted.read_bytes()
    with pytest.raises(StorageKeyError, match="cannot be opened without its encryption key"):
        SqliteJournal(encrypted, keys=JournalKeys(chain=CHAIN_KEY))
    with pytest.raises(NotAJournalError, match="needs its encryption key"):
        export_jsonl(encrypted, io.BytesIO())
    assert encrypted.read_bytes() == before


def test_when_a_plaintext_file_is_opened_with_a_key_then_it_is_refused(tmp_path: Path) -> None:
    """A plaintext journal is never taken as encrypted (nor silently converted)."""
    path = tmp_path / "plain.sqlite"
    SqliteJournal(path).close()
    before = path.read_bytes()
    with pytest.raises(StorageKeyError, match="plaintext database but an encryption key"):
        SqliteJournal(path, keys=JournalKeys(encryption=ENCRYPTION_KEY))
    assert path.read_bytes() == before


def test_when_encrypted_then_export_stats_and_reads_round_trip(encrypted: Path) -> None:
    """Read-only tools open an encrypted journal (mode=ro) with the key: same events."""
    out = io.BytesIO()
    assert export_jsonl(encrypted, out, keys=ENCRYPTED) == 10
    assert len(out.getvalue().splitlines()) == 10 and b'"last_px":10009' in out.getvalue()
    assert journal_stats(encrypted, keys=ENCRYPTED).events == 10
    result = verify_journal(encrypted, keys=ENCRYPTED)
    assert result.ok and result.keyed and result.snapshots == 1
    journal = SqliteJournal(encrypted, keys=ENCRYPTED)
    try:
        assert [event for _, event in journal.read()] == fills(10)
        assert journal.latest_snapshot() is not None
    finally:
        journal.close()


def test_when_encrypted_files_are_created_then_they_are_0600_in_a_0700_dir(
    tmp_path: Path,
) -> None:
    """Journal (with its WAL while open), FIX store and ledger files: owner only."""
    root = tmp_path / "private"
    journal = SqliteJournal(root / "j.sqlite", keys=ENCRYPTED)
    journal.append(fills(1)[0])
    journal.flush()
    store = SqliteSessionStore(
        root / "fix" / "s.sqlite", "FIX.4.4:A->B", now_ns=1, encryption_key=ENCRYPTION_KEY
    )
    ledger = VenueLedger(root / "ledger.sqlite", encryption_key=ENCRYPTION_KEY)
    try:
        files = [p for p in root.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"j.sqlite", "j.sqlite-wal", "s.sqlite", "ledger.sqlite"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        for directory in (root, root / "fix"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        assert is_encrypted(root / "fix" / "s.sqlite") and is_encrypted(root / "ledger.sqlite")
    finally:
        ledger.close()
        store.close()
        journal.close()


def test_when_a_fix_store_or_ledger_has_the_wrong_key_then_it_is_refused(tmp_path: Path) -> None:
    """Reopened with another key: a key error naming the file, not a garbage-file error."""
    store = SqliteSessionStore(
        tmp_path / "s.sqlite", "FIX.4.4:A->B", now_ns=1, encryption_key=ENCRYPTION_KEY
    )
    store.close()
    with pytest.raises(StorageKeyError, match="wrong encryption key"):
        SqliteSessionStore(
            tmp_path / "s.sqlite", "FIX.4.4:A->B", now_ns=1, encryption_key=OTHER_KEY
        )
    VenueLedger(tmp_path / "l.sqlite", encryption_key=ENCRYPTION_KEY).close()
    with pytest.raises(StorageKeyError, match="without its encryption key"):
        VenueLedger(tmp_path / "l.sqlite")


def test_when_a_key_is_not_32_bytes_then_it_is_refused(tmp_path: Path) -> None:
    """A short key never reaches SQLCipher."""
    with pytest.raises(StorageKeyError, match="32 bytes"):
        connect(tmp_path / "x.sqlite", key=b"short")
    assert not (tmp_path / "x.sqlite").exists()


def test_when_keys_are_resolved_then_hex_secrets_become_bytes() -> None:
    """journal_keys fetches both references from the source as 32-byte keys."""
    config = JournalConfig(
        encryption_key="secret:journal/encryption", chain_key="secret:journal/chain"
    )
    secrets = MemorySecrets(
        {"journal/encryption": ENCRYPTION_KEY.hex(), "journal/chain": CHAIN_KEY.hex().upper()}
    )
    keys = journal_keys(config, secrets)
    assert (keys.encryption, keys.chain) == (ENCRYPTION_KEY, CHAIN_KEY)
    assert CHAIN_KEY.hex() not in repr(keys) and "set" in repr(keys)
    assert journal_keys(JournalConfig(), secrets) == JournalKeys()


def test_when_a_key_secret_is_malformed_or_missing_then_the_error_names_it() -> None:
    """63 hex characters, or a missing secret: a ConfigError naming the secret and key,
    never the value."""
    config = JournalConfig(chain_key="secret:journal/chain")
    value = "ab" * 31 + "a"
    with pytest.raises(ConfigError, match="secret 'journal/chain'") as caught:
        journal_keys(config, MemorySecrets({"journal/chain": value}))
    assert "journal.chain_key" in str(caught.value) and value not in str(caught.value)
    with pytest.raises(SecretNotFound, match="journal/chain"):
        journal_keys(config, MemorySecrets({}))


def test_when_a_key_field_holds_a_literal_then_the_config_is_refused() -> None:
    """A key written into the config file itself is refused, naming the field."""
    with pytest.raises(ConfigError, match=r"journal\.encryption_key"):
        JournalConfig(encryption_key=ENCRYPTION_KEY.hex())


def test_when_config_refers_to_keys_but_none_are_given_then_it_is_refused() -> None:
    """A journal meant to be keyed is never opened plaintext for want of a vault."""
    with pytest.raises(ConfigError, match=r"journal\.chain_key"):
        require_keys(JournalConfig(chain_key="secret:journal/chain"), None)
    assert require_keys(JournalConfig(), None) == JournalKeys()

"""``bastion journal`` and ``bastion manifest`` on an encrypted, keyed journal: the keys
from the node's config (``--config``) or from a vault (``--vault``); without either, a
clear refusal naming both."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.vault.keysource import KEY_FILE_ENV
from kit.journal_attacks import CHAIN_KEY, ENCRYPTED, ENCRYPTION_KEY, KEYED, keyed_journal
from kit.node_process import RunBastion
from kit.vaults import key_file, new_vault

CONFIG = """
strategies = []

[[instruments]]
id = "X.A"
tick_size = "0.01"

[feed]
instrument = "X.A"

[journal]
path = "j.sqlite"
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
"""


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An encrypted, keyed journal, its node's config and the vault with its keys."""
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    new_vault(
        tmp_path / "vault.bastion",
        journal__encryption=ENCRYPTION_KEY.hex(),
        journal__chain=CHAIN_KEY.hex(),
    )
    keyed_journal(tmp_path / "j.sqlite", ENCRYPTED)
    (tmp_path / "node.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("command", ["verify", "export", "stats"])
def test_when_encrypted_journal_read_without_keys_then_exit_2_naming_both_options(
    desk: Path, command: str, run_bastion: RunBastion
) -> None:
    """No --config, no --vault: exit 2, the message names both options."""
    proc = run_bastion("journal", command, desk / "j.sqlite")
    assert proc.returncode == 2
    err = proc.stderr
    assert "--config CONFIG" in err and "--vault VAULT" in err


def test_when_config_given_then_verify_uses_its_journal_and_keys(
    desk: Path, run_bastion: RunBastion
) -> None:
    """--config alone: the config's journal, checked with its keyed chain."""
    proc = run_bastion("journal", "verify", "--config", desk / "node.toml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ok: " in out and "chain: keyed (HMAC-SHA256), 2 anchor(s) checked" in out


def test_when_vault_given_then_export_and_stats_read_the_file(
    desk: Path, run_bastion: RunBastion
) -> None:
    """--vault: the keys named journal/encryption and journal/chain."""
    journal, vault = str(desk / "j.sqlite"), str(desk / "vault.bastion")
    stats = run_bastion("journal", "stats", journal, "--vault", vault)
    assert stats.returncode == 0, stats.stderr
    assert "events:         10" in stats.stdout
    out = desk / "events.jsonl"
    assert run_bastion("journal", "export", journal, "--vault", vault, "--out", out).returncode == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 10
    assert run_bastion("journal", "verify", journal, "--vault", vault).returncode == 0


def test_when_keyed_journal_verified_without_chain_key_then_exit_1_with_the_options(
    tmp_path: Path, run_bastion: RunBastion
) -> None:
    """A keyed plaintext journal without keys: not checked (exit 1), and told how."""
    keyed_journal(tmp_path / "k.sqlite", KEYED)
    proc = run_bastion("journal", "verify", tmp_path / "k.sqlite")
    assert proc.returncode == 1
    out = proc.stdout
    assert "without the chain key" in out and "--config CONFIG" in out


def test_when_vault_lacks_the_encryption_key_then_exit_2_naming_it(
    desk: Path, run_bastion: RunBastion
) -> None:
    """A vault without journal/encryption: refused naming the secret."""
    other = desk / "other"
    other.mkdir(mode=0o700)
    new_vault(other / "vault.bastion", journal__chain=CHAIN_KEY.hex())
    proc = run_bastion("journal", "stats", desk / "j.sqlite", "--vault", other / "vault.bastion")
    assert proc.returncode == 2
    assert "'journal/encryption'" in proc.stderr


def test_when_manifest_read_with_config_then_the_journal_is_decrypted(
    desk: Path, run_bastion: RunBastion
) -> None:
    """manifest show: refused without keys; with --config it reads the file (which has
    no manifest: no node started on it) and says so."""
    refused = run_bastion("manifest", "show", desk / "j.sqlite")
    assert refused.returncode == 2 and "--config CONFIG" in refused.stderr
    read = run_bastion("manifest", "diff", "--config", desk / "node.toml", "1", "2")
    assert read.returncode == 2 and "no run manifest" in read.stderr, read.stderr

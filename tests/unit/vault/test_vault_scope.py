"""Which vault a node may open: a paper node refuses a live vault before it needs a
secret from it; a live node opens its live vault even without secret references."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.vault.config import VaultConfig, load_secrets, refuse_live_vault
from bastion.vault.refs import SecretNotFound
from bastion.vault.vault import Vault, stated_scope
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file, new_vault

CLOCK = SimClock(T0)


def live_vault(path: Path) -> Vault:
    return Vault.create(path, PASSPHRASE, clock=CLOCK, scope="live", kdf=FAST_KDF)


def test_when_the_header_is_read_without_passphrase_then_it_states_the_scope(
    tmp_path: Path,
) -> None:
    """The stated scope is read from the header; no file or no vault gives None."""
    live_vault(tmp_path / "live.bastion")
    new_vault(tmp_path / "paper.bastion")
    (tmp_path / "junk").write_bytes(b"not a vault")
    assert stated_scope(tmp_path / "live.bastion") == "live"
    assert stated_scope(tmp_path / "paper.bastion") == "paper"
    assert stated_scope(tmp_path / "junk") is None
    assert stated_scope(tmp_path / "missing") is None


def test_when_a_paper_config_names_a_live_vault_then_refused_without_unlocking(
    tmp_path: Path,
) -> None:
    """A paper config pointing at a live vault is refused naming vault.path; a paper vault
    or none at all passes."""
    live_vault(tmp_path / "live" / "vault.bastion")
    with pytest.raises(ConfigError, match=r"key 'vault\.path'.*holds live secrets"):
        refuse_live_vault(VaultConfig(path="live/vault.bastion"), tmp_path)
    new_vault(tmp_path / "vault.bastion")
    refuse_live_vault(VaultConfig(), tmp_path)
    refuse_live_vault(VaultConfig(path="nowhere.bastion"), tmp_path)


def test_when_a_live_node_has_no_secret_refs_then_its_vault_is_still_opened(
    tmp_path: Path,
) -> None:
    """Machine keys open the vault with no references, check its scope, and are given
    when present (absent ones left out)."""
    vault = live_vault(tmp_path / "vault.bastion")
    vault.ensure_key("live/arm")
    env = {"BASTION_VAULT_KEY_FILE": str(key_file(tmp_path))}
    secrets = load_secrets(
        [],
        vault=VaultConfig(),
        base_dir=tmp_path,
        scope="live",
        clock=CLOCK,
        environ=env,
        machine_keys=("live/arm", "live/absent"),
    )
    assert len(bytes.fromhex(secrets.get("live/arm").reveal())) == 32
    with pytest.raises(SecretNotFound):
        secrets.get("live/absent")
    paper_dir = tmp_path / "paper"
    new_vault(paper_dir / "vault.bastion")
    with pytest.raises(ConfigError, match="holds paper secrets, and this is a live config"):
        load_secrets(
            [],
            vault=VaultConfig(),
            base_dir=paper_dir,
            scope="live",
            clock=CLOCK,
            environ=env,
            machine_keys=("live/arm",),
        )

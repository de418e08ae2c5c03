"""A node's operators from its config: none without ``[access]`` (the node's own
account), else the store beside the vault read with the vault's ``users/key``; a node
whose ``[access]`` names no usable operator refuses to start, saying what to do."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.errors import ConfigError
from bastion.node.access import node_identities, socket_mode
from bastion.node.identity import Operator, PeerCredentials
from bastion.security.config import USERS_KEY, AccessConfig
from bastion.vault.refs import MemorySecrets
from kit.control import UIDS, desk_store
from kit.users import FAST_USERS, KEY
from kit.vaults import T0


def config(access: AccessConfig | None) -> PaperConfig:
    return PaperConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        feed=SyntheticFeedConfig(instrument="XYZ.SIM"),
        access=access,
    )


ACCESS = AccessConfig(users=FAST_USERS)
SECRETS = MemorySecrets({USERS_KEY: KEY.hex()})


def test_when_there_is_no_access_section_then_the_owner_alone_and_mode_0600(
    tmp_path: Path,
) -> None:
    identities = node_identities(config(None), base_dir=tmp_path, secrets=None, clock=SimClock())
    assert identities.mode == "owner only" and identities.owner_uid == os.geteuid()
    assert socket_mode(config(None)) == 0o600
    assert socket_mode(config(ACCESS)) == 0o660


def test_when_the_store_maps_operators_then_they_are_the_nodes(tmp_path: Path) -> None:
    """users.bastion beside the vault (base_dir/vault.bastion), sealed with users/key."""
    desk_store(tmp_path, SimClock(T0))
    identities = node_identities(
        config(ACCESS), base_dir=tmp_path, secrets=SECRETS, clock=SimClock(T0)
    )
    found = identities.identify(PeerCredentials(pid=1, uid=UIDS["rita"], gid=0))
    assert isinstance(found, Operator) and found.name == "rita"


@pytest.mark.parametrize(
    "secrets",
    [None, MemorySecrets({}), MemorySecrets({USERS_KEY: "not hex"})],
    ids=["no-vault", "no-key", "bad-key"],
)
def test_when_the_vault_has_no_users_key_then_the_start_is_refused(
    tmp_path: Path, secrets: MemorySecrets | None
) -> None:
    with pytest.raises(ConfigError, match="holds no operators") as refused:
        node_identities(config(ACCESS), base_dir=tmp_path, secrets=secrets, clock=SimClock())
    assert "bastion users add" in str(refused.value)


def test_when_no_operator_is_mapped_to_a_local_account_then_the_start_is_refused(
    tmp_path: Path,
) -> None:
    """An empty store (or only unmapped or disabled operators): nobody could command
    the node over its socket, not even to kill it."""
    with pytest.raises(ConfigError, match="no enabled operator"):
        node_identities(config(ACCESS), base_dir=tmp_path, secrets=SECRETS, clock=SimClock())
    users = desk_store(tmp_path, SimClock(T0))
    for name in UIDS:
        users.disable(name)
    with pytest.raises(ConfigError, match="no enabled operator"):
        node_identities(config(ACCESS), base_dir=tmp_path, secrets=SECRETS, clock=SimClock())

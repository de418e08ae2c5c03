"""The stores' encryption keys in config: a FIX venue's ``store_encryption_key`` and the
venue simulator's ``ledger_encryption_key`` / ``store_encryption_key`` are vault
references, listed among the config's secrets, and resolved to 32 bytes (or refused
naming the key)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.config import InstrumentConfig, PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.storage.keys import resolve_key
from bastion.vault import MemorySecrets, SecretNotFound
from bastion.venue_server.config import AccountConfig, VenueSimConfig

NODE = """
strategies = []

[[instruments]]
id = "X.A"
venue = "A"
tick_size = "0.01"

[[instruments]]
id = "X.B"
venue = "B"
tick_size = "0.01"
{venues}
[[feeds]]
kind = "venue"
name = "fa"
venue = "A"
"""
VENUE = """
[[venues]]
kind = "fix"
name = "{name}"
port = 9878
sender_comp_id = "N{name}"
target_comp_id = "SIM"
{more}
"""
KEY_HEX = "ab" * 32


def node(tmp_path: Path, a: str, b: str = 'store_path = "b.sqlite"') -> PaperConfig:
    path = tmp_path / "node.toml"
    venues = VENUE.format(name="A", more=a) + VENUE.format(name="B", more=b)
    path.write_text(NODE.format(venues=venues), encoding="utf-8")
    return load_config(path, PaperConfig)


def sim(**keys: str) -> VenueSimConfig:
    return VenueSimConfig(
        accounts=[AccountConfig(name="a", comp_id="N", username="u", password_env="PW")],
        instruments=[InstrumentConfig(id="X", venue="SIM", tick_size=Decimal("0.01"))],
        **keys,  # type: ignore[arg-type]
    )


def test_when_fix_store_key_is_a_reference_then_listed_among_secret_refs(tmp_path: Path) -> None:
    """The node lists the store's key with its config key; the node checks it resolves."""
    config = node(tmp_path, 'store_encryption_key = "secret:fix/store"')
    assert config.secret_refs() == [("venues[0].store_encryption_key", "fix/store")]
    config.check_secrets(MemorySecrets({"fix/store": KEY_HEX}))
    with pytest.raises(SecretNotFound, match=r"venues\[0\]\.store_encryption_key"):
        config.check_secrets(MemorySecrets({}))


def test_when_fix_store_key_is_a_literal_then_refused_naming_the_key(tmp_path: Path) -> None:
    """A key written into the config is refused, never echoed."""
    with pytest.raises(ConfigError, match=r"venues\[0\]\.store_encryption_key") as raised:
        node(tmp_path, f'store_encryption_key = "{KEY_HEX}"')
    assert KEY_HEX not in str(raised.value)


def test_when_two_fix_venues_share_a_store_file_with_other_keys_then_refused(
    tmp_path: Path,
) -> None:
    """One file has one key: a second venue on it with another key is refused."""
    with pytest.raises(ConfigError, match=r"venues\[1\]\.store_encryption_key.*one key"):
        node(tmp_path, 'store_encryption_key = "secret:fix/store"', "")
    same = 'store_encryption_key = "secret:fix/store"'
    assert len(node(tmp_path, same, same).secret_refs()) == 2


def test_when_simulator_keys_are_references_then_listed_and_literals_refused() -> None:
    """ledger_encryption_key and store_encryption_key: references only."""
    config = sim(
        ledger_encryption_key="secret:venue/ledger", store_encryption_key="secret:venue/store"
    )
    assert config.secret_refs() == [
        ("ledger_encryption_key", "venue/ledger"),
        ("store_encryption_key", "venue/store"),
    ]
    with pytest.raises(ConfigError, match="key 'ledger_encryption_key'"):
        sim(ledger_encryption_key=KEY_HEX)


def test_when_key_resolved_then_32_bytes_or_an_error_naming_the_config_key() -> None:
    """Unset: None; a 64-hex secret: its bytes; no vault, a missing or short secret:
    ConfigError naming the config key."""
    ref = "secret:venue/ledger"
    assert resolve_key(None, "ledger_encryption_key", None) is None
    good = MemorySecrets({"venue/ledger": KEY_HEX})
    assert resolve_key(ref, "ledger_encryption_key", good) == bytes.fromhex(KEY_HEX)
    for secrets in (None, MemorySecrets({}), MemorySecrets({"venue/ledger": "abcd"})):
        with pytest.raises(ConfigError, match="key 'ledger_encryption_key'"):
            resolve_key(ref, "ledger_encryption_key", secrets)

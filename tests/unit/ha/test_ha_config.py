"""The ``[ha]`` table: timings that cannot let two leaders send, a URL without a
password, and the node config that needs a PostgreSQL for the lease."""

from __future__ import annotations

import tomllib

import msgspec
import pytest

from bastion.config import PaperConfig, scaffold_dir
from bastion.errors import ConfigError
from bastion.ha.config import HaConfig
from bastion.vault.refs import MemorySecrets


def test_defaults_fail_over_within_two_seconds() -> None:
    config = HaConfig(group="desk", member="a", url="postgresql://bastion@db/desk")
    assert (config.lease_ms, config.margin_ms, config.renew_interval_ms) == (1000, 250, 250)
    worst_failover_ms = config.lease_ms + config.margin_ms + config.renew_interval_ms
    assert worst_failover_ms < 2000


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"lease_ms": 0}, "ha.lease_ms"),
        ({"margin_ms": 500}, "ha.margin_ms"),  # at half the lease
        ({"renew_ms": 750}, "ha.renew_ms"),  # at lease - margin
        ({"timeout_ms": 750}, "ha.timeout_ms"),
        ({"group": ""}, "ha.group"),
        ({"url": "mysql://db/x"}, "ha.url"),
        ({"url": "postgresql://bastion:hunter2hunter2@db/x"}, "ha.url"),
        ({"url": "postgresql://db/x", "password": "plain"}, "ha.password"),
        ({"password": "secret:ha/pg"}, "ha.password"),  # without a url
        ({"heartbeat_ms": 0}, "ha.heartbeat_ms"),
        ({"standby_lost_s": 0.0}, "ha.standby_lost_s"),
        ({"standby_lost_s": float("nan")}, "ha.standby_lost_s"),
        ({"standby_lost_s": float("inf")}, "ha.standby_lost_s"),
        ({"standby_lost_s": 1.999}, "ha.standby_lost_s"),  # under two heartbeats
        ({"max_lag_events": 0}, "ha.max_lag_events"),
        ({"max_lag_ms": -1}, "ha.max_lag_ms"),
    ],
)
def test_when_a_value_is_bad_then_the_error_names_its_key(
    fields: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=f"key '{key}'") as raised:
        HaConfig(**{"group": "desk", "member": "a", **fields})  # type: ignore[arg-type]
    assert "hunter2" not in str(raised.value)


def test_when_standby_lost_is_two_heartbeats_then_it_is_accepted() -> None:
    """The standby thresholds: at the limit (two heartbeats) accepted, defaults sane."""
    config = HaConfig(group="desk", member="a", heartbeat_ms=500, standby_lost_s=1.0)
    assert (config.max_lag_events, config.max_lag_ms) == (1000, 5000)
    assert HaConfig(group="desk", member="a").standby_lost_s == 10.0


def test_margin_just_under_half_the_lease_is_accepted() -> None:
    HaConfig(group="desk", member="a", lease_ms=1000, margin_ms=499, renew_ms=100)


def test_database_resolves_the_password_from_the_vault_or_falls_back() -> None:
    secrets = MemorySecrets({"ha/pg": "s3cret-value"})
    own = HaConfig(group="d", member="a", url="postgresql://u@h/db", password="secret:ha/pg")
    assert own.database(secrets) == ("postgresql://u@h/db", "s3cret-value")
    bare = HaConfig(group="d", member="a")
    assert bare.database(None, fallback=("postgresql://u@j/db", None)) == (
        "postgresql://u@j/db",
        None,
    )
    with pytest.raises(ConfigError, match=r"key 'ha\.url'"):
        bare.database(None)


def _paper(ha: dict[str, object]) -> PaperConfig:
    document = tomllib.loads((scaffold_dir() / "paper.toml").read_text())
    return msgspec.convert({**document, "ha": ha}, PaperConfig)


def test_when_node_has_ha_without_a_postgresql_then_config_refuses_it() -> None:
    with pytest.raises(ConfigError, match="key 'ha': an HA member needs a PostgreSQL journal"):
        _paper({"group": "desk", "member": "a"})


def test_when_node_has_ha_with_a_lease_url_then_its_secret_is_listed() -> None:
    config = _paper({"group": "desk", "url": "postgresql://u@h/db", "password": "secret:ha/pg"})
    assert ("ha.password", "ha/pg") in config.secret_refs()
    assert config.ha_database(MemorySecrets({"ha/pg": "pw-value-1"})) == (
        "postgresql://u@h/db",
        "pw-value-1",
    )

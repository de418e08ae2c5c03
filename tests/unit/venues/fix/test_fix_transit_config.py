"""Node and simulator configs for FIX in transit: the plain-TCP password rule, the
``[venues.tls]`` table, and the simulator's TLS, limits and per-account access."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.config import InstrumentConfig, PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.venue_server.config import AccountConfig, VenueSimConfig

NODE = """
strategies = []
[[instruments]]
id = "XYZ.FIXSIM"
venue = "FIXSIM"
tick_size = "0.01"

[[feeds]]
kind = "venue"
venue = "FIXSIM"
name = "fixsim"

[[venues]]
kind = "fix"
name = "FIXSIM"
host = "{host}"
port = 9878
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
{more}
"""


def load(tmp_path: Path, host: str, more: str = "") -> PaperConfig:
    path = tmp_path / "node.toml"
    path.write_text(NODE.format(host=host, more=more), encoding="utf-8")
    return load_config(path, PaperConfig)


@pytest.mark.parametrize("host", ["10.1.2.3", "venue.example.com", "::ffff:10.0.0.1"])
def test_when_password_over_plain_tcp_to_remote_host_then_refused_naming_key(
    tmp_path: Path, host: str
) -> None:
    """A password, no TLS, a host that is not loopback: refused at load, naming the key."""
    with pytest.raises(ConfigError, match=r"key 'venues\[0\]\.host'.*clear text.*tls"):
        load(tmp_path, host)


@pytest.mark.parametrize(
    ("host", "more"),
    [
        ("127.0.0.1", ""),
        ("::1", ""),
        ("localhost", ""),
        ("10.1.2.3", "allow_plaintext_password = true"),
        ("10.1.2.3", '[venues.tls]\nca_file = "ca.pem"'),
    ],
    ids=["loopback4", "loopback6", "localhost", "explicit", "tls"],
)
def test_when_loopback_tls_or_explicit_then_password_config_loads(
    tmp_path: Path, host: str, more: str
) -> None:
    """Loopback, a TLS table, or ``allow_plaintext_password = true`` are accepted."""
    assert load(tmp_path, host, more).venues[0].name == "FIXSIM"


def test_when_tls_table_has_unknown_key_then_error_names_it(tmp_path: Path) -> None:
    """``[venues.tls]`` rejects unknown keys like every table."""
    with pytest.raises(ConfigError, match="ca_fle"):
        load(tmp_path, "10.1.2.3", '[venues.tls]\nca_fle = "ca.pem"')


def _sim(account: AccountConfig, **more: object) -> VenueSimConfig:
    return VenueSimConfig(
        accounts=[account],
        instruments=[InstrumentConfig(id="XYZ.SIM", venue="SIM", tick_size=Decimal("0.01"))],
        **more,  # type: ignore[arg-type]
    )


def test_when_account_allowed_ips_invalid_then_error_names_the_entry() -> None:
    """A bad ``allowed_ips`` entry names its index."""
    account = AccountConfig(
        name="a", comp_id="N", username="u", password="p", allowed_ips=["10.0.0.0/33"]
    )
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.allowed_ips\[0\]"):
        _sim(account)


@pytest.mark.parametrize(
    ("field", "value"), [("client_cert_cn", "n"), ("client_cert_sha256", "ab" * 32)]
)
def test_when_account_names_client_cert_without_mutual_tls_then_refused_naming_the_key(
    field: str, value: str
) -> None:
    """A client certificate condition without ``tls.client_ca_file`` could never hold;
    the error names the key the account set."""
    account = AccountConfig(name="a", comp_id="N", username="u", password="p", **{field: value})
    with pytest.raises(ConfigError, match=rf"key 'accounts\[0\]\.{field}'.*tls.client_ca_file"):
        _sim(account)

"""TLS private keys from the vault: the configs list them among the secrets to load, and
the node's FIX venue and the simulator build their TLS from a ``SecretSource``, so a
node logs on over mutual TLS with both keys held only in memory."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.certs import CertFiles, create_certs
from bastion.clock import LiveClock
from bastion.config import InstrumentConfig, PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.fix.tls import TlsServerConfig
from bastion.vault import MemorySecrets
from bastion.venue_server.config import AccountConfig, VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from bastion.venues.base import VenueContext
from bastion.venues.fix.adapter import build
from bastion.venues.fix.config import FixVenueEntry
from bastion.venues.sim.config import SimVenueConfig
from kit.fix_tcp import DEADLINE_S, run

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
port = {port}
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password = "secret:fix/trader"
store_path = "node-session.sqlite"
reconnect_initial_ms = 50
reconnect_max_ms = 200

[venues.tls]
ca_file = "{ca}"
client_cert = "{cert}"
client_key = "{client_key}"
"""
PASSWORD = "pw-tls-secrets-71c"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return create_certs(tmp_path_factory.mktemp("desk") / "tls")


def _node_config(
    tmp_path: Path, certs: CertFiles, client_key: str, port: int = 9878
) -> PaperConfig:
    path = tmp_path / "node.toml"
    cert = certs.clients["node"][0]
    text = NODE.format(port=port, ca=certs.ca, cert=cert, client_key=client_key)
    path.write_text(text, encoding="utf-8")
    return load_config(path, PaperConfig)


def _sim_config(certs: CertFiles, key_file: str) -> VenueSimConfig:
    account = AccountConfig(
        name="acct",
        comp_id="NODE",
        username="trader",
        password="secret:fix/trader",
        client_cert_cn="node",
    )
    return VenueSimConfig(
        port=0,
        comp_id="SIM",
        accounts=[account],
        instruments=[InstrumentConfig(id="XYZ.FIXSIM", venue="FIXSIM", tick_size=Decimal("0.01"))],
        matching=SimVenueConfig(name="FIXSIM"),
        tls=TlsServerConfig(
            cert_file=str(certs.venue_cert), key_file=key_file, client_ca_file=str(certs.ca)
        ),
    )


def test_when_node_tls_key_is_a_vault_reference_then_secret_refs_name_it(
    tmp_path: Path, certs: CertFiles
) -> None:
    """``client_key = "secret:tls/node"`` is loaded with the password; a key file is not."""
    config = _node_config(tmp_path, certs, "secret:tls/node")
    assert config.secret_refs() == [
        ("venues[0].password", "fix/trader"),
        ("venues[0].tls.client_key", "tls/node"),
    ]
    on_disk = _node_config(tmp_path, certs, str(certs.clients["node"][1]))
    assert on_disk.secret_refs() == [("venues[0].password", "fix/trader")]


def test_when_sim_tls_key_is_a_vault_reference_then_secret_refs_name_it(
    certs: CertFiles,
) -> None:
    """The simulator's ``key_file = "secret:tls/venue"`` is among the secrets it loads."""
    assert _sim_config(certs, "secret:tls/venue").secret_refs() == [
        ("accounts[0].password", "fix/trader"),
        ("tls.key_file", "tls/venue"),
    ]
    assert _sim_config(certs, str(certs.venue_key)).secret_refs() == [
        ("accounts[0].password", "fix/trader")
    ]


def test_when_node_has_no_vault_for_its_tls_key_then_build_refused_naming_key(
    tmp_path: Path, certs: CertFiles
) -> None:
    """A TLS key reference with a source that lacks it: refused, naming key and secret."""
    config = _node_config(tmp_path, certs, "secret:tls/node")
    context = VenueContext(
        clock=LiveClock(),
        instruments={},
        base_dir=tmp_path,
        epoch=1,
        live=True,
        secrets=MemorySecrets({"fix/trader": PASSWORD}),
    )
    with pytest.raises(ConfigError, match="tls/node"):
        build(config.venues[0], context)  # type: ignore[arg-type]


def test_when_both_tls_keys_come_from_secrets_then_node_logs_on_over_mutual_tls(
    tmp_path: Path, certs: CertFiles
) -> None:
    """The simulator's key and the node adapter's key are vault secrets (no key file is
    read): the adapter built by the node's venue factory logs on with its certificate."""
    venue_secrets = MemorySecrets(
        {"fix/trader": PASSWORD, "tls/venue": certs.venue_key.read_text()}
    )
    node_secrets = MemorySecrets(
        {"fix/trader": PASSWORD, "tls/node": certs.clients["node"][1].read_text()}
    )

    async def main() -> None:
        server = VenueSimServer(
            _sim_config(certs, "secret:tls/venue"), tmp_path, secrets=venue_secrets
        )
        port = await server.acceptor.start()
        config = _node_config(tmp_path, certs, "secret:tls/node", port)
        venue = config.venues[0]
        assert isinstance(venue, FixVenueEntry)
        instrument = config.instruments[0].to_instrument()
        context = VenueContext(
            clock=LiveClock(),
            instruments={instrument.id: instrument},
            base_dir=tmp_path,
            epoch=1,
            live=True,
            secrets=node_secrets,
        )
        adapter = build(venue, context)
        try:
            await adapter.connect()
            assert await adapter.wait_logged_on(DEADLINE_S)
            assert server.acceptor.counters["logon_failures"] == 0
        finally:
            await adapter.disconnect()
            await server.acceptor.stop()
            adapter.store.close()
            for account in server.apps.values():
                assert account.session is not None
                account.session.store.close()
            server.ledger.close()

    run(main)

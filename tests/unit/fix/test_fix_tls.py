"""FIX over TLS on loopback with certificates from ``bastion.certs``: verification by CA
and by pin, mutual TLS and the account's certificate, key files and vault keys, and
that a plain listener never sees the password."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bastion.certs import CertFiles, create_certs
from bastion.errors import ConfigError
from bastion.fix.admission import AcceptorLimits, AccessRule
from bastion.fix.tls import Fingerprints, TlsClientConfig, TlsServerConfig
from bastion.fix.transport import FixAcceptor, FixInitiator
from bastion.vault import MemorySecrets
from kit.fix_pair import ACC, INI, PASSWORD
from kit.fix_tcp import DEADLINE_S, Node, acceptor, initiator, nodes, run
from kit.waiting import until


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return create_certs(tmp_path_factory.mktemp("tls") / "tls", clients=("node", "other"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """Another CA and its certificates: trusted by nobody here."""
    return create_certs(tmp_path_factory.mktemp("tls2") / "tls")


def _server(certs: CertFiles, *, mutual: bool = True) -> TlsServerConfig:
    return TlsServerConfig(
        cert_file=str(certs.venue_cert),
        key_file=str(certs.venue_key),
        client_ca_file=str(certs.ca) if mutual else None,
    )


def _client(certs: CertFiles, who: str | None = "node", **kwargs: str) -> TlsClientConfig:
    cert, key = certs.clients[who] if who else (None, None)
    return TlsClientConfig(
        ca_file=kwargs.pop("ca_file", str(certs.ca)),
        client_cert=None if cert is None else str(cert),
        client_key=None if key is None else str(key),
        **kwargs,  # type: ignore[arg-type]
    )


async def _attempt(
    acc: Node, ini: Node, server_tls: TlsServerConfig, client_tls: TlsClientConfig, tmp: Path
) -> tuple[FixAcceptor, FixInitiator]:
    """Serve, let the initiator try until it logs on or fails twice; both stopped."""
    rule = AccessRule(cert_common_name="node")
    server = acceptor(
        acc,
        ssl_context=server_tls.context(tmp, "tls"),
        access={(ACC, INI): rule} if server_tls.client_ca_file else {},
    )
    port = await server.start()
    client = initiator(ini.session, port, client_tls.client(tmp, "venues[0].tls"))
    task = asyncio.create_task(client.run())
    try:
        await until(
            lambda: (
                ini.session.logged_on or client.failures + server.counters["logon_failures"] >= 2
            ),
            timeout_s=DEADLINE_S,
        )
    finally:
        await client.stop()
        await task
        await server.stop()
    return server, client


def test_when_mutual_tls_with_right_certs_then_logs_on(tmp_path: Path, certs: CertFiles) -> None:
    """CA-verified venue (hostname 127.0.0.1 in its SAN), the account's client cert: logon."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            server, client = await _attempt(acc, ini, _server(certs), _client(certs), tmp_path)
            assert acc.app.logons == 1 and client.failures == 0
            assert server.counters["logon_failures"] == 0

    run(main)


def test_when_venue_cert_from_unknown_ca_then_refused_before_logon(
    tmp_path: Path, certs: CertFiles, stranger: CertFiles
) -> None:
    """The node trusts another CA: the handshake fails, no Logon reaches the venue."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            client_tls = _client(certs, ca_file=str(stranger.ca))
            _, client = await _attempt(acc, ini, _server(certs), client_tls, tmp_path)
            assert "CERTIFICATE_VERIFY_FAILED (self-signed" in client.last_failure
            assert acc.session.counters["received"] == 0 and acc.app.logons == 0

    run(main)


@pytest.mark.parametrize("kind", ["cert", "spki"])
def test_when_pin_does_not_match_then_no_logon_sent(
    tmp_path: Path, certs: CertFiles, stranger: CertFiles, kind: str
) -> None:
    """A pin of another certificate: the handshake succeeds, the pin check fails, and
    the session never sends its Logon."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            other = Fingerprints.of_pem_file(stranger.venue_cert)
            pin = {f"pin_{kind}_sha256": getattr(other, f"{kind}_sha256")}
            client_tls = TlsClientConfig(
                client_cert=str(certs.clients["node"][0]),
                client_key=str(certs.clients["node"][1]),
                **pin,  # type: ignore[arg-type]
            )
            _, client = await _attempt(acc, ini, _server(certs), client_tls, tmp_path)
            assert "pinned certificate mismatch" in client.last_failure
            assert ini.session.counters["sent"] == 0 and acc.app.logons == 0

    run(main)


def test_when_pin_matches_without_ca_then_logs_on(tmp_path: Path, certs: CertFiles) -> None:
    """A public-key pin alone (no CA file) is the trust: the node logs on."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            spki = Fingerprints.of_pem_file(certs.venue_cert).spki_sha256
            client_tls = TlsClientConfig(
                pin_spki_sha256=":".join(spki[i : i + 2] for i in range(0, 64, 2)).upper(),
                client_cert=str(certs.clients["node"][0]),
                client_key=str(certs.clients["node"][1]),
            )
            await _attempt(acc, ini, _server(certs), client_tls, tmp_path)
            assert acc.app.logons == 1

    run(main)


def test_when_mutual_tls_required_and_client_has_no_cert_then_refused(
    tmp_path: Path, certs: CertFiles
) -> None:
    """The venue requires a client certificate; a node without one never logs on."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            server, _ = await _attempt(acc, ini, _server(certs), _client(certs, who=None), tmp_path)
            assert acc.app.logons == 0 and acc.session.counters["received"] == 0
            assert server.counters["logon_failures"] >= 1

    run(main)


def test_when_client_cert_of_another_account_then_logon_refused(
    tmp_path: Path, certs: CertFiles
) -> None:
    """A valid certificate of the same CA but another name: Logout, no session state."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            server, _ = await _attempt(
                acc, ini, _server(certs), _client(certs, who="other"), tmp_path
            )
            assert acc.app.logons == 0 and acc.store.next_target_seq == 1
            assert server.counters["logon_failures"] >= 1
            assert "not allowed for this account" in ini.session.disconnect_reason

    run(main)


def test_when_plain_listener_on_the_port_then_it_never_sees_the_password(
    tmp_path: Path, certs: CertFiles
) -> None:
    """An attacker's plain TCP acceptor on the venue's port gets a TLS ClientHello and
    nothing else: no 554, no password."""

    async def main() -> None:
        received: list[bytes] = []

        async def fake_acceptor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read(65536))
            writer.write(b"8=FIX.4.4\x019=5\x0135=A\x0110=000\x01")  # not TLS
            writer.close()

        listener = await asyncio.start_server(fake_acceptor, "127.0.0.1", 0)
        port = int(listener.sockets[0].getsockname()[1])
        with nodes(tmp_path) as (ini, _acc):
            client = initiator(ini.session, port, _client(certs).client(tmp_path, "tls"))
            task = asyncio.create_task(client.run())
            try:
                await until(lambda: client.failures >= 2, timeout_s=DEADLINE_S)
            finally:
                await client.stop()
                await task
                listener.close()
            data = b"".join(received)
            assert data.startswith(b"\x16\x03")  # a TLS handshake record
            assert b"554=" not in data and PASSWORD.encode() not in data
            assert ini.session.counters["sent"] == 0

    run(main)


def test_when_key_file_readable_by_others_then_refused_naming_path_and_fix(
    tmp_path: Path, certs: CertFiles
) -> None:
    """A 0644 key is refused with its path and the chmod that fixes it."""
    key = tmp_path / "loose.key"
    key.write_bytes(certs.venue_key.read_bytes())
    os.chmod(key, 0o644)
    config = TlsServerConfig(cert_file=str(certs.venue_cert), key_file=str(key))
    with pytest.raises(ConfigError, match=r"key 'tls.key_file'.*0644.*chmod 600 .*loose.key"):
        config.context(tmp_path, "tls")


def test_when_key_is_a_vault_reference_then_loaded_from_the_secret(
    tmp_path: Path, certs: CertFiles
) -> None:
    """``client_key = "secret:tls/node"`` loads the PEM from the source; no file is left."""
    secrets = MemorySecrets({"tls/node": certs.clients["node"][1].read_text()})
    config = _client(certs)
    config = TlsClientConfig(
        ca_file=config.ca_file, client_cert=config.client_cert, client_key="secret:tls/node"
    )
    config.check("venues[0].tls")
    before = set(Path("/tmp").iterdir()) if Path("/tmp").is_dir() else set()
    assert config.context(tmp_path, "venues[0].tls", secrets=secrets) is not None
    assert not any(p.name.startswith("bastion-tls-") for p in set(Path("/tmp").iterdir()) - before)
    with pytest.raises(ConfigError, match="need the vault"):
        config.context(tmp_path, "venues[0].tls")


def test_when_tls_trusts_nothing_then_config_refused() -> None:
    """A TLS table without a CA file or a pin is refused: it would accept any certificate."""
    with pytest.raises(ConfigError, match=r"key 'venues\[0\].tls': give ca_file"):
        TlsClientConfig().check("venues[0].tls")
    with pytest.raises(ConfigError, match="pin_spki_sha256': not a SHA-256"):
        TlsClientConfig(pin_spki_sha256="abc").check("venues[0].tls")


def test_when_port_checks_hit_a_tls_acceptor_then_address_not_locked_out(
    tmp_path: Path, certs: CertFiles
) -> None:
    """Ten connect-and-close probes (no byte sent) on the TLS port, with a lockout after
    three failures: none is counted, and the node on the same address then logs on."""

    async def main() -> None:
        with nodes(tmp_path) as (ini, acc):
            server = acceptor(
                acc,
                ssl_context=_server(certs).context(tmp_path, "tls"),
                limits=AcceptorLimits(max_logon_failures=3),
            )
            port = await server.start()
            try:
                for _ in range(10):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    await writer.wait_closed()
                await until(lambda: server.counters["refused"] >= 10, timeout_s=DEADLINE_S)
                assert server.counters["logon_failures"] == 0 and len(server.guard) == 0
                client = initiator(ini.session, port, _client(certs).client(tmp_path, "tls"))
                task = asyncio.create_task(client.run())
                try:
                    await until(lambda: acc.app.logons == 1, timeout_s=DEADLINE_S)
                finally:
                    await client.stop()
                    await task
            finally:
                await server.stop()

    run(main)

"""FIX in transit end to end: ``bastion venue sim`` and a paper node, each reading its
FIX password and TLS private key from its own vault, trade over mutual TLS with
certificates from ``bastion certs create``; and a node whose venue port is taken by a
plain-TCP impostor never sends its password."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bastion.model import events as ev
from kit.fix_desk import venue_sim_toml
from kit.fix_node_desk import NODE_TOML, started_venue
from kit.fix_tcp import DEADLINE_S
from kit.journal_reading import peek_journal, read_journal
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, bastion_cmd, still_running, terminate
from kit.strategies import HOARDER
from kit.vaults import key_file, new_vault, vault_env
from kit.waiting import eventually

PASSWORD = "fix-pw-e2e-canary-5c3a"
PASSWORD_LINE = 'password_env = "BASTION_FIX_PASSWORD"'


@contextmanager
def _bastion(
    *args: str | Path, cwd: Path, log: Path, key: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion ARGS`` with the vault's key file as its only secret (no FIX password in
    its environment); stderr to ``log``; killed if the block ends with it running."""
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            bastion_cmd(*args),
            cwd=cwd,
            env=vault_env(key),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _certs(root: Path, key: Path) -> Path:
    """``bastion certs create root/tls``: the CA, the venue's and the node's certificates."""
    done = subprocess.run(
        bastion_cmd("certs", "create", root / "tls"),
        env=vault_env(key),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return root / "tls"


def _node_desk(root: Path, port: int, tls: Path) -> tuple[Path, Path]:
    """The node's config (password and TLS key as vault references) and journal."""
    root.mkdir()
    (root / "strategies").mkdir()
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    fix_venue = f"""
[fix_venue]
name = "FIXSIM"
port = {port}
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password = "secret:fix/trader"
store_path = "fix/session.sqlite"
heartbeat_s = 5
logon_timeout_ms = 5000
reconnect_initial_ms = 50
reconnect_max_ms = 200

[fix_venue.tls]
ca_file = "{tls}/ca.pem"
client_cert = "{tls}/node.pem"
client_key = "secret:tls/node"
"""
    config = root / "paper-fix.toml"
    text = NODE_TOML.format(fix_venue=fix_venue, strategy="hoarder", cls="Hoarder", journal_keys="")
    config.write_text(text, encoding="utf-8")
    return config, root / "j" / "node.sqlite"


def _venue_desk(root: Path, port: int, tls: Path) -> Path:
    """The simulator's config: the account's password and the venue's TLS key in its
    vault, the node's certificate (CN ``node``) required for the account."""
    root.mkdir()
    text = venue_sim_toml(port, seed=7)
    assert PASSWORD_LINE in text
    text = text.replace(PASSWORD_LINE, 'password = "secret:fix/trader"\nclient_cert_cn = "node"')
    text += f"""
[tls]
cert_file = "{tls}/venue.pem"
key_file = "secret:tls/venue"
client_ca_file = "{tls}/ca.pem"
"""
    config = root / "venue-sim.toml"
    config.write_text(text, encoding="utf-8")
    return config


def _move_key_into_vault(key: Path, vault: Path, password: str, name: str) -> str:
    """A vault holding the FIX password and the PEM of ``key``; the key file is deleted,
    so the process can only have it from the vault."""
    pem = key.read_text(encoding="ascii")
    new_vault(vault, fix__trader=password, **{name.replace("/", "__"): pem})
    key.unlink()
    return pem


def _fills(events: list[tuple[int, object]]) -> list[ev.OrderFilled]:
    return [e for _, e in events if isinstance(e, ev.OrderFilled)]


def test_when_venue_and_node_read_password_and_tls_keys_from_vaults_then_they_trade(
    tmp_path: Path,
) -> None:
    """Mutual TLS, every secret in a vault (no key file left on disk, no password in any
    environment): the node's journal gets fills, the venue saw no failed logon, and
    neither the logs nor ``bastion status`` show the password or a private key."""
    key = key_file(tmp_path)
    tls = _certs(tmp_path, key)
    port = free_tcp_port()
    venue_cfg = _venue_desk(tmp_path / "venue", port, tls)
    node_cfg, journal = _node_desk(tmp_path / "node", port, tls)
    venue_pem = _move_key_into_vault(
        tls / "venue.key", tmp_path / "venue" / "vault.bastion", PASSWORD, "tls/venue"
    )
    node_pem = _move_key_into_vault(
        tls / "node.key", tmp_path / "node" / "vault.bastion", PASSWORD, "tls/node"
    )
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with _bastion("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log, key=key) as venue:
        started_venue(venue, venue_log, port)
        with _bastion("run", node_cfg, cwd=tmp_path, log=node_log, key=key) as node:

            def traded() -> bool:
                still_running(node, node_log)
                assert len(_fills(peek_journal(journal))) >= 3, "too few fills yet"
                return True

            eventually(traded, 30)
            status = subprocess.run(
                bastion_cmd("status", node_cfg),
                env=vault_env(None),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["positions"], status.stdout
            assert terminate(node) == 0, node_log.read_text()
        assert terminate(venue) == 0, venue_log.read_text()
    assert len(_fills(read_journal(journal))) >= 3
    logs = venue_log.read_text() + node_log.read_text()
    assert "account_logged_on" in logs and "fix_logon_refused" not in logs
    assert "TLS handshake failed" not in logs  # the only refusals: the port checks
    shown = logs + status.stdout + status.stderr
    assert PASSWORD not in shown
    for pem in (venue_pem, node_pem):
        body = pem.splitlines()[1]  # a line of the key's base64
        assert body not in shown and "PRIVATE KEY" not in shown


def test_when_plain_tcp_impostor_holds_venue_port_then_node_never_sends_password(
    tmp_path: Path,
) -> None:
    """A plain-TCP listener on the venue's port answers like a FIX venue: the node's
    adapter (a real ``bastion run``) fails the TLS handshake on every attempt and sends
    no Logon, no 554 and no password; it keeps retrying and stops cleanly."""
    key = key_file(tmp_path)
    tls = _certs(tmp_path, key)
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        node_cfg, _ = _node_desk(tmp_path / "node", listener.getsockname()[1], tls)
        vault = tmp_path / "node" / "vault.bastion"
        _move_key_into_vault(tls / "node.key", vault, PASSWORD, "tls/node")
        listener.settimeout(DEADLINE_S)

        def impostor() -> None:
            """Reads what each connection sends, answers with a FIX Logon in clear."""
            for _ in range(3):
                try:
                    conn, _address = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(DEADLINE_S)
                    data = b""
                    try:
                        data = conn.recv(65536)
                        conn.sendall(b"8=FIX.4.4\x019=5\x0135=A\x0110=000\x01")
                        while chunk := conn.recv(65536):
                            data += chunk
                    except OSError:
                        pass
                    received.append(data)

        thread = threading.Thread(target=impostor, name="impostor", daemon=True)
        thread.start()
        node_log = tmp_path / "node.log"
        with _bastion("run", node_cfg, cwd=tmp_path, log=node_log, key=key) as node:

            def refused_thrice() -> bool:
                still_running(node, node_log)
                assert len(received) >= 3, f"{len(received)} attempts so far"
                return True

            eventually(refused_thrice, START_TIMEOUT_S + DEADLINE_S)
            assert terminate(node) == 0, node_log.read_text()
        thread.join(DEADLINE_S)
    for data in received:
        assert data.startswith(b"\x16\x03")  # a TLS ClientHello, nothing else
        assert b"554=" not in data and b"35=A" not in data
        assert PASSWORD.encode() not in data
    log = node_log.read_text()
    assert "fix_reconnecting" in log and PASSWORD not in log

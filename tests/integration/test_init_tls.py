"""``bastion init --tls``: the certificates and configs it writes, and a node session
logging on to the simulator's acceptor over mutual TLS with exactly those files."""

from __future__ import annotations

import asyncio
import importlib
import stat
from pathlib import Path

import msgspec
import pytest

from bastion.config import PaperConfig, load_config
from bastion.fix.session import FixSession
from bastion.fix.store import SqliteSessionStore
from bastion.vault import MemorySecrets
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from bastion.venues.fix.config import FixVenueEntry
from kit.fix_pair import RecordingApp
from kit.fix_tcp import CLOCK, DEADLINE_S, initiator, run
from kit.waiting import until


def test_when_init_tls_then_keys_owner_only_and_node_logs_on_over_mutual_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tls/ is 0700 with 0600 keys; the scaffold's node logs on to the scaffold's venue
    over TLS with its client certificate (the password, ``fix/trader``, from memory)."""
    secrets = MemorySecrets({"fix/trader": "pw-init-tls-3e1"})
    desk = tmp_path / "desk"
    cli_main = importlib.import_module("bastion.cli.main")  # the package exports main()
    monkeypatch.setattr(cli_main, "configure_logging", lambda *_args: None)  # process-wide
    assert cli_main.main(["init", "--tls", "--no-vault", str(desk)]) == 0
    tls = desk / "tls"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    for key in ("venue.key", "node.key"):
        assert stat.S_IMODE((tls / key).stat().st_mode) == 0o600
    assert not list(tls.glob("ca*.key"))  # the CA's key is never written

    sim_config = load_config(desk / "venue-sim.toml", VenueSimConfig)
    node_config = load_config(desk / "paper-fix.toml", PaperConfig)
    (venue,) = node_config.venues
    assert isinstance(venue, FixVenueEntry) and venue.tls is not None
    assert sim_config.tls is not None and sim_config.tls.client_ca_file is not None

    async def main_() -> None:
        server = VenueSimServer(msgspec.structs.replace(sim_config, port=0), desk, secrets=secrets)
        app = RecordingApp()
        settings = venue.settings(secrets)
        store = SqliteSessionStore(tmp_path / "node.sqlite", settings.key, now_ns=0)
        session = FixSession(settings, store, app, clock=CLOCK)
        port = await server.acceptor.start()
        client = initiator(session, port, venue.tls.client(desk, "venues[0].tls"))  # type: ignore[union-attr]
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: app.logons == 1, timeout_s=DEADLINE_S)
            assert server.acceptor.counters["logon_failures"] == 0
        finally:
            await client.stop()
            await task
            await server.acceptor.stop()
            store.close()
            for account in server.apps.values():
                assert account.session is not None
                account.session.store.close()
            server.ledger.close()

    run(main_)

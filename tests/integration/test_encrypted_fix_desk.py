"""A desk encrypted at rest, end to end: `bastion venue sim` with an encrypted ledger and
session stores, a `bastion run` node over FIX with an encrypted, keyed journal and an
encrypted session store, every key from the desk's vault (unlocked with a key file).

The node trades, is killed with --flatten, and restarts: the venue's ledger, read back
with its key, shows nothing open and a flat position; the restarted node resumes its
FIX session from its encrypted store and stays HALTED; every file is encrypted, the
journal's fills are the ledger's, and `bastion journal verify --config` checks the
keyed chain with the keys the config names.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.errors import StorageKeyError
from bastion.journal import SqliteJournal
from bastion.journal.keys import JournalKeys
from bastion.model import events as ev
from bastion.storage.connect import is_encrypted
from bastion.vault.keysource import KEY_FILE_ENV
from bastion.venue_server.ledger import VenueLedger
from kit.fix_node_desk import (
    ACCOUNT,
    IID,
    PASSWORD,
    ledger_open,
    ledger_position,
    process,
    started_venue,
    write_desk,
)
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, run_to_end, status, still_running, terminate
from kit.vaults import DESK_KEYS, desk_vault, key_file
from kit.waiting import eventually

LEDGER_KEY = DESK_KEYS["venue/ledger"]
JOURNAL_KEYS = JournalKeys(
    encryption=DESK_KEYS["journal/encryption"], chain=DESK_KEYS["journal/chain"]
)


@pytest.mark.timeout(180)
def test_when_desk_encrypted_then_trades_kills_and_restarts_with_every_file_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trade, kill --flatten, restart over FIX with every store encrypted: the ledger
    (read with its key) is flat with nothing open, the restart stays HALTED, no file is
    plaintext and the journal verifies with the config's keys."""
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))  # the children inherit it
    desk_vault(tmp_path / "vault.bastion")
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, venue_port=port, encrypted=True)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        started_venue(venue, venue_log, port)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def trading() -> bool:
                still_running(node, node_log)
                assert status(journal)["open_orders"] >= 2, "no resting orders yet"
                assert len(ledger_open(tmp_path, LEDGER_KEY)) >= 2, "none rest at the venue"
                assert ledger_position(tmp_path, LEDGER_KEY) >= 2, "no long position yet"
                return True

            eventually(trading, START_TIMEOUT_S + 15)
            killed = run_to_end("kill", node_cfg.name, "--flatten", "--why", "test", cwd=tmp_path)
            assert killed.returncode == 0, killed.stderr
            answer = json.loads(killed.stdout)
            assert (answer["state"], answer["open_orders"]) == ("HALTED", 0)
            assert answer["cancels_sent"] >= 2 and answer["flatten_sent"] == 1
            assert ledger_open(tmp_path, LEDGER_KEY) == []  # canceled at the venue
            assert ledger_position(tmp_path, LEDGER_KEY) == 0
            assert terminate(node) == 0, node_log.read_text()

        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            restarted = eventually(
                lambda: still_running(node, node_log) and status(journal), START_TIMEOUT_S
            )
            assert (restarted["state"], restarted["restored"]) == ("HALTED", True)
            eventually(lambda: status(journal)["venues"]["FIXSIM"]["connected"], START_TIMEOUT_S)
            assert terminate(node) == 0, node_log.read_text()
        assert terminate(venue) == 0, venue_log.read_text()

    stores = {
        "journal": journal,
        "node FIX store": tmp_path / "fix" / "session.sqlite",
        "venue ledger": tmp_path / "venue" / "ledger.sqlite",
        "venue FIX stores": tmp_path / "venue" / "sessions.sqlite",
    }
    assert {name: is_encrypted(path) for name, path in stores.items()} == dict.fromkeys(
        stores, True
    )
    with pytest.raises(StorageKeyError, match="without its encryption key"):
        VenueLedger(stores["venue ledger"])
    with VenueLedger(stores["venue ledger"], encryption_key=LEDGER_KEY) as ledger:
        assert ledger.verify() == []
        assert ledger.open_orders(ACCOUNT) == []
        venue_fills = {f.exec_id: (f.qty, f.px) for f in ledger.fills(ACCOUNT)}
        position = ledger.position(ACCOUNT, IID)
    assert position is not None and position.net_qty == 0
    reader = SqliteJournal(journal, keys=JOURNAL_KEYS)
    try:
        events = list(reader.read())
    finally:
        reader.close()
    journal_fills = {
        e.exec_id: (Decimal(e.last_qty), Decimal(e.last_px) / 100)
        for _, e in events
        if isinstance(e, ev.OrderFilled)
    }
    assert journal_fills and journal_fills == venue_fills

    verified = run_to_end("journal", "verify", "--config", node_cfg.name, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "chain: keyed (HMAC-SHA256)" in verified.stdout
    text = venue_log.read_text() + node_log.read_text()
    assert PASSWORD not in text
    assert not [name for name, key in DESK_KEYS.items() if key.hex() in text]

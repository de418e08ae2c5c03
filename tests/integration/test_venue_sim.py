"""`bastion venue sim` and a paper node trading with it over FIX 4.4, both as processes.

The node's journal and the venue's ledger are compared: every fill the venue made for
the account is a fill in the node's journal, with the same ExecID, quantity and price.
Waits use ``eventually``, never a sleep.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.model import events as ev
from bastion.venue_server.ledger import VenueLedger
from kit.fix_desk import fix_process, node_fix_venue_toml, venue_sim_toml
from kit.journal_reading import peek_journal, read_journal
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, bastion_cmd, still_running
from kit.strategies import HOARDER
from kit.waiting import eventually

PASSWORD = "venue-sim-test-password"

NODE_TOML = """
[node]
id = "fixnode"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"

[strategies.params]
instrument = "XYZ.SIM"
market_every = 10

[risk]
max_order_quantity = "10"

{fix_venue}
[journal]
path = "journal.sqlite"
"""


def _write(root: Path, *, cod: bool = False) -> tuple[Path, Path, int]:
    port = free_tcp_port()
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    venue = root / "venue-sim.toml"
    venue.write_text(venue_sim_toml(port, cancel_on_disconnect=cod))
    node = root / "paper-fix.toml"
    node.write_text(
        NODE_TOML.format(fix_venue=node_fix_venue_toml(port, heartbeat_s=5, logon_timeout_ms=5000))
    )
    return venue, node, port


@contextmanager
def _process(
    *args: str | Path, cwd: Path, log: Path, password: str = PASSWORD
) -> Iterator[subprocess.Popen[bytes]]:
    with fix_process(*args, cwd=cwd, log=log, password=password) as proc:
        yield proc


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ledger_fills(root: Path) -> dict[str, tuple[Decimal, Decimal]]:
    with VenueLedger(root / "venue" / "ledger.sqlite") as ledger:
        return {f.exec_id: (f.qty, f.px) for f in ledger.fills("acct")}


def _journal_fills(journal: Path) -> dict[str, tuple[Decimal, Decimal]]:
    fills = {}
    for _, event in read_journal(journal):
        if isinstance(event, ev.OrderFilled):
            fills[event.exec_id] = (Decimal(event.last_qty), Decimal(event.last_px) / 100)
    return fills


def _terminate(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=STOP_TIMEOUT_S)


def test_node_trades_with_venue_sim_and_journal_equals_ledger_across_restarts(
    tmp_path: Path,
) -> None:
    """Fills reach the node over FIX; after node and venue restarts both books agree."""
    venue_cfg, node_cfg, port = _write(tmp_path)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    journal = tmp_path / "journal.sqlite"
    for round_ in range(2):  # the second round restarts both processes on the same files
        with _process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
            eventually(
                lambda: still_running(venue, venue_log) and _listening(port), START_TIMEOUT_S
            )
            with _process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
                fills_before = len(_ledger_fills(tmp_path))

                def traded(before: int = fills_before) -> bool:
                    still_running(node, node_log)
                    assert len(_ledger_fills(tmp_path)) >= before + 3, "too few fills yet"
                    return True

                eventually(traded, 30)
                assert _terminate(node) == 0, node_log.read_text()
            assert _terminate(venue) == 0, venue_log.read_text()
        ledger = _ledger_fills(tmp_path)
        assert ledger == _journal_fills(journal), f"round {round_}: node and venue differ"
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger_db:
        assert ledger_db.verify() == []
        assert ledger_db.open_orders("acct") == []  # the node canceled its orders on stop
        (position,) = ledger_db.positions("acct")
    node_position = sum(
        (e.last_qty if e.side.value == "BUY" else -e.last_qty)
        for _, e in read_journal(journal)
        if isinstance(e, ev.OrderFilled)
    )
    assert Decimal(node_position) == position.net_qty
    text = venue_log.read_text() + node_log.read_text()
    assert PASSWORD not in text


def test_wrong_password_is_refused_and_never_logged(tmp_path: Path) -> None:
    """The venue refuses the Logon; neither process logs the password."""
    venue_cfg, node_cfg, port = _write(tmp_path)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with _process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        eventually(lambda: still_running(venue, venue_log) and _listening(port), START_TIMEOUT_S)
        with _process(
            "run", node_cfg, cwd=tmp_path, log=node_log, password="not-the-password"
        ) as node:
            eventually(lambda: "logon refused" in node_log.read_text(), 20)
            assert "account_logged_on" not in venue_log.read_text()
            assert _terminate(node) == 0
    text = venue_log.read_text() + node_log.read_text()
    assert "fix_logon_refused" in text
    assert "not-the-password" not in text and PASSWORD not in text


def test_cancel_on_disconnect_cancels_a_killed_nodes_orders(tmp_path: Path) -> None:
    """SIGKILL the node: the venue cancels its resting orders when the session drops."""
    venue_cfg, node_cfg, port = _write(tmp_path, cod=True)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with _process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        eventually(lambda: still_running(venue, venue_log) and _listening(port), START_TIMEOUT_S)
        with _process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def resting() -> bool:
                still_running(node, node_log)
                with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
                    assert len(ledger.open_orders("acct")) >= 2, "no resting orders yet"
                return True

            eventually(resting, 30)
            node.kill()
            node.wait(timeout=STOP_TIMEOUT_S)

        def all_canceled() -> bool:
            with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
                assert ledger.open_orders("acct") == [], "orders still open"
            return True

        eventually(all_canceled, 20)
        assert "cancel_on_disconnect" in venue_log.read_text()
        assert _terminate(venue) == 0
    assert peek_journal(tmp_path / "journal.sqlite")


@pytest.mark.parametrize("bad", ["port = 70000", 'comp_id = ""', "accounts = []"])
def test_bad_venue_config_is_a_usage_error_naming_the_key(tmp_path: Path, bad: str) -> None:
    """A bad simulator config exits 2 with the key named."""
    venue_cfg, _node_cfg, _port = _write(tmp_path)
    lines = venue_cfg.read_text().splitlines()
    key = bad.split(" = ")[0]
    if key == "accounts":
        text = "\n".join(lines).split("[[accounts]]")[0] + "\n" + bad + "\n"
        text += "[[instruments]]" + venue_cfg.read_text().split("[[instruments]]")[1]
    else:
        text = "\n".join(line if not line.startswith(key + " ") else bad for line in lines)
    venue_cfg.write_text(text)
    proc = subprocess.run(
        bastion_cmd("venue", "sim", venue_cfg),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr

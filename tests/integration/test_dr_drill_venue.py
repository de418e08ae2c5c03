"""The DR drill logged on to the venue: a node trades with the venue simulator process
over FIX and is backed up to S3 while its session stays up; ``bastion dr drill``
restores the backup, starts the restored node recover-only through the venue's
read-only session and reconciles its orders, fills and positions there. The live node
is not disturbed: its session is never logged out nor taken over, it sends on after the
drill, and the venue's books are unchanged by it. An order the backup does not know
(filled at the venue after it) makes the next drill disagree, naming the position."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from kit.backup_trading import backed_up_desk, bastion, drill
from kit.chaos_harness import (
    INSTRUMENT,
    PASSWORD,
    Desk,
    alive,
    kill,
    node_logs,
    start_node,
    venue_process,
    wait_reconciled,
)
from kit.chaos_oracle import compare, read_ledger
from kit.fix_tcp import RawCounterparty
from kit.node_process import terminate
from kit.s3_server import S3Server
from kit.waiting import eventually

ACTIONS = 14

READ_ONLY_SESSION = """
[[read_only_sessions]]
name = "acct-drill"
comp_id = "NODE-DR"
username = "drill"
password_env = "BASTION_FIX_PASSWORD"
account = "acct"
"""

DR_TOML = """
[dr]
rto_target_s = 60

[dr.venue_sessions.FIXSIM]
sender_comp_id = "NODE-DR"
username = "drill"
password_env = "BASTION_FIX_PASSWORD"
"""


def _venue_log(desk: Desk, event: str) -> int:
    """How many lines of the venue's log say ``event`` for the desk's account."""
    text = desk.log("venue").read_text(encoding="utf-8", errors="replace")
    said = re.compile(rf"\b{event}\b.*\baccount=acct\b")
    return sum(1 for line in text.splitlines() if said.search(line))


def _settled(desk: Desk, node: subprocess.Popen[bytes]) -> bool:
    """The strategy has taken its last action and the venue's books equal the journal."""
    alive(node, desk.log("node"))
    assert node_logs(desk, "chaos_trader_done"), "the strategy still trades"
    mismatches = compare(desk).mismatches
    assert mismatches == [], mismatches
    return True


async def _rogue_fill(desk: Desk) -> None:
    """One market order on the desk's own session (the node stopped), sent by someone
    else: a fill at the venue that no backup holds."""
    client = RawCounterparty("NODE", "SIM")
    await client.connect(desk.port)
    client.send("A", (98, "0"), (108, "30"), (141, "Y"), (553, "trader"), (554, PASSWORD), seq=1)
    await client.expect("A", skip_others=True)
    client.send(
        "D",
        (11, "ROGUE-1"),
        (21, "1"),
        (55, INSTRUMENT),
        (54, "1"),
        (60, "20261207-09:00:00.000"),
        (38, "1"),
        (40, "1"),
    )
    await client.expect("8", skip_others=True, t39="2")
    await client.close()


@pytest.mark.timeout(300)
def test_when_a_drill_logs_on_through_the_read_only_session_then_the_live_node_trades_on(
    tmp_path: Path, s3: S3Server
) -> None:
    """A drill while the node is up: restored, recovered, logged on through the read-only
    session, orders, fills and positions reconciled (agreed); the live session never
    dropped and the venue's books unchanged. After a fill the backup lacks, the next
    drill disagrees on the position and fails (exit 1)."""
    desk, identity, _prefix = backed_up_desk(tmp_path, s3, max_actions=ACTIONS)
    with desk.venue_config.open("a") as config:
        config.write(READ_ONLY_SESSION)
    with desk.node_config.open("a") as config:
        config.write(DR_TOML)
    with venue_process(desk):
        node = start_node(desk)
        try:
            wait_reconciled(desk, node, 1)
            eventually(lambda: _settled(desk, node), 90, what="the strategy's last action")
            created = bastion("backup", "create", desk.node_config, cwd=desk.root)
            assert created.returncode == 0, created.stderr
            shipped = bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
            assert shipped.returncode == 0, shipped.stderr
            books = read_ledger(desk.ledger)
            code, report, output = drill(desk, identity, tmp_path / "drill-1")
            assert code == 0, output[-4000:]
            assert read_ledger(desk.ledger) == books  # the drill traded nothing, changed nothing
            assert _venue_log(desk, "read_only_refused") == 0  # nor tried to: no D, F or G
            drilled = [output, json.dumps(report), (desk.node_config.parent / "dr-drills.sqlite")]
            drilled += sorted((tmp_path / "drill-1").rglob("dr-drill/*"))
            for where in drilled:  # the read-only session's password: in none of them
                data = where.read_bytes() if isinstance(where, Path) else where.encode()
                assert PASSWORD.encode() not in data, where
            alive(node, desk.log("node"))
            assert _venue_log(desk, "account_logged_out") == 0
            assert _venue_log(desk, "account_logged_on") == 1
            assert node_logs(desk, "fix_logged_out") == []
            assert terminate(node) == 0
        finally:
            kill(node)
        assert _venue_log(desk, "account_logged_out") == 1  # the node's own stop
        assert report["ok"] and report["reconciled"] is True, report
        assert report["reconciled_by"] == "venue sessions (FIXSIM)"
        reconciliation = report["reconciliation"]
        assert reconciliation["positions_compared"] is True
        assert reconciliation["orders_checked"] >= 1 and reconciliation["adopted"] == 0
        assert report["mismatches"] == []
        assert "recover_and_reconcile" in report["phases_s"]
        assert 0 < report["rto_s"] < 60
        asyncio.run(_rogue_fill(desk))
        code, report, output = drill(desk, identity, tmp_path / "drill-2")
    assert code == 1, output[-4000:]
    assert not report["ok"] and report["reconciled"] is False
    assert any(INSTRUMENT in m and "position" in m for m in report["mismatches"]), report

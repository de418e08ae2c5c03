"""Disaster on a trading desk: a node trades with the venue simulator process over FIX;
it is backed up (full, then the journal shipped) to S3 while it trades; the node stops
and the shipper ships its last events; the node's files are destroyed; the desk is
restored from S3 into a new directory; ``bastion recover`` reconciles it with the
venue: positions, orders and fills equal the venue's ledger, the journal verifies,
no ClOrdID was used twice. Killed mid-trade instead (SIGKILL, the last events never
shipped), the restored desk catches up from the venue's resend: the same books."""

from __future__ import annotations

import json
import shutil
from contextlib import closing
from pathlib import Path

import pytest

from kit.backup_trading import BUCKET, backed_up_desk, bastion, drill, fills_at_least
from kit.chaos_harness import (
    ACCOUNT,
    Desk,
    alive,
    journal_verify,
    kill,
    node_fill_count,
    read_only,
    run_recover,
    start_node,
    venue_process,
    wait_reconciled,
)
from kit.chaos_oracle import compare
from kit.node_process import terminate
from kit.s3_server import S3Server
from kit.waiting import eventually


def _rows(store: Path) -> list[tuple[object, ...]]:
    """A FIX session store's sessions and stored messages, read only."""
    with closing(read_only(store)) as db:
        return (
            db.execute("SELECT * FROM fix_sessions ORDER BY 1").fetchall()
            + db.execute("SELECT * FROM fix_messages ORDER BY 1, 2").fetchall()
        )


def _destroy(desk: Desk) -> None:
    """The disaster: the node's files are gone (the venue lives on)."""
    for name in ("paper-fix.toml", "journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
        (desk.root / name).unlink(missing_ok=True)
    shutil.rmtree(desk.root / "fix")


def _restore(
    tmp_path: Path, desk: Desk, identity: Path, prefix: str, s3: S3Server
) -> tuple[Desk, dict[str, object]]:
    target = tmp_path / "rebuilt"
    restored = bastion(
        "backup",
        "restore",
        "latest",
        "--from",
        f"s3://{BUCKET}/{prefix}/chaos",
        "--endpoint",
        s3.endpoint,
        "--allow-http",
        "--to",
        target,
        "--identity",
        identity,
        cwd=tmp_path,
    )
    assert restored.returncode == 0, restored.stderr
    (target / "venue").symlink_to(desk.root / "venue")  # the oracle reads the venue's books
    report: dict[str, object] = json.loads(restored.stdout)
    return Desk(root=target, port=desk.port), report


@pytest.mark.timeout(240)
def test_when_the_node_is_lost_then_a_restore_from_s3_recovers_and_equals_the_venue(
    tmp_path: Path, s3: S3Server
) -> None:
    """Back up while trading, destroy, restore elsewhere, recover: books equal the venue's."""
    desk, identity, prefix = backed_up_desk(tmp_path, s3)
    with venue_process(desk):
        node = start_node(desk)
        try:
            wait_reconciled(desk, node, 1)
            eventually(lambda: fills_at_least(desk, node, 3), 60, what="3 fills")
            created = bastion("backup", "create", desk.node_config, cwd=desk.root)
            assert created.returncode == 0, created.stderr
            after_backup = node_fill_count(desk.journal)
            eventually(lambda: fills_at_least(desk, node, after_backup + 2), 60, what="2 more")
            shipped = bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
            assert shipped.returncode == 0, shipped.stderr
            alive(node, desk.log("node"))
            assert terminate(node) == 0
        finally:
            kill(node)
        # the shipper's last round after the node stopped: nothing journaled is lost
        shipped = bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
        assert shipped.returncode == 0, shipped.stderr
        _destroy(desk)
        rebuilt, report = _restore(tmp_path, desk, identity, prefix, s3)
        assert report["segments"] == 2
        recovery = run_recover(rebuilt)
        assert recovery.problems() == [], recovery.stderr[-3000:]
    comparison = compare(rebuilt)
    assert comparison.mismatches == []
    assert comparison.node_fills == comparison.venue_fills >= 5
    verified = journal_verify(rebuilt)
    assert verified.returncode == 0, verified.stdout


@pytest.mark.timeout(240)
def test_when_the_node_is_killed_after_unshipped_fills_then_the_restore_catches_up(
    tmp_path: Path, s3: S3Server
) -> None:
    """SIGKILL after fills never shipped: restore, recover: the venue's resend fills the
    journal's gap, books equal the venue's, no fill counted twice."""
    desk, identity, prefix = backed_up_desk(tmp_path, s3)
    with venue_process(desk):
        node = start_node(desk)
        try:
            wait_reconciled(desk, node, 1)
            eventually(lambda: fills_at_least(desk, node, 3), 60, what="3 fills")
            created = bastion("backup", "create", desk.node_config, cwd=desk.root)
            assert created.returncode == 0, created.stderr
            after_backup = node_fill_count(desk.journal)
            eventually(lambda: fills_at_least(desk, node, after_backup + 2), 60, what="2 more")
            shipped = bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
            assert shipped.returncode == 0, shipped.stderr
            after_ship = node_fill_count(desk.journal)
            eventually(lambda: fills_at_least(desk, node, after_ship + 3), 60, what="3 unshipped")
        finally:
            kill(node)
        _destroy(desk)
        rebuilt, report = _restore(tmp_path, desk, identity, prefix, s3)
        assert report["segments"] == 1
        assert report["fix_sessions"] == 1
        assert node_fill_count(rebuilt.journal) < after_ship + 3  # the journal lost fills
        recovery = run_recover(rebuilt)
        assert recovery.problems() == [], recovery.stderr[-3000:]
    comparison = compare(rebuilt)
    assert comparison.mismatches == []
    assert comparison.node_fills == comparison.venue_fills >= after_ship + 3
    verified = journal_verify(rebuilt)
    assert verified.returncode == 0, verified.stdout


@pytest.mark.timeout(240)
def test_when_a_drill_runs_then_it_restores_recovers_and_agrees_with_the_venue(
    tmp_path: Path, s3: S3Server
) -> None:
    """``bastion dr drill`` on a desk backed up while trading: passed, measured, and the
    source desk's journal and the venue's session store are untouched by it."""
    desk, identity, _prefix = backed_up_desk(tmp_path, s3)
    with desk.node_config.open("a") as config:
        config.write(
            '\n[dr]\nrto_target_s = 60\n\n[dr.venue_positions]\nkind = "venue_sim_ledger"\n'
            f'path = "{desk.ledger}"\naccount = "{ACCOUNT}"\n'
        )
    with venue_process(desk):
        node = start_node(desk)
        try:
            wait_reconciled(desk, node, 1)
            eventually(lambda: fills_at_least(desk, node, 3), 60, what="3 fills")
            created = bastion("backup", "create", desk.node_config, cwd=desk.root)
            assert created.returncode == 0, created.stderr
            assert terminate(node) == 0
        finally:
            kill(node)
        shipped = bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
        assert shipped.returncode == 0, shipped.stderr
        watched = [desk.journal, *sorted((desk.root / "fix").glob("*.sqlite"))]
        untouched = {p: p.read_bytes() for p in watched}  # the stopped node's files
        venue_sessions = _rows(desk.venue_store)  # the running venue's: rows, not pages
        code, report, output = drill(desk, identity, tmp_path / "drill")
        assert code == 0, output[-3000:]
        assert {p: p.read_bytes() for p in untouched} == untouched
        assert _rows(desk.venue_store) == venue_sessions
    assert report["ok"] and report["reconciled"] is True and report["rpo_events"] == 0
    assert report["venue_positions"] == report["node_positions"] != {}
    assert 0 < report["rto_s"] < 60
    assert "DR drill PASSED" in output

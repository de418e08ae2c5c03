"""`bastion journal verify|export|stats` as an operator runs them, with their exit codes."""

from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.journal import SqliteJournal
from bastion.model import events as ev
from bastion.model.enums import LiquiditySide, OrderSide, TradingState
from kit.node_process import RunBastion

T0 = 1_704_205_800_000_000_000


def make_journal(path: Path, n_fills: int = 5) -> None:
    journal = SqliteJournal(path)
    try:
        journal.begin_run("node-1", T0)
        journal.append(ev.TradingStateChanged(ts_ns=T0, state=TradingState.ACTIVE, reason="start"))
        for i in range(n_fills):
            journal.append(
                ev.OrderFilled(
                    ts_ns=T0 + 1 + i,
                    client_order_id=f"O-{i}",
                    strategy_id="ema",
                    instrument_id="XYZ.SIM",
                    venue_order_id=f"V{i}",
                    exec_id=f"E{i}",
                    side=OrderSide.BUY,
                    last_qty=1,
                    last_px=10_000,
                    fee=Decimal("0.01"),
                    fee_currency="USD",
                    liquidity=LiquiditySide.TAKER,
                )
            )
    finally:
        journal.close()


def tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(sql)
    finally:
        db.close()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    make_journal(path)
    return path


def test_when_chain_intact_then_verify_exits_0_with_a_summary(
    run_bastion: RunBastion, journal: Path
) -> None:
    """An intact journal: exit 0, event count and seq range on stdout."""
    proc = run_bastion("journal", "verify", journal)
    assert proc.returncode == 0, proc.stderr
    assert "ok:" in proc.stdout and "6 events (seq 1..6)" in proc.stdout


def test_when_middle_record_tampered_then_verify_exits_1_naming_seq(
    run_bastion: RunBastion, journal: Path
) -> None:
    """A changed ts_ns on seq 3: exit 1, seq 3 and 'hash mismatch' named."""
    tamper(journal, "UPDATE events SET ts_ns = ts_ns + 1 WHERE seq = 3")
    proc = run_bastion("journal", "verify", journal)
    assert proc.returncode == 1
    assert "first bad record seq 3: hash mismatch" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_when_tail_torn_then_verify_exits_1_naming_the_torn_tail(
    run_bastion: RunBastion, journal: Path
) -> None:
    """A truncated last payload is named as the torn tail."""
    tamper(journal, "UPDATE events SET payload = substr(payload, 1, 4) WHERE seq = 6")
    proc = run_bastion("journal", "verify", journal)
    assert proc.returncode == 1
    assert "seq 6 (torn tail" in proc.stdout and "undecodable payload" in proc.stdout


def test_when_seq_gap_then_verify_exits_1_with_gap(run_bastion: RunBastion, journal: Path) -> None:
    """A deleted record shows as a gap at the next seq."""
    tamper(journal, "DELETE FROM events WHERE seq = 2")
    proc = run_bastion("journal", "verify", journal)
    assert proc.returncode == 1
    assert "seq 3" in proc.stdout and "gap in seq" in proc.stdout


@pytest.mark.parametrize("command", ["verify", "export", "stats"])
def test_when_file_missing_then_exit_2_with_clear_message(
    run_bastion: RunBastion, tmp_path: Path, command: str
) -> None:
    """No such file: exit 2, 'journal file not found', no traceback, nothing created."""
    missing = tmp_path / "nope.sqlite"
    proc = run_bastion("journal", command, missing)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f"error: {missing}: journal file not found")
    assert not missing.exists()


def test_when_file_is_not_a_journal_then_exit_2(run_bastion: RunBastion, tmp_path: Path) -> None:
    """A text file is refused as not a bastion journal."""
    other = tmp_path / "notes.txt"
    other.write_text("hello " * 1000, encoding="utf-8")
    proc = run_bastion("journal", "verify", other)
    assert proc.returncode == 2
    assert "not a bastion journal" in proc.stderr


def test_when_journal_without_subcommand_then_usage_and_exit_2(run_bastion: RunBastion) -> None:
    """`bastion journal` alone prints its help to stderr."""
    proc = run_bastion("journal")
    assert proc.returncode == 2
    assert "verify" in proc.stderr and "export" in proc.stderr


def test_when_exported_to_file_then_one_json_line_per_event(
    run_bastion: RunBastion, journal: Path, tmp_path: Path
) -> None:
    """--out FILE gets JSON lines; --from-seq skips earlier events; stdout works too."""
    out = tmp_path / "events.jsonl"
    proc = run_bastion("journal", "export", journal, "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[1]["type"] == "OrderFilled" and lines[1]["event"]["fee"] == "0.01"
    assert lines[1]["client_order_id"] == "O-0" and lines[0]["client_order_id"] is None
    proc = run_bastion("journal", "export", journal, "--from-seq", "5")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["seq"] for line in proc.stdout.splitlines()] == [5, 6]


def test_when_from_seq_not_positive_then_usage_error(
    run_bastion: RunBastion, journal: Path
) -> None:
    """--from-seq 0 is refused by the parser (exit 2)."""
    proc = run_bastion("journal", "export", journal, "--from-seq", "0")
    assert proc.returncode == 2


def test_when_stats_then_counts_by_type_runs_and_version_printed(
    run_bastion: RunBastion, journal: Path
) -> None:
    """stats: events, by type, runs, first/last time, size, schema version."""
    proc = run_bastion("journal", "stats", journal)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "schema version: 3" in out
    assert "events:         6" in out
    assert "runs:           1" in out
    assert re.search(r"^  OrderFilled +5$", out, re.MULTILINE)
    assert re.search(r"^  TradingStateChanged +1$", out, re.MULTILINE)
    assert "first event:    2024-01-02T14:30:00.000000000Z" in out
    assert "file size:" in out

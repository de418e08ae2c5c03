"""The journal's last record torn, as a crash in the middle of writing it leaves it:
``bastion recover`` recovers up to the last whole record, reports the torn tail, and the
fill that record held comes back from the venue.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from kit.chaos_harness import (
    alive,
    journal_verify,
    kill,
    node_fill_count,
    run_recover,
    start_node,
    venue_process,
    wait_reconciled,
    write_desk,
)
from kit.chaos_oracle import compare, journal_events, summary
from kit.node_process import terminate
from kit.waiting import eventually

MARKET_ORDERS = 6  # the node sends these and then stays quiet: its journal ends on a fill


def tear_last_fill(journal: Path) -> tuple[int, str]:
    """Cut the journal back to its last fill and tear that record in half (a crash while
    it was being written); return its seq and ExecID. Snapshots from that seq on go too:
    a crash before a record is whole comes before any snapshot that covers it."""
    with closing(sqlite3.connect(journal)) as db:
        seq, payload = db.execute(
            "SELECT seq, payload FROM events WHERE type = 'OrderFilled' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        exec_id = msgspec.msgpack.decode(payload)["exec_id"]
        with db:
            db.execute("DELETE FROM events WHERE seq > ?", (seq,))
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            if "snapshots" in tables:
                db.execute("DELETE FROM snapshots WHERE seq >= ?", (seq,))
            db.execute(
                "UPDATE events SET payload = substr(payload, 1, length(payload) / 2) WHERE seq = ?",
                (seq,),
            )
    return seq, exec_id


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_when_last_record_is_torn_then_recover_reports_it_and_the_fill_comes_back(
    tmp_path: Path,
) -> None:
    """Torn last fill: recover reports torn_tail=seq, verify passes, zero mismatches."""
    desk = write_desk(tmp_path, seed=5, mode="market", max_actions=MARKET_ORDERS)
    with venue_process(desk) as venue:
        node = start_node(desk)
        try:
            done = wait_reconciled(desk, node, 1)
            assert done["mismatches"] == []
            eventually(
                lambda: (
                    alive(node, desk.log("node")) and node_fill_count(desk.journal) >= MARKET_ORDERS
                ),
                30,
            )
        finally:
            kill(node)
        torn_seq, exec_id = tear_last_fill(desk.journal)
        assert journal_verify(desk).returncode == 1  # the tear is there
        torn = compare(desk).mismatches
        assert any(f"journal seq {torn_seq}: undecodable" in m for m in torn), torn
        assert any(f"fill {exec_id}: venue (" in m for m in torn), torn

        recovery = run_recover(desk)
        assert recovery.problems() == [], recovery.stderr
        assert recovery.report is not None
        assert recovery.report["torn_tail"] == torn_seq
        snapshot_seq = recovery.report["snapshot_seq"]
        assert snapshot_seq is None or snapshot_seq < torn_seq

        verify = journal_verify(desk)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        books = compare(desk)
        assert books.mismatches == [], summary(books.mismatches)
        events, undecodable = journal_events(desk.journal)
        assert undecodable == []
        refilled = [e for _, t, e in events if t == "OrderFilled" and e["exec_id"] == exec_id]
        assert len(refilled) == 1, f"fill {exec_id} of the torn record: {refilled}"
        alive(venue, desk.log("venue"))
        assert terminate(venue) == 0

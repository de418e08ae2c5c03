"""The venue simulator SIGKILLed mid-session and restarted on the same port and files:
the node reconnects by itself and trades on; after its orderly stop, the journal and
the venue's ledger agree exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.chaos_harness import (
    alive,
    journal_verify,
    kill,
    node_fill_count,
    start_node,
    start_venue,
    venue_fill_count,
    wait_reconciled,
    write_desk,
)
from kit.chaos_oracle import compare, read_ledger, summary
from kit.node_process import terminate
from kit.waiting import eventually

FILLS_BEFORE_KILL = 3
FILLS_AFTER_RESTART = 3
TRADE_TIMEOUT_S = 30.0


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_when_venue_is_sigkilled_mid_session_then_node_reconnects_and_books_agree(
    tmp_path: Path,
) -> None:
    """Kill -9 the venue while the node trades; restart it; fills continue; zero mismatches."""
    desk = write_desk(tmp_path, seed=11)
    node_log = desk.log("node")
    venue = start_venue(desk)
    try:
        node = start_node(desk)
        try:
            done = wait_reconciled(desk, node, 1)
            assert done["mismatches"] == []

            def traded() -> bool:
                alive(node, node_log)
                assert venue_fill_count(desk.ledger) >= FILLS_BEFORE_KILL, "too few fills yet"
                return True

            eventually(traded, TRADE_TIMEOUT_S)
            kill(venue)
            venue = start_venue(desk)  # same port, same ledger and session store
            at_restart = venue_fill_count(desk.ledger)

            def trading_again() -> bool:
                alive(node, node_log)
                venue_fills = venue_fill_count(desk.ledger)
                assert venue_fills >= at_restart + FILLS_AFTER_RESTART, "no new fills yet"
                assert node_fill_count(desk.journal) >= venue_fills, "fills not journaled yet"
                return True

            eventually(trading_again, TRADE_TIMEOUT_S)
            assert terminate(node) == 0, node_log.read_text()
        finally:
            if node.poll() is None:
                kill(node)
        books = compare(desk)
        assert books.mismatches == [], summary(books.mismatches)
        assert books.venue_fills >= at_restart + FILLS_AFTER_RESTART
        still_open = [o for o in read_ledger(desk.ledger).orders if o["status"] in ("0", "1")]
        assert still_open == []  # the orderly stop canceled every order
        verify = journal_verify(desk)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        alive(venue, desk.log("venue"))
        assert terminate(venue) == 0
    finally:
        if venue.poll() is None:
            kill(venue)

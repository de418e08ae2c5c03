"""The kill switch end to end over FIX: `bastion venue sim` and a `bastion run` node as
processes, `bastion kill --flatten` and `bastion resume` as an operator types them.

The venue's ledger is the independent witness: after the kill it holds no open order
for the account and a flat position, and no strategy order reached it after the HALT
(the operator's flatten order excepted); a restarted node stays HALTED and sends
nothing until it is resumed. Waits use ``eventually``; the one bounded wait checks that
nothing happens (no order reaches the venue) for a short while.

The desk (configs, processes, the venue ledger) is ``kit.fix_node_desk``, which
``test_cancel_on_disconnect_fix.py`` shares.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from bastion.model.enums import OrderSide, TradingState
from bastion.venue_server.ledger import VenueLedger
from kit.fix_node_desk import (
    ACCOUNT,
    IID,
    PASSWORD,
    ledger_open,
    ledger_orders,
    ledger_position,
    process,
    started_venue,
    write_desk,
)
from kit.journal_reading import (
    halted_denials_after,
    last_state_change,
    peek_journal,
    read_journal,
    trading_long_with_resting_orders,
)
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, run_to_end, status, still_running, terminate
from kit.waiting import eventually

QUIET_S = 1.5  # a restarted HALTED node must send nothing for this long


def stays(predicate: Callable[[], bool], for_s: float) -> None:
    """Check that ``predicate`` keeps holding for ``for_s`` seconds (polled).

    The one legitimate bounded wait: proving that something does *not* happen."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert predicate()
        time.sleep(0.05)
    assert predicate()


# -- the kill switch ---------------------------------------------------------------------------
def operator_ids(events: list[tuple[int, Any]]) -> set[str]:
    return {
        e.client_order_id
        for _, e in events
        if isinstance(e, ev.OrderInitialized) and e.strategy_id == "operator"
    }


def submitted_before(events: list[tuple[int, Any]], seq: int) -> set[str]:
    return {e.client_order_id for s, e in events if s < seq and isinstance(e, ev.OrderSubmitted)}


@pytest.mark.timeout(180)
def test_when_killed_with_flatten_over_fix_then_venue_flat_quiet_and_halted_until_resumed(
    tmp_path: Path,
) -> None:
    """kill --flatten against the venue simulator: the ledger shows nothing open, a flat
    position and no strategy order after the HALT; a restart stays HALTED and sends
    nothing; resume makes orders reach the venue again."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, venue_port=port)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        started_venue(venue, venue_log, port)

        # -- run 1: trade, kill --flatten over FIX ---------------------------------------
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def trading() -> bool:
                still_running(node, node_log)
                trading_long_with_resting_orders(journal)
                assert len(ledger_open(tmp_path)) >= 2, "no resting orders at the venue yet"
                assert ledger_position(tmp_path) >= 2, "no long position at the venue yet"
                return True

            eventually(trading, START_TIMEOUT_S + 15)
            killed = run_to_end("kill", node_cfg.name, "--flatten", "--why", "test", cwd=tmp_path)
            assert killed.returncode == 0, killed.stderr
            answer = json.loads(killed.stdout)
            assert answer["ok"] is True
            assert answer["state"] == "HALTED"
            assert answer["cancels_sent"] >= 2  # the two resting quotes at least
            assert (answer["flatten_sent"], answer["flatten_denied"]) == (1, 0)
            assert answer["open_orders"] == 0
            assert answer["positions"] == {IID: "0"}

            # the venue's own books: nothing open, flat
            assert ledger_open(tmp_path) == []
            assert ledger_position(tmp_path) == 0
            seq_halt, halt = last_state_change(peek_journal(journal))
            assert halt.state is TradingState.HALTED
            assert "kill by " in halt.reason and halt.reason.endswith(": test")
            # the strategy keeps trying and is denied; none of it reaches the venue
            denied = eventually(lambda: halted_denials_after(journal, seq_halt, "hoarder"), 5)
            assert {e.reason for e in denied} == {"TRADING_HALTED"}
            events = peek_journal(journal)
            operator = operator_ids(events)
            assert len(operator) == 1
            before_halt = submitted_before(events, seq_halt)
            at_venue = ledger_orders(tmp_path)
            strategy_orders = {o.root_cl_ord_id for o in at_venue} - operator
            assert strategy_orders <= before_halt, "a strategy order reached the venue after HALT"
            late = {
                o.root_cl_ord_id
                for o in at_venue
                if o.created_ns > halt.ts_ns and o.root_cl_ord_id not in operator
            }
            assert late <= before_halt  # only orders already in flight at the HALT
            (flatten,) = [o for o in at_venue if o.root_cl_ord_id in operator]
            assert flatten.side is OrderSide.SELL and flatten.status == "2"  # Filled
            assert flatten.created_ns > halt.ts_ns
            assert terminate(node) == 0, node_log.read_text()
        last_seq_1 = read_journal(journal)[-1][0]
        ids_1 = {o.order_id for o in ledger_orders(tmp_path)}
        orders_1 = len(ids_1)

        # -- run 2: restored HALTED; nothing reaches the venue until resume ----------------
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            restarted = eventually(
                lambda: still_running(node, node_log) and status(journal), START_TIMEOUT_S
            )
            assert (restarted["state"], restarted["restored"]) == ("HALTED", True)
            assert restarted["reason"].endswith(": test")
            eventually(lambda: halted_denials_after(journal, last_seq_1, "hoarder"), 10)
            stays(lambda: len(ledger_orders(tmp_path)) == orders_1, QUIET_S)
            assert not [
                e
                for s, e in peek_journal(journal)
                if s > last_seq_1 and isinstance(e, ev.OrderSubmitted)
            ]

            resumed = run_to_end("resume", node_cfg.name, "--why", "drill over", cwd=tmp_path)
            assert resumed.returncode == 0, resumed.stderr
            assert json.loads(resumed.stdout) == {
                "ok": True,
                "state": "ACTIVE",
                "previous": "HALTED",
            }

            def orders_reach_the_venue() -> bool:
                _, change = last_state_change(peek_journal(journal))
                assert change.state is TradingState.ACTIVE and "drill over" in change.reason
                new = [
                    o
                    for o in ledger_orders(tmp_path)
                    if o.order_id not in ids_1 and o.status != "8"  # not Rejected
                ]
                assert new, "no order reached the venue since resume"
                assert all(o.created_ns > change.ts_ns for o in new)
                return True

            eventually(orders_reach_the_venue, 10)
            assert terminate(node) == 0, node_log.read_text()
        assert terminate(venue) == 0, venue_log.read_text()

    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.verify() == []
        assert ledger.open_orders(ACCOUNT) == []
        venue_fills = {f.exec_id: (f.qty, f.px) for f in ledger.fills(ACCOUNT)}
    journal_fills = {
        e.exec_id: (Decimal(e.last_qty), Decimal(e.last_px) / 100)
        for _, e in read_journal(journal)
        if isinstance(e, ev.OrderFilled)
    }
    assert journal_fills == venue_fills
    text = venue_log.read_text() + node_log.read_text()
    assert PASSWORD not in text

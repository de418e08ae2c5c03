"""Two members of one HA group as processes, the venue simulator and a real PostgreSQL:
the leader trades, is SIGKILLed, and the standby takes over within the failover budget
and trades on, with no old-epoch order after the new epoch's first, no duplicate
ClOrdID, every fill once, the venue's position, and a journal that verifies."""

from __future__ import annotations

import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.model import events as ev
from kit.ha_desk import (
    HaDesk,
    alive,
    epoch_of,
    first_order_of,
    journal_events,
    member_logs,
    processes,
    role,
    run_cli,
    start_member,
    start_venue,
    venue_fills,
    venue_orders,
    venue_position,
    verify_journal,
    write_desk,
)
from kit.node_process import STOP_TIMEOUT_S
from kit.waiting import eventually

FAILOVER_BUDGET_S = 2.0
LEAD_TIMEOUT_S = 45.0  # interpreter start, logon, reconciliation on a shared 2-core box


def _fills(desk: HaDesk) -> list[ev.OrderFilled]:
    return [e for _, e in journal_events(desk) if isinstance(e, ev.OrderFilled)]


def _check_books(desk: HaDesk) -> None:
    """Every venue fill once in the journal; the journal's position is the venue's."""
    fills = _fills(desk)
    exec_ids = [f.exec_id for f in fills]
    assert [e for e, n in Counter(exec_ids).items() if n > 1] == []
    assert sorted(exec_ids) == sorted(venue_fills(desk))
    net = sum(f.last_qty if f.side.value == "BUY" else -f.last_qty for f in fills)
    assert Decimal(net) == Decimal(venue_position(desk))
    submitted = [
        e.client_order_id for _, e in journal_events(desk) if isinstance(e, ev.OrderSubmitted)
    ]
    assert [c for c, n in Counter(submitted).items() if n > 1] == []
    rejected = [e for _, e in journal_events(desk) if isinstance(e, ev.OrderRejected)]
    assert [r for r in rejected if "duplicate" in r.reason.lower()] == []


@pytest.mark.timeout(240)
def test_when_leader_is_sigkilled_then_standby_takes_over_and_trades(
    tmp_path: Path, pg_dsn: str
) -> None:
    """SIGKILL the leader: the standby trades under epoch 2 within the budget; the books
    agree with the venue's exactly."""
    desk = write_desk(tmp_path, pg_dsn)
    with processes(desk) as procs:
        start_venue(desk, procs)
        start_member(desk, procs, "a")
        eventually(lambda: alive(desk, procs, "a") and role(desk, "a", "leader"), LEAD_TIMEOUT_S)
        start_member(desk, procs, "b")
        eventually(
            lambda: (
                alive(desk, procs, "b") and (role(desk, "b", "standby")["applied_seq"] or 0) > 0
            ),
            LEAD_TIMEOUT_S,
        )
        eventually(lambda: len(venue_fills(desk)) >= 10, LEAD_TIMEOUT_S)
        eventually(lambda: (role(desk, "b", "standby")["lag_events"] or 0) < 50, 10)
        killed_ns = time.time_ns()
        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait(timeout=STOP_TIMEOUT_S)
        first_ns = eventually(lambda: alive(desk, procs, "b") and first_order_of(desk, 2), 30)
        takeover_s = (first_ns - killed_ns) / 1e9
        print(f"\ntakeover: SIGKILL to the first epoch-2 order accepted: {takeover_s:.3f} s")
        fills_at_takeover = len(venue_fills(desk))
        eventually(lambda: len(venue_fills(desk)) >= fills_at_takeover + 5, 30)
        took_over = member_logs(desk, "b", "ha_took_over")
        assert took_over and took_over[0]["epoch"] == 2, took_over
        print(f"lease won to ready: {took_over[0]['lease_to_ready_ms']} ms")
        procs["b"].send_signal(signal.SIGTERM)
        assert procs["b"].wait(timeout=STOP_TIMEOUT_S) == 0
    orders = venue_orders(desk)
    last_old = max(ts for coid, ts in orders if epoch_of(coid) == 1)
    assert last_old < first_ns
    assert {epoch_of(coid) for coid, _ in orders} == {1, 2}
    _check_books(desk)
    assert verify_journal(desk).ok
    verified = run_cli(desk, "b", "journal", "verify", "--config", "node.toml")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert takeover_s < FAILOVER_BUDGET_S, f"takeover took {takeover_s:.3f} s"

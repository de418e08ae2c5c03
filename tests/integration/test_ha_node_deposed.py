"""A leader paused past its lease (SIGSTOP) wakes deposed: it sends and journals nothing
after the new leader's first order, and exits with the deposed code. A kill switch
thrown before the failover holds on the new leader."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bastion.ha.node import EXIT_DEPOSED
from bastion.model import events as ev
from bastion.model.enums import TradingState
from bastion.node.control import request
from kit.ha_desk import (
    alive,
    epoch_of,
    first_order_of,
    journal_events,
    member_logs,
    processes,
    role,
    start_member,
    start_venue,
    venue_fills,
    venue_orders,
    write_desk,
)
from kit.node_process import STOP_TIMEOUT_S
from kit.waiting import eventually

LEAD_TIMEOUT_S = 45.0


def audited_kill(socket: Path) -> str:
    """The type of the newest audit record about the kill called "drill", as ``audit``
    on ``socket`` answers it."""
    answer = request(socket, {"cmd": "audit", "query": "drill", "limit": 5}, timeout_s=10)
    assert answer["ok"] is True, answer
    kinds = [r["type"] for r in answer["records"] if r["operator"] is not None]
    assert kinds, answer
    return str(kinds[0])


@pytest.mark.timeout(240)
def test_when_paused_leader_wakes_then_it_sends_nothing_and_exits_deposed(
    tmp_path: Path, pg_dsn: str
) -> None:
    """SIGSTOP the leader past its lease, let the standby trade, SIGCONT: no order or
    journal record of epoch 1 after epoch 2's first order (but the new leader's adoption
    of what the venue had); the old leader exits 4."""
    desk = write_desk(tmp_path, pg_dsn)
    with processes(desk) as procs:
        start_venue(desk, procs)
        start_member(desk, procs, "a")
        eventually(lambda: alive(desk, procs, "a") and role(desk, "a", "leader"), LEAD_TIMEOUT_S)
        start_member(desk, procs, "b")
        eventually(lambda: alive(desk, procs, "b") and role(desk, "b", "standby"), LEAD_TIMEOUT_S)
        eventually(lambda: len(venue_fills(desk)) >= 5, LEAD_TIMEOUT_S)
        procs["a"].send_signal(signal.SIGSTOP)
        # the venue drops the paused session after its heartbeat timeout; then b logs on
        first_ns = eventually(lambda: alive(desk, procs, "b") and first_order_of(desk, 2), 60)
        woke_ns = time.time_ns()
        procs["a"].send_signal(signal.SIGCONT)
        assert procs["a"].wait(timeout=STOP_TIMEOUT_S) == EXIT_DEPOSED
        fills = len(venue_fills(desk))
        eventually(lambda: len(venue_fills(desk)) >= fills + 3, 30)  # b trades on
        procs["b"].send_signal(signal.SIGTERM)
        assert procs["b"].wait(timeout=STOP_TIMEOUT_S) == 0
    deposed = member_logs(desk, "a", "ha_deposed")
    assert deposed, "the old leader did not say why it stopped"
    orders = venue_orders(desk)
    assert max(ts for coid, ts in orders if epoch_of(coid) == 1) < first_ns
    assert all(ts < woke_ns for coid, ts in orders if epoch_of(coid) == 1)
    events = journal_events(desk)
    manifests = [seq for seq, e in events if isinstance(e, ev.RunManifest) and e.epoch == 2]
    assert manifests, "no epoch 2 run in the journal"
    # After epoch 2's start, an epoch-1 order is journaled only as the new leader's
    # adoption of one the venue had before epoch 2's first order (sent by the old
    # leader, its records lost to group commit): never a denial, never one sent late.
    reached_venue_before = {coid for coid, ts in orders if epoch_of(coid) == 1 and ts < first_ns}
    after = [
        e
        for seq, e in events
        if seq > manifests[0]
        and isinstance(e, ev.OrderEvent)
        and epoch_of(e.client_order_id) == 1
        and (
            isinstance(e, ev.OrderDenied)
            or (isinstance(e, ev.OrderSubmitted) and e.client_order_id not in reached_venue_before)
        )
    ]
    assert after == [], after[:3]
    halts = [
        e
        for _, e in events
        if isinstance(e, ev.TradingStateChanged) and e.reason.startswith("lease lost")
    ]
    assert halts == [], "the deposed leader's halt reached the group's journal"
    step_downs = [e for _, e in events if isinstance(e, ev.LeaderStepDown)]
    assert step_downs == [], "the deposed leader's step-down reached the group's journal"


@pytest.mark.timeout(240)
def test_when_killed_before_failover_then_new_leader_stays_halted(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A kill on the leader, then SIGKILL: the standby takes over HALTED and sends no
    order. The standby's audit trail, read from the group's journal, shows the kill
    before it leads, and after."""
    desk = write_desk(tmp_path, pg_dsn)
    with processes(desk) as procs:
        start_venue(desk, procs)
        start_member(desk, procs, "a")
        eventually(lambda: alive(desk, procs, "a") and role(desk, "a", "leader"), LEAD_TIMEOUT_S)
        start_member(desk, procs, "b")
        eventually(lambda: alive(desk, procs, "b") and role(desk, "b", "standby"), LEAD_TIMEOUT_S)
        eventually(lambda: len(venue_fills(desk)) >= 3, LEAD_TIMEOUT_S)
        killed = request(desk.socket("a"), {"cmd": "kill", "why": "drill"}, timeout_s=10)
        assert killed["ok"] is True, killed
        standby_refused = request(desk.socket("b"), {"cmd": "kill", "why": "x"}, timeout_s=10)
        assert standby_refused == {"ok": False, "error": "standby: not the leader"}
        eventually(
            lambda: any(
                isinstance(e, ev.TradingStateChanged) and e.state is TradingState.HALTED
                for _, e in journal_events(desk)
            ),
            10,
        )
        assert audited_kill(desk.socket("b")) == "OperatorCommand"  # read as a standby
        orders_before = len(venue_orders(desk))
        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait(timeout=STOP_TIMEOUT_S)
        eventually(lambda: alive(desk, procs, "b") and member_logs(desk, "b", "ha_took_over"), 30)
        status = request(desk.socket("b"), {"cmd": "status"}, timeout_s=10)
        assert status["ok"] is True and status["state"] == "HALTED", status
        assert role(desk, "b", "leader")["epoch"] == 2
        assert audited_kill(desk.socket("b")) == "OperatorCommand"  # and as the leader
        procs["b"].send_signal(signal.SIGTERM)
        assert procs["b"].wait(timeout=STOP_TIMEOUT_S) == 0
    assert [c for c, _ in venue_orders(desk)[orders_before:] if epoch_of(c) == 2] == []

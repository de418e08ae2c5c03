"""A planned switchover: ``bastion ha switchover --to b`` on the leader; the leader
stops its strategies, commits, releases the lease for b and exits deposed; b trades
under epoch 2 at once. The trading gap (the last epoch-1 order accepted to the first
epoch-2 order accepted) is measured; ``bastion ha status`` shows the new leader."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bastion.ha.node import EXIT_DEPOSED
from bastion.model import events as ev
from kit.ha_desk import (
    alive,
    epoch_of,
    first_order_of,
    journal_events,
    processes,
    role,
    run_cli,
    start_member,
    start_venue,
    venue_fills,
    venue_orders,
    write_desk,
)
from kit.node_process import STOP_TIMEOUT_S
from kit.waiting import eventually

LEAD_TIMEOUT_S = 45.0
GAP_BUDGET_S = 2.0


@pytest.mark.timeout(240)
def test_when_switched_over_then_standby_trades_after_a_short_gap(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Switch over from a to b: a exits deposed, b leads epoch 2; the gap is printed."""
    desk = write_desk(tmp_path, pg_dsn, every_quotes=2)
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
        eventually(lambda: len(venue_fills(desk)) >= 5, LEAD_TIMEOUT_S)
        refused = run_cli(desk, "b", "ha", "switchover", "node.toml", "--why", "wrong member")
        assert refused.returncode != 0
        switched = run_cli(
            desk, "a", "ha", "switchover", "node.toml", "--to", "b", "--why", "patch a"
        )
        assert switched.returncode == 0, switched.stdout + switched.stderr
        assert procs["a"].wait(timeout=STOP_TIMEOUT_S) == EXIT_DEPOSED
        first_ns = eventually(lambda: alive(desk, procs, "b") and first_order_of(desk, 2), 30)
        status = run_cli(desk, "b", "ha", "status", "node.toml")
        assert status.returncode == 0, status.stderr
        assert "leader b, epoch 2" in status.stdout, status.stdout
        print("\n" + status.stdout)
        procs["b"].send_signal(signal.SIGTERM)
        assert procs["b"].wait(timeout=STOP_TIMEOUT_S) == 0
    # the hand-over in the group's journal: a's step-down before b's takeover
    leadership = [
        (type(e).__name__, e.member, e.epoch, e.reason)
        for _, e in journal_events(desk)
        if isinstance(e, ev.LeaderStepDown | ev.LeaderTookOver)
    ]
    assert leadership == [
        ("LeaderTookOver", "a", 1, "first start"),
        ("LeaderStepDown", "a", 1, "switchover"),
        ("LeaderTookOver", "b", 2, "switchover"),
    ]
    orders = venue_orders(desk)
    last_old = max(ts for coid, ts in orders if epoch_of(coid) == 1)
    gap_s = (first_ns - last_old) / 1e9
    print(f"switchover gap: last epoch-1 order accepted to first epoch-2 order: {gap_s:.3f} s")
    assert 0 < gap_s < GAP_BUDGET_S

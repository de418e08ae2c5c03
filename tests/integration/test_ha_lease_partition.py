"""A leader cut off from the lease's PostgreSQL (a silent partition, a frozen or dead
server) stops sending at its own deadline; a leader frozen past its deadline wakes up
refusing, while the standby has taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.ha.fence import Fence, monotonic_ns
from bastion.ha.lease import Lease, LeaseKeeper, wait_until_leader
from kit.ha import FAST, Lost, members
from kit.net import relay
from kit.node_process import child_env
from kit.postgres import PostgresServer, postgres_server
from kit.waiting import eventually

LOCAL_MS = FAST["lease_ms"] - FAST["margin_ms"]
SLACK_MS = 100  # the watcher thread's wake-up and a loaded machine


def _hold(lease: Lease) -> tuple[Fence, LeaseKeeper, Lost]:
    fence = lease.acquire()
    assert fence is not None
    lost = Lost()
    keeper = LeaseKeeper(lease, fence, on_lost=lost)
    keeper.start()
    eventually(lambda: keeper.renewals >= 2, what="two renewals")
    return fence, keeper, lost


def _stops_in_time(fence: Fence, lost: Lost, cut_at_ns: int) -> None:
    """Sending stopped within lease - margin of the cut (no renewal started after it
    can have succeeded), and on_lost said so."""
    assert lost.event.wait(5), "on_lost was not called"
    stopped_ms = (monotonic_ns() - cut_at_ns) / 1e6
    assert not fence.may_send()
    assert stopped_ms <= LOCAL_MS + SLACK_MS + 5_000  # the bound on on_lost's arrival
    assert "deadline passed" in lost.reasons[0]


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own, to freeze and kill."""
    with postgres_server(fsync=False) as s:
        yield s


def test_when_network_blackholed_then_leader_stops_at_its_local_deadline(
    postgres: PostgresServer,
) -> None:
    database = postgres.create_database()
    with relay(postgres.port) as r, members(postgres.dsn(database, port=r.port)) as member:
        lease = member("a")
        fence, keeper, lost = _hold(lease)
        try:
            deadline_before = fence.deadline_ns
            cut_at = monotonic_ns()
            r.blackholed = True
            while fence.may_send():  # the fence never outlives the last renewal sent
                assert monotonic_ns() < cut_at + LOCAL_MS * 1_000_000 + 1
            assert fence.deadline_ns <= cut_at + LOCAL_MS * 1_000_000
            assert fence.deadline_ns >= deadline_before or fence.deadline_ns == 0
            _stops_in_time(fence, lost, cut_at)
            r.blackholed = False
            with pytest.raises(Exception, match="given up"):
                lease.renew(fence)
            assert not fence.may_send()
        finally:
            keeper.stop()


@pytest.mark.parametrize("fault", ["frozen", "killed"])
def test_when_postgres_frozen_or_killed_then_leader_stops_at_its_local_deadline(
    server: PostgresServer, fault: str
) -> None:
    with members(server.dsn(server.create_database())) as member:
        fence, keeper, lost = _hold(member("a"))
        try:
            cut_at = monotonic_ns()
            if fault == "frozen":
                server.freeze()
            else:
                server.kill()
            _stops_in_time(fence, lost, cut_at)
            assert keeper.failures >= 1
        finally:
            if fault == "frozen":
                server.thaw()
            keeper.stop()
        assert not fence.may_send()


def test_when_leader_process_paused_past_its_deadline_then_it_wakes_up_refusing(
    pg_dsn: str,
) -> None:
    """A leader SIGSTOPped for longer than its lease; the standby takes over meanwhile;
    once continued, the old leader never sends again (no S line after its wake-up)."""
    kit_dir = Path(__file__).resolve().parents[1]
    env = {**child_env(), "PYTHONPATH": f"{kit_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [sys.executable, "-m", "kit.ha_member", pg_dsn, "old"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(child.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        eventually(lambda: any(line.startswith("S ") for line in lines), what="old sends")
        child.send_signal(signal.SIGSTOP)
        stopped_at = monotonic_ns()
        with members(pg_dsn) as member:
            new = wait_until_leader(member("new"))
            assert new is not None
            taken_at = monotonic_ns()
            assert (taken_at - stopped_at) / 1e6 >= LOCAL_MS
            continued_at = monotonic_ns()
            child.send_signal(signal.SIGCONT)
            eventually(lambda: any(line.startswith("LOST") for line in lines), what="old lost")
            eventually(lambda: sum(line.startswith("R ") for line in lines) >= 3)
    finally:
        child.kill()
        child.wait()
        reader.join(5)
        assert child.stdout is not None
        child.stdout.close()
    sent = [line.split() for line in lines if line.startswith("S ")]
    assert sent and all(int(ts) < stopped_at + 10_000_000 for _, _, ts in sent)
    assert all(int(ts) < continued_at for _, _, ts in sent)
    assert new.epoch == int(sent[0][1]) + 1
    lost_line = next(line for line in lines if line.startswith("LOST"))
    assert "deadline passed" in lost_line or "deposed" in lost_line

"""A leader whose journal can no longer write (its PostgreSQL connection dropped, the
server restarted) before its lease ran out steps down as a deposed leader does: it
halts, sends nothing more, says why (``ha_deposed``, ``journal failed: ...``) and exits
with the deposed code; the standby takes over and trades."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.ha.node import EXIT_DEPOSED
from kit.ha_desk import (
    alive,
    epoch_of,
    first_order_of,
    member_logs,
    processes,
    role,
    start_member,
    start_venue,
    venue_fills,
    venue_orders,
    write_desk,
)
from kit.net import relay
from kit.node_process import STOP_TIMEOUT_S
from kit.postgres import PostgresServer, postgres_server
from kit.waiting import eventually

LEAD_TIMEOUT_S = 45.0


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of the test's own: one of the tests restarts it."""
    with postgres_server() as server:
        yield server


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["connection dropped", "postgres restarted"])
def test_when_the_leaders_journal_fails_then_it_exits_deposed_and_the_standby_trades(
    tmp_path: Path, own_postgres: PostgresServer, fault: str
) -> None:
    """The leader's database connections dropped (and new ones refused), or PostgreSQL
    restarted: the leader exits 4 with ``journal failed``, no order of its epoch reaches
    the venue after it stepped down, and the standby trades at the next epoch."""
    server = own_postgres
    database = server.create_database()
    with relay(server.port) as to_db:
        desk = write_desk(
            tmp_path,
            server.dsn(database),
            member_dsns={"a": server.dsn(database, port=to_db.port)},
        )
        with processes(desk) as procs:
            start_venue(desk, procs)
            start_member(desk, procs, "a")
            eventually(
                lambda: alive(desk, procs, "a") and role(desk, "a", "leader"), LEAD_TIMEOUT_S
            )
            start_member(desk, procs, "b")
            eventually(
                lambda: alive(desk, procs, "b") and role(desk, "b", "standby"), LEAD_TIMEOUT_S
            )
            eventually(lambda: len(venue_fills(desk)) >= 3, LEAD_TIMEOUT_S)
            if fault == "connection dropped":
                to_db.refusing = True
                to_db.cut()
            else:
                server.restart()
            assert procs["a"].wait(timeout=STOP_TIMEOUT_S) == EXIT_DEPOSED
            exited_ns = time.time_ns()
            eventually(lambda: alive(desk, procs, "b") and first_order_of(desk, 2), 60)
            procs["b"].kill()
    (deposed,) = member_logs(desk, "a", "ha_deposed")
    assert deposed["reason"].startswith("journal failed: "), deposed
    assert member_logs(desk, "a", "shutdown_deposed"), "no cancel, no Logout: not shown"
    late = [c for c, ts in venue_orders(desk) if epoch_of(c) == 1 and ts > exited_ns]
    assert late == []

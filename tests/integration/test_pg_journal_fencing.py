"""Fencing: a PostgreSQL journal written under a lease epoch refuses to write once the
lease row holds another epoch; a takeover waits for the batch in flight, and the next
batch fails: a deposed leader writes nothing after the takeover."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bastion.errors import FencedError
from kit.journal_samples import fills
from kit.pg_journal import NAME, dbname, open_pg, set_lease, stored_rows
from kit.postgres import PostgresServer
from kit.waiting import eventually


def test_when_epoch_bumped_then_next_batch_fails_and_callback_runs_once(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    """The very next batch after a takeover is refused; nothing after the bump is stored."""
    set_lease(postgres, pg_dsn, NAME, 7)
    fenced: list[FencedError] = []
    journal = open_pg(pg_dsn, tmp_path, fence_epoch=7, on_fenced=fenced.append)
    assert journal.begin_run("node-1", 1) == 7  # the client order id epoch is the lease's
    for event in fills(10):
        journal.append(event)
    assert journal.flush() == 10
    set_lease(postgres, pg_dsn, NAME, 8)
    for event in fills(5):
        journal.append(event)
    with pytest.raises(FencedError, match="epoch is 7 but the lease's current epoch is 8"):
        journal.flush()
    with pytest.raises(FencedError):
        journal.append(fills(1)[0])
    with pytest.raises(FencedError):
        journal.close()
    assert len(fenced) == 1 and "node-1" in str(fenced[0])
    assert [row[0] for row in stored_rows(postgres, pg_dsn)] == list(range(1, 11))


@pytest.mark.parametrize("what", ["append", "snapshot", "begin_run"])
def test_when_fenced_then_fsync_each_writes_are_refused(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path, what: str
) -> None:
    set_lease(postgres, pg_dsn, NAME, 3)
    fenced: list[FencedError] = []
    journal = open_pg(
        pg_dsn, tmp_path, durability="fsync_each", fence_epoch=3, on_fenced=fenced.append
    )
    journal.append(fills(1)[0])
    set_lease(postgres, pg_dsn, NAME, 4)
    with pytest.raises(FencedError):
        if what == "append":
            journal.append(fills(1)[0])
        elif what == "snapshot":
            journal.snapshot(b"state", 1)
        else:
            journal.begin_run("node-1", 2)
    with pytest.raises(FencedError):
        journal.append(fills(1)[0])
    with pytest.raises(FencedError):
        journal.close()
    assert len(fenced) == 1
    assert len(stored_rows(postgres, pg_dsn)) == 1


def test_when_no_lease_row_then_a_fenced_journal_writes_nothing(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    journal = open_pg(pg_dsn, tmp_path, fence_epoch=1)
    with pytest.raises(FencedError, match="current epoch is None"):
        journal.begin_run("node-1", 1)
    with pytest.raises(FencedError):
        journal.close()


def test_when_takeover_during_a_batch_then_it_waits_and_the_next_batch_fails(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    """The batch in flight (holding the lease row FOR SHARE) commits before the takeover's
    update; every event committed precedes the bump; the batch after it is refused."""
    set_lease(postgres, pg_dsn, NAME, 1)
    journal = open_pg(pg_dsn, tmp_path, fence_epoch=1, statement_timeout_ms=30_000)
    journal.append(fills(1)[0])
    journal.flush()
    with postgres.superuser(dbname(pg_dsn)) as blocker:
        # hold the batch mid-transaction: it has the lease row FOR SHARE and waits here
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE bastion_events IN SHARE MODE")
        for event in fills(20):
            journal.append(event)
        eventually(lambda: _waiting(postgres, pg_dsn, "COPY"), what="the batch in flight")
        bumped = threading.Event()

        def take_over() -> None:
            set_lease(postgres, pg_dsn, NAME, 2)
            bumped.set()

        thread = threading.Thread(target=take_over)
        thread.start()
        eventually(lambda: _waiting(postgres, pg_dsn, "bastion_leases"), what="the takeover")
        assert not bumped.is_set()  # the takeover waits for the batch
        blocker.execute("COMMIT")
    thread.join(timeout=30)
    assert bumped.is_set()
    assert journal.flush() == 21  # the batch in flight committed before the bump
    journal.append(fills(1)[0])
    with pytest.raises(FencedError):
        journal.flush()
    with pytest.raises(FencedError):
        journal.close()
    assert [row[0] for row in stored_rows(postgres, pg_dsn)] == list(range(1, 22))


def _waiting(server: PostgresServer, dsn: str, query_part: str) -> bool:
    """A session whose query holds ``query_part`` is waiting on a lock."""
    with server.superuser(dbname(dsn)) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchall()
    return any(query_part in str(q) for (q,) in rows)

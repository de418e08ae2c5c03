"""A PostgreSQL journal whose database goes away: writes fail with a clear error within
a bounded time, no event is half-written, and reopening continues the chain. Also the
standby's view: tailing committed events, woken by NOTIFY."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.errors import OperationalError
from bastion.journal.pg_reader import PostgresJournalReader
from kit.journal_samples import fills
from kit.pg_journal import NAME, journal_backend_pid, open_pg, split_password
from kit.postgres import PostgresServer, postgres_server


@pytest.fixture
def private_pg() -> Iterator[PostgresServer]:
    """A server of this test's own, to kill, stop and restart."""
    with postgres_server(fsync=False) as server:
        yield server


def _verify(dsn: str) -> tuple[int, bool]:
    url, password = split_password(dsn)
    with PostgresJournalReader(url, name=NAME, password=password) as reader:
        result = reader.verify()
    return result.events, result.ok


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_when_server_dies_mid_stream_then_writes_fail_and_reopen_continues(
    private_pg: PostgresServer, tmp_path: Path, how: str
) -> None:
    dsn = private_pg.dsn(private_pg.create_database())
    journal = open_pg(dsn, tmp_path, statement_timeout_ms=2_000)
    for event in fills(100):
        journal.append(event)
    assert journal.flush() == 100
    private_pg.kill() if how == "kill" else private_pg.stop()
    started = time.monotonic()
    for event in fills(50):
        journal.append(event)
    with pytest.raises(OperationalError, match=f"postgresql journal '{NAME}'"):
        journal.flush()
    assert time.monotonic() - started < 5
    assert not journal.stats().writable
    with pytest.raises(OperationalError, match="accepts no more events"):
        journal.append(fills(1)[0])
    with pytest.raises(OperationalError):
        journal.close()
    private_pg.start()
    assert _verify(dsn) == (100, True)  # the failed batch left nothing behind
    journal = open_pg(dsn, tmp_path)
    try:
        assert journal.last_seq == 100
        for event in fills(10):
            journal.append(event)
        assert journal.flush() == 110
    finally:
        journal.close()
    assert _verify(dsn) == (110, True)


def test_when_server_stalls_then_a_write_fails_within_the_bound(
    private_pg: PostgresServer, tmp_path: Path
) -> None:
    """A server that accepts bytes and never answers (stopped, hung disk) is given
    statement_timeout_ms plus a second, then the journal refuses further events."""
    dsn = private_pg.dsn(private_pg.create_database())
    journal = open_pg(dsn, tmp_path, statement_timeout_ms=1_000)
    journal.append(fills(1)[0])
    assert journal.flush() == 1
    # the journal's own backend (each backend is a process group of its own)
    backend = journal_backend_pid(journal)
    os.kill(backend, signal.SIGSTOP)
    try:
        started = time.monotonic()
        journal.append(fills(1)[0])
        with pytest.raises(OperationalError, match="did not answer within 2 s"):
            journal.flush()
        assert time.monotonic() - started < 4
    finally:
        os.kill(backend, signal.SIGCONT)
    with pytest.raises(OperationalError):
        journal.close()
    assert _verify(dsn) == (1, True)


def test_when_events_committed_then_a_tailer_is_woken_and_reads_them(
    pg_dsn: str, tmp_path: Path
) -> None:
    url, password = split_password(pg_dsn)
    journal = open_pg(pg_dsn, tmp_path)
    reader = PostgresJournalReader(url, name=NAME, password=password)
    try:
        assert reader.wait_for_commit(0, timeout_s=0.05) is None
        woken: list[int | None] = []
        waiter = threading.Thread(target=lambda: woken.append(reader.wait_for_commit(0, 10)))
        waiter.start()
        for event in fills(30):
            journal.append(event)
        journal.flush()
        waiter.join(timeout=10)
        assert woken and woken[0] is not None and woken[0] >= 1
        got = reader.events_after(0)
        assert [seq for seq, _ in got] == list(range(1, 31))
        assert got == list(journal.read())
        assert reader.committed_seq() == 30
        assert reader.wait_for_commit(10, timeout_s=0.05) == 30  # already there
    finally:
        reader.close()
        journal.close()

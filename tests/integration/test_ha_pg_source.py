"""A standby's view of a real PostgreSQL journal (``PostgresTailSource``) under a
``JournalTail``: the raw records with their chain checked, sealed payloads opened with
the encryption key, a commit announced on NOTIFY, and a damaged record stopping the
tail before it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import StandbyTailBroken, StorageKeyError
from bastion.ha.pg_source import PostgresTailSource
from bastion.ha.tail import JournalTail, TailState
from bastion.journal._codec import Chain
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.node.kernel import Kernel
from kit.pg_journal import NAME, as_superuser, open_pg, split_password, stored_rows
from kit.postgres import PostgresServer
from kit.standby_session import NODE, Session, build, state_of

SEALED = JournalKeys(encryption=bytes(range(32)), chain=bytes(range(32, 64)))
# what the journal carries (the post-trade day and the id sequence ride on snapshots)
JOURNALED = ("orders", "open", "exec_ids", "net", "cash", "fees", "fills", "realized", "position")


def _journaled(kernel: Kernel) -> dict[str, Any]:
    state = state_of(kernel)
    return {key: state[key] for key in JOURNALED}


def _session(pg_dsn: str, base: Path, keys: JournalKeys, steps: int = 40) -> Session:
    """``steps`` of a seeded session journaled (committed); its journal still open."""
    journal = open_pg(pg_dsn, base, keys=keys, durability="fsync_each")
    session = Session(build(base, journal, seed=5), journal, 5)
    for _ in range(steps):
        session.step()
    journal.flush()
    return session


def _source(pg_dsn: str, keys: JournalKeys = PLAINTEXT) -> PostgresTailSource:
    url, password = split_password(pg_dsn)
    return PostgresTailSource(url, name=NAME, password=password, keys=keys)


def test_when_following_then_records_are_chain_checked_and_commits_announced(
    pg_dsn: str, tmp_path: Path
) -> None:
    """The tail applies every committed record (each checked against its chain) and
    holds the writer's orders, fills and positions; a later commit wakes
    wait_for_commit and is applied; with nothing new the wait ends at its bound."""
    session = _session(pg_dsn, tmp_path, PLAINTEXT)
    journal = session.journal
    source = _source(pg_dsn)
    try:
        rows = list(source.read(0))
        assert [row[0] for row in rows] == list(range(1, journal.committed_seq + 1))
        tail = JournalTail.start(build(tmp_path, None, seed=5), source, chain=Chain(), node_id=NODE)
        assert tail.applied_seq == source.committed_seq() == journal.committed_seq
        assert _journaled(tail.kernel) == _journaled(session.kernel)
        assert source.wait_for_commit(tail.applied_seq, 0.05) is None
        writer = threading.Timer(0.1, lambda: (session.step(), journal.flush()))
        writer.start()
        assert (source.wait_for_commit(tail.applied_seq, 5.0) or 0) > tail.applied_seq
        writer.join()
        tail.poll()
        assert tail.applied_seq == journal.committed_seq
        assert tail.status().state is TailState.FOLLOWING
    finally:
        source.close()
        journal.close()


def test_when_payloads_are_sealed_then_the_key_opens_them_and_without_it_the_tail_stops(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    """An encrypted, keyed journal: stored payloads are not plaintext; a source with the
    keys rebuilds the writer's orders and positions; without the encryption key the
    source refuses to open (nothing is applied)."""
    session = _session(pg_dsn, tmp_path, SEALED)
    last = session.journal.committed_seq
    session.journal.close()
    stored = stored_rows(postgres, pg_dsn)
    assert stored and all(row[2].encode() not in row[4] for row in stored)  # tag sealed
    source = _source(pg_dsn, SEALED)
    try:
        tail = JournalTail.start(
            build(tmp_path, None, seed=5), source, chain=Chain(SEALED.chain), node_id=NODE
        )
        assert tail.applied_seq == last
        assert _journaled(tail.kernel) == _journaled(session.kernel)
    finally:
        source.close()
    with pytest.raises(StorageKeyError, match="encryption key is needed"):
        _source(pg_dsn, JournalKeys(chain=SEALED.chain))


def test_when_a_record_is_damaged_then_the_tail_stops_before_it(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    """An insider edits record 12: the tail applies 1..11, stops with the record named,
    and refuses to promote."""
    _session(pg_dsn, tmp_path, PLAINTEXT).journal.close()
    as_superuser(postgres, pg_dsn, "DELETE FROM bastion_snapshots WHERE name = %s", NAME)
    as_superuser(
        postgres,
        pg_dsn,
        "UPDATE bastion_events SET ts_ns = ts_ns + 1 WHERE name = %s AND seq = 12",
        NAME,
    )
    source = _source(pg_dsn)
    try:
        tail = JournalTail(build(tmp_path, None), source, chain=Chain(), node_id=NODE)
        tail._load_snapshot()
        with pytest.raises(StandbyTailBroken, match="record 12: hash mismatch"):
            tail.poll()
        status = tail.status()
        assert status.state is TailState.BROKEN and status.applied_seq == 11
        with pytest.raises(StandbyTailBroken):
            tail.promote()
    finally:
        source.close()

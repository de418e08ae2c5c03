"""A standby following the journal holds, at every seq, the state a restart would
recover; promoted, it ends where a restart from scratch ends. Broken records stop it."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import StandbyTailBroken
from bastion.ha.sqlite_source import SqliteTailSource
from bastion.ha.tail import JournalTail, TailState
from bastion.journal import SqliteJournal
from bastion.journal._codec import Chain
from bastion.journal.keys import JournalKeys
from bastion.recovery.replay import recover_state
from kit.standby_session import NODE, Session, build, state_of


def recovered(base: Path, journal: SqliteJournal, seed: int) -> dict[str, object]:
    """The state a restart recovers from ``journal`` as committed now."""
    kernel = build(base, None, seed=seed)
    recover_state(kernel, journal)
    return state_of(kernel)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    steps=st.integers(min_value=1, max_value=300),
    durability=st.sampled_from(["group", "fsync_each"]),
)
def test_when_following_a_session_then_state_equals_a_recovery_at_each_cut(
    tmp_path_factory: pytest.TempPathFactory, seed: int, steps: int, durability: str
) -> None:
    base = tmp_path_factory.mktemp("s")
    path = base / "j.sqlite"
    rng = random.Random(seed)
    journal = SqliteJournal(path, durability=durability)  # type: ignore[arg-type]
    source = None
    try:
        session = Session(build(base, journal, seed=seed), journal, seed)
        for _ in range(rng.randint(0, steps // 2)):  # the standby starts late: a snapshot
            session.step()
        journal.flush()
        source = SqliteTailSource(path)
        tail = JournalTail.start(build(base, None, seed=seed), source, chain=Chain(), node_id=NODE)
        cuts = sorted(rng.sample(range(steps), k=min(steps, 4)))
        for n in range(steps):
            session.step()
            if rng.random() < 0.3:
                tail.poll()  # mid-session, maybe mid-batch: whatever is committed
            if n in cuts:
                committed = journal.flush()
                tail.poll()
                assert tail.applied_seq == committed
                assert state_of(tail.kernel) == recovered(base, journal, seed)  # type: ignore[arg-type]
        journal.flush()
        tail.poll()
        handover = tail.promote()
        assert tail.state is TailState.PROMOTED
        promoted = build(base, None, seed=seed)
        report = recover_state(promoted, journal, start=handover)
        assert report.replayed_events == 0 and report.handed_over_seq == journal.committed_seq
        assert state_of(promoted) == recovered(base, journal, seed)
    finally:
        if source is not None:
            source.close()
        journal.close()


def test_when_promoted_behind_the_journal_then_only_the_later_events_are_replayed(
    tmp_path: Path,
) -> None:
    """Events committed after the last poll are read from the journal at takeover."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path, durability="fsync_each")
    source = SqliteTailSource(path)
    try:
        session = Session(build(tmp_path, journal), journal, 7)
        for _ in range(50):
            session.step()
        tail = JournalTail.start(build(tmp_path, None), source, chain=Chain(), node_id=NODE)
        for _ in range(20):
            session.step()
        behind = tail.status()
        assert behind.lag_events == journal.committed_seq - tail.applied_seq > 0
        handover = tail.promote()
        promoted = build(tmp_path, None)
        report = recover_state(promoted, journal, start=handover)
        assert report.replayed_events == journal.committed_seq - handover.seq
        assert state_of(promoted) == recovered(tmp_path, journal, 0)
        with pytest.raises(RuntimeError, match="promoted"):
            tail.poll()
    finally:
        source.close()
        journal.close()


def test_when_following_from_another_thread_then_it_keeps_up_with_the_writer(
    tmp_path: Path,
) -> None:
    """The standby polls on its own thread while the leader trades and commits."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    journal.flush()
    session = Session(build(tmp_path, journal, seed=3), journal, 3)
    standby = build(tmp_path, None, seed=3)
    stop = threading.Event()
    polls: list[int] = []
    lags: list[int | None] = []

    def follow() -> None:
        source = SqliteTailSource(path)
        try:
            tail = JournalTail.start(standby, source, chain=Chain(), node_id=NODE)
            while not stop.is_set():
                polls.append(tail.poll())
                time.sleep(0.001)
            tail.poll()  # the writer flushed before ``stop``
            lags.append(tail.status().lag_events)
        finally:
            source.close()

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        for n in range(400):
            session.step()
            if n % 50 == 0:
                time.sleep(0.002)  # the writer commits meanwhile: the follower sees batches
        journal.flush()
    finally:
        stop.set()
        follower.join()
    try:
        assert lags == [0]
        assert state_of(standby) == recovered(tmp_path, journal, 3)
    finally:
        journal.close()


def _journal_with_events(path: Path, base: Path, keys: JournalKeys | None = None) -> int:
    journal = SqliteJournal(path, durability="fsync_each", **({"keys": keys} if keys else {}))
    try:
        session = Session(build(base, journal), journal, 1)
        for _ in range(30):
            session.step()
        return journal.committed_seq
    finally:
        journal.close()
        with sqlite3.connect(path) as db:  # the tail reads every record
            db.execute("DELETE FROM snapshots")


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DELETE FROM events WHERE seq = 12", "gap in seq: expected 12, found 13"),
        ("UPDATE events SET payload = x'c1' WHERE seq = 12", "undecodable payload"),
        ("UPDATE events SET ts_ns = ts_ns + 1 WHERE seq = 12", "hash mismatch"),
        ("UPDATE events SET prev_hash = zeroblob(32) WHERE seq = 12", "prev_hash"),
    ],
)
def test_when_a_record_is_broken_then_the_tail_stops_before_it(
    tmp_path: Path, sql: str, problem: str
) -> None:
    path = tmp_path / "j.sqlite"
    _journal_with_events(path, tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(sql)
    source = SqliteTailSource(path)
    try:
        kernel = build(tmp_path, None)
        with pytest.raises(StandbyTailBroken, match=problem):
            JournalTail.start(kernel, source, chain=Chain(), node_id=NODE)
    finally:
        source.close()


def test_when_broken_then_status_names_the_record_and_promote_refuses(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    _journal_with_events(path, tmp_path)
    source = SqliteTailSource(path)
    try:
        tail = JournalTail(build(tmp_path, None), source, chain=Chain(), node_id=NODE)
        tail._load_snapshot()
        tail.poll(max_events=10)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE events SET ts_ns = ts_ns + 1 WHERE seq = 11")
        with pytest.raises(StandbyTailBroken):
            tail.poll()
        status = tail.status()
        assert status.state is TailState.BROKEN and status.applied_seq == 10
        assert status.error is not None and status.error.startswith("record 11: hash mismatch")
        with pytest.raises(StandbyTailBroken):
            tail.poll()
        with pytest.raises(StandbyTailBroken):
            tail.promote()
    finally:
        source.close()


def test_when_keyed_journal_then_the_tail_checks_the_hmac_chain(tmp_path: Path) -> None:
    """A keyed chain is followed with its key; a forged record (plain SHA-256 rehash)
    is refused; without the key the source refuses to open."""
    from bastion.errors import StorageKeyError
    from bastion.journal._codec import chain_hash

    keys = JournalKeys(encryption=None, chain=bytes(range(32)))
    path = tmp_path / "j.sqlite"
    last = _journal_with_events(path, tmp_path, keys)
    source = SqliteTailSource(path, keys=keys)
    try:
        tail = JournalTail.start(build(tmp_path, None), source, chain=source.chain, node_id=NODE)
        assert tail.applied_seq == last
    finally:
        source.close()
    with pytest.raises(StorageKeyError):
        SqliteTailSource(path)
    with sqlite3.connect(path) as db:  # an insider recomputes one hash without the key
        seq, ts, name, payload, prev = db.execute(
            "SELECT seq, ts_ns, type, payload, prev_hash FROM events WHERE seq = 5"
        ).fetchone()
        db.execute(
            "UPDATE events SET hash = ? WHERE seq = 5", (chain_hash(prev, seq, ts, name, payload),)
        )
    source = SqliteTailSource(path, keys=keys)
    try:
        with pytest.raises(StandbyTailBroken, match="record 5: hash mismatch"):
            JournalTail.start(build(tmp_path, None), source, chain=source.chain, node_id=NODE)
    finally:
        source.close()


def test_status_reports_lag_in_events_and_seconds(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    _journal_with_events(path, tmp_path)
    source = SqliteTailSource(path)
    try:
        tail = JournalTail(build(tmp_path, None), source, chain=Chain(), node_id=NODE)
        tail._load_snapshot()
        tail.poll(max_events=5)
        assert tail.applied_ts_ns is not None
        status = tail.status(now_ns=tail.applied_ts_ns + 2_500_000_000)
        assert status.lag_events == source.committed_seq() - 5
        assert status.lag_s == 2.5
        tail.poll()
        assert tail.status().lag_events == 0 and tail.status().lag_s == 0.0
    finally:
        source.close()

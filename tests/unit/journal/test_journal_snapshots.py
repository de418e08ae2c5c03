"""Snapshots in the journal: committed with the events they cover, checked and pruned.
(A process killed in the middle of writing one: tests/chaos/test_snapshot_kill.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.errors import OperationalError
from bastion.journal import SqliteJournal, journal_stats, verify_journal
from bastion.journal.sqlite import KEEP_SNAPSHOTS
from kit.journal_samples import execute, fills


@pytest.mark.parametrize("durability", ["group", "fsync_each"])
def test_when_snapshot_taken_then_it_covers_exactly_the_events_before_it(
    tmp_path: Path, durability: str
) -> None:
    """A snapshot queued after 5 events has seq 5, even though 5 more follow in its batch."""
    path = tmp_path / "j.sqlite"
    events = fills(10)
    journal = SqliteJournal(path, durability=durability, commit_interval_ms=10_000)  # type: ignore[arg-type]
    try:
        for event in events[:5]:
            journal.append(event)
        assert journal.snapshot(b"state-after-5", 123) == 5
        for event in events[5:]:
            journal.append(event)
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        stored = journal.latest_snapshot()
        assert stored is not None
        assert (stored.seq, stored.ts_ns, stored.payload) == (5, 123, b"state-after-5")
        assert [seq for seq, _ in journal.read(after=stored.seq)] == list(range(6, 11))
    finally:
        journal.close()
    stats = journal_stats(path)
    assert (stats.snapshots, stats.last_snapshot_seq, stats.torn_records) == (1, 5, 0)


def test_when_many_snapshots_then_only_the_newest_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        for n, event in enumerate(fills(6)):
            journal.append(event)
            journal.snapshot(f"s{n}".encode(), n)
    finally:
        journal.close()
    db_rows = _snapshot_seqs(path)
    assert db_rows == [4, 5, 6][-KEEP_SNAPSHOTS:]


def test_when_newest_snapshot_is_damaged_then_the_previous_one_is_used(tmp_path: Path) -> None:
    """A flipped byte fails the digest: the snapshot before it is returned instead."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        for n, event in enumerate(fills(3), 1):
            journal.append(event)
            journal.snapshot(f"state-{n}".encode(), n)
    finally:
        journal.close()
    execute(path, "UPDATE snapshots SET payload = ? WHERE seq = 3", b"state-X")
    journal = SqliteJournal(path)
    try:
        stored = journal.latest_snapshot()
    finally:
        journal.close()
    assert stored is not None and (stored.seq, stored.payload) == (2, b"state-2")


def test_when_snapshot_points_at_another_chain_then_it_is_not_used(tmp_path: Path) -> None:
    """A snapshot whose event hash does not match the record at its seq is refused."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        for event in fills(2):
            journal.append(event)
        journal.snapshot(b"state", 1)
    finally:
        journal.close()
    execute(path, "UPDATE snapshots SET event_hash = zeroblob(32)")
    journal = SqliteJournal(path)
    try:
        assert journal.latest_snapshot() is None
    finally:
        journal.close()


def test_when_torn_tail_set_aside_then_snapshots_committed_with_it_go_too(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        for event in fills(4):
            journal.append(event)
            journal.snapshot(b"s", 0)
    finally:
        journal.close()
    execute(path, "UPDATE events SET payload = substr(payload, 1, 5) WHERE seq = 4")
    journal = SqliteJournal(path)
    try:
        assert journal.torn_tail == 4
        stored = journal.latest_snapshot()
        assert stored is not None and stored.seq == 3
    finally:
        journal.close()
    assert verify_journal(path).ok
    assert (journal_stats(path).snapshots, journal_stats(path).torn_records) == (2, 1)


def test_when_journal_is_open_then_a_second_writer_is_refused(tmp_path: Path) -> None:
    """Two writers would fork the chain: the second open names the lock holder."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        with pytest.raises(
            OperationalError, match=f"in use by another bastion process \\(pid {os.getpid()}\\)"
        ):
            SqliteJournal(path)
    finally:
        journal.close()
    SqliteJournal(path).close()  # released on close


def _snapshot_seqs(path: Path) -> list[int]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT seq FROM snapshots ORDER BY seq")]
    finally:
        db.close()


def test_when_a_snapshot_is_damaged_then_verify_names_it(tmp_path: Path) -> None:
    """verify checks snapshots too: a flipped payload byte fails it, naming the seq."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        for event in fills(3):
            journal.append(event)
        journal.snapshot(b"state", 1)
    finally:
        journal.close()
    result = verify_journal(path)
    assert result.ok and result.snapshots == 1
    execute(path, "UPDATE snapshots SET payload = ?", b"stat3")
    result = verify_journal(path)
    assert not result.ok and result.broken_seq is None
    assert result.problem == "snapshot at seq 3: digest mismatch (damaged)"

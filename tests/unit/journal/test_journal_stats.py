"""``SqliteJournal.stats``: what monitoring reads of the journal (seqs, queue, bytes,
commit lag in events and seconds, writable, the last snapshot's time)."""

from __future__ import annotations

from pathlib import Path

from bastion.journal.sqlite import SqliteJournal
from kit.journal_samples import T0, fills
from kit.waiting import eventually


def test_when_events_wait_for_the_writer_then_lag_counts_them_and_ages(tmp_path: Path) -> None:
    """Group commit with a long interval: the appended events are the lag, in events and
    in the age of the oldest; a flush commits them and the lag is gone."""
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=60_000, max_batch=10_000)
    try:
        for event in fills(5):
            journal.append(event)
        stats = journal.stats()
        assert (stats.last_seq, stats.committed_seq) == (5, 0)
        assert (stats.commit_lag_events, stats.queue_depth) == (5, 5)
        eventually(lambda: journal.stats().commit_lag_s >= 0.05, what="the lag to age")
        journal.flush()
        stats = journal.stats()
        assert (stats.commit_lag_events, stats.queue_depth, stats.commit_lag_s) == (0, 0, 0.0)
        assert stats.writable and stats.bytes > 0
    finally:
        journal.close()


def test_when_fsync_each_then_nothing_lags(tmp_path: Path) -> None:
    """Each append is committed before it returns: no lag, ever."""
    journal = SqliteJournal(tmp_path / "j.sqlite", durability="fsync_each")
    try:
        for event in fills(3):
            journal.append(event)
        stats = journal.stats()
        assert (stats.committed_seq, stats.commit_lag_events, stats.commit_lag_s) == (3, 0, 0.0)
    finally:
        journal.close()


def test_when_snapshot_taken_then_its_time_reported_and_kept_across_reopen(
    tmp_path: Path,
) -> None:
    """No snapshot: None; after one, its time, also once the journal is opened again."""
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    assert journal.stats().snapshot_ts_ns is None
    journal.append(fills(1)[0])
    journal.snapshot(b"state", T0 + 7)
    assert journal.stats().snapshot_ts_ns == T0 + 7
    journal.close()
    again = SqliteJournal(path)
    try:
        assert again.stats().snapshot_ts_ns == T0 + 7
    finally:
        again.close()


def test_when_closed_then_not_writable(tmp_path: Path) -> None:
    """A closed journal refuses appends: ``writable`` says so."""
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal.close()
    assert not journal.stats().writable

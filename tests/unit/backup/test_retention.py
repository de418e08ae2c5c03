"""Grandfather-father-son retention over the backups' names."""

from __future__ import annotations

from bastion.backup.catalog import Entry
from bastion.backup.config import RetentionConfig
from bastion.backup.retention import plan


def full(stamp: str, last_seq: int) -> Entry:
    return Entry(f"full-{stamp}-{last_seq:012d}", "full", 1, last_seq, stamp)


def seg(first: int, last: int) -> Entry:
    return Entry(f"seg-{first:012d}-{last:012d}-20260101T000000000Z", "segment", first, last, "x")


def test_when_hourly_backups_span_days_then_one_a_day_and_the_last_hours_are_kept() -> None:
    """hourly=2, daily=2, monthly=0: the newest of each of the 2 newest hours (11:30 and
    10:00 of the 2nd), and the newest of each of 2 days."""
    backups = [
        full("20260101T100000000Z", 10),
        full("20260101T110000000Z", 11),
        full("20260102T100000000Z", 20),
        full("20260102T110000000Z", 21),
        full("20260102T113000000Z", 22),
    ]
    chosen = plan(backups, [], RetentionConfig(hourly=2, daily=2, monthly=0))
    assert sorted(e.last_seq for e in chosen.keep) == [11, 20, 22]
    assert sorted(e.last_seq for e in chosen.delete) == [10, 21]


def test_when_everything_is_zero_then_the_newest_full_backup_is_still_kept() -> None:
    """The newest backup is never pruned, whatever the policy."""
    backups = [full("20260101T100000000Z", 10), full("20260102T100000000Z", 20)]
    chosen = plan(backups, [], RetentionConfig(hourly=0, daily=0, monthly=0))
    assert [e.last_seq for e in chosen.keep] == [20]


def test_when_segments_end_before_the_oldest_kept_backup_then_they_are_deleted() -> None:
    """Segments a kept full backup may roll forward with stay; older ones go."""
    backups = [full("20260101T100000000Z", 10), full("20260102T100000000Z", 20)]
    segs = [seg(1, 10), seg(11, 15), seg(16, 20), seg(21, 25)]
    chosen = plan(backups, segs, RetentionConfig(hourly=0, daily=0, monthly=0))
    kept = [e.id for e in chosen.keep]
    assert seg(21, 25).id in kept
    assert {e.id for e in chosen.delete} == {
        backups[0].id,
        seg(1, 10).id,
        seg(11, 15).id,
        seg(16, 20).id,
    }


def test_when_there_is_no_full_backup_then_no_segment_is_deleted() -> None:
    """Segments are never pruned while no full backup could replace them."""
    chosen = plan([], [seg(1, 5)], RetentionConfig())
    assert chosen.delete == []


def test_when_monthly_is_twelve_then_one_backup_per_month_is_kept() -> None:
    """monthly keeps the newest backup of each month."""
    backups = [full(f"2026{m:02d}15T000000000Z", m) for m in range(1, 13)]
    backups += [full(f"2026{m:02d}01T000000000Z", 100 + m) for m in range(1, 13)]
    backups.sort(key=lambda e: e.stamp)
    chosen = plan(backups, [], RetentionConfig(hourly=0, daily=0, monthly=12))
    assert sorted(e.last_seq for e in chosen.keep) == list(range(1, 13))

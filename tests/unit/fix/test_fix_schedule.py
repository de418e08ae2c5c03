"""The daily FIX session window: same-day, overnight and 24-hour schedules, in a time zone."""

from __future__ import annotations

import datetime as dt

import pytest

from bastion.fix.schedule import SessionSchedule

NS = 1_000_000_000
UTC = dt.UTC


def ns(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """Nanoseconds since the epoch of a UTC wall time."""
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * NS


DAY = SessionSchedule.parse("08:00", "17:00")
NIGHT = SessionSchedule.parse("22:00", "06:00")
ALWAYS = SessionSchedule.parse("17:00", "17:00")


@pytest.mark.parametrize(
    ("hour", "minute", "is_open"),
    [(7, 59, False), (8, 0, True), (12, 0, True), (16, 59, True), (17, 0, False), (23, 0, False)],
)
def test_when_same_day_window_then_open_from_start_until_end(
    hour: int, minute: int, is_open: bool
) -> None:
    """08:00-17:00 is open from 08:00 inclusive to 17:00 exclusive."""
    assert DAY.is_open(ns(2024, 1, 2, hour, minute)) is is_open


@pytest.mark.parametrize(
    ("hour", "is_open"),
    [(21, False), (22, True), (23, True), (0, True), (5, True), (6, False), (12, False)],
)
def test_when_overnight_window_then_open_across_midnight(hour: int, is_open: bool) -> None:
    """22:00-06:00 spans midnight: open late in the evening and early in the morning."""
    assert NIGHT.is_open(ns(2024, 1, 2, hour)) is is_open


def test_when_24h_window_then_always_open_and_rolls_over_at_start() -> None:
    """start == end means 24 hours; each period begins at ``start``."""
    for hour in range(24):
        assert ALWAYS.is_open(ns(2024, 1, 2, hour, 30))
    assert ALWAYS.period_start_ns(ns(2024, 1, 2, 16, 59)) == ns(2024, 1, 1, 17)
    assert ALWAYS.period_start_ns(ns(2024, 1, 2, 17, 0)) == ns(2024, 1, 2, 17)
    assert ALWAYS.period_start_ns(ns(2024, 1, 3, 3, 0)) == ns(2024, 1, 2, 17)
    assert ALWAYS.seconds_until_open(ns(2024, 1, 2, 3)) == 0.0


def test_when_period_start_asked_then_start_of_current_period_or_none() -> None:
    """``period_start_ns`` is the start of the period containing the time; None when closed."""
    assert DAY.period_start_ns(ns(2024, 1, 2, 12, 34, 56)) == ns(2024, 1, 2, 8)
    assert DAY.period_start_ns(ns(2024, 1, 2, 18)) is None
    assert NIGHT.period_start_ns(ns(2024, 1, 3, 2)) == ns(2024, 1, 2, 22)
    assert NIGHT.period_start_ns(ns(2024, 1, 2, 23)) == ns(2024, 1, 2, 22)


def test_when_time_zone_given_then_window_is_local_time() -> None:
    """A window in Europe/London is shifted by the zone's UTC offset (BST in summer)."""
    london = SessionSchedule.parse("08:00", "17:00", "Europe/London")
    assert london.is_open(ns(2024, 7, 1, 7, 0))  # 08:00 BST
    assert not london.is_open(ns(2024, 7, 1, 16, 0))  # 17:00 BST
    assert london.period_start_ns(ns(2024, 7, 1, 12)) == ns(2024, 7, 1, 7)
    assert london.period_start_ns(ns(2024, 1, 2, 12)) == ns(2024, 1, 2, 8)  # GMT in winter


def test_when_closed_then_seconds_until_open_counts_to_next_start() -> None:
    """Before the window it is today's start; after it, tomorrow's; inside it, zero."""
    assert DAY.seconds_until_open(ns(2024, 1, 2, 6, 30)) == 90 * 60
    assert DAY.seconds_until_open(ns(2024, 1, 2, 18)) == 14 * 3600
    assert DAY.seconds_until_open(ns(2024, 1, 2, 12)) == 0.0
    assert NIGHT.seconds_until_open(ns(2024, 1, 2, 12)) == 10 * 3600
    assert NIGHT.seconds_until_open(ns(2024, 1, 2, 3)) == 0.0


def test_when_dst_starts_overnight_then_seconds_until_open_is_real_elapsed_time() -> None:
    """18:00 EST on 2024-03-09 to 08:00 EDT on 2024-03-10 is 13 hours of real time."""
    new_york = SessionSchedule.parse("08:00", "17:00", "America/New_York")
    now = ns(2024, 3, 9, 23)  # 18:00 EST
    next_open = ns(2024, 3, 10, 12)  # 08:00 EDT
    assert new_york.is_open(next_open) and not new_york.is_open(next_open - NS)
    assert new_york.seconds_until_open(now) == (next_open - now) / NS


@pytest.mark.parametrize(
    ("start", "end", "bad", "which"),
    [
        ("25:00", "17:00", "'25:00'", "start"),
        ("08:00", "5pm", "'5pm'", "end"),
        ("", "17:00", "''", "start"),
        ("08:60", "17:00", "'08:60'", "start"),
    ],
)
def test_when_time_string_bad_then_value_error_names_it(
    start: str, end: str, bad: str, which: str
) -> None:
    """``parse`` raises ValueError naming which time is wrong and its value."""
    with pytest.raises(ValueError, match=f"session {which} time {bad} is not HH:MM") as info:
        SessionSchedule.parse(start, end)
    assert bad in str(info.value)


def test_when_time_zone_unknown_then_error_names_it() -> None:
    """An unknown IANA zone is refused when the schedule is made, not when first used."""
    with pytest.raises(KeyError, match="Mars/Olympus"):
        SessionSchedule.parse("08:00", "17:00", "Mars/Olympus")


def test_when_seconds_given_then_parsed() -> None:
    """``HH:MM:SS`` is accepted and honoured to the second."""
    schedule = SessionSchedule.parse("08:00:30", "17:00:00")
    assert schedule.start == dt.time(8, 0, 30)
    assert not schedule.is_open(ns(2024, 1, 2, 8, 0, 29))
    assert schedule.is_open(ns(2024, 1, 2, 8, 0, 30))

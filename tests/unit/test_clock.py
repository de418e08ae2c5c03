"""The simulated clock: timers fire in time order at their due time; cancel and repeat."""

from __future__ import annotations

import pytest

from bastion.clock import SimClock


def recorder(clock: SimClock, calls: list[tuple[str, int, int]], name: str):
    """A timer callback recording (name, due time passed in, clock time seen)."""
    return lambda due: calls.append((name, due, clock.timestamp_ns()))


def test_when_advanced_then_timers_fire_in_due_order_seeing_their_due_time() -> None:
    """Timers registered out of order fire by due time, each with the clock at its due time."""
    clock = SimClock(1_000)
    calls: list[tuple[str, int, int]] = []
    clock.call_at(1_300, recorder(clock, calls, "c"))
    clock.call_at(1_100, recorder(clock, calls, "a"))
    clock.call_at(1_200, recorder(clock, calls, "b"))
    clock.advance_to(1_250)
    assert calls == [("a", 1_100, 1_100), ("b", 1_200, 1_200)]
    assert clock.timestamp_ns() == 1_250
    clock.advance_to(2_000)
    assert calls[-1] == ("c", 1_300, 1_300)
    assert clock.timestamp_ns() == 2_000


def test_when_timers_share_a_due_time_then_they_fire_in_registration_order() -> None:
    """Timers due at the same time fire first-registered first."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    for name in ("x", "y", "z"):
        clock.call_at(50, recorder(clock, calls, name))
    clock.advance_to(50)
    assert [c[0] for c in calls] == ["x", "y", "z"]


def test_when_advanced_short_of_due_time_then_timer_not_fired() -> None:
    """A timer does not fire one nanosecond before it is due, and fires exactly at it."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    clock.call_later(100, recorder(clock, calls, "t"))
    clock.advance_to(99)
    assert calls == []
    assert clock.next_due_ns == 100
    clock.advance_to(100)
    assert calls == [("t", 100, 100)]


def test_when_timer_canceled_then_it_never_fires() -> None:
    """A canceled timer is skipped; the others still fire."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    doomed = clock.call_at(10, recorder(clock, calls, "doomed"))
    clock.call_at(20, recorder(clock, calls, "kept"))
    doomed.cancel()
    clock.advance_to(100)
    assert [c[0] for c in calls] == ["kept"]
    assert doomed.canceled


def test_when_every_then_callback_repeats_at_each_interval() -> None:
    """every(10) from t=0 fires at 10, 20, 30 when advanced to 35, and continues later."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    clock.every(10, recorder(clock, calls, "tick"))
    clock.advance_to(35)
    assert [(due, seen) for _, due, seen in calls] == [(10, 10), (20, 20), (30, 30)]
    clock.advance_to(50)
    assert [due for _, due, _ in calls] == [10, 20, 30, 40, 50]


def test_when_repeating_timer_canceled_then_it_stops() -> None:
    """Canceling an every() handle stops all later repetitions."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    handle = clock.every(10, recorder(clock, calls, "tick"))
    clock.advance_to(25)
    handle.cancel()
    clock.advance_to(100)
    assert [due for _, due, _ in calls] == [10, 20]


def test_when_repeating_callback_cancels_itself_then_no_more_fire() -> None:
    """A repeating callback that cancels its own handle on the 3rd call is not called again."""
    clock = SimClock(0)
    dues: list[int] = []
    handles = []

    def tick(due: int) -> None:
        dues.append(due)
        if len(dues) == 3:
            handles[0].cancel()

    handles.append(clock.every(5, tick))
    clock.advance_to(100)
    assert dues == [5, 10, 15]


@pytest.mark.parametrize("interval", [0, -5])
def test_when_every_interval_not_positive_then_value_error(interval: int) -> None:
    """every() needs a positive interval."""
    clock = SimClock(0)
    with pytest.raises(ValueError, match="positive"):
        clock.every(interval, lambda due: None)


def test_when_callback_schedules_timer_due_within_advance_then_it_fires_in_same_advance() -> None:
    """A timer scheduled by a callback and due before the target fires in the same advance."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []

    def first(due: int) -> None:
        calls.append(("first", due, clock.timestamp_ns()))
        clock.call_later(5, recorder(clock, calls, "second"))

    clock.call_at(10, first)
    clock.call_at(12, recorder(clock, calls, "between"))
    clock.advance_to(20)
    assert calls == [("first", 10, 10), ("between", 12, 12), ("second", 15, 15)]


def test_when_timer_due_in_the_past_then_fires_without_moving_time_back() -> None:
    """A timer set for an earlier time fires on the next advance; the clock never goes back."""
    clock = SimClock(1_000)
    calls: list[tuple[str, int, int]] = []
    clock.call_at(500, recorder(clock, calls, "late"))
    clock.advance_to(1_000)
    assert calls == [("late", 500, 1_000)]
    assert clock.timestamp_ns() == 1_000


def test_when_set_time_then_no_timer_fires() -> None:
    """set_time moves the clock without firing due timers; advance_to then fires them."""
    clock = SimClock(0)
    calls: list[tuple[str, int, int]] = []
    clock.call_at(10, recorder(clock, calls, "t"))
    clock.set_time(50)
    assert calls == []
    assert clock.timestamp_ns() == 50
    clock.advance_to(50)
    assert calls == [("t", 10, 50)]


def test_when_all_timers_fired_then_next_due_is_never() -> None:
    """next_due_ns tracks the earliest pending timer and resets when none remain."""
    clock = SimClock(0)
    clock.call_at(30, lambda due: None)
    clock.call_at(20, lambda due: None)
    assert clock.next_due_ns == 20
    clock.advance_to(25)
    assert clock.next_due_ns == 30
    clock.advance_to(30)
    assert clock.next_due_ns == 2**63 - 1

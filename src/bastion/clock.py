"""Clocks: one interface, a live implementation and a simulated one.

Every component takes a ``Clock`` by keyword and never reads the system time
itself (``timestamp_ns`` for time stamps, ``monotonic_s`` for deadlines and
durations), so backtests and tests drive time explicitly. Timers call back with
the clock time at which they were due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

TimerCallback = Callable[[int], None]


class Clock(ABC):
    """Time source and timer service."""

    @abstractmethod
    def timestamp_ns(self) -> int:
        """Current UNIX time in nanoseconds."""

    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes back, for deadlines and durations (only
        differences mean anything). Simulated time is its own monotonic clock."""
        return self.timestamp_ns() / 1e9

    @abstractmethod
    def call_at(self, ts_ns: int, callback: TimerCallback) -> Cancelable:
        """Call ``callback(ts_ns)`` once the clock reaches ``ts_ns``."""

    def call_later(self, delay_ns: int, callback: TimerCallback) -> Cancelable:
        return self.call_at(self.timestamp_ns() + delay_ns, callback)

    def every(self, interval_ns: int, callback: TimerCallback) -> Cancelable:
        """Call ``callback`` every ``interval_ns`` until canceled."""
        if interval_ns <= 0:
            raise ValueError("timer interval must be positive")
        handle = _Repeating()

        def tick(ts_ns: int) -> None:
            if handle.canceled:
                return
            callback(ts_ns)
            if not handle.canceled:
                handle.inner = self.call_at(ts_ns + interval_ns, tick)

        handle.inner = self.call_at(self.timestamp_ns() + interval_ns, tick)
        return handle


class Cancelable:
    __slots__ = ("canceled",)

    def __init__(self) -> None:
        self.canceled = False

    def cancel(self) -> None:
        self.canceled = True


class _Repeating(Cancelable):
    __slots__ = ("inner",)

    def __init__(self) -> None:
        super().__init__()
        self.inner: Cancelable | None = None

    def cancel(self) -> None:
        self.canceled = True
        if self.inner is not None:
            self.inner.cancel()


class SimClock(Clock):
    """Simulated time, advanced explicitly by the backtest engine or a test.

    ``advance_to`` fires due timers in time order, each seeing the clock set to its
    own due time. ``next_due_ns`` lets a hot loop skip the call when nothing is due.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self.now_ns = start_ns
        self._timers: list[tuple[int, int, TimerCallback, Cancelable]] = []
        self._seq = itertools.count()
        self.next_due_ns = _NEVER

    def timestamp_ns(self) -> int:
        return self.now_ns

    def call_at(self, ts_ns: int, callback: TimerCallback) -> Cancelable:
        handle = Cancelable()
        heapq.heappush(self._timers, (ts_ns, next(self._seq), callback, handle))
        self.next_due_ns = self._timers[0][0]
        return handle

    def set_time(self, ts_ns: int) -> None:
        """Move time without firing timers (a hot loop may assign ``now_ns`` directly
        when ``ts_ns < next_due_ns``)."""
        self.now_ns = ts_ns

    def advance_to(self, ts_ns: int) -> None:
        timers = self._timers
        while timers and timers[0][0] <= ts_ns:
            due, _, callback, handle = heapq.heappop(timers)
            if handle.canceled:
                continue
            self.now_ns = max(self.now_ns, due)
            callback(due)
        self.next_due_ns = timers[0][0] if timers else _NEVER
        if ts_ns > self.now_ns:
            self.now_ns = ts_ns


class LiveClock(Clock):
    """Wall-clock time; timers run on the running asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def timestamp_ns(self) -> int:
        return time.time_ns()

    def monotonic_s(self) -> float:
        return time.monotonic()

    def call_at(self, ts_ns: int, callback: TimerCallback) -> Cancelable:
        loop = self._loop or asyncio.get_running_loop()
        handle = _LiveTimer()
        delay_s = max(0.0, (ts_ns - time.time_ns()) / 1e9)

        def fire() -> None:
            if not handle.canceled:
                callback(ts_ns)

        handle.timer = loop.call_later(delay_s, fire)
        return handle


class _LiveTimer(Cancelable):
    __slots__ = ("timer",)

    def __init__(self) -> None:
        super().__init__()
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.canceled = True
        if self.timer is not None:
            self.timer.cancel()


_NEVER = 2**63 - 1

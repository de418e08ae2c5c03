"""A series' highest and lowest value over the last ``window_s`` seconds, in O(1)
amortised per reading (monotonic deques): a change rule reads it on every sample."""

from __future__ import annotations

from collections import deque


class SlidingExtremes:
    """Readings ``(t, value)`` in time order; ``highest``/``lowest`` of those within
    ``window_s`` of the last one."""

    __slots__ = ("_high", "_low", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._high: deque[tuple[float, float]] = deque()  # values decreasing
        self._low: deque[tuple[float, float]] = deque()  # values increasing

    def add(self, t: float, value: float) -> None:
        high, low = self._high, self._low
        while high and high[-1][1] <= value:
            high.pop()
        high.append((t, value))
        while low and low[-1][1] >= value:
            low.pop()
        low.append((t, value))
        oldest = t - self.window_s
        while high[0][0] < oldest:
            high.popleft()
        while low[0][0] < oldest:
            low.popleft()

    @property
    def highest(self) -> float:
        return self._high[0][1]

    @property
    def lowest(self) -> float:
        return self._low[0][1]

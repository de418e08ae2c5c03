"""Sliding-window message counters and the duplicate-order filter.

Both keep timestamps from the injected clock in a deque and drop the expired ones
from its left end as time moves on (when a message is added), so each order costs
O(1) amortized; a check only reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

WINDOW_NS = 1_000_000_000  # throttle limits are per second


class SlidingWindow:
    """Messages sent in the last ``window_ns`` (a message at ``t`` counts while
    ``now - t < window_ns``); ``limit`` is how many the window may hold."""

    __slots__ = ("limit", "times", "window_ns")

    def __init__(self, limit: int, window_ns: int = WINDOW_NS) -> None:
        self.limit = limit
        self.window_ns = window_ns
        self.times: deque[int] = deque()

    def _prune(self, now_ns: int) -> None:
        times = self.times
        edge = now_ns - self.window_ns
        while times and times[0] <= edge:
            times.popleft()

    def is_full(self, now_ns: int) -> bool:
        times = self.times
        edge = now_ns - self.window_ns
        while times and times[0] <= edge:
            times.popleft()
        return len(times) >= self.limit

    def add(self, now_ns: int) -> None:
        self._prune(now_ns)
        self.times.append(now_ns)


class DuplicateFilter:
    """Remembers the keys of orders sent in the last ``window_ns``."""

    __slots__ = ("_expiry", "last", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.last: dict[Hashable, int] = {}
        """Each key's latest send (an expired one may linger until the next ``add``)."""
        self._expiry: deque[tuple[int, Hashable]] = deque()

    def seen_at(self, key: Hashable, now_ns: int) -> int | None:
        """When an identical order was sent within the window, or None."""
        seen = self.last.get(key)
        if seen is None or seen <= now_ns - self.window_ns:
            return None
        return seen

    def add(self, key: Hashable, now_ns: int) -> None:
        expiry = self._expiry
        last = self.last
        edge = now_ns - self.window_ns
        while expiry and expiry[0][0] <= edge:
            ts, old = expiry.popleft()
            if last.get(old) == ts:
                del last[old]
        last[key] = now_ns
        expiry.append((now_ns, key))

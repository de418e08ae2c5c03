"""Sliding-window message counters and the duplicate-order filter.

Both keep timestamps from the injected clock in a deque and drop the expired ones
from its left end as time moves on (when a message is added), so each order costs
O(1) amortized. Each control's rule is one check (``check_windows``,
``DuplicateFilter.check``) that returns None or a ``Denial`` keeping the figures it
compared; its message is built from them only when the denial is published.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import final

from bastion.risk.reasons import Denial, DenyReason

WINDOW_NS = 1_000_000_000  # throttle limits are per second


@final
class SlidingWindow:
    """Messages sent in the last ``window_ns`` (a message at ``t`` counts while
    ``now - t < window_ns``); ``limit`` is how many the window may hold. ``scope``
    ("strategy NAME", "venue NAME") and ``key`` (its config key) name it in a denial."""

    __slots__ = ("key", "limit", "scope", "times", "window_ns")

    def __init__(
        self, limit: int, window_ns: int = WINDOW_NS, *, scope: str = "", key: str = ""
    ) -> None:
        self.limit = limit
        self.window_ns = window_ns
        self.scope = scope
        self.key = key
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

    def count(self, now_ns: int) -> int:
        """Messages in the window now."""
        self._prune(now_ns)
        return len(self.times)


def check_windows(windows: tuple[SlidingWindow, ...], now_ns: int) -> Denial | None:
    """``THROTTLE`` for the first of ``windows`` that is full: one more message would
    pass its limit. A window that holds fewer than its limit, expired entries included,
    cannot be full: the usual case reads one length per window."""
    for window in windows:
        if len(window.times) >= window.limit and window.is_full(now_ns):
            return ThrottleDenied(window)
    return None


@final
class ThrottleDenied(Denial):
    def __init__(self, window: SlidingWindow) -> None:
        super().__init__(DenyReason.THROTTLE)
        self.window = window

    def message(self) -> str:
        window = self.window
        return f"{window.scope}: {window.key} {window.limit} reached"


@final
class DuplicateFilter:
    """Remembers the keys of orders sent in the last ``window_ns``."""

    __slots__ = ("_expiry", "last", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.last: dict[Hashable, int] = {}
        """Each key's latest send (an expired one may linger until the next ``add``)."""
        self._expiry: deque[tuple[int, Hashable]] = deque()

    def check(self, key: Hashable, now_ns: int) -> DuplicateDenied | None:
        """``DUPLICATE_ORDER`` when an identical order was sent within the window."""
        seen = self.last.get(key)
        if seen is None or seen <= now_ns - self.window_ns:
            return None
        return DuplicateDenied(self.window_ns, now_ns - seen)

    def seen_at(self, key: Hashable, now_ns: int) -> int | None:
        """When an identical order was sent within the window (``check``), or None."""
        denial = self.check(key, now_ns)
        return None if denial is None else now_ns - denial.age_ns

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


@final
class DuplicateDenied(Denial):
    def __init__(self, window_ns: int, age_ns: int) -> None:
        super().__init__(DenyReason.DUPLICATE_ORDER)
        self.window_ns = window_ns
        self.age_ns = age_ns

    def message(self) -> str:
        return (
            f"identical order sent {self.age_ns / 1e6:g} ms ago, within "
            f"duplicate_window_ms {self.window_ns // 1_000_000}"
        )

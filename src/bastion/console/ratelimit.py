"""Per-source sign-in limits: the console's bound on guessing from one address.

The store locks an operator out after ``max_failures`` refusals in a row; that alone
lets one address try one password against every name. Here, ``max_failures`` refused
attempts (sign-in or step-up) from one source within ``window_s`` block that source
for ``lockout_s``: every attempt from it is then answered 429 without reaching the
store (no Argon2 work for an attacker to spend). A success does not clear a source's
count: a desk behind one NAT address shares it, by design.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["SourceLimiter"]

_MAX_SOURCES: Final = 100_000


class SourceLimiter:
    """Refused attempts per source address, in a sliding window."""

    def __init__(self, *, max_failures: int, window_s: float, lockout_s: float) -> None:
        self._max = max_failures
        self._window_ns = int(window_s * 1e9)
        self._lockout_ns = int(lockout_s * 1e9)
        self._failures: dict[str, deque[int]] = {}
        self._blocked_until: dict[str, int] = {}

    def blocked(self, source: str, now_ns: int) -> bool:
        until = self._blocked_until.get(source)
        if until is None:
            return False
        if now_ns < until:
            return True
        del self._blocked_until[source]
        return False

    def failed(self, source: str, now_ns: int) -> bool:
        """Count a refusal from ``source``; True when this one blocks it."""
        if len(self._failures) >= _MAX_SOURCES and source not in self._failures:
            self._prune(now_ns)
        times = self._failures.setdefault(source, deque())
        times.append(now_ns)
        while times and times[0] <= now_ns - self._window_ns:
            times.popleft()
        if len(times) >= self._max:
            self._blocked_until[source] = now_ns + self._lockout_ns
            times.clear()
            return True
        return False

    def _prune(self, now_ns: int) -> None:
        for source in [
            s for s, t in self._failures.items() if not t or t[-1] <= now_ns - self._window_ns
        ]:
            del self._failures[source]

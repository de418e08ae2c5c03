"""The leader's own fence: the one check on the order path that stops a member from
sending once its lease may have run out, with no database round trip.

A ``Fence`` holds the member's fencing epoch and its local deadline on a monotonic
clock that keeps counting while the machine is suspended (``CLOCK_BOOTTIME`` on
Linux). ``may_send`` is one clock read and a compare. The lease keeper
(``bastion.ha.lease``) moves the deadline forward after each renewal; ``revoke`` (the
lease was lost, handed over or deposed) sets it to zero for good: a fence never sends
again under its epoch, whatever a late renewal says.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Final

MonotonicNs = Callable[[], int]


def _clock() -> MonotonicNs:
    if hasattr(time, "CLOCK_BOOTTIME"):
        # a partial of the builtin: no Python frame on the order path
        boottime = functools.partial(time.clock_gettime_ns, time.CLOCK_BOOTTIME)
        try:
            boottime()
            return boottime
        except OSError:  # pragma: no cover - an old kernel
            pass
    return time.monotonic_ns


monotonic_ns: Final[MonotonicNs] = _clock()
"""The clock of every lease deadline: monotonic, and counting suspended time (a host
that slept past its lease must not wake up believing it still holds it)."""

LEASE_LOST: Final = "lease_lost"
"""The reason code of an order, cancel or amend refused by the fence."""


class Fence:
    """May this member send now? (``may_send``; ``refusal`` says why not.)"""

    __slots__ = ("_now", "deadline_ns", "epoch", "revoked")

    def __init__(self, epoch: int, deadline_ns: int, *, now_ns: MonotonicNs = monotonic_ns):
        self.epoch = epoch
        self.deadline_ns = deadline_ns
        """Sending stops at this time on ``now_ns`` (0 once revoked)."""
        self.revoked: str | None = None
        self._now = now_ns

    def may_send(self) -> bool:
        return self._now() < self.deadline_ns

    def extend(self, deadline_ns: int) -> bool:
        """Move the deadline later (never earlier; never once revoked); False if not."""
        if self.revoked is not None or deadline_ns <= self.deadline_ns:
            return False
        self.deadline_ns = deadline_ns
        return True

    def revoke(self, reason: str) -> None:
        """Never send again under this epoch."""
        self.deadline_ns = 0
        if self.revoked is None:
            self.revoked = reason

    def refusal(self) -> str | None:
        """Why nothing may be sent now (None: it may)."""
        if self._now() < self.deadline_ns:
            return None
        if self.revoked is not None:
            return f"lease lost (epoch {self.epoch}): {self.revoked}"
        return f"lease lost (epoch {self.epoch}): its local deadline passed without a renewal"

    def remaining_ns(self) -> int:
        return max(0, self.deadline_ns - self._now())

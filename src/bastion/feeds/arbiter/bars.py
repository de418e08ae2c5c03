"""One arbitrated instrument's bars: gaps marked, and filled from the other feeds.

The arbiter delivers the followed feed's bars. A bar closing more than one
``interval_ns`` after the last one delivered means bars are missing: before it go, in
time order, the bars for those close times that another feed of the instrument has
already sent (its last ``depth`` bars are kept, per feed), each marked
``backfilled``; then the bar itself. Each delivered bar carries ``gap_before``, the
number of bars still missing right before it. A bar whose close is not after the last
one delivered is dropped (``dropped_old``): no bar twice, time never backwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec
import structlog

from bastion.model.data import Bar

log = structlog.get_logger("bastion.feeds.arbiter")

_NEVER = 2**62
BAR_DEPTH = 64
"""Bars kept per feed for backfilling (64 one-minute bars: about an hour)."""


class BarLine:
    """The bars of one instrument whose feeds are ranked 0, 1, ... by priority."""

    __slots__ = (
        "backfilled",
        "dropped_old",
        "gaps",
        "instrument_id",
        "last_ts",
        "missing",
        "recent",
    )

    def __init__(self, instrument_id: str, feeds: int, depth: int = BAR_DEPTH) -> None:
        self.instrument_id = instrument_id
        self.recent = [deque[Bar](maxlen=depth) for _ in range(feeds)]
        """Per feed (by rank), its last ``depth`` bars."""
        self.last_ts = -_NEVER
        """Close time of the last bar delivered."""
        self.gaps = 0
        """Gaps seen on the followed feed (a bar closing over one interval after the last)."""
        self.backfilled = 0
        """Bars delivered from another feed to fill a gap."""
        self.missing = 0
        """Bars no feed had: the sum of the delivered bars' ``gap_before``."""
        self.dropped_old = 0
        """Bars of the followed feed not closing after the last one delivered."""

    def on_bar(self, rank: int, bar: Bar, followed: bool, deliver: Callable[[Bar], None]) -> None:
        """A bar from feed ``rank``; ``followed`` if that feed is the one delivered."""
        self.recent[rank].append(bar)
        if not followed:
            return
        last = self.last_ts
        if bar.ts_ns <= last:
            self.dropped_old += 1
            return
        if last != -_NEVER and 0 < bar.interval_ns < bar.ts_ns - last:
            fill = self._fill(rank, bar)
            self.gaps += 1
            self.backfilled += len(fill)
            log.warning(
                "bar_gap",
                instrument_id=self.instrument_id,
                after_ts_ns=last,
                ts_ns=bar.ts_ns,
                missing=_missing(last, bar),
                backfilled=len(fill),
            )
            for old in fill:
                self._deliver(old, True, deliver)
        self._deliver(bar, False, deliver)

    def _fill(self, rank: int, bar: Bar) -> list[Bar]:
        """The other feeds' bars closing between the last delivered and ``bar``, of its
        interval, by close time; where two feeds have one, the preferred feed's."""
        found: dict[int, Bar] = {}
        last = self.last_ts
        for other, bars in enumerate(self.recent):
            if other == rank:
                continue
            for old in bars:
                if last < old.ts_ns < bar.ts_ns and old.interval_ns == bar.interval_ns:
                    found.setdefault(old.ts_ns, old)
        return [found[ts] for ts in sorted(found)]

    def _deliver(self, bar: Bar, backfilled: bool, deliver: Callable[[Bar], None]) -> None:
        missing = _missing(self.last_ts, bar) if self.last_ts != -_NEVER else 0
        if missing or backfilled or bar.gap_before or bar.backfilled:
            bar = msgspec.structs.replace(bar, gap_before=missing, backfilled=backfilled)
        self.missing += missing
        self.last_ts = bar.ts_ns
        deliver(bar)


def _missing(last_ts: int, bar: Bar) -> int:
    """Bars of ``bar``'s interval that would close after ``last_ts`` and before it."""
    if bar.interval_ns <= 0:
        return 0
    return max(0, (bar.ts_ns - last_ts - 1) // bar.interval_ns)

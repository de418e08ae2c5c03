"""A FIX session's daily schedule: when the session is open, and when a new one begins.

A daily FIX session runs from ``start`` to ``end`` in a time zone. When ``start``
is after ``end`` the session spans midnight; when they are equal it runs 24 hours
and rolls over at ``start``. Each new period starts with sequence numbers at 1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SessionSchedule:
    start: dt.time
    end: dt.time
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone

    def _period(self, ts_ns: int) -> tuple[dt.datetime, dt.datetime] | None:
        """The (start, end) of the period containing ``ts_ns``, or None when closed."""
        zone = ZoneInfo(self.timezone)
        now = dt.datetime.fromtimestamp(ts_ns / _NS, tz=zone)
        for day_offset in (0, -1):
            day = now.date() + dt.timedelta(days=day_offset)
            start = dt.datetime.combine(day, self.start, tzinfo=zone)
            end = dt.datetime.combine(day, self.end, tzinfo=zone)
            if end <= start:
                end += dt.timedelta(days=1)
            if start <= now < end:
                return start, end
        return None

    def is_open(self, ts_ns: int) -> bool:
        return self._period(ts_ns) is not None

    def period_start_ns(self, ts_ns: int) -> int | None:
        period = self._period(ts_ns)
        return None if period is None else int(period[0].timestamp()) * _NS

    def seconds_until_open(self, ts_ns: int) -> float:
        """0 when open; otherwise how long until the next period starts."""
        if self.is_open(ts_ns):
            return 0.0
        zone = ZoneInfo(self.timezone)
        now = dt.datetime.fromtimestamp(ts_ns / _NS, tz=zone)
        start = dt.datetime.combine(now.date(), self.start, tzinfo=zone)
        if start <= now:
            start += dt.timedelta(days=1)
        return start.timestamp() - now.timestamp()  # elapsed time, across DST changes

    @classmethod
    def parse(cls, start: str, end: str, timezone: str = "UTC") -> SessionSchedule:
        """From ``HH:MM[:SS]`` strings; ``ValueError`` names the bad value."""
        return cls(_parse_time(start, "start"), _parse_time(end, "end"), timezone)


def _parse_time(text: str, what: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"session {what} time {text!r} is not HH:MM[:SS]") from None

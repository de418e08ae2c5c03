"""FIX UTCTimestamp text (``YYYYMMDD-HH:MM:SS.sss``) to and from nanoseconds since the
epoch: SendingTime (52), OrigSendingTime (122), TransactTime (60)."""

from __future__ import annotations

import calendar
import time

_last_second: list[object] = [None, ""]


def format_utc_timestamp(ts_ns: int) -> str:
    """FIX UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    if _last_second[0] != seconds:  # one gmtime per second, not per message
        tm = time.gmtime(seconds)
        _last_second[0] = seconds
        _last_second[1] = (
            f"{tm.tm_year:04d}{tm.tm_mon:02d}{tm.tm_mday:02d}-"
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}."
        )
    return f"{_last_second[1]}{rest // 1_000_000:03d}"


def parse_utc_timestamp(text: str) -> int | None:
    """Nanoseconds since the epoch of a FIX UTCTimestamp, or ``None`` if malformed."""
    if len(text) < 17 or text[8] != "-" or text[11] != ":" or text[14] != ":":
        return None
    date, hh, mm, ss = text[:8], text[9:11], text[12:14], text[15:17]
    fraction = text[17:]
    if not (date.isdigit() and hh.isdigit() and mm.isdigit() and ss.isdigit()):
        return None
    if fraction and (fraction[0] != "." or not fraction[1:].isdigit() or len(fraction) > 10):
        return None
    year, month, day = int(date[:4]), int(date[4:6]), int(date[6:8])
    hour, minute, second = int(hh), int(mm), int(ss)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60):
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    frac_ns = int(fraction[1:].ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + frac_ns

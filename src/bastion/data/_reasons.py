"""Why a row of a replay file is bad: one small integer code per reason.

The codes live in numpy ``uint8`` arrays while a chunk is checked; ``Reason.code``
is the short name reported in ``ReplayStats.skipped_by_reason`` and in errors.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """A reason a row is rejected. Lower values win when a row has several problems."""

    OK = 0
    WRONG_FIELD_COUNT = 1
    UNPARSEABLE_ROW = 2
    MISSING_VALUE = 3
    NOT_A_NUMBER = 4
    NOT_FINITE = 5
    NOT_AN_INTEGER = 6
    OUT_OF_RANGE = 7
    PRICE_OFF_SCALE = 8
    SIZE_OFF_SCALE = 9
    NON_POSITIVE_PRICE = 10
    NEGATIVE_SIZE = 11
    PRICE_OFF_TICK = 12
    SIZE_OFF_LOT = 13
    CROSSED_QUOTE = 14
    BAD_OHLC = 15
    TIME_WENT_BACKWARDS = 16

    @property
    def code(self) -> str:
        """The short name used in stats and messages, e.g. ``price_off_tick``."""
        return self.name.lower()


N_REASONS = len(Reason)

"""Machine-readable reason codes of risk denials (``OrderDenied.reason``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class DenyReason(StrEnum):
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    UNKNOWN_VENUE = "UNKNOWN_VENUE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    PRICE_COLLAR = "PRICE_COLLAR"
    POSITION_LIMIT = "POSITION_LIMIT"
    CREDIT_LIMIT = "CREDIT_LIMIT"
    THROTTLE = "THROTTLE"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    SELF_TRADE = "SELF_TRADE"
    NOT_PERMITTED = "NOT_PERMITTED"
    INSTRUMENT_PAUSED = "INSTRUMENT_PAUSED"
    STALE_MARKET_DATA = "STALE_MARKET_DATA"
    STRATEGY_DISABLED = "STRATEGY_DISABLED"


Denial = tuple[DenyReason, str]
"""``(reason, message)``. The checks decide first without building messages
(``explain=False``): a denial then has an empty message, and the same checks, run
again at the same time with ``explain=True``, name the limit and its value."""

# The first answers (``explain=False``): constants, as an enum member lookup costs
# ~250 ns on CPython 3.11 and building a message costs more than the checks.
BRIEF_INVALID_QUANTITY: Final[Denial] = (DenyReason.INVALID_QUANTITY, "")
BRIEF_INVALID_PRICE: Final[Denial] = (DenyReason.INVALID_PRICE, "")
BRIEF_MAX_ORDER_QUANTITY: Final[Denial] = (DenyReason.MAX_ORDER_QUANTITY, "")
BRIEF_MAX_ORDER_NOTIONAL: Final[Denial] = (DenyReason.MAX_ORDER_NOTIONAL, "")
BRIEF_NO_REFERENCE_PRICE: Final[Denial] = (DenyReason.NO_REFERENCE_PRICE, "")
BRIEF_PRICE_COLLAR: Final[Denial] = (DenyReason.PRICE_COLLAR, "")
BRIEF_POSITION_LIMIT: Final[Denial] = (DenyReason.POSITION_LIMIT, "")
BRIEF_CREDIT_LIMIT: Final[Denial] = (DenyReason.CREDIT_LIMIT, "")
BRIEF_THROTTLE: Final[Denial] = (DenyReason.THROTTLE, "")
BRIEF_DUPLICATE_ORDER: Final[Denial] = (DenyReason.DUPLICATE_ORDER, "")
BRIEF_SELF_TRADE: Final[Denial] = (DenyReason.SELF_TRADE, "")
BRIEF_NOT_PERMITTED: Final[Denial] = (DenyReason.NOT_PERMITTED, "")

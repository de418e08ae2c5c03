"""Machine-readable reason codes of risk denials (``OrderDenied.reason``)."""

from __future__ import annotations

from enum import StrEnum


class DenyReason(StrEnum):
    TRADING_HALTED = "TRADING_HALTED"
    REDUCING_ONLY = "REDUCING_ONLY"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    UNKNOWN_VENUE = "UNKNOWN_VENUE"
    WRONG_VENUE = "WRONG_VENUE"
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


class Denial:
    """A control's refusal of an order: the reason code at once, and ``message()``, the
    limit and its value, built only when the denial is published.

    Each control decides once, and when it denies, returns a ``Denial`` holding the
    figures it decided on; its subclass (beside the control's check) turns them into
    the message, so the decision and its explanation cannot disagree and a denial that
    is not published (the checks are timed, or a flatten order is retried) costs no
    formatting. ``Denial(reason, text)`` itself is for refusals whose text is fixed."""

    def __init__(self, reason: DenyReason, text: str = "") -> None:
        self.reason = reason
        self.text = text

    def message(self) -> str:
        return self.text

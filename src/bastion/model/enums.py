"""Enumerations shared across the trading plane."""

from __future__ import annotations

from enum import Enum


class FastEnum(Enum):
    """An Enum hashed by identity (members are singletons), so dict and set lookups
    keyed by members stay in C instead of calling ``Enum.__hash__``."""

    __hash__ = object.__hash__


class OrderSide(FastEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(FastEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(FastEnum):
    GTC = "GTC"
    IOC = "IOC"
    DAY = "DAY"


class OrderStatus(FastEnum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_REPLACE = "PENDING_REPLACE"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.REJECTED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
    }
)


class LiquiditySide(FastEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class TradingState(FastEnum):
    """Node-wide trading mode enforced by the risk gate."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

"""Domain model: instruments, market data, orders, events. Money is exact."""

from bastion.model.data import Bar, MarketData, QuoteTick, TradeTick
from bastion.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingState,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import InvalidTransition, Order

__all__ = [
    "Bar",
    "Instrument",
    "InvalidTransition",
    "LiquiditySide",
    "MarketData",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "QuoteTick",
    "TimeInForce",
    "TradeTick",
    "TradingState",
]

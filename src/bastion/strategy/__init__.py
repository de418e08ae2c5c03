"""The strategy API: subclass ``Strategy`` and override its hooks."""

from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import OrderSide, TimeInForce
from bastion.model.events import OrderEvent, OrderFilled
from bastion.strategy.base import Strategy
from bastion.strategy.config import StrategyConfig

__all__ = [
    "Bar",
    "OrderEvent",
    "OrderFilled",
    "OrderSide",
    "QuoteTick",
    "Strategy",
    "StrategyConfig",
    "TimeInForce",
]

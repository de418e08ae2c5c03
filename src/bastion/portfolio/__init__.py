"""Positions, cash, fees and PnL."""

from bastion.portfolio.config import AccountConfig
from bastion.portfolio.portfolio import Portfolio, to_decimal
from bastion.portfolio.position import Position

__all__ = ["AccountConfig", "Portfolio", "Position", "to_decimal"]

"""Netting positions with exact realized and unrealized PnL.

Quantities are signed raw sizes (long > 0); ``cost`` is the signed raw notional
(size_raw * price_raw) of the open quantity, so the average price is
``cost / quantity``. Raw PnL is in units of size_raw * price_raw and becomes
money through ``Instrument.money``. Averages that do not divide evenly are kept
as exact ``Fraction``s, so a round trip's realized PnL equals its cash change.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

Exact = int | Fraction
_NO_FEES = Decimal(0)


class Position:
    """One netting position (per strategy and instrument)."""

    __slots__ = ("cost", "fees", "instrument_id", "quantity", "realized", "strategy_id")

    def __init__(self, strategy_id: str, instrument_id: str) -> None:
        self.strategy_id = strategy_id
        self.instrument_id = instrument_id
        self.quantity = 0
        self.cost: Exact = 0
        self.realized: Exact = 0
        self.fees = _NO_FEES
        """Fees its fills paid, in the account currency (``Portfolio.on_fill``)."""

    def __repr__(self) -> str:
        return f"Position({self.strategy_id} {self.instrument_id} qty={self.quantity})"

    @property
    def avg_px(self) -> Fraction | None:
        """Exact average open price in raw price units, or None when flat."""
        if not self.quantity:
            return None
        return Fraction(self.cost) / self.quantity

    def apply_fill(self, sign: int, qty: int, px: int) -> Exact:
        """Apply a fill of ``qty`` at ``px`` (sign +1 buy, -1 sell); return realized raw PnL."""
        held = self.quantity
        if held == 0 or (held > 0) == (sign > 0):
            self.quantity = held + sign * qty
            self.cost += sign * qty * px
            return 0
        held_abs = held if held > 0 else -held
        closing = qty if qty < held_abs else held_abs
        numerator = self.cost * closing
        if type(numerator) is int and numerator % held_abs == 0:
            removed: Exact = numerator // held_abs
        else:
            removed = Fraction(numerator) / held_abs
        realized = (closing * px if held > 0 else -closing * px) - removed
        self.realized += realized
        self.cost -= removed
        self.quantity = held + sign * closing
        opening = qty - closing
        if opening:
            self.quantity += sign * opening
            self.cost += sign * opening * px
        if self.quantity == 0:
            self.cost = 0
        return realized

    def unrealized(self, mark_px: int) -> Exact:
        """Raw PnL of the open quantity if it were closed at ``mark_px``."""
        return self.quantity * mark_px - self.cost if self.quantity else 0

"""Exact Decimal arithmetic for the simulator's books: a result that would round raises."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from fractions import Fraction
from typing import Final

# 100 digits hold any sum or product of two instrument-scale numbers; a result that
# would still need rounding raises Inexact instead of silently losing a unit.
EXACT: Final = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow])
ZERO: Final = Decimal(0)


def add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.add(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.subtract(a, b)


def mul(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b)


def rounded(value: Fraction, places: int) -> Decimal:
    """``value`` rounded half-even to ``places`` decimals (exact when it divides evenly)."""
    return Decimal(round(value * 10**places)).scaleb(-places, EXACT)

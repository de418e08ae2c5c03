"""Limits in an instrument's raw integers.

Prices and quantities reach the gate as raw integers (``Instrument.price_raw``);
comparing them with limits precomputed on the same scale keeps Decimal arithmetic
off the per-order path. Notional limits are floored: for an integer ``x`` and a
real limit ``L``, ``x > L`` exactly when ``x > floor(L)``.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from bastion.model.instruments import Instrument


def _floor(value: Decimal) -> int:
    return int(Decimal(value).to_integral_value(ROUND_FLOOR))


def qty_raw(value: Decimal | None, instrument: Instrument) -> int | None:
    return None if value is None else _floor(value * instrument.size_scale)


def notional_raw(value: Decimal | None, instrument: Instrument, factor: int = 1) -> int | None:
    """``factor * value`` in raw ``size_raw * price_raw`` units (multiplier applied)."""
    if value is None:
        return None
    scale = instrument.price_scale * instrument.size_scale
    return _floor(value * factor * scale / instrument.multiplier)

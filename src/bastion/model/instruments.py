"""Instruments and the exact fixed-point scales of their prices and quantities.

Prices and quantities travel through the engine as integers counted in units
of ``10**-price_precision`` and ``10**-size_precision``; this module owns the
conversions between those raw integers and ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from bastion.errors import ConfigError

_MAX_PRECISION: Final = 12


def _precision_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """A tradable instrument.

    ``tick_size`` and ``lot_size`` are Decimals; the raw integer scales are derived
    from them once: ``price_scale = 10**price_precision`` raw units make one unit of
    quote currency, ``tick_raw`` is the tick in raw units, and so on.
    """

    id: str
    venue: str
    tick_size: Decimal
    lot_size: Decimal
    quote_currency: str
    multiplier: Decimal = Decimal(1)
    price_precision: int = -1
    size_precision: int = -1
    price_scale: int = field(init=False, default=0)
    size_scale: int = field(init=False, default=0)
    tick_raw: int = field(init=False, default=0)
    lot_raw: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "multiplier"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise ConfigError(f"instrument {self.id}: {name} must be positive, got {value}")
        if self.price_precision < 0:
            object.__setattr__(self, "price_precision", _precision_of(self.tick_size))
        if self.size_precision < 0:
            object.__setattr__(self, "size_precision", _precision_of(self.lot_size))
        if self.price_precision > _MAX_PRECISION or self.size_precision > _MAX_PRECISION:
            raise ConfigError(f"instrument {self.id}: more than {_MAX_PRECISION} decimals")
        if _precision_of(self.tick_size) > self.price_precision:
            raise ConfigError(f"instrument {self.id}: tick_size finer than price_precision")
        if _precision_of(self.lot_size) > self.size_precision:
            raise ConfigError(f"instrument {self.id}: lot_size finer than size_precision")
        price_scale = 10**self.price_precision
        size_scale = 10**self.size_precision
        object.__setattr__(self, "price_scale", price_scale)
        object.__setattr__(self, "size_scale", size_scale)
        object.__setattr__(self, "tick_raw", int(self.tick_size * price_scale))
        object.__setattr__(self, "lot_raw", int(self.lot_size * size_scale))

    # -- conversions --------------------------------------------------------
    def price_raw(self, value: Decimal | str | int) -> int:
        """Exact raw price for a human price; raises ValueError if it is off the scale."""
        return _to_raw(value, self.price_precision, self.price_scale, "price", self.id)

    def size_raw(self, value: Decimal | str | int) -> int:
        """Exact raw quantity for a human quantity; raises ValueError if off the scale."""
        return _to_raw(value, self.size_precision, self.size_scale, "quantity", self.id)

    def price(self, raw: int) -> Decimal:
        return Decimal(raw).scaleb(-self.price_precision)

    def size(self, raw: int) -> Decimal:
        return Decimal(raw).scaleb(-self.size_precision)

    def is_on_tick(self, price_raw: int) -> bool:
        return price_raw % self.tick_raw == 0

    def is_on_lot(self, size_raw: int) -> bool:
        return size_raw % self.lot_raw == 0

    def money(self, raw_notional: int | Decimal) -> Decimal:
        """Quote-currency amount for ``size_raw * price_raw`` (multiplier applied)."""
        return (Decimal(raw_notional) * self.multiplier).scaleb(
            -(self.price_precision + self.size_precision)
        )

    def notional(self, size_raw: int, price_raw: int) -> Decimal:
        return self.money(size_raw * price_raw)


_RAW_CACHE: dict[tuple[Decimal, int], int] = {}
_RAW_CACHE_MAX = 4096


def _to_raw(
    value: Decimal | str | int, precision: int, scale: int, what: str, instrument_id: str
) -> int:
    if type(value) is int:
        return value * scale
    if type(value) is not Decimal or not value.is_finite():
        return _convert(value, precision, what, instrument_id)
    # strategies convert the same few sizes over and over: remember them
    key = (value, precision)
    cached = _RAW_CACHE.get(key)
    if cached is not None:
        return cached
    raw = _convert(value, precision, what, instrument_id)
    if len(_RAW_CACHE) >= _RAW_CACHE_MAX:
        _RAW_CACHE.clear()
    _RAW_CACHE[key] = raw
    return raw


def _convert(value: Decimal | str | int, precision: int, what: str, instrument_id: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"{instrument_id}: {what} must be Decimal, str or int, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{instrument_id}: {what} {value} is not a finite number")
    scaled = number.scaleb(precision)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{instrument_id}: {what} {value} has more than {precision} decimals")
    return int(scaled)

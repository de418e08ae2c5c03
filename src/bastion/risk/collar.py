"""The price collar: a new price against a reference, ``PRICE_COLLAR`` beyond it and
``NO_REFERENCE_PRICE`` without a fresh reference.

- ``collar_reference = "mid"`` / ``"touch"``: the last quote's mid, or the touch on the
  order's side (the ask for a buy, the bid for a sell); ``collar_pct`` and
  ``collar_ticks`` bound the distance. The quote must be fresh
  (``reference_max_age_ms``).
- ``collar_reference = "last"``: the instrument's last trade price
  (``Kernel.last_trades``: prints from the venue's market data, or the in-process
  venue's own matches), with ``collar_pct`` / ``collar_ticks`` as around the mid. The
  trade must be fresh; with none, a market order and a collared limit order are
  denied ``NO_REFERENCE_PRICE``.
- ``collar_reference = "band"``: a limit price must lie within ``collar_band_low`` ..
  ``collar_band_high`` (edges included); no market data is needed. A market order is
  checked at the touch it would take: the quote must be fresh and that price inside
  the band.

``check_collar`` is the rule, once: everything is compared in raw integers (prices
doubled, so a mid is an integer), and a denial keeps the figures it compared; its
message is built from them only when the denial is published.
"""

from __future__ import annotations

from decimal import Decimal
from typing import final

from bastion.model.data import TradeTick
from bastion.model.enums import OrderSide
from bastion.risk.limits import InstrumentLimits
from bastion.risk.reasons import Denial, DenyReason

_BUY = OrderSide.BUY

# what a missing reference was (``NoReference``)
_QUOTE = 0
_LAST = 1
_BAND = 2


def check_collar(
    limits: InstrumentLimits,
    side: OrderSide,
    price: int | None,
    now: int,
    has_quote: bool,
    quote_ts: int,
    bid: int,
    ask: int,
    trades: dict[str, TradeTick],
) -> Denial | None:
    """A new price (``price`` None: a market order) against the instrument's reference:
    its last quote (``quote_ts``, ``bid``, ``ask``, if ``has_quote``) or its last trade
    print (in ``trades``)."""
    max_age = limits.max_age_ns
    if limits.collar_band:
        low = limits.band_low_raw
        high = limits.band_high_raw
        assert low is not None and high is not None
        if price is not None:
            if low <= price <= high:
                return None
            return BandDenied(limits, side, price, False)
        if not has_quote or (max_age is not None and now - quote_ts > max_age):
            return NoReference(limits, price, _BAND)
        touch = ask if side is _BUY else bid
        if low <= touch <= high:
            return None
        return BandDenied(limits, side, touch, True)
    if limits.collar_last:
        trade = trades.get(limits.instrument.id)
        if trade is None or (max_age is not None and now - trade.ts_ns > max_age):
            return NoReference(limits, price, _LAST)
        if price is None:
            return None
        ref2 = 2 * trade.price
    else:
        if not has_quote or (max_age is not None and now - quote_ts > max_age):
            return NoReference(limits, price, _QUOTE)
        if price is None:
            return None
        ref2 = 2 * (ask if side is _BUY else bid) if limits.collar_touch else bid + ask
    dev2 = 2 * price - ref2
    if dev2 < 0:
        dev2 = -dev2
    ticks2 = limits.collar_ticks2
    if ticks2 is not None and dev2 > ticks2:
        return CollarDenied(limits, price, ref2, True)
    pct_num = limits.collar_pct_num
    if pct_num is not None and dev2 * limits.collar_pct_den100 > pct_num * ref2:
        return CollarDenied(limits, price, ref2, False)
    return None


@final
class CollarDenied(Denial):
    """A limit price beyond ``collar_ticks`` (``by_ticks``) or ``collar_pct`` from the
    doubled reference ``ref2``."""

    def __init__(self, limits: InstrumentLimits, price: int, ref2: int, by_ticks: bool) -> None:
        super().__init__(DenyReason.PRICE_COLLAR)
        self.limits = limits
        self.price = price
        self.ref2 = ref2
        self.by_ticks = by_ticks

    def message(self) -> str:
        limits = self.limits
        config = limits.config
        instrument = limits.instrument
        limit = (
            f"collar_ticks {config.collar_ticks}"
            if self.by_ticks
            else f"collar_pct {config.collar_pct}"
        )
        price = instrument.price(self.price)
        if limits.collar_last:
            reference = instrument.price(self.ref2 // 2)
            source = "last trade"
        else:
            reference = instrument.price(self.ref2) / 2
            source = f"{config.collar_reference} reference"
        distance = abs(price - reference)
        pct = (distance * 100 / reference).quantize(Decimal("0.001")) if reference else "inf"
        text = f"limit price {price} is {distance} ({pct}%) from the {source} {reference}"
        if limits.collar_last:
            text += f" of {instrument.id}"
        return f"{text}: beyond {limit}"


@final
class BandDenied(Denial):
    """A limit price, or the touch a market order would take (``market``), outside the
    collar band."""

    def __init__(self, limits: InstrumentLimits, side: OrderSide, price: int, market: bool) -> None:
        super().__init__(DenyReason.PRICE_COLLAR)
        self.limits = limits
        self.side = side
        self.price = price
        self.market = market

    def message(self) -> str:
        limits = self.limits
        instrument = limits.instrument
        band = _band(limits)
        if not self.market:
            return (
                f"limit price {instrument.price(self.price)} is outside the collar band "
                f"{band} of {instrument.id}"
            )
        name = "ask" if self.side is _BUY else "bid"
        return (
            f"market {self.side.value.lower()} would take the {name} "
            f"{instrument.price(self.price)}, outside the collar band {band} of {instrument.id}"
        )


@final
class NoReference(Denial):
    """No fresh reference: quote, last trade, or (a market order in a band) quote."""

    def __init__(self, limits: InstrumentLimits, price: int | None, kind: int) -> None:
        super().__init__(DenyReason.NO_REFERENCE_PRICE)
        self.limits = limits
        self.price = price
        self.kind = kind

    def message(self) -> str:
        limits = self.limits
        iid = limits.instrument.id
        age = limits.config.reference_max_age_ms
        aged = "" if age is None else f" (reference_max_age_ms {age})"
        what = "market order" if self.price is None else "limit price"
        if self.kind == _BAND:
            return (
                f"no fresh quote for {iid}{aged} to check the market order against its "
                f"collar band {_band(limits)}"
            )
        if self.kind == _LAST:
            return (
                f"no fresh last trade for {iid}{aged} to check the {what} against "
                '(collar_reference = "last")'
            )
        return f"no fresh quote for {iid}{aged} to check the {what} against"


def _band(limits: InstrumentLimits) -> str:
    config = limits.config
    return f"[{config.collar_band_low}, {config.collar_band_high}]"

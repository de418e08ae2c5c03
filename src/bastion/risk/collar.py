"""The price collar's references beyond the quote: the last trade and a fixed band.

- ``collar_reference = "last"``: a limit price is compared with the instrument's last
  trade price (``Kernel.last_trades``: prints from the venue's market data, or the
  in-process venue's own matches), with ``collar_pct`` / ``collar_ticks`` as around
  the mid. The trade must be fresh (``reference_max_age_ms`` on its timestamp); with
  none, a market order and a collared limit order are denied ``NO_REFERENCE_PRICE``.
- ``collar_reference = "band"``: a limit price must lie within ``collar_band_low`` ..
  ``collar_band_high`` (edges included); no market data is needed. A market order is
  checked at the touch it would take (the ask for a buy, the bid for a sell): the
  quote must be fresh and that price inside the band.

``PreTradeChecks.check`` comes here only for an instrument with one of these
references (``InstrumentLimits.collar_other``), so the others pay nothing for it.
Everything is compared in raw integers; messages are built only on a denial.
"""

from __future__ import annotations

from decimal import Decimal

from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide
from bastion.model.instruments import Instrument
from bastion.risk.limits import InstrumentLimits
from bastion.risk.reasons import (
    BRIEF_NO_REFERENCE_PRICE,
    BRIEF_PRICE_COLLAR,
    Denial,
    DenyReason,
)

_BUY = OrderSide.BUY


def check_reference(
    instrument: Instrument,
    limits: InstrumentLimits,
    side: OrderSide,
    price: int | None,
    now: int,
    quote: QuoteTick | None,
    trade: TradeTick | None,
    explain: bool = True,
) -> Denial | None:
    """A new price (``price`` None: a market order) against the last trade or the band.
    ``explain`` False: a denial without its message (``reasons.Denial``)."""
    max_age = limits.max_age_ns
    if limits.collar_band:
        low = limits.band_low_raw
        high = limits.band_high_raw
        assert low is not None and high is not None
        if price is not None:
            if low <= price <= high:
                return None
            if not explain:
                return BRIEF_PRICE_COLLAR
            return DenyReason.PRICE_COLLAR, (
                f"limit price {instrument.price(price)} is outside the collar band "
                f"{_band(limits)} of {instrument.id}"
            )
        if quote is None or (max_age is not None and now - quote.ts_ns > max_age):
            if not explain:
                return BRIEF_NO_REFERENCE_PRICE
            return DenyReason.NO_REFERENCE_PRICE, (
                f"no fresh quote for {instrument.id}{_age(limits)} to check the market "
                f"order against its collar band {_band(limits)}"
            )
        touch = quote.ask if side is _BUY else quote.bid
        if low <= touch <= high:
            return None
        if not explain:
            return BRIEF_PRICE_COLLAR
        name = "ask" if side is _BUY else "bid"
        return DenyReason.PRICE_COLLAR, (
            f"market {side.value.lower()} would take the {name} {instrument.price(touch)}, "
            f"outside the collar band {_band(limits)} of {instrument.id}"
        )
    if trade is None or (max_age is not None and now - trade.ts_ns > max_age):
        if not explain:
            return BRIEF_NO_REFERENCE_PRICE
        what = "market order" if price is None else "limit price"
        return DenyReason.NO_REFERENCE_PRICE, (
            f"no fresh last trade for {instrument.id}{_age(limits)} to check the {what} "
            'against (collar_reference = "last")'
        )
    if price is None:
        return None
    ref2 = 2 * trade.price
    dev2 = 2 * price - ref2
    if dev2 < 0:
        dev2 = -dev2
    config = limits.config
    ticks2 = limits.collar_ticks2
    if ticks2 is not None and dev2 > ticks2:
        if not explain:
            return BRIEF_PRICE_COLLAR
        return DenyReason.PRICE_COLLAR, _last_message(
            instrument, price, trade.price, f"collar_ticks {config.collar_ticks}"
        )
    pct_num = limits.collar_pct_num
    if pct_num is not None and dev2 * limits.collar_pct_den100 > pct_num * ref2:
        if not explain:
            return BRIEF_PRICE_COLLAR
        return DenyReason.PRICE_COLLAR, _last_message(
            instrument, price, trade.price, f"collar_pct {config.collar_pct}"
        )
    return None


def _band(limits: InstrumentLimits) -> str:
    config = limits.config
    return f"[{config.collar_band_low}, {config.collar_band_high}]"


def _age(limits: InstrumentLimits) -> str:
    age = limits.config.reference_max_age_ms
    return "" if age is None else f" (reference_max_age_ms {age})"


def _last_message(instrument: Instrument, price: int, last: int, limit: str) -> str:
    reference = instrument.price(last)
    distance = abs(instrument.price(price) - reference)
    pct = (distance * 100 / reference).quantize(Decimal("0.001")) if reference else "inf"
    return (
        f"limit price {instrument.price(price)} is {distance} ({pct}%) from the last "
        f"trade {reference} of {instrument.id}: beyond {limit}"
    )

"""The order's form and size: the instrument's own venue, quantity on the lot, price
on the tick, ``max_order_quantity`` and ``max_order_notional`` (per instrument).

Each rule is one test returning None or a ``Denial`` that keeps the figures it
compared; its message is built from them only when the denial is published. The
form (venue, lot and tick), which every order of every config passes through, is tested
where ``RiskGate._check_order`` reads the limits (a call would cost more than the three
tests); its denials are here, with the size rules.
"""

from __future__ import annotations

from typing import final

from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.risk.limits import InstrumentLimits
from bastion.risk.reasons import Denial, DenyReason

_BUY = OrderSide.BUY


def check_size(
    limits: InstrumentLimits,
    side: OrderSide,
    quantity: int,
    price: int | None,
    quotes: dict[str, QuoteTick],
) -> Denial | None:
    """``max_order_quantity``, then ``max_order_notional`` at the order's price (a market
    order: at the touch it would take, in the last quote)."""
    max_qty = limits.max_qty_raw
    if max_qty is not None and quantity > max_qty:
        return MaxOrderQuantity(limits, quantity)
    max_notional = limits.max_notional_raw
    if max_notional is not None:
        reference = price
        if reference is None:
            quote = quotes.get(limits.instrument.id)
            if quote is None:
                return Denial(DenyReason.NO_REFERENCE_PRICE, "no quote to value a market order")
            reference = quote.ask if side is _BUY else quote.bid
        if quantity * reference > max_notional:
            return MaxOrderNotional(limits, quantity, reference)
    return None


@final
class WrongVenue(Denial):
    """An order routed to a venue the node has, but not its instrument's: the venue's
    throttle and the strategy's venue permission would be the wrong venue's."""

    def __init__(self, limits: InstrumentLimits, venue: str) -> None:
        super().__init__(DenyReason.WRONG_VENUE)
        self.limits = limits
        self.venue = venue

    def message(self) -> str:
        limits = self.limits
        return f"{limits.instrument.id} trades at venue {limits.venue}, not at {self.venue}"


@final
class InvalidQuantity(Denial):
    def __init__(self, limits: InstrumentLimits, quantity: int) -> None:
        super().__init__(DenyReason.INVALID_QUANTITY)
        self.limits = limits
        self.quantity = quantity

    def message(self) -> str:
        instrument = self.limits.instrument
        return (
            f"quantity {instrument.size(self.quantity)} is not a positive multiple of lot size "
            f"{instrument.lot_size}"
        )


@final
class InvalidPrice(Denial):
    def __init__(self, limits: InstrumentLimits, price: int) -> None:
        super().__init__(DenyReason.INVALID_PRICE)
        self.limits = limits
        self.price = price

    def message(self) -> str:
        instrument = self.limits.instrument
        return (
            f"price {instrument.price(self.price)} is not a positive multiple of tick size "
            f"{instrument.tick_size}"
        )


@final
class MaxOrderQuantity(Denial):
    def __init__(self, limits: InstrumentLimits, quantity: int) -> None:
        super().__init__(DenyReason.MAX_ORDER_QUANTITY)
        self.limits = limits
        self.quantity = quantity

    def message(self) -> str:
        limits = self.limits
        return (
            f"quantity {limits.instrument.size(self.quantity)} exceeds max_order_quantity "
            f"{limits.config.max_order_quantity}"
        )


@final
class MaxOrderNotional(Denial):
    def __init__(self, limits: InstrumentLimits, quantity: int, reference: int) -> None:
        super().__init__(DenyReason.MAX_ORDER_NOTIONAL)
        self.limits = limits
        self.quantity = quantity
        self.reference = reference

    def message(self) -> str:
        limits = self.limits
        notional = limits.instrument.notional(self.quantity, self.reference)
        return f"notional {notional} exceeds max_order_notional {limits.config.max_order_notional}"

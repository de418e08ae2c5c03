"""Self-trade prevention (``self_trade = "deny" | "cancel_resting"``): an order must not
trade with a resting order of the node on the other side.

``crosses`` is the rule, once: ``PreTradeChecks.check`` asks it of the best resting
price on the other side (kept by ``risk.book``), and only when that one is crossed
are the crossed orders looked for (``crossing_orders``): named by the denial's message
(``deny``), or canceled before the order goes (``cancel_resting``).
"""

from __future__ import annotations

from typing import final

from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.risk.book import Working, WorkingBook
from bastion.risk.reasons import Denial, DenyReason

_NO_WORKING: dict[str, Working] = {}


def crossing_orders(
    book: WorkingBook, order: Order, is_buy: bool, price: int | None
) -> list[Working]:
    """The node's resting orders that ``order`` would cross, in sending order."""
    crossing: list[Working] = []
    # the book's own copies of side and resting price: the scan reads no order but the
    # crossed ones (each object it touches can be a cache miss on the order path)
    for working in book.by_instrument.get(order.instrument_id, _NO_WORKING).values():
        rest = working.rest_px
        if rest is None or working.is_buy is is_buy:
            continue
        if crosses(is_buy, price, rest) and working.order is not order:
            crossing.append(working)
    return crossing


def crosses(is_buy: bool, price: int | None, rest: int) -> bool:
    """The self-trade rule: whether an order (``price`` None: at market) would trade with
    a resting order of the other side at ``rest``."""
    return price is None or (price >= rest if is_buy else price <= rest)


@final
class SelfTradeDenied(Denial):
    """``SELF_TRADE`` (``self_trade = "deny"``): some resting order of the node, on the
    other side, is at or beyond the order's price; the message names the first one sent."""

    def __init__(
        self,
        book: WorkingBook,
        order: Order,
        instrument: Instrument,
        is_buy: bool,
        price: int | None,
    ) -> None:
        super().__init__(DenyReason.SELF_TRADE)
        self.book = book
        self.order = order
        self.instrument = instrument
        self.is_buy = is_buy
        self.price = price

    def message(self) -> str:
        crossing = crossing_orders(self.book, self.order, self.is_buy, self.price)
        side = "SELL" if self.is_buy else "BUY"
        if not crossing:  # the best price crossed is always some order's: not reached
            return f"would cross the node's own resting {side} orders (self_trade = deny)"
        first = crossing[0]
        assert first.rest_px is not None
        return (
            f"would cross the node's own resting {side} order {first.order.client_order_id} "
            f"at {self.instrument.price(first.rest_px)} (self_trade = deny)"
        )

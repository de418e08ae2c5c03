"""The matching engine behind the simulated venue, one book per instrument.

The book knows the market only through the quotes (or bars) it is fed: the
touch and its displayed size. Orders from the node match against that:

- a market order fills at the touch, up to the size still displayed on the
  current quote (liquidity taken by earlier orders on the same quote is gone);
  the remainder is canceled, or rests and fills on later quotes (by config);
- a limit order that crosses the touch on arrival fills as taker at the touch
  (price improvement kept), the rest rests; a resting buy fills, as maker, at
  its limit price when the ask falls to or below it (sells mirror this);
- IOC orders never rest: whatever does not fill at once is canceled.

Resting orders are kept sorted by price then arrival, so a quote that crosses
nothing costs two comparisons however many orders rest.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable

from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_MARKET = OrderType.MARKET


class SimOrder:
    """The venue's own copy of an order (the venue never reads the node's objects)."""

    __slots__ = (
        "client_order_id",
        "filled",
        "instrument_id",
        "is_market",
        "price",
        "quantity",
        "seq",
        "side",
        "strategy_id",
        "tif",
        "venue_order_id",
    )

    def __init__(
        self,
        client_order_id: str,
        strategy_id: str,
        instrument_id: str,
        side: OrderSide,
        order_type: OrderType,
        tif: TimeInForce,
        quantity: int,
        price: int | None,
        venue_order_id: str,
        seq: int,
    ) -> None:
        self.client_order_id = client_order_id
        self.strategy_id = strategy_id
        self.instrument_id = instrument_id
        self.side = side
        self.is_market = order_type is _MARKET
        self.tif = tif
        self.quantity = quantity
        self.price = price
        self.venue_order_id = venue_order_id
        self.seq = seq
        self.filled = 0

    @property
    def leaves(self) -> int:
        return self.quantity - self.filled


# A fill callback: (order, quantity, price, is_maker)
FillSink = Callable[[SimOrder, int, int, bool], None]

_BIG = 1 << 62


def _buy_key(order: SimOrder) -> tuple[int, int]:
    # market orders first, then highest price, then earliest arrival
    return (-_BIG if order.is_market else -(order.price or 0), order.seq)


def _sell_key(order: SimOrder) -> tuple[int, int]:
    return (-_BIG if order.is_market else (order.price or 0), order.seq)


class OrderBook:
    """Top of book from market data plus the node's resting orders for one instrument."""

    __slots__ = (
        "ask",
        "ask_avail",
        "bid",
        "bid_avail",
        "buys",
        "has_market",
        "quote",
        "sells",
        "touch_of",
    )

    def __init__(self) -> None:
        # ``quote`` is the latest market data; the touch below (prices and the size
        # still available) is taken from it lazily, only when an order needs it,
        # so a quote costs the book one attribute store.
        self.quote: QuoteTick | None = None
        self.touch_of: QuoteTick | None = None
        self.bid = 0
        self.ask = 0
        self.bid_avail = 0
        self.ask_avail = 0
        self.has_market = False
        self.buys: list[SimOrder] = []
        self.sells: list[SimOrder] = []

    def sync(self) -> None:
        """Make the touch that of the latest quote (fresh displayed sizes if it is new)."""
        quote = self.quote
        if quote is self.touch_of or quote is None:
            return
        self.touch_of = quote
        self.bid = quote.bid
        self.ask = quote.ask
        self.bid_avail = quote.bid_size
        self.ask_avail = quote.ask_size
        self.has_market = True

    # -- taking liquidity ----------------------------------------------------------
    def take(self, order: SimOrder, on_fill: FillSink) -> None:
        """Fill as much of ``order`` as the touch allows, as taker."""
        self.sync()
        if not self.has_market:
            return
        if order.side is _BUY:
            if self.ask_avail <= 0 or (not order.is_market and order.price < self.ask):  # type: ignore[operator]
                return
            leaves = order.quantity - order.filled
            qty = leaves if leaves < self.ask_avail else self.ask_avail
            self.ask_avail -= qty
            on_fill(order, qty, self.ask, False)
        else:
            if self.bid_avail <= 0 or (not order.is_market and order.price > self.bid):  # type: ignore[operator]
                return
            leaves = order.quantity - order.filled
            qty = leaves if leaves < self.bid_avail else self.bid_avail
            self.bid_avail -= qty
            on_fill(order, qty, self.bid, False)

    # -- resting orders ------------------------------------------------------------
    def rest(self, order: SimOrder) -> None:
        if order.side is _BUY:
            insort(self.buys, order, key=_buy_key)
        else:
            insort(self.sells, order, key=_sell_key)

    def remove(self, order: SimOrder) -> bool:
        side = self.buys if order.side is _BUY else self.sells
        for i, resting in enumerate(side):
            if resting is order:
                del side[i]
                return True
        return False

    def match_resting(self, on_fill: FillSink) -> None:
        """Fill resting orders the current touch crosses, best first, up to displayed size."""
        self.sync()
        buys = self.buys
        while buys and self.ask_avail > 0:
            best = buys[0]
            limit = best.price
            if limit is None:  # a resting market order
                price, maker = self.ask, False
            elif limit >= self.ask:
                price, maker = limit, True
            else:
                break
            leaves = best.quantity - best.filled
            qty = leaves if leaves < self.ask_avail else self.ask_avail
            self.ask_avail -= qty
            if qty == leaves:
                del buys[0]
            on_fill(best, qty, price, maker)
        sells = self.sells
        while sells and self.bid_avail > 0:
            best = sells[0]
            limit = best.price
            if limit is None:
                price, maker = self.bid, False
            elif limit <= self.bid:
                price, maker = limit, True
            else:
                break
            leaves = best.quantity - best.filled
            qty = leaves if leaves < self.bid_avail else self.bid_avail
            self.bid_avail -= qty
            if qty == leaves:
                del sells[0]
            on_fill(best, qty, price, maker)

    def match_bar(self, high: int, low: int, on_fill: FillSink) -> None:
        """Fill resting limit orders a bar's range traded through, at their limit price."""
        while self.buys and not self.buys[0].is_market and self.buys[0].price >= low:  # type: ignore[operator]
            best = self.buys.pop(0)
            on_fill(best, best.leaves, best.price, True)  # type: ignore[arg-type]
        while self.sells and not self.sells[0].is_market and self.sells[0].price <= high:  # type: ignore[operator]
            best = self.sells.pop(0)
            on_fill(best, best.leaves, best.price, True)  # type: ignore[arg-type]

    def resting(self) -> list[SimOrder]:
        return [*self.buys, *self.sells]

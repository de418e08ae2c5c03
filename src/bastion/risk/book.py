"""The working orders the gate has sent, summed so a check costs O(1), not O(open orders).

Every order reaches a venue through the gate, which adds it here right after the
OMS marks it SUBMITTED (in flight counts from that moment). Afterwards each event
that can change what is left of an order (fill, update, cancel, expiry, reject)
resynchronizes that order's contribution (a fill comes through ``risk.fills``, the
others from the bus) from the order itself, so the sums always
equal a recount over ``ExecutionEngine.open_orders``: unfilled quantity per
instrument and side, per (strategy, instrument) and side (``Sides``), (for the credit limits)
working notional on the common integer scale of ``risk.credit``, for the node and for
each risk account, and (for self-trade prevention) the best resting limit price on
each side of each instrument.
"""

from __future__ import annotations

import heapq
from typing import final

from bastion.bus import MessageBus
from bastion.model.enums import OrderSide
from bastion.model.events import (
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from bastion.model.orders import Order

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY

# fills reach ``on_event`` through ``risk.fills`` (``PreTradeChecks.on_fill``)
_EVENTS = (OrderCanceled, OrderExpired, OrderRejected)
_AMEND_ANSWERS = (OrderUpdated, OrderModifyRejected)


class RestingPrices:
    """The limit prices of the working orders on one side of one instrument, and the
    best of them (highest buy, lowest sell) as an attribute: a count per price and a
    heap whose entries for prices no longer counted are dropped when they reach the
    top (O(log n) amortized per change, nothing per check)."""

    __slots__ = ("_counts", "_heap", "_sign", "best")

    def __init__(self, *, buys: bool) -> None:
        self._sign = -1 if buys else 1  # heapq is a min-heap: buys are stored negated
        self._counts: dict[int, int] = {}
        self._heap: list[int] = []
        self.best: int | None = None
        """The highest buy or the lowest sell price, None when there is none."""

    def add(self, price: int) -> None:
        counts = self._counts
        count = counts.get(price, 0)
        counts[price] = count + 1
        if not count:
            heap = self._heap
            if len(heap) >= 2 * len(counts) + 32:  # many dropped prices: rebuild
                heap = self._heap = [self._sign * p for p in counts]
                heapq.heapify(heap)
            else:
                heapq.heappush(heap, self._sign * price)
            self.best = self._sign * heap[0]

    def remove(self, price: int) -> None:
        counts = self._counts
        count = counts[price]
        if count > 1:
            counts[price] = count - 1
            return
        del counts[price]
        if price == self.best:
            heap = self._heap
            sign = self._sign
            while heap and sign * heap[0] not in counts:
                heapq.heappop(heap)
            self.best = sign * heap[0] if heap else None


class Sides:
    """The unfilled quantity of working orders on each side: of one instrument, or of
    one strategy in one instrument (a check reads the attributes, no key is hashed);
    and the position there, the node's or the strategy's (kept by ``risk.checks``)."""

    __slots__ = ("buys", "position", "sells")

    def __init__(self) -> None:
        self.buys = 0
        self.sells = 0
        self.position = 0


class WorkingSums:
    """The working notional of one risk account's orders (common scale of ``risk.credit``):
    all of them, and the buys."""

    __slots__ = ("buy_notional", "exposure")

    def __init__(self) -> None:
        self.exposure = 0
        self.buy_notional = 0


class Working:
    """One open order's current contribution to the sums."""

    __slots__ = (
        "account",
        "amend_px2",
        "amend_qty",
        "instrument",
        "is_buy",
        "lane",
        "leaves",
        "notional",
        "order",
        "px2",
        "rest_px",
    )

    def __init__(
        self,
        order: Order,
        px2: int,
        instrument: Sides,
        lane: Sides,
        account: WorkingSums | None = None,
    ) -> None:
        self.order = order
        self.instrument = instrument  # the sums it adds to: its instrument's
        self.lane = lane  # and its strategy's in that instrument
        self.account = account  # its strategy's risk account, if in one
        self.is_buy = order.side is _BUY
        self.leaves = 0
        self.notional = 0
        self.px2 = px2  # doubled price valuing a market order (fixed when it was sent)
        # an amend in flight: until the venue answers, the larger of old and new counts
        self.amend_qty = 0
        self.amend_px2 = 0
        self.rest_px: int | None = None  # the limit price counted in ``RestingPrices``


@final
class WorkingBook:
    """Sums of the unfilled quantity (and notional) of the node's open orders."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        weights: dict[str, int] | None,
        resting: bool = False,
        accounts: dict[str, WorkingSums] | None = None,
    ) -> None:
        """``resting``: keep the best resting price of each side (``resting``);
        ``accounts``: the working sums of each strategy's risk account (with ``weights``),
        kept too."""
        self._weights = weights
        self._resting = resting
        self._accounts = accounts or None
        self.resting_buys: dict[str, RestingPrices] = {}
        self.resting_sells: dict[str, RestingPrices] = {}
        self.instruments: dict[str, Sides] = {}
        self.lanes: dict[tuple[str, str], Sides] = {}  # by (strategy, instrument)
        self.exposure = 0  # working notional, common scale (only with weights)
        self.buy_notional = 0
        self.by_id: dict[str, Working] = {}
        self.by_instrument: dict[str, dict[str, Working]] = {}
        self._bus = bus
        for event_type in _EVENTS:
            bus.subscribe(event_type, self.on_event)
        for answer_type in _AMEND_ANSWERS:
            bus.subscribe(answer_type, self.on_amend_answer)

    def detach(self) -> None:
        """Stop following order events (a new book replaces this one)."""
        for event_type in _EVENTS:
            self._bus.unsubscribe(event_type, self.on_event)
        for answer_type in _AMEND_ANSWERS:
            self._bus.unsubscribe(answer_type, self.on_amend_answer)

    def add(self, order: Order, market_px2: int | None) -> None:
        """Count an order just sent (``market_px2``: the doubled reference of a market order)."""
        accounts = self._accounts
        sid = order.strategy_id
        iid = order.instrument_id
        entry = Working(
            order,
            market_px2 or 0,
            self.sides(iid),
            self.lane_sides(sid, iid),
            None if accounts is None else accounts.get(sid),
        )
        self.by_id[order.client_order_id] = entry
        by_instrument = self.by_instrument.get(order.instrument_id)
        if by_instrument is None:
            by_instrument = self.by_instrument[order.instrument_id] = {}
        by_instrument[order.client_order_id] = entry
        self._resync(entry)

    def amend(self, order: Order, quantity: int, price: int | None) -> None:
        """An amend was sent: count the larger size and price until the venue answers."""
        entry = self.by_id.get(order.client_order_id)
        if entry is not None:
            # two amends in flight: the larger of both counts until an answer
            entry.amend_qty = max(entry.amend_qty, quantity)
            entry.amend_px2 = max(entry.amend_px2, 0 if price is None else 2 * price)
            self._resync(entry)

    def on_amend_answer(self, event: OrderEvent) -> None:
        entry = self.by_id.get(event.client_order_id)
        if entry is not None:
            entry.amend_qty = entry.amend_px2 = 0
            self._resync(entry)

    def on_event(self, event: OrderEvent) -> None:
        entry = self.by_id.get(event.client_order_id)
        if entry is not None:
            self._resync(entry)

    def _resync(self, entry: Working) -> None:
        order = entry.order
        is_open = order.is_open
        leaves = max(order.quantity, entry.amend_qty) - order.filled_qty if is_open else 0
        delta = leaves - entry.leaves
        if delta:
            if entry.is_buy:
                entry.instrument.buys += delta
                entry.lane.buys += delta
            else:
                entry.instrument.sells += delta
                entry.lane.sells += delta
            entry.leaves = leaves
        weights = self._weights
        if weights is not None:
            price = order.price
            px2 = entry.px2 if price is None else max(2 * price, entry.amend_px2)
            notional = leaves * px2
            notional *= weights[order.instrument_id]
            change = notional - entry.notional
            if change:
                self.exposure += change
                if entry.is_buy:
                    self.buy_notional += change
                account = entry.account
                if account is not None:
                    account.exposure += change
                    if entry.is_buy:
                        account.buy_notional += change
                entry.notional = notional
        if self._resting:
            rest = order.price if is_open else None
            if rest != entry.rest_px:
                self._move_resting(entry, rest)
        if not is_open:
            del self.by_id[order.client_order_id]
            del self.by_instrument[order.instrument_id][order.client_order_id]

    def _move_resting(self, entry: Working, price: int | None) -> None:
        prices = self.resting(entry.order.instrument_id, buys=entry.is_buy)
        if entry.rest_px is not None:
            prices.remove(entry.rest_px)
        if price is not None:
            prices.add(price)
        entry.rest_px = price

    def sides(self, instrument_id: str) -> Sides:
        """The working quantity of an instrument's orders, per side."""
        sides = self.instruments.get(instrument_id)
        if sides is None:
            sides = self.instruments[instrument_id] = Sides()
        return sides

    def lane_sides(self, strategy_id: str, instrument_id: str) -> Sides:
        """The working quantity of one strategy's orders in an instrument, per side."""
        key = (strategy_id, instrument_id)
        sides = self.lanes.get(key)
        if sides is None:
            sides = self.lanes[key] = Sides()
        return sides

    def resting(self, instrument_id: str, *, buys: bool) -> RestingPrices:
        """The resting limit prices of one side of an instrument (kept with ``resting``)."""
        table = self.resting_buys if buys else self.resting_sells
        prices = table.get(instrument_id)
        if prices is None:
            prices = table[instrument_id] = RestingPrices(buys=buys)
        return prices

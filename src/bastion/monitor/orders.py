"""Orders counted and timed for monitoring, off the order path.

Orders sent are counted from the OMS's own list of orders, read by the sampler
(``settle``): nothing is added to the path from a quote to an order for them. The
order events that come back (accepted, denied, rejected, canceled, filled) and
``TradingStateChanged`` are bus subscriptions, each a list's ``append``: the event is
noted as it is published and counted by the sampler, between events. Quotes are never
subscribed to.

Latencies come from the events' own timestamps (the node's clock): order-to-ack is
``OrderAccepted.ts_ns - order.ts_init``; order-to-fill the first
``OrderFilled.ts_ns - order.ts_init``; tick-to-order is ``OrderSubmitted.ts_ns`` minus
the ``ts_ns`` of the instrument's last quote then (feeds stamp quotes on receipt). That
one must be read as the order goes out, on the order path itself, so it is sampled: the
first ``TICK_TO_ORDER_PER_SAMPLE`` orders of each sample interval are timed (all of them
at the rates most nodes trade at). Orders created before the monitor started
(recovered, adopted) are neither counted as sent nor timed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bastion.bus import MessageBus
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderStatus, TradingState
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    TradingStateChanged,
)
from bastion.model.orders import Order

Pair = tuple[str, str]
Noted = (
    OrderAccepted | OrderCanceled | OrderDenied | OrderFilled | OrderRejected | TradingStateChanged
)
NOTED_EVENTS: tuple[type[Noted], ...] = (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    TradingStateChanged,
)
_FILLED = OrderStatus.FILLED
_INITIALIZED = OrderStatus.INITIALIZED
_DENIED = OrderStatus.DENIED
_HALTED = TradingState.HALTED


class OrderStats:
    """Counts per (strategy, venue) (denials per (strategy, reason)) since the node
    started, and the raw latencies in nanoseconds since ``take_latencies`` last ran."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        order: Callable[[str], Order | None],
        orders_after: Callable[[int], list[Order]],
        last_quotes: Mapping[str, QuoteTick],
        started_ns: int,
    ) -> None:
        self._order = order
        self._orders_after = orders_after
        self._started_ns = started_ns
        self.submitted: dict[Pair, int] = {}
        self.accepted: dict[Pair, int] = {}
        self.denied: dict[Pair, int] = {}
        self.rejected: dict[Pair, int] = {}
        self.canceled: dict[Pair, int] = {}
        self.filled: dict[Pair, int] = {}
        """Orders completely filled."""
        self.fills: dict[Pair, int] = {}
        self.kill_activations = 0
        self.tick_to_order_ns: list[int] = []
        self.order_to_ack_ns: list[tuple[str, int]] = []
        self.order_to_fill_ns: list[tuple[str, int]] = []
        self._seen_orders = len(orders_after(0))  # created before: not counted
        self._unsent: list[Order] = []  # created, not sent yet when last read
        self._events: list[Noted] = []
        for event_type in NOTED_EVENTS:
            bus.subscribe(event_type, self._events.append)
        self._timer = _TickToOrder(bus, last_quotes, self.tick_to_order_ns)
        self._timer.arm()

    def settle(self) -> None:
        """Count what happened since the last call (the sampler calls it first), and time
        the next interval's first orders."""
        self._settle_sent()
        if self._events:
            self._settle_events()
        self._timer.arm()

    def take_latencies(self) -> tuple[list[int], list[tuple[str, int]], list[tuple[str, int]]]:
        """The latencies noted since the last call (tick-to-order, and per venue
        order-to-ack and order-to-fill), handed over and forgotten here."""
        self.settle()
        taken = (list(self.tick_to_order_ns), self.order_to_ack_ns, self.order_to_fill_ns)
        del self.tick_to_order_ns[:]  # the timer holds this very list
        self.order_to_ack_ns, self.order_to_fill_ns = [], []
        return taken

    def _settle_sent(self) -> None:
        fresh = self._orders_after(self._seen_orders)
        self._seen_orders += len(fresh)
        candidates = self._unsent + fresh if self._unsent else fresh
        self._unsent = []
        started = self._started_ns
        submitted = self.submitted
        for order in candidates:
            status = order.status
            if status is _INITIALIZED:
                self._unsent.append(order)
            elif status is not _DENIED and order.ts_init >= started:
                key = (order.strategy_id, order.venue)
                submitted[key] = submitted.get(key, 0) + 1

    def _settle_events(self) -> None:
        events = self._events
        taken = events[:]
        del events[:]  # the bus holds this list's append
        order_of = self._order
        started = self._started_ns
        fills: dict[str, list[OrderFilled]] = {}
        for event in taken:
            if isinstance(event, TradingStateChanged):
                if event.state is _HALTED:
                    self.kill_activations += 1
                continue
            if isinstance(event, OrderDenied):
                _count(self.denied, event.strategy_id, event.reason)
                continue
            order = order_of(event.client_order_id)
            venue = "" if order is None else order.venue
            sid = event.strategy_id
            if isinstance(event, OrderAccepted):
                _count(self.accepted, sid, venue)
                if order is not None and order.ts_init >= started:
                    self.order_to_ack_ns.append((venue, event.ts_ns - order.ts_init))
            elif isinstance(event, OrderRejected):
                _count(self.rejected, sid, venue)
            elif isinstance(event, OrderCanceled):
                _count(self.canceled, sid, venue)
            elif isinstance(event, OrderFilled):
                _count(self.fills, sid, venue)
                if order is not None:
                    fills.setdefault(event.client_order_id, []).append(event)
        for client_order_id, its_fills in fills.items():
            order = order_of(client_order_id)
            assert order is not None
            # the fills it had before these: none means the first of these was its first
            before = order.filled_qty - sum(fill.last_qty for fill in its_fills)
            if before == 0 and order.ts_init >= started:
                self.order_to_fill_ns.append((order.venue, its_fills[0].ts_ns - order.ts_init))
            if order.status is _FILLED:  # these fills include the one that completed it
                _count(self.filled, order.strategy_id, order.venue)


TICK_TO_ORDER_PER_SAMPLE = 64
"""Orders timed from their quote per sample interval (``_TickToOrder``)."""


class _TickToOrder:
    """Times orders from the quote they answered: subscribed to ``OrderSubmitted`` (on
    the order path) only until it has timed ``TICK_TO_ORDER_PER_SAMPLE`` of them, armed
    again by each sample, so a node sending thousands of orders a second pays for a few."""

    def __init__(
        self, bus: MessageBus, last_quotes: Mapping[str, QuoteTick], out: list[int]
    ) -> None:
        self._bus = bus
        self._quote = last_quotes.get
        self._out = out
        self._left = 0

    def arm(self) -> None:
        if self._left == 0:
            self._bus.subscribe(OrderSubmitted, self._note)
        self._left = TICK_TO_ORDER_PER_SAMPLE

    def _note(self, event: OrderSubmitted) -> None:
        quote = self._quote(event.instrument_id)
        if quote is not None:
            self._out.append(event.ts_ns - quote.ts_ns)
        self._left -= 1
        if self._left == 0:
            self._bus.unsubscribe(OrderSubmitted, self._note)


def _count(counts: dict[Pair, int], first: str, second: str) -> None:
    key = (first, second)
    counts[key] = counts.get(key, 0) + 1

"""Order and trading-state events counted for monitoring, as bus subscribers.

Only order events and ``TradingStateChanged`` are subscribed to, never quotes, and each
subscriber is a list's ``append``: the event is noted as it is published and counted by
the sampler (``settle``), between events, so the order path pays a C call per event.
``OrderSubmitted`` is noted with the instrument's last quote (the one the order
answered), by a small function (about 60 ns).

Latencies come from the events' own timestamps (the node's clock): tick-to-order is
``OrderSubmitted.ts_ns`` minus the ``ts_ns`` of that quote (feeds stamp quotes on
receipt); order-to-ack is ``OrderAccepted.ts_ns - order.ts_init``; order-to-fill the
first ``OrderFilled.ts_ns - order.ts_init``. Orders created before the monitor started
(recovered ones) are counted but not timed.
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
_HALTED = TradingState.HALTED


class OrderStats:
    """Counts per (strategy, venue) (denials per (strategy, reason)) since the node
    started, and the raw latencies in nanoseconds since ``take_latencies`` last ran."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        order: Callable[[str], Order | None],
        last_quotes: Mapping[str, QuoteTick],
        started_ns: int,
    ) -> None:
        self._order = order
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
        self._sent: list[tuple[OrderSubmitted, QuoteTick | None]] = []
        self._events: list[Noted] = []
        bus.subscribe(OrderSubmitted, _noter(self._sent, last_quotes))
        for event_type in NOTED_EVENTS:
            bus.subscribe(event_type, self._events.append)

    def settle(self) -> None:
        """Count the events noted since the last call (the sampler calls it first)."""
        if self._sent:
            self._settle_sent()
        if self._events:
            self._settle_events()

    def take_latencies(self) -> tuple[list[int], list[tuple[str, int]], list[tuple[str, int]]]:
        """The latencies noted since the last call (tick-to-order, and per venue
        order-to-ack and order-to-fill), handed over and forgotten here."""
        self.settle()
        taken = (self.tick_to_order_ns, self.order_to_ack_ns, self.order_to_fill_ns)
        self.tick_to_order_ns, self.order_to_ack_ns, self.order_to_fill_ns = [], [], []
        return taken

    def _settle_sent(self) -> None:
        sent = self._sent
        taken = sent[:]
        del sent[:]  # the handler holds this very list
        submitted = self.submitted
        latencies = self.tick_to_order_ns
        for event, quote in taken:
            key = (event.strategy_id, event.venue)
            submitted[key] = submitted.get(key, 0) + 1
            if quote is not None:
                latencies.append(event.ts_ns - quote.ts_ns)

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


def _noter(
    sent: list[tuple[OrderSubmitted, QuoteTick | None]], last_quotes: Mapping[str, QuoteTick]
) -> Callable[[OrderSubmitted], None]:
    """The ``OrderSubmitted`` handler: the event and the instrument's last quote (the one
    the order answered), noted for ``settle``; its lookups bound once, as defaults."""

    def note(
        event: OrderSubmitted,
        append: Callable[[tuple[OrderSubmitted, QuoteTick | None]], None] = sent.append,
        quote: Callable[[str], QuoteTick | None] = last_quotes.get,
    ) -> None:
        append((event, quote(event.instrument_id)))

    return note


def _count(counts: dict[Pair, int], first: str, second: str) -> None:
    key = (first, second)
    counts[key] = counts.get(key, 0) + 1

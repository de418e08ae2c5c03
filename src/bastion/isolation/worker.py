"""A strategy process: ``python -m bastion.isolation.worker FD``.

It reads its ``Start`` from the channel (file descriptor ``FD``, the only one of the
core it has), confines itself (``sandbox.confine``), and only then imports the
strategy files. From then on it serves its strategies: quotes, bars and order events
in, order commands out, each batch of inputs answered with ``Done`` (the core's
watchdog counts them). What the strategies see of the node is ``WorkerContext``:
copies of their orders, positions and quotes, kept current from the core's
messages; nothing in this process reaches the core except through the channel.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import select
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import structlog

from bastion.clock import Cancelable, Clock, TimerCallback
from bastion.errors import StrategyError
from bastion.isolation import protocol as p
from bastion.isolation.sandbox import confine
from bastion.logs import configure_logging
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import TERMINAL_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import (
    FeedStatus,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderPendingCancel,
    OrderPendingReplace,
    OrderSubmitted,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import InvalidTransition, Order
from bastion.portfolio.portfolio import Portfolio
from bastion.recovery.state import order_from_state, position_from_state
from bastion.strategy.base import Strategy
from bastion.strategy.config import StrategyConfig
from bastion.strategy.runner import encode_state, load_state, load_strategy

RECV_BYTES: Final = 1 << 20
"""Most bytes read from the channel at once."""
_GTC = TimeInForce.GTC
_BUY = OrderSide.BUY
_INITIALIZED = OrderStatus.INITIALIZED
_SUBMITTED = OrderStatus.SUBMITTED
_DENIED = OrderStatus.DENIED
_PENDING_CANCEL = OrderStatus.PENDING_CANCEL
_CONFIRMS: dict[type[OrderEvent], OrderStatus] = {
    OrderSubmitted: _SUBMITTED,
    OrderPendingCancel: _PENDING_CANCEL,
    OrderPendingReplace: OrderStatus.PENDING_REPLACE,
}
"""The core's events that confirm a request this process already applied to its copy."""


class Outbox:
    """Frames to send to the core, written after each batch of inputs."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.frames: list[bytes] = []

    def send(self, message: Any) -> None:
        self.frames.append(p.frame(message))

    def flush(self) -> None:
        if self.frames:
            data = b"".join(self.frames)
            self.frames.clear()
            self._sock.sendall(data)


class WorkerClock(Clock):
    """Wall-clock time; timers run in this process's loop (``Worker.run``)."""

    def __init__(self, timers: TimerQueue, owner: str) -> None:
        self._timers = timers
        self._owner = owner

    def timestamp_ns(self) -> int:
        return time.time_ns()

    def monotonic_s(self) -> float:
        return time.monotonic()

    def call_at(self, ts_ns: int, callback: TimerCallback) -> Cancelable:
        return self._timers.add(ts_ns, self._owner, callback)


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, TimerCallback, Cancelable]] = []
        self._seq = itertools.count()

    def add(self, ts_ns: int, owner: str, callback: TimerCallback) -> Cancelable:
        handle = Cancelable()
        heapq.heappush(self._heap, (ts_ns, next(self._seq), owner, callback, handle))
        return handle

    def timeout_ms(self) -> int:
        """How long the loop may wait for input before the next timer is due (-1: none)."""
        while self._heap and self._heap[0][4].canceled:
            heapq.heappop(self._heap)
        if not self._heap:
            return -1
        return max(0, (self._heap[0][0] - time.time_ns() + 999_999) // 1_000_000)

    def due(self) -> list[tuple[int, str, TimerCallback]]:
        now = time.time_ns()
        due = []
        while self._heap and self._heap[0][0] <= now:
            ts, _, owner, callback, handle = heapq.heappop(self._heap)
            if not handle.canceled:
                due.append((ts, owner, callback))
        return due

    def drop(self, owner: str) -> None:
        for entry in self._heap:
            if entry[2] == owner:
                entry[4].cancel()


class WorkerOrders:
    """This process's copy of its strategies' orders (``OrderAccess``); client order ids
    come from the ranges the core grants."""

    def __init__(self, prefix: str, first: tuple[int, int]) -> None:
        self._prefix = prefix
        self._ranges: list[tuple[int, int]] = [first]
        self._next = first[0]
        self.orders: dict[str, Order] = {}
        self.clock_ns: Callable[[], int] = time.time_ns

    def grant(self, first: int, last: int) -> None:
        self._ranges.append((first, last))

    def _next_id(self) -> str:
        while self._ranges and self._next > self._ranges[0][1]:
            self._ranges.pop(0)
            if self._ranges:
                self._next = self._ranges[0][0]
        if not self._ranges:
            raise StrategyError("no client order ids left: the node grants more as it goes")
        seq = self._next
        self._next += 1
        return f"{self._prefix}{seq}"

    def create_order(
        self,
        *,
        strategy_id: str,
        instrument_id: str,
        venue: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: int,
        price: int | None = None,
        time_in_force: TimeInForce = _GTC,
        reduce_only: bool = False,
    ) -> Order:
        order = Order(
            client_order_id=self._next_id(),
            strategy_id=strategy_id,
            instrument_id=instrument_id,
            venue=venue,
            side=side,
            order_type=order_type,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            ts_init=self.clock_ns(),
        )
        self.orders[order.client_order_id] = order
        return order

    def open_orders(
        self, strategy_id: str | None = None, instrument_id: str | None = None
    ) -> list[Order]:
        return [
            o
            for o in self.orders.values()
            if o.is_open
            and (strategy_id is None or o.strategy_id == strategy_id)
            and (instrument_id is None or o.instrument_id == instrument_id)
        ]

    def open_quantity(self, strategy_id: str, instrument_id: str) -> int:
        total = 0
        for o in self.open_orders(strategy_id, instrument_id):
            leaves = o.quantity - o.filled_qty
            total += leaves if o.side is _BUY else -leaves
        return total

    def order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def apply(self, event: OrderEvent) -> None:
        """Follow the core's copy. The requests this process sent moved its copy ahead
        (``WorkerGate``): the core's event confirming one is already applied, and a
        denial ends an order this copy took for submitted."""
        order = self.orders.get(event.client_order_id)
        if order is None:
            return
        kind = type(event)
        if _CONFIRMS.get(kind) is order.status:
            return
        if kind is OrderDenied:
            order.status = _DENIED
            order.ts_last = event.ts_ns
        else:
            try:
                order.apply(event)
            except InvalidTransition:
                return  # the core's copy is the truth; this one follows it where it can
        if order.status in TERMINAL_STATUSES:
            del self.orders[event.client_order_id]


class WorkerGate:
    """The risk gate's commands, as messages to the core (``OrderGate``). The gate's
    answer comes back as an order event (``OrderSubmitted`` or ``OrderDenied``)."""

    def __init__(self, outbox: Outbox, orders: WorkerOrders) -> None:
        self._outbox = outbox
        self._orders = orders

    def submit_order(self, order: Order) -> bool:
        """Send the order to the core's risk gate. The order counts as submitted from
        now on (``open_orders``, ``set_target_position`` see it), until the gate's
        answer arrives: ``OrderSubmitted``, or ``OrderDenied`` (then ``DENIED``)."""
        if order.status is not _INITIALIZED:
            return False
        order.status = _SUBMITTED
        self._outbox.send(
            p.Submit(
                order.strategy_id,
                order.client_order_id,
                order.instrument_id,
                order.venue,
                order.side,
                order.order_type,
                order.quantity,
                order.price,
                order.time_in_force,
                order.reduce_only,
            )
        )
        return True

    def cancel_order(self, order: Order) -> bool:
        """Ask the core to cancel; the order is ``PENDING_CANCEL`` at once, as it is in
        the core once the gate passed the request (a refusal comes back as
        ``OrderCancelRejected``)."""
        if not order.is_open:
            return False
        if order.status is not _PENDING_CANCEL:
            order.apply(_pending(OrderPendingCancel, order))
            self._outbox.send(p.Cancel(order.strategy_id, order.client_order_id))
        return True

    def modify_order(self, order: Order, quantity: int, price: int | None) -> bool:
        """Ask the core to modify; the order is ``PENDING_REPLACE`` at once (a refusal by
        the gate comes back as ``OrderModifyRejected``)."""
        if not order.is_open or not order.can_apply(_pending(OrderPendingReplace, order)):
            return False
        order.apply(_pending(OrderPendingReplace, order))
        self._outbox.send(p.Modify(order.strategy_id, order.client_order_id, quantity, price))
        return True


def _pending(kind: type[OrderPendingCancel | OrderPendingReplace], order: Order) -> OrderEvent:
    return kind(
        ts_ns=time.time_ns(),
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        instrument_id=order.instrument_id,
    )


class WorkerContext:
    """One strategy's view of the node, in its process (``StrategyContext``)."""

    def __init__(
        self, worker: Worker, strategy: Strategy, strategy_id: str, clock: WorkerClock
    ) -> None:
        self._worker = worker
        self._strategy = strategy
        self._id = strategy_id
        self.clock = clock
        self.portfolio = worker.portfolio
        self.execution = worker.orders
        self.risk = worker.gate
        self.last_quotes: Mapping[str, QuoteTick] = worker.last_quotes
        self.log = structlog.get_logger("bastion.strategy").bind(strategy=strategy_id)

    def instrument(self, instrument_id: str) -> Instrument:
        try:
            return self._worker.instruments[instrument_id]
        except KeyError:
            raise StrategyError(f"unknown instrument {instrument_id!r}") from None

    def venue_of(self, instrument_id: str) -> str:
        return self.instrument(instrument_id).venue

    def subscribe_quotes(self, instrument_id: str) -> None:
        self._worker.subscribe(self._strategy, instrument_id, bars=False)

    def subscribe_bars(self, instrument_id: str) -> None:
        self._worker.subscribe(self._strategy, instrument_id, bars=True)


class Worker:
    def __init__(self, sock: socket.socket, start: p.Start) -> None:
        self.sock = sock
        self.outbox = Outbox(sock)
        self.instruments = {i.id: i.to_instrument() for i in start.instruments}
        self.last_quotes: dict[str, QuoteTick] = {q.instrument_id: q for q in start.last_quotes}
        self.portfolio = Portfolio(
            instruments=self.instruments,
            last_quotes=self.last_quotes,
            currency=start.currency,
            starting_cash=Decimal(0),
        )
        positions = [position_from_state(s) for s in start.positions]
        self.portfolio.restore_state(positions, {}, Decimal(0), 0)
        self.orders = WorkerOrders(start.id_prefix, start.ids)
        for state in start.orders:
            order = order_from_state(state)
            self.orders.orders[order.client_order_id] = order
        self.gate = WorkerGate(self.outbox, self.orders)
        self.timers = TimerQueue()
        self.strategies: dict[str, Strategy] = {}
        self.quote_handlers: dict[str, list[Strategy]] = {}
        self.bar_handlers: dict[str, list[Strategy]] = {}
        self.handled = 0
        self.buffer = p.FrameBuffer(p.MAX_CORE_FRAME)

    # -- lifecycle ----------------------------------------------------------------------
    def load(self, start: p.Start) -> None:
        for spec in start.strategies:
            config = StrategyConfig(
                name=spec.name, path=spec.path, class_name=spec.class_name, params=spec.params
            )
            strategy = load_strategy(config, Path("/"))
            strategy.id = spec.name
            strategy.params = dict(spec.params)
            clock = WorkerClock(self.timers, spec.name)
            strategy._ctx = WorkerContext(self, strategy, spec.name, clock)
            self.strategies[spec.name] = strategy
        for sid, strategy in list(self.strategies.items()):
            saved = start.states.get(sid)
            if saved is not None:
                self._call(strategy, lambda s=strategy, d=saved: load_state(s, d))  # type: ignore[misc]
            if sid in self.strategies:
                self._call(strategy, strategy.on_start)

    def subscribe(self, strategy: Strategy, instrument_id: str, *, bars: bool) -> None:
        if instrument_id not in self.instruments:
            raise StrategyError(f"unknown instrument {instrument_id!r}")
        table = self.bar_handlers if bars else self.quote_handlers
        handlers = table.setdefault(instrument_id, [])
        if strategy not in handlers:
            handlers.append(strategy)
            self.outbox.send(p.Subscribe(strategy.id, instrument_id, bars))

    def fail(self, strategy: Strategy, error: BaseException) -> None:
        """A strategy raised: stop it and tell the core (which fails the process)."""
        sid = strategy.id
        if sid not in self.strategies:
            return
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        del self.strategies[sid]
        for table in (self.quote_handlers, self.bar_handlers):
            for handlers in table.values():
                if strategy in handlers:
                    handlers.remove(strategy)
        self.timers.drop(sid)
        try:
            strategy.on_stop()
        except Exception as stop_error:
            detail += f" (then on_stop raised {stop_error!r})"
        self.outbox.send(p.Failed(sid, detail))

    def _call(self, strategy: Strategy, hook: Callable[[], object]) -> None:
        try:
            hook()
        except Exception as error:
            self.fail(strategy, error)

    def save(self) -> None:
        for sid, strategy in self.strategies.items():
            try:
                state = strategy.on_save()
                if not isinstance(state, dict):
                    raise TypeError(f"on_save returned {type(state).__name__}, not a dict")
                data = encode_state(state)
            except Exception as error:
                detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                structlog.get_logger("bastion.strategy").error(
                    "strategy_on_save_failed", strategy=sid, error=detail
                )
                continue
            if len(data) + 64 > p.MAX_WORKER_FRAME:
                structlog.get_logger("bastion.strategy").error(
                    "strategy_state_too_large", strategy=sid, bytes=len(data)
                )
                continue
            self.outbox.send(p.State(sid, data))

    def stop(self) -> None:
        for strategy in list(self.strategies.values()):
            self._call(strategy, strategy.on_stop)
        self.save()
        self.outbox.send(p.Bye())
        self.outbox.flush()

    # -- inputs -------------------------------------------------------------------------
    def handle(self, message: p.CoreMessage) -> bool:
        """Handle one input; False once the core asked this process to stop."""
        kind = type(message)
        if kind is p.Quote:
            q: p.Quote = message  # type: ignore[assignment]
            quote = QuoteTick(q.instrument_id, q.ts_ns, q.bid, q.ask, q.bid_size, q.ask_size)
            self.last_quotes[q.instrument_id] = quote
            for strategy in tuple(self.quote_handlers.get(q.instrument_id, ())):
                try:
                    strategy.on_quote(quote)
                except Exception as error:
                    self.fail(strategy, error)
        elif kind is p.EventMsg:
            self._on_event(message.event)  # type: ignore[union-attr]
        elif kind is p.BarMsg:
            b: p.BarMsg = message  # type: ignore[assignment]
            bar = Bar(
                b.instrument_id, b.ts_ns, b.open, b.high, b.low, b.close, b.volume,
                b.interval_ns, b.gap_before, b.backfilled,
            )  # fmt: skip
            for strategy in tuple(self.bar_handlers.get(b.instrument_id, ())):
                self._call(strategy, lambda s=strategy: s.on_bar(bar))  # type: ignore[misc]
        elif kind is p.Ids:
            self.orders.grant(message.first, message.last)  # type: ignore[union-attr]
        elif kind is p.Save:
            self.save()
        elif kind is p.Stop:
            return False
        return True

    def _on_event(self, event: OrderEvent | FeedStatus) -> None:
        if isinstance(event, FeedStatus):
            for listener in tuple(self.quote_handlers.get(event.instrument_id, ())):
                self._call(listener, functools.partial(listener.on_feed_status, event))
            return
        self.orders.apply(event)
        if type(event) is OrderFilled:
            self.portfolio.on_fill(event)
        strategy = self.strategies.get(event.strategy_id)
        if strategy is None:
            return
        cls = type(strategy)
        try:
            if cls.on_order_event is not Strategy.on_order_event:
                strategy.on_order_event(event)
            if type(event) is OrderFilled and cls.on_fill is not Strategy.on_fill:
                strategy.on_fill(event)
        except Exception as error:
            self.fail(strategy, error)

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        sock = self.sock
        buffer = self.buffer
        decode = p.CORE_DECODER.decode
        # read into one buffer: ``recv(n)`` allocates n bytes each time (for 1 MiB, an
        # mmap and munmap: ~12 us, more than the rest of a quote's handling)
        received = memoryview(bytearray(RECV_BYTES))
        while True:
            if poller.poll(self.timers.timeout_ms()):
                size = sock.recv_into(received)
                if not size:
                    return  # the core is gone
                buffer.feed(received[:size])
                while (payload := buffer.next()) is not None:
                    self.handled += 1
                    if not self.handle(decode(payload)):
                        self.stop()
                        return
                self.outbox.send(p.Done(self.handled))
            for ts_ns, owner, callback in self.timers.due():
                strategy = self.strategies.get(owner)
                if strategy is not None:
                    self._call(strategy, lambda c=callback, t=ts_ns: c(t))  # type: ignore[misc]
            self.outbox.flush()


def _read_start(sock: socket.socket) -> p.Start:
    buffer = p.FrameBuffer(p.MAX_CORE_FRAME)
    while (payload := buffer.next()) is None:
        data = sock.recv(1 << 20)
        if not data:
            raise SystemExit(0)
        buffer.feed(data)
    message = p.CORE_DECODER.decode(payload)
    if not isinstance(message, p.Start):
        raise SystemExit(f"expected Start first, got {type(message).__name__}")
    return message


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    sock.setblocking(True)
    start = _read_start(sock)
    configure_logging(start.log_level, start.log_format)
    confinement = confine(
        memory_mb=start.memory_mb,
        cpu_s=start.cpu_s,
        open_files=start.open_files,
        read_dirs=start.read_dirs,
    )
    worker = Worker(sock, start)
    try:
        worker.load(start)
    except Exception as error:  # an import error or a bad class: fatal for the process
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        for spec in start.strategies:
            worker.outbox.send(p.Failed(spec.name, detail))
        worker.outbox.flush()
        return 1
    worker.outbox.send(p.Ready(confinement))
    worker.outbox.flush()
    worker.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

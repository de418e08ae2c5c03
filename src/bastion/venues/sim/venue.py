"""The simulated venue: bastion's in-process exchange, used by backtests and paper trading.

Requests from the node reach the matching engine after ``latency_ms``. With
zero latency they are queued and handled by ``flush()``, which the node calls
right after the callback that sent them returns (the backtest engine after each
data event, the live node on the next loop turn): a strategy is never re-entered
from inside its own ``submit``, and an order still meets the quote it reacted to.

Events emitted (through the execution engine's sink): OrderAccepted,
OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUpdated,
OrderCancelRejected, OrderModifyRejected. Each match is also a public trade print,
a ``TradeTick`` with its price and size, handed to ``on_trade_sink`` (the node's
``Kernel.on_trade``) after its fill event.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bastion.clock import Clock
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import (
    ReconcileContext,
    VenueAdapter,
    VenueContext,
    VenueReconciliation,
    VenueStats,
    order_event,
)
from bastion.venues.sim.config import SimVenueConfig
from bastion.venues.sim.matching import OrderBook, SimOrder

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_MAKER = LiquiditySide.MAKER
_BUY = OrderSide.BUY
_TAKER = LiquiditySide.TAKER
_DAY = TimeInForce.DAY
_IOC = TimeInForce.IOC


_NS_PER_DAY = 86_400_000_000_000
_ZERO = Decimal(0)
_BPS = Decimal(10_000)


def build(config: SimVenueConfig, context: VenueContext) -> SimVenue:
    """The in-process venue of a node or backtest (``kind = "sim"``)."""
    return SimVenue(
        config=config,
        clock=context.clock,
        instruments=context.instruments,
        request_flush=context.request_flush,
        id_prefix=f"{context.epoch}-" if context.live else "",
    )


class SimVenue(VenueAdapter):
    """A faithful in-process venue driven by the market data the node sees."""

    kind = "sim"
    matches_on_quotes = True

    def __init__(
        self,
        *,
        config: SimVenueConfig,
        clock: Clock,
        instruments: dict[str, Instrument],
        request_flush: Callable[[], None] | None = None,
        id_prefix: str = "",
    ) -> None:
        super().__init__(config.name)
        self._config = config
        # venue order ids and ExecIDs are "<name>-<id_prefix><n>": a live node passes its
        # run epoch, so ids stay unique across restarts of the in-process venue
        self._id_prefix = f"{config.name}-{id_prefix}"
        self._clock = clock
        self._instruments = {
            iid: inst for iid, inst in instruments.items() if inst.venue == config.name
        }
        self._books = {iid: OrderBook() for iid in self._instruments}
        self._open: dict[str, SimOrder] = {}
        self.inbox: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._request_flush = request_flush
        self._latency_ns = config.latency_ms * 1_000_000
        self._taker_rate = config.taker_fee_bps / _BPS
        self._maker_rate = config.maker_fee_bps / _BPS
        self._max_qty = {
            iid: (
                None
                if config.max_order_quantity is None
                else inst.size_raw(config.max_order_quantity)
            )
            for iid, inst in self._instruments.items()
        }
        self._rng = random.Random(config.seed)
        self._reject_p = float(config.reject_probability)
        self._order_seq = 0
        self._exec_seq = 0
        self.n_fills = 0
        self.n_rejects = 0

    def stats(self) -> VenueStats:
        """In process: no session, so nothing to log on, drop, resend or go quiet."""
        return VenueStats()

    # -- requests from the node ---------------------------------------------------------
    def submit(self, order: Order) -> None:
        self._deliver(self._on_new, (self._sim_order(order, None),))

    def _sim_order(self, order: Order, venue_order_id: str | None) -> SimOrder:
        """The matching engine's copy of ``order``, next in time priority."""
        self._order_seq = seq = self._order_seq + 1
        return SimOrder(
            order.client_order_id,
            order.strategy_id,
            order.instrument_id,
            order.side,
            order.order_type,
            order.time_in_force,
            order.quantity,
            order.price,
            venue_order_id or f"{self._id_prefix}{seq}",
            seq,
        )

    def cancel(self, order: Order) -> None:
        self._deliver(
            self._on_cancel, (order.client_order_id, order.strategy_id, order.instrument_id)
        )

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        self._deliver(
            self._on_modify,
            (order.client_order_id, order.strategy_id, order.instrument_id, quantity, price),
        )

    async def open_order_ids(self) -> set[str]:
        return set(self._open)

    def restore(self, order: Order, *, arrived_ns: int) -> None:
        """Rest an order that was open before a restart, ``order.filled_qty`` already filled.

        Restore orders in their time priority: each ranks behind the orders restored
        before it and ahead of every order submitted later. Nothing matches until the
        next quote. A DAY order still expires at the first UTC midnight after
        ``arrived_ns`` (at once if that midnight has passed). No event is emitted.
        """
        book = self._books.get(order.instrument_id)
        if book is None:
            raise ValueError(f"instrument {order.instrument_id} is not traded on {self.name}")
        if order.client_order_id in self._open:
            raise ValueError(f"order {order.client_order_id} is already open")
        if not 0 <= order.filled_qty < order.quantity:
            raise ValueError(f"order {order.client_order_id} has nothing left to rest")
        sim = self._sim_order(order, order.venue_order_id)
        sim.filled = order.filled_qty
        self._open[sim.client_order_id] = sim
        book.rest(sim)
        if sim.tif is _DAY:
            self._expire_at_day_end(sim, arrived_ns)

    async def reconcile(self, context: ReconcileContext) -> VenueReconciliation:
        """The in-process venue restarted with the node: rest its open orders again
        (limit orders with quantity left); the others are canceled."""
        report = VenueReconciliation(venue=self.name)
        orders = context.orders
        now = context.clock.timestamp_ns
        for order in orders.open_orders():
            if order.venue != self.name:
                continue
            report.orders_checked += 1
            if order.status is OrderStatus.PENDING_REPLACE:
                orders.resolve(
                    order,
                    order_event(OrderModifyRejected, now(), order, reason="the node restarted"),
                )
            if order.status is OrderStatus.SUBMITTED:
                venue_order_id = order.venue_order_id or order.client_order_id
                orders.resolve(
                    order, order_event(OrderAccepted, now(), order, venue_order_id=venue_order_id)
                )
            if (
                order.order_type is OrderType.LIMIT
                and order.status is not OrderStatus.PENDING_CANCEL
                and order.leaves_qty > 0
            ):
                self.restore(order, arrived_ns=order.ts_init)
            else:
                orders.resolve(
                    order,
                    order_event(OrderCanceled, now(), order, reason="canceled: the node restarted"),
                )
            report.resolved += 1
        return report

    def flush(self) -> None:
        """Handle every request that has arrived (zero-latency requests queue here)."""
        inbox = self.inbox
        while inbox:
            action, args = inbox.popleft()
            action(*args)

    def _deliver(self, action: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self._latency_ns:
            self._clock.call_later(self._latency_ns, lambda _ts: action(*args))
            return
        self.inbox.append((action, args))
        if self._request_flush is not None and len(self.inbox) == 1:
            self._request_flush()

    # -- market data --------------------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:
        book = self._books.get(quote.instrument_id)
        if book is None:
            return
        book.quote = quote
        if book.buys or book.sells:
            book.match_resting(self._fill)

    def on_bar(self, bar: Bar) -> None:
        """Bars: resting limits fill if the range traded through them; the touch is the close."""
        book = self._books.get(bar.instrument_id)
        if book is None:
            return
        if book.buys or book.sells:
            book.match_bar(bar.high, bar.low, self._fill)
        size = bar.volume if bar.volume > 0 else 1 << 62
        book.quote = QuoteTick(bar.instrument_id, bar.ts_ns, bar.close, bar.close, size, size)
        if book.buys or book.sells:
            book.match_resting(self._fill)

    # -- matching engine side -----------------------------------------------------------
    def _on_new(self, sim: SimOrder) -> None:
        book = self._books.get(sim.instrument_id)
        reason = self._reject_reason(sim, book)
        ts = self._clock.timestamp_ns()
        if reason is not None:
            self.n_rejects += 1
            self.emit(
                OrderRejected(
                    ts_ns=ts,
                    client_order_id=sim.client_order_id,
                    strategy_id=sim.strategy_id,
                    instrument_id=sim.instrument_id,
                    reason=reason,
                )
            )
            return
        assert book is not None
        self._open[sim.client_order_id] = sim
        self.emit(
            OrderAccepted(
                ts_ns=ts,
                client_order_id=sim.client_order_id,
                strategy_id=sim.strategy_id,
                instrument_id=sim.instrument_id,
                venue_order_id=sim.venue_order_id,
            )
        )
        self._work(sim, book)

    def _work(self, sim: SimOrder, book: OrderBook) -> None:
        """Take what the touch offers, then rest or cancel the remainder."""
        book.take(sim, self._fill)
        if sim.filled == sim.quantity:
            return
        if sim.tif is _IOC:
            self._close(sim, "IOC remainder")
        elif sim.is_market and self._config.market_remainder == "cancel":
            self._close(sim, "no more liquidity at the touch")
        else:
            book.rest(sim)
            if sim.tif is _DAY:
                self._expire_at_day_end(sim)

    def _reject_reason(self, sim: SimOrder, book: OrderBook | None) -> str | None:
        if self.halted is not None:  # refusal() answers only to a halt in this venue
            return self.refusal()
        if book is None:
            return f"instrument {sim.instrument_id} is not traded on {self.name}"
        if sim.client_order_id in self._open:
            return f"duplicate client order id {sim.client_order_id}"
        max_qty = self._max_qty[sim.instrument_id]
        if max_qty is not None and sim.quantity > max_qty:
            return "quantity above the venue's maximum"
        if sim.is_market and book.quote is None and self._config.reject_when_no_market:
            return "no market"
        if self._reject_p and self._rng.random() < self._reject_p:
            return "rejected by simulation rule"
        return None

    def _on_cancel(self, coid: str, sid: str, iid: str) -> None:
        sim = self._open.get(coid)
        ts = self._clock.timestamp_ns()
        if sim is None:
            self.emit(
                OrderCancelRejected(
                    ts_ns=ts,
                    client_order_id=coid,
                    strategy_id=sid,
                    instrument_id=iid,
                    reason="order is not open at the venue",
                )
            )
            return
        self._books[iid].remove(sim)
        self._close(sim, "canceled by request")

    def _on_modify(self, coid: str, sid: str, iid: str, quantity: int, price: int | None) -> None:
        sim = self._open.get(coid)
        ts = self._clock.timestamp_ns()
        reason = self.refusal()
        if reason is not None:
            pass
        elif sim is None:
            reason = "order is not open at the venue"
        elif quantity <= sim.filled:
            reason = "new quantity is not above the filled quantity"
        elif sim.is_market and price is not None:
            reason = "a market order has no price to modify"
        if reason is not None or sim is None:
            self.emit(
                OrderModifyRejected(
                    ts_ns=ts,
                    client_order_id=coid,
                    strategy_id=sid,
                    instrument_id=iid,
                    reason=reason or "",
                )
            )
            return
        book = self._books[iid]
        book.remove(sim)
        self._order_seq += 1
        sim.seq = self._order_seq  # a replace loses time priority
        sim.quantity = quantity
        if price is not None:
            sim.price = price
        self.emit(
            OrderUpdated(
                ts_ns=ts,
                client_order_id=coid,
                strategy_id=sid,
                instrument_id=iid,
                quantity=quantity,
                price=sim.price,
            )
        )
        self._work(sim, book)

    def _close(self, sim: SimOrder, reason: str) -> None:
        del self._open[sim.client_order_id]
        self.emit(
            OrderCanceled(
                ts_ns=self._clock.timestamp_ns(),
                client_order_id=sim.client_order_id,
                strategy_id=sim.strategy_id,
                instrument_id=sim.instrument_id,
                reason=reason,
            )
        )

    def _expire_at_day_end(self, sim: SimOrder, arrived_ns: int | None = None) -> None:
        """A DAY order expires at the first UTC midnight after it reached the venue."""
        if arrived_ns is None:
            arrived_ns = self._clock.timestamp_ns()
        day_end = (arrived_ns // _NS_PER_DAY + 1) * _NS_PER_DAY

        def expire(ts_ns: int) -> None:
            if self._open.get(sim.client_order_id) is not sim:
                return  # filled or canceled meanwhile
            self._books[sim.instrument_id].remove(sim)
            del self._open[sim.client_order_id]
            self.emit(
                OrderExpired(
                    ts_ns=ts_ns,
                    client_order_id=sim.client_order_id,
                    strategy_id=sim.strategy_id,
                    instrument_id=sim.instrument_id,
                )
            )

        self._clock.call_at(day_end, expire)

    def _fill(self, sim: SimOrder, qty: int, price: int, maker: bool) -> None:
        sim.filled += qty
        self._exec_seq += 1
        self.n_fills += 1
        instrument = self._instruments[sim.instrument_id]
        rate = self._maker_rate if maker else self._taker_rate
        fee = (instrument.notional(qty, price) * rate) if rate else _ZERO
        if sim.filled == sim.quantity:
            del self._open[sim.client_order_id]
        self.emit(
            OrderFilled(
                ts_ns=self._clock.timestamp_ns(),
                client_order_id=sim.client_order_id,
                strategy_id=sim.strategy_id,
                instrument_id=sim.instrument_id,
                venue_order_id=sim.venue_order_id,
                exec_id=f"{self._id_prefix}E{self._exec_seq}",
                side=sim.side,
                last_qty=qty,
                last_px=price,
                fee=fee,
                fee_currency=instrument.quote_currency,
                liquidity=_MAKER if maker else _TAKER,
            )
        )
        sink = self.on_trade_sink
        if sink is not None:
            # the side that took liquidity: the order when it took, else the market
            is_buy = sim.side is _BUY
            sink(
                TradeTick(
                    sim.instrument_id,
                    self._clock.timestamp_ns(),
                    price,
                    qty,
                    is_buy is not maker,
                )
            )

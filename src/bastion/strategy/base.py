"""The Strategy base class: what a trader subclasses.

Hooks (override what you need): ``on_start``, ``on_quote``, ``on_bar``,
``on_order_event``, ``on_fill``, ``on_feed_status``, ``on_stop``. Actions: ``buy``, ``sell``,
``submit``, ``cancel``, ``modify``, ``set_target_position``. Quantities and prices
are given in human units (``Decimal``, ``str`` or ``int``); market data arrive as
raw integers, convert with ``self.instrument(id).price(raw)``.

Every action goes to the risk gate; a strategy has no way to reach a venue
directly. The same class runs unchanged in backtest, paper and live nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bastion.clock import Clock
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import FeedStatus, OrderEvent, OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.strategy.context import StrategyContext

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_SELL = OrderSide.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC

Number = Decimal | str | int


class Strategy:
    """Base class for user strategies. Instantiated with no arguments by the node."""

    id: str = ""
    params: dict[str, Any]

    def __init__(self) -> None:
        self.params = {}
        self._ctx: StrategyContext | None = None

    # -- hooks ----------------------------------------------------------------------------
    def on_start(self) -> None:
        """Called once before any data; subscribe to instruments here."""

    def on_quote(self, quote: QuoteTick) -> None:
        """A new top-of-book quote for a subscribed instrument."""

    def on_bar(self, bar: Bar) -> None:
        """A new bar for a subscribed instrument."""

    def on_order_event(self, event: OrderEvent) -> None:
        """Any event about one of this strategy's orders (including fills)."""

    def on_fill(self, fill: OrderFilled) -> None:
        """An execution of one of this strategy's orders (after the position is updated)."""

    def on_feed_status(self, status: FeedStatus) -> None:
        """A subscribed instrument has no healthy feed (``status.healthy`` false: no
        quote comes until it has one again), or has one again (true). Only an instrument
        that several feeds supply has these (``bastion.feeds.arbiter``)."""

    def on_stop(self) -> None:
        """Called once when the node stops the strategy."""

    def on_save(self) -> dict[str, Any]:
        """State to keep across restarts (indicators, counters), taken at every snapshot.

        Values must be msgpack-able: None, bool, int, float, str, bytes, Decimal, and
        lists and dicts (str keys) of them. The default keeps nothing.
        """
        return {}

    def on_load(self, state: dict[str, Any]) -> None:
        """Called on restart, before ``on_start``, with what ``on_save`` returned at the
        node's last snapshot (not called when there is none)."""

    # -- context --------------------------------------------------------------------------
    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError("strategy is not attached to a node yet")
        return self._ctx

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def log(self) -> Any:
        """A structlog logger bound to this strategy's id."""
        return self.ctx.log

    def instrument(self, instrument_id: str) -> Instrument:
        return self.ctx.instrument(instrument_id)

    def subscribe_quotes(self, instrument_id: str) -> None:
        self.ctx.subscribe_quotes(instrument_id)

    def subscribe_bars(self, instrument_id: str) -> None:
        self.ctx.subscribe_bars(instrument_id)

    def last_quote(self, instrument_id: str) -> QuoteTick | None:
        return self.ctx.last_quotes.get(instrument_id)

    def position(self, instrument_id: str) -> Decimal:
        """This strategy's signed position in human units."""
        return self.instrument(instrument_id).size(self.position_raw(instrument_id))

    def position_raw(self, instrument_id: str) -> int:
        position = self.ctx.portfolio.position(self.id, instrument_id)
        return position.quantity if position is not None else 0

    def open_orders(self, instrument_id: str | None = None) -> list[Order]:
        return self.ctx.execution.open_orders(self.id, instrument_id)

    # -- actions --------------------------------------------------------------------------
    def buy(
        self,
        instrument_id: str,
        quantity: Number,
        price: Number | None = None,
        time_in_force: TimeInForce = _GTC,
    ) -> Order:
        """Buy at market (no price) or with a limit price. Returns the order (maybe denied)."""
        return self._order(_BUY, instrument_id, quantity, price, time_in_force)

    def sell(
        self,
        instrument_id: str,
        quantity: Number,
        price: Number | None = None,
        time_in_force: TimeInForce = _GTC,
    ) -> Order:
        return self._order(_SELL, instrument_id, quantity, price, time_in_force)

    def submit(
        self,
        side: OrderSide,
        instrument_id: str,
        quantity_raw: int,
        price_raw: int | None = None,
        time_in_force: TimeInForce = _GTC,
    ) -> Order:
        """Submit with raw integer quantity and price (the fast path)."""
        ctx = self._ctx
        if ctx is None:
            raise RuntimeError("strategy is not attached to a node yet")
        order = ctx.execution.create_order(
            strategy_id=self.id,
            instrument_id=instrument_id,
            venue=ctx.venue_of(instrument_id),
            side=side,
            order_type=_MARKET if price_raw is None else _LIMIT,
            quantity=quantity_raw,
            price=price_raw,
            time_in_force=time_in_force,
        )
        ctx.risk.submit_order(order)
        return order

    def cancel(self, order: Order) -> bool:
        return self.ctx.risk.cancel_order(order)

    def cancel_all(self, instrument_id: str | None = None) -> None:
        for order in self.open_orders(instrument_id):
            self.cancel(order)

    def modify(
        self, order: Order, quantity: Number | None = None, price: Number | None = None
    ) -> bool:
        instrument = self.instrument(order.instrument_id)
        qty = order.quantity if quantity is None else instrument.size_raw(quantity)
        px = order.price if price is None else instrument.price_raw(price)
        return self.ctx.risk.modify_order(order, qty, px)

    def set_target_position(self, instrument_id: str, target: Number) -> Order | None:
        """Send the market order that takes position plus working orders to ``target``.

        Returns the order, or None when nothing needs to be done.
        """
        ctx = self.ctx
        target_raw = ctx.instrument(instrument_id).size_raw(target)
        position = ctx.portfolio.position(self.id, instrument_id)
        current = ctx.execution.open_quantity(self.id, instrument_id)
        if position is not None:
            current += position.quantity
        delta = target_raw - current
        if delta == 0:
            return None
        side = _BUY if delta > 0 else _SELL
        return self.submit(side, instrument_id, abs(delta))

    def _order(
        self,
        side: OrderSide,
        instrument_id: str,
        quantity: Number,
        price: Number | None,
        time_in_force: TimeInForce,
    ) -> Order:
        instrument = self.instrument(instrument_id)
        return self.submit(
            side,
            instrument_id,
            instrument.size_raw(quantity),
            None if price is None else instrument.price_raw(price),
            time_in_force,
        )


StrategyFactory = Callable[[], Strategy]

"""Typed events and commands carried on the bus and written to the journal.

Order events move an order through its state machine (``model.orders``).
Each is a tagged msgspec struct so the journal can encode and decode any of
them without a registry of its own.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from bastion.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce, TradingState


class Event(msgspec.Struct, frozen=True, tag=True, kw_only=True, gc=False):
    """Base of every event: ``ts_ns`` is when the event happened (clock time).

    Events hold only scalars, so they are untracked by the cyclic GC (``gc=False``).
    """

    ts_ns: int


class OrderEvent(Event, frozen=True, kw_only=True):
    client_order_id: str
    strategy_id: str
    instrument_id: str


class OrderInitialized(OrderEvent, frozen=True, kw_only=True):
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int | None = None
    reduce_only: bool = False
    venue: str = ""


class OrderDenied(OrderEvent, frozen=True, kw_only=True):
    """The risk gate refused the order; it never left the node."""

    reason: str
    message: str


class OrderSubmitted(OrderEvent, frozen=True, kw_only=True):
    venue: str


class OrderAccepted(OrderEvent, frozen=True, kw_only=True):
    venue_order_id: str


class OrderRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderPendingCancel(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderPendingReplace(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderCanceled(OrderEvent, frozen=True, kw_only=True):
    reason: str = ""


class OrderExpired(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderUpdated(OrderEvent, frozen=True, kw_only=True):
    quantity: int
    price: int | None


class OrderCancelRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderModifyRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderFilled(OrderEvent, frozen=True, kw_only=True):
    """An execution. ``exec_id`` is the venue's id; a repeated one is never applied twice."""

    venue_order_id: str
    exec_id: str
    side: OrderSide
    last_qty: int
    last_px: int
    fee: Decimal
    fee_currency: str
    liquidity: LiquiditySide


class OrderTransitionRefused(OrderEvent, frozen=True, kw_only=True):
    """An event arrived that the order's state machine does not allow; it was not applied."""

    status: str
    event: str


class TradingStateChanged(Event, frozen=True, kw_only=True):
    state: TradingState
    reason: str


class StrategyFailed(Event, frozen=True, kw_only=True):
    strategy_id: str
    error: str


class CommandDenied(Event, frozen=True, kw_only=True):
    """The risk gate refused a cancel or modify request (the order itself is unchanged)."""

    client_order_id: str
    strategy_id: str
    reason: str
    message: str


class ReconciliationCompleted(Event, frozen=True, kw_only=True):
    """The node compared its state with a venue (on start and after each logon).

    ``adopted``: orders the venue holds that the journal had lost (sent just before a
    crash), taken over from the FIX session store or the venue's report; ``resolved``:
    open orders whose final state came from the venue's status answer;
    ``mismatches``: what could not be made to agree (empty when reconciled).
    """

    venue: str
    epoch: int
    orders_checked: int
    adopted: int
    resolved: int
    mismatches: list[str] = msgspec.field(default_factory=list)


class ReconciliationMismatch(Event, frozen=True, kw_only=True):
    """An alert: the node's state and the venue's disagree beyond tolerance; the node
    moved to ``state`` instead of trading on wrong state."""

    venue: str
    state: TradingState
    mismatches: list[str]


class InstrumentPaused(Event, frozen=True, kw_only=True):
    """The risk gate paused new orders on an instrument until ``until_ns`` (its mid
    moved beyond ``collar_window_pct`` within ``collar_window_ms``); cancels still go.
    A further move during the pause extends it with another ``InstrumentPaused``."""

    instrument_id: str
    reason: str
    until_ns: int


class InstrumentResumed(Event, frozen=True, kw_only=True):
    """An instrument's pause ended: new orders on it are checked as usual again. ``who``
    and ``why`` are set when an operator ended it early (``bastion resume --instrument``)."""

    instrument_id: str
    who: str = ""
    why: str = ""


class StrategyDisabled(Event, frozen=True, kw_only=True):
    """The risk gate disabled a strategy (repeated executions, or one of its post-trade
    limits): its new orders and amends are denied until an operator enables it.

    ``cancels_requested``: how many of its open orders the gate then asked the venues
    to cancel (``risk.cancel_on_disable``; 0 when off, or in a journal written before
    the field existed). Each cancel follows as its own ``OrderPendingCancel``."""

    strategy_id: str
    reason: str
    cancels_requested: int = 0


class StrategyEnabled(Event, frozen=True, kw_only=True):
    """An operator enabled a disabled strategy again."""

    strategy_id: str
    who: str
    why: str


class RiskLimitsChanged(Event, frozen=True, kw_only=True):
    """The node started with other risk limits than it last journaled: ``changes`` says
    what changed (``key: old -> new``), ``config`` is the new ``[risk]`` (canonical JSON),
    ``who`` the OS user that started it, ``source`` the config file."""

    who: str
    source: str
    changes: list[str]
    config: str


class RiskOverrideSet(Event, frozen=True, kw_only=True):
    """An operator set one risk limit (``path``) to ``value`` until ``expires_ns``;
    ``previous`` is the value it replaced."""

    override_id: str
    path: str
    value: str
    previous: str
    who: str
    why: str
    expires_ns: int


class RiskOverrideEnded(Event, frozen=True, kw_only=True):
    """An override ended: ``how`` is ``expired`` or ``cleared`` (by ``who``, for ``why``);
    the limit is back to the config's value (or to an older override still running)."""

    override_id: str
    path: str
    how: str
    who: str
    why: str


ORDER_EVENT_TYPES: tuple[type[OrderEvent], ...] = (
    OrderInitialized,
    OrderDenied,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderPendingCancel,
    OrderPendingReplace,
    OrderCanceled,
    OrderExpired,
    OrderUpdated,
    OrderCancelRejected,
    OrderModifyRejected,
    OrderFilled,
    OrderTransitionRefused,
)

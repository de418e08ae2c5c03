"""Reconciliation: make the node's orders and positions agree with its venue's.

Run on start, after the journal is replayed and before any strategy trades, and
again after every new logon to a FIX venue. With a FIX venue:

1. OrderMassStatusRequest: every order the venue holds open. One the node knows
   takes the venue's current ClOrdID; one it does not know but that carries its
   client order id prefix is adopted (the journal lost it); anyone else's is a
   mismatch.
2. OrderStatusRequest for each order the node holds open that the venue did not
   list: the venue's final state (canceled, expired, rejected) is applied; an order
   the venue does not know never reached it and is rejected ("not known at venue")
   - it is never re-sent.
3. RequestForPositions: the venue's net position per instrument against the node's.

Fills are never invented here: missed ExecutionReports arrive through the FIX
resend (see ``bastion.venues.fix.recovery``) and are applied once, by ExecID. A
cumulative quantity that still differs, a position off by more than the
tolerance, or a query the venue does not answer is a mismatch: the node goes to
``recovery.on_mismatch`` (HALTED or REDUCING) and publishes a
``ReconciliationMismatch`` alert rather than trading on wrong state.

The in-process simulated venue lives and dies with the node: its open orders are
put back into its books (limit orders with quantity left), the rest are canceled.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import msgspec
import structlog

from bastion.errors import TemporaryError
from bastion.fix.codec import FixMessage
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderModifyRejected,
    OrderRejected,
    ReconciliationCompleted,
    ReconciliationMismatch,
)
from bastion.model.orders import UNKNOWN_STRATEGY, Order
from bastion.recovery.config import RecoveryConfig
from bastion.venues.fix.adapter import FixVenueAdapter

if TYPE_CHECKING:
    from bastion.node.kernel import Kernel

log = structlog.get_logger("bastion.recovery")

NOT_KNOWN_AT_VENUE = "not known at venue (reconciliation): it never reached the venue"
_OPEN_STATUSES = frozenset({"0", "1", "5", "6", "9", "A", "D", "E"})
_SIDE = {"1": "BUY", "2": "SELL"}


class ReconciliationReport(msgspec.Struct, kw_only=True):
    venue: str
    orders_checked: int = 0
    adopted: int = 0
    resolved: int = 0
    positions_compared: bool = False
    mismatches: list[str] = msgspec.field(default_factory=list)


async def reconcile(
    kernel: Kernel,
    *,
    epoch: int,
    config: RecoveryConfig,
    order_id_prefix: str,
    adopted_before: int = 0,
) -> ReconciliationReport:
    """Reconcile ``kernel`` with its venue; publish the outcome (journaled by the kernel)."""
    venue = kernel.venue
    report = ReconciliationReport(venue=venue.name, adopted=adopted_before)
    if isinstance(venue, FixVenueAdapter):
        try:
            await _reconcile_fix(kernel, venue, config, order_id_prefix, report)
        except TemporaryError as error:
            report.mismatches.append(f"reconciliation incomplete: {error}")
    else:
        _restore_sim_orders(kernel, report)
    clock = kernel.clock
    kernel.bus.publish(
        ReconciliationCompleted(
            ts_ns=clock.timestamp_ns(),
            venue=venue.name,
            epoch=epoch,
            orders_checked=report.orders_checked,
            adopted=report.adopted,
            resolved=report.resolved,
            mismatches=report.mismatches,
        )
    )
    if report.mismatches:
        state = TradingState(config.on_mismatch)
        risk = kernel.risk
        if risk.state is TradingState.ACTIVE or state is TradingState.HALTED:
            risk.set_trading_state(state, f"reconciliation with {venue.name}: mismatch")
        kernel.bus.publish(
            ReconciliationMismatch(
                ts_ns=clock.timestamp_ns(),
                venue=venue.name,
                state=risk.state,
                mismatches=report.mismatches,
            )
        )
        log.error("reconciliation_mismatch", venue=venue.name, mismatches=report.mismatches)
    else:
        log.info("reconciliation_completed", **msgspec.structs.asdict(report))
    return report


async def _reconcile_fix(
    kernel: Kernel,
    venue: FixVenueAdapter,
    config: RecoveryConfig,
    prefix: str,
    report: ReconciliationReport,
) -> None:
    execution = kernel.execution
    mismatches = report.mismatches
    listed: set[str] = set()
    for status in await venue.mass_status(config.timeout_s):
        cl_ord_id = status.get(11) or ""
        coid = cl_ord_id.split("/", 1)[0]
        listed.add(coid)
        report.orders_checked += 1
        order = execution.order(coid)
        if order is None:
            if not coid.startswith(prefix):
                mismatches.append(f"venue holds open order {cl_ord_id} that this node never sent")
                continue
            order = _adopt_reported(kernel, venue, status)
            if order is None:
                mismatches.append(f"venue order {cl_ord_id}: report unreadable")
                continue
            report.adopted += 1
        venue.set_venue_cl_ord_id(coid, cl_ord_id)
        problem = _compare_open(kernel, order, status)
        if problem is not None:
            mismatches.append(problem)
        elif order.status is OrderStatus.SUBMITTED:
            execution.resolve(
                order, _event(OrderAccepted, kernel, order, venue_order_id=status.get(37) or "")
            )
            report.resolved += 1
    missing = [
        o
        for o in execution.open_orders()
        if o.venue == venue.name and o.client_order_id not in listed
    ]
    answers = await asyncio.gather(
        *(venue.order_status(o, config.timeout_s) for o in missing), return_exceptions=True
    )
    for order, answer in zip(missing, answers, strict=True):
        report.orders_checked += 1
        if isinstance(answer, BaseException):
            mismatches.append(f"{order.client_order_id}: no status from the venue ({answer!r})")
            continue
        problem = _resolve_closed(kernel, order, answer)
        if problem is None:
            report.resolved += 1
        else:
            mismatches.append(problem)
    if config.compare_positions:
        await _compare_positions(kernel, venue, config, report)


def _compare_open(kernel: Kernel, order: Order, status: FixMessage) -> str | None:
    coid = order.client_order_id
    if not order.is_open:
        return f"{coid}: open at the venue, {order.status.value} in the node"
    return _compare_filled(kernel, order, status, "open")


def _compare_filled(kernel: Kernel, order: Order, status: FixMessage, state: str) -> str | None:
    """The venue's CumQty (14) against the node's filled quantity: a mismatch, or None."""
    instrument = kernel.instruments[order.instrument_id]
    try:
        cum = instrument.size_raw(Decimal(status.get(14) or "0"))
    except (InvalidOperation, ValueError):
        return f"{order.client_order_id}: venue CumQty {status.get(14)!r} unreadable"
    if cum == order.filled_qty:
        return None
    return (
        f"{order.client_order_id}: {state} at the venue with {instrument.size(cum)} filled, "
        f"{instrument.size(order.filled_qty)} in the node"
    )


def _resolve_closed(kernel: Kernel, order: Order, status: FixMessage) -> str | None:
    """Apply the final state the venue reports for an order it no longer lists open."""
    coid = order.client_order_id
    ord_status = status.get(39) or ""
    text = status.get(58) or ""
    instrument = kernel.instruments[order.instrument_id]
    if ord_status == "8" and "unknown" in text.lower():
        if order.filled_qty:
            return f"{coid}: unknown at the venue but {instrument.size(order.filled_qty)} filled"
        kernel.execution.resolve(
            order, _event(OrderRejected, kernel, order, reason=NOT_KNOWN_AT_VENUE)
        )
        return None
    if ord_status in _OPEN_STATUSES:
        return None  # opened meanwhile (it was in flight); nothing to resolve
    problem = _compare_filled(kernel, order, status, _status_name(ord_status))
    if problem is not None:
        return problem
    reason = f"{_status_name(ord_status)} at the venue (reconciliation)"
    event: OrderEvent
    if ord_status == "4":
        event = _event(OrderCanceled, kernel, order, reason=reason)
    elif ord_status == "C":
        event = _event(OrderExpired, kernel, order)
    elif ord_status == "8":
        event = _event(OrderRejected, kernel, order, reason=text or reason)
    else:
        return f"{coid}: venue OrdStatus {ord_status!r} with the node's fills, node has it open"
    if order.status is OrderStatus.SUBMITTED and ord_status != "8":
        kernel.execution.resolve(
            order, _event(OrderAccepted, kernel, order, venue_order_id=status.get(37) or "")
        )
    if not kernel.execution.resolve(order, event):
        return (
            f"{coid}: venue state {_status_name(ord_status)} cannot apply to {order.status.value}"
        )
    return None


async def _compare_positions(
    kernel: Kernel, venue: FixVenueAdapter, config: RecoveryConfig, report: ReconciliationReport
) -> None:
    try:
        venue_net = await venue.positions(config.timeout_s)
    except TemporaryError as error:
        report.mismatches.append(f"no positions from the venue ({error})")
        return
    report.positions_compared = True
    portfolio = kernel.portfolio
    for symbol in sorted(set(venue_net) | set(venue.instruments)):
        instrument = venue.instruments.get(symbol)
        theirs = venue_net.get(symbol, Decimal(0))
        if instrument is None:
            if theirs:
                report.mismatches.append(f"{symbol}: venue position {theirs}, not traded by node")
            continue
        ours = instrument.size(portfolio.net_quantity(symbol))
        if abs(ours - theirs) > config.position_tolerance:
            report.mismatches.append(
                f"{symbol}: position {ours} in the node, {theirs} at the venue"
            )


def _adopt_reported(kernel: Kernel, venue: FixVenueAdapter, status: FixMessage) -> Order | None:
    """An open venue order with this node's prefix the node lost entirely: take it over."""
    instrument = venue.instruments.get(status.get(55) or "")
    side = _SIDE.get(status.get(54) or "")
    if instrument is None or side is None:
        return None
    try:
        quantity = instrument.size_raw(Decimal(status.get(38) or "0"))
        price_text = status.get(44)
        price = None if price_text is None else instrument.price_raw(Decimal(price_text))
    except (InvalidOperation, ValueError):
        return None
    order = Order(
        client_order_id=(status.get(11) or "").split("/", 1)[0],
        strategy_id=status.get(526) or UNKNOWN_STRATEGY,
        instrument_id=instrument.id,
        venue=venue.name,
        side=OrderSide(side),
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        quantity=quantity,
        price=price,
        ts_init=kernel.clock.timestamp_ns(),
    )
    kernel.execution.adopt(order, reason="open at the venue; unknown to the journal")
    venue.register(order)
    return order


def _restore_sim_orders(kernel: Kernel, report: ReconciliationReport) -> None:
    """The in-process venue restarted with the node: rest its open orders again."""
    venue = kernel.venue
    for order in kernel.execution.open_orders():
        report.orders_checked += 1
        if order.status is OrderStatus.PENDING_REPLACE:
            kernel.execution.resolve(
                order, _event(OrderModifyRejected, kernel, order, reason="the node restarted")
            )
        if order.status is OrderStatus.SUBMITTED:
            kernel.execution.resolve(
                order,
                _event(
                    OrderAccepted,
                    kernel,
                    order,
                    venue_order_id=order.venue_order_id or order.client_order_id,
                ),
            )
        can_rest = (
            order.order_type is OrderType.LIMIT
            and order.status not in (OrderStatus.PENDING_CANCEL,)
            and order.leaves_qty > 0
        )
        restore = getattr(venue, "restore", None)
        if can_rest and restore is not None:
            restore(order, arrived_ns=order.ts_init)
        else:
            kernel.execution.resolve(
                order, _event(OrderCanceled, kernel, order, reason="canceled: the node restarted")
            )
        report.resolved += 1


def _event(
    event_type: type[OrderEvent], kernel: Kernel, order: Order, **fields: object
) -> OrderEvent:
    return event_type(
        ts_ns=kernel.clock.timestamp_ns(),
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        instrument_id=order.instrument_id,
        **fields,
    )


def _status_name(ord_status: str) -> str:
    return {"2": "filled", "4": "canceled", "8": "rejected", "C": "expired"}.get(
        ord_status, f"OrdStatus {ord_status}"
    )

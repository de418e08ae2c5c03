"""Reconciliation with a FIX venue: make the node's orders and positions agree with it.

1. OrderMassStatusRequest: every order the venue holds open. One the node knows
   takes the venue's current ClOrdID; one it does not know but that carries its
   client order id prefix is adopted (the journal lost it); anyone else's, or one the
   node holds at another venue, is a mismatch.
2. OrderStatusRequest for each order the node holds open at this venue that the venue
   did not list: the venue's final state (canceled, expired, rejected) is applied; an
   order the venue does not know never reached it and is rejected ("not known at
   venue") - it is never re-sent. So is each order the journal holds as created but
   not submitted (``INITIALIZED``: a node that died between journaling an order and
   its submission; under group commit the order may even have been sent): the
   venue's answer decides, and its submission is journaled first (``adopt``) so that
   the state that follows applies as to any order sent.
3. RequestForPositions: the venue's net position per instrument against the node's,
   for this venue's instruments only (a position the venue reports in another
   venue's instrument is a mismatch, never compared with the node's position there).

Fills are never invented here: missed ExecutionReports arrive through the FIX resend
(see ``bastion.venues.fix.recovery``) and are applied once, by ExecID. A cumulative
quantity that still differs, a position off by more than the tolerance, or a query
the venue does not answer is a mismatch. The report's ``node_wide`` says whether one
touches what the whole node shares: a fill or position that differs, an order the
node closed that the venue still works, another venue's order or instrument. One
that does not (a query unanswered, somebody else's order, a state that cannot be
applied) concerns this venue's orders only.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple, Protocol

from bastion.errors import TemporaryError
from bastion.execution.ids import order_id_of
from bastion.fix.codec import FixMessage
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderRejected,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import UNKNOWN_STRATEGY, Order
from bastion.venues.base import ReconcileContext, VenueReconciliation, order_event

NOT_KNOWN_AT_VENUE: Final = "not known at venue (reconciliation): it never reached the venue"
_OPEN_STATUSES = frozenset({"0", "1", "5", "6", "9", "A", "D", "E"})
_SIDE = {"1": "BUY", "2": "SELL"}
_SUBMISSION_LOST = (
    "journaled as created, its submission not: the venue's status decides (never re-sent)"
)


class _Venue(Protocol):
    """What reconciliation needs of the FIX venue adapter."""

    name: str
    instruments: dict[str, Instrument]

    async def mass_status(self, timeout_s: float = 5.0) -> list[FixMessage]: ...

    async def order_status(self, order: Order, timeout_s: float = 5.0) -> FixMessage: ...

    async def positions(self, timeout_s: float = 5.0) -> dict[str, Decimal]: ...

    def set_venue_cl_ord_id(self, client_order_id: str, cl_ord_id: str) -> None: ...

    def register(self, order: Order) -> None: ...


async def reconcile(venue: _Venue, context: ReconcileContext) -> VenueReconciliation:
    """Reconcile the node's orders and positions at ``venue``; a venue query that fails
    or times out leaves the reconciliation incomplete (a mismatch)."""
    report = VenueReconciliation(venue=venue.name)
    try:
        await _reconcile(venue, context, report)
    except TemporaryError as error:
        report.mismatches.append(f"reconciliation incomplete: {error}")
    return report


async def _reconcile(venue: _Venue, context: ReconcileContext, report: VenueReconciliation) -> None:
    orders = context.orders
    mismatches = report.mismatches
    listed: set[str] = set()
    for status in await venue.mass_status(context.timeout_s):
        cl_ord_id = status.get(11) or ""
        coid = order_id_of(cl_ord_id)
        listed.add(coid)
        report.orders_checked += 1
        order = orders.order(coid)
        if order is not None and order.venue != venue.name:
            # the node sent it to another venue: never take this venue's word for it
            mismatches.append(
                f"venue lists open order {cl_ord_id}, which the node holds at venue {order.venue}"
            )
            report.node_wide = True
            continue
        if order is not None and order.status is OrderStatus.INITIALIZED:
            orders.adopt(order, reason=_SUBMISSION_LOST)
            report.adopted += 1
        if order is None:
            if not coid.startswith(context.order_id_prefix):
                mismatches.append(f"venue holds open order {cl_ord_id} that this node never sent")
                continue
            order = _adopt_reported(context, venue, status)
            if order is None:
                mismatches.append(f"venue order {cl_ord_id}: report unreadable")
                continue
            report.adopted += 1
        venue.set_venue_cl_ord_id(coid, cl_ord_id)
        problem = _compare_open(context, order, status)
        if problem is not None:
            _add(report, problem)
        elif order.status is OrderStatus.SUBMITTED:
            orders.resolve(order, _event(OrderAccepted, context, order, status.get(37) or ""))
            report.resolved += 1
    missing = [
        o for o in orders.open_orders() if o.venue == venue.name and o.client_order_id not in listed
    ]
    missing += [
        o
        for o in orders.orders()
        if o.status is OrderStatus.INITIALIZED
        and o.venue == venue.name
        and o.client_order_id not in listed
    ]
    answers = await asyncio.gather(
        *(venue.order_status(o, context.timeout_s) for o in missing), return_exceptions=True
    )
    for order, answer in zip(missing, answers, strict=True):
        report.orders_checked += 1
        if isinstance(answer, BaseException):
            mismatches.append(f"{order.client_order_id}: no status from the venue ({answer!r})")
            continue
        if order.status is OrderStatus.INITIALIZED:
            orders.adopt(order, reason=_SUBMISSION_LOST)
        problem = _resolve_closed(context, order, answer)
        if problem is None:
            report.resolved += 1
        else:
            _add(report, problem)
    if context.compare_positions:
        await _compare_positions(context, venue, report)


class _Problem(NamedTuple):
    """A mismatch, and whether it touches what the whole node shares (fills, positions)."""

    text: str
    node_wide: bool = False


def _add(report: VenueReconciliation, problem: _Problem) -> None:
    report.mismatches.append(problem.text)
    report.node_wide = report.node_wide or problem.node_wide


def _compare_open(context: ReconcileContext, order: Order, status: FixMessage) -> _Problem | None:
    coid = order.client_order_id
    if not order.is_open:
        # still working at the venue, where it may fill, while the node counts it closed
        return _Problem(f"{coid}: open at the venue, {order.status.value} in the node", True)
    return _compare_filled(context, order, status, "open")


def _compare_filled(
    context: ReconcileContext, order: Order, status: FixMessage, state: str
) -> _Problem | None:
    """The venue's CumQty (14) against the node's filled quantity: a mismatch, or None."""
    instrument = context.instruments[order.instrument_id]
    try:
        cum = instrument.size_raw(Decimal(status.get(14) or "0"))
    except (InvalidOperation, ValueError):
        return _Problem(f"{order.client_order_id}: venue CumQty {status.get(14)!r} unreadable")
    if cum == order.filled_qty:
        return None
    return _Problem(
        f"{order.client_order_id}: {state} at the venue with {instrument.size(cum)} filled, "
        f"{instrument.size(order.filled_qty)} in the node",
        node_wide=True,
    )


def _resolve_closed(context: ReconcileContext, order: Order, status: FixMessage) -> _Problem | None:
    """Apply the final state the venue reports for an order it no longer lists open."""
    coid = order.client_order_id
    ord_status = status.get(39) or ""
    text = status.get(58) or ""
    instrument = context.instruments[order.instrument_id]
    orders = context.orders
    if ord_status == "8" and "unknown" in text.lower():
        if order.filled_qty:
            return _Problem(
                f"{coid}: unknown at the venue but {instrument.size(order.filled_qty)} filled",
                node_wide=True,
            )
        orders.resolve(order, _event(OrderRejected, context, order, reason=NOT_KNOWN_AT_VENUE))
        return None
    if ord_status in _OPEN_STATUSES:
        return None  # opened meanwhile (it was in flight); nothing to resolve
    problem = _compare_filled(context, order, status, _status_name(ord_status))
    if problem is not None:
        return problem
    reason = f"{_status_name(ord_status)} at the venue (reconciliation)"
    event: OrderEvent
    if ord_status == "4":
        event = _event(OrderCanceled, context, order, reason=reason)
    elif ord_status == "C":
        event = _event(OrderExpired, context, order)
    elif ord_status == "8":
        event = _event(OrderRejected, context, order, reason=text or reason)
    else:
        return _Problem(
            f"{coid}: venue OrdStatus {ord_status!r} with the node's fills, node has it open"
        )
    if order.status is OrderStatus.SUBMITTED and ord_status != "8":
        orders.resolve(order, _event(OrderAccepted, context, order, status.get(37) or ""))
    if not orders.resolve(order, event):
        return _Problem(
            f"{coid}: venue state {_status_name(ord_status)} cannot apply to {order.status.value}"
        )
    return None


async def _compare_positions(
    context: ReconcileContext, venue: _Venue, report: VenueReconciliation
) -> None:
    try:
        venue_net = await venue.positions(context.timeout_s)
    except TemporaryError as error:
        report.mismatches.append(f"no positions from the venue ({error})")
        return
    report.positions_compared = True
    for symbol in sorted(set(venue_net) | set(venue.instruments)):
        instrument = venue.instruments.get(symbol)
        theirs = venue_net.get(symbol, Decimal(0))
        if instrument is None:  # not this venue's: the node's position there is elsewhere
            if theirs:
                other = context.instruments.get(symbol)
                where = (
                    f"traded by the node at venue {other.venue}" if other else "not traded by node"
                )
                _add(report, _Problem(f"{symbol}: venue position {theirs}, {where}", bool(other)))
            continue
        ours = instrument.size(context.net_quantity(symbol))
        if abs(ours - theirs) > context.position_tolerance:
            _add(
                report,
                _Problem(f"{symbol}: position {ours} in the node, {theirs} at the venue", True),
            )


def _adopt_reported(context: ReconcileContext, venue: _Venue, status: FixMessage) -> Order | None:
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
        client_order_id=order_id_of(status.get(11) or ""),
        strategy_id=status.get(526) or UNKNOWN_STRATEGY,
        instrument_id=instrument.id,
        venue=venue.name,
        side=OrderSide(side),
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        quantity=quantity,
        price=price,
        ts_init=context.clock.timestamp_ns(),
    )
    context.orders.adopt(order, reason="open at the venue; unknown to the journal")
    venue.register(order)
    return order


def _event(
    event_type: type[OrderEvent],
    context: ReconcileContext,
    order: Order,
    venue_order_id: str | None = None,
    **fields: object,
) -> OrderEvent:
    if venue_order_id is not None:
        fields["venue_order_id"] = venue_order_id
    return order_event(event_type, context.clock.timestamp_ns(), order, **fields)


def _status_name(ord_status: str) -> str:
    return {"2": "filled", "4": "canceled", "8": "rejected", "C": "expired"}.get(
        ord_status, f"OrdStatus {ord_status}"
    )

"""Checking an account's request (against an instrument, or against the account asking);
the rows and matching-engine orders it becomes."""

from __future__ import annotations

from decimal import Decimal

import bastion.venue_server._exact as _exact
from bastion.model.enums import OrderType
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venue_server.ledger import OrderRow
from bastion.venue_server.messages import (
    POS_REQ_POSITIONS,
    POS_RESULT_NOT_AUTHORIZED,
    POS_RESULT_UNSUPPORTED,
    REJ_INCORRECT_QUANTITY,
    REJ_OTHER,
    REJ_UNSUPPORTED,
    STATUS_NEW,
    NewOrderRequest,
    PositionsRequest,
)


def quantity_raw(instrument: Instrument, quantity: Decimal) -> int:
    """The raw quantity; ValueError unless positive and a whole number of lots."""
    if not quantity.is_finite() or quantity <= 0:
        raise ValueError(f"quantity {quantity} is not positive")
    raw = instrument.size_raw(quantity)
    if not instrument.is_on_lot(raw):
        raise ValueError(f"quantity {quantity} is not a multiple of the lot {instrument.lot_size}")
    return raw


def price_raw(instrument: Instrument, price: Decimal) -> int:
    """The raw price; ValueError unless finite and on the tick."""
    if not price.is_finite():
        raise ValueError(f"price {price} is not a finite number")
    raw = instrument.price_raw(price)
    if not instrument.is_on_tick(raw):
        raise ValueError(f"price {price} is not on the tick {instrument.tick_size}")
    return raw


def new_order_problem(instrument: Instrument, request: NewOrderRequest) -> tuple[int, str] | None:
    """Why the venue refuses ``request`` (OrdRejReason, text), or None."""
    try:
        quantity_raw(instrument, request.quantity)
    except ValueError as error:
        return REJ_INCORRECT_QUANTITY, str(error)
    if request.order_type is OrderType.LIMIT and request.price is None:
        return REJ_UNSUPPORTED, "a limit order needs a price"
    if request.order_type is OrderType.MARKET and request.price is not None:
        return REJ_UNSUPPORTED, "a market order takes no price"
    if request.price is not None:
        try:
            price_raw(instrument, request.price)
        except ValueError as error:
            return REJ_OTHER, str(error)
    return None


def positions_problem(account: str, request: PositionsRequest) -> tuple[int, str] | None:
    """Why the venue refuses ``request`` from ``account`` (PosReqResult, text), or None.

    Another account's positions are "not authorized" (3): FIX has a result for exactly
    that, so the node gets a RequestForPositionsAck it can match by PosReqID rather than
    a BusinessMessageReject, which is for messages the application cannot process at all.
    """
    if request.pos_req_type != POS_REQ_POSITIONS:
        return POS_RESULT_UNSUPPORTED, "unsupported request for positions"
    if request.account is not None and request.account != account:
        return POS_RESULT_NOT_AUTHORIZED, f"not authorized for account {request.account}"
    return None


def order_row(account: str, order_id: str, request: NewOrderRequest, now_ns: int) -> OrderRow:
    """The row a new order request opens (status New until the venue says otherwise)."""
    return OrderRow(
        account=account,
        order_id=order_id,
        root_cl_ord_id=request.cl_ord_id,
        cl_ord_id=request.cl_ord_id,
        orig_cl_ord_id=None,
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        time_in_force=request.time_in_force,
        quantity=request.quantity,
        price=request.price,
        cum_qty=_exact.ZERO,
        cum_notional=_exact.ZERO,
        status=STATUS_NEW,
        priority=0,
        created_ns=now_ns,
        updated_ns=now_ns,
    )


def sim_order(order: OrderRow, instrument: Instrument, venue: str) -> Order:
    """The matching engine's order for ``order``: its client order id is the venue's
    order id and its strategy id the account, so the events it causes find their way back."""
    return Order(
        client_order_id=order.order_id,
        strategy_id=order.account,
        instrument_id=order.symbol,
        venue=venue,
        side=order.side,
        order_type=order.order_type,
        quantity=instrument.size_raw(order.quantity),
        price=None if order.price is None else instrument.price_raw(order.price),
        time_in_force=order.time_in_force,
        ts_init=order.created_ns,
    )

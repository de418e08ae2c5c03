"""The order state machine: every legal transition, every illegal pair, fills and updates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingReplace,
    OrderRejected,
    OrderSubmitted,
    OrderTransitionRefused,
    OrderUpdated,
)
from bastion.model.orders import TRANSITIONS, InvalidTransition, Order

S = OrderStatus
QTY = 10
PRICE = 10_000

# How to reach each status from a fresh order (a legal path through the machine).
PATHS: dict[OrderStatus, list[type[OrderEvent]]] = {
    S.INITIALIZED: [],
    S.DENIED: [OrderDenied],
    S.SUBMITTED: [OrderSubmitted],
    S.ACCEPTED: [OrderSubmitted, OrderAccepted],
    S.REJECTED: [OrderSubmitted, OrderRejected],
    S.PENDING_CANCEL: [OrderSubmitted, OrderAccepted, OrderPendingCancel],
    S.PENDING_REPLACE: [OrderSubmitted, OrderAccepted, OrderPendingReplace],
    S.PARTIALLY_FILLED: [OrderSubmitted, OrderAccepted, OrderFilled],
    S.FILLED: [OrderSubmitted, OrderAccepted, OrderFilled],
    S.CANCELED: [OrderSubmitted, OrderAccepted, OrderCanceled],
    S.EXPIRED: [OrderSubmitted, OrderAccepted, OrderExpired],
}

# The status each legal (status, event) pair leads to, written out independently of
# TRANSITIONS. Fills here are partial (1 of 10); pending states were entered from ACCEPTED.
EXPECTED: dict[tuple[OrderStatus, type[OrderEvent]], OrderStatus] = {
    (S.INITIALIZED, OrderDenied): S.DENIED,
    (S.INITIALIZED, OrderSubmitted): S.SUBMITTED,
    (S.SUBMITTED, OrderAccepted): S.ACCEPTED,
    (S.SUBMITTED, OrderRejected): S.REJECTED,
    (S.SUBMITTED, OrderCanceled): S.CANCELED,
    (S.SUBMITTED, OrderExpired): S.EXPIRED,
    (S.SUBMITTED, OrderFilled): S.PARTIALLY_FILLED,
    (S.SUBMITTED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.SUBMITTED, OrderPendingReplace): S.PENDING_REPLACE,
    (S.ACCEPTED, OrderCanceled): S.CANCELED,
    (S.ACCEPTED, OrderExpired): S.EXPIRED,
    (S.ACCEPTED, OrderFilled): S.PARTIALLY_FILLED,
    (S.ACCEPTED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.ACCEPTED, OrderPendingReplace): S.PENDING_REPLACE,
    (S.ACCEPTED, OrderUpdated): S.ACCEPTED,
    (S.PARTIALLY_FILLED, OrderCanceled): S.CANCELED,
    (S.PARTIALLY_FILLED, OrderExpired): S.EXPIRED,
    (S.PARTIALLY_FILLED, OrderFilled): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, OrderPendingReplace): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, OrderUpdated): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, OrderCanceled): S.CANCELED,
    (S.PENDING_CANCEL, OrderExpired): S.EXPIRED,
    (S.PENDING_CANCEL, OrderFilled): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, OrderPendingCancel): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, OrderPendingReplace): S.PENDING_REPLACE,
    (S.PENDING_CANCEL, OrderCancelRejected): S.ACCEPTED,
    (S.PENDING_CANCEL, OrderAccepted): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, OrderUpdated): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, OrderModifyRejected): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, OrderRejected): S.REJECTED,
    (S.PENDING_REPLACE, OrderCanceled): S.CANCELED,
    (S.PENDING_REPLACE, OrderExpired): S.EXPIRED,
    (S.PENDING_REPLACE, OrderFilled): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, OrderPendingCancel): S.PENDING_CANCEL,
    (S.PENDING_REPLACE, OrderPendingReplace): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, OrderUpdated): S.ACCEPTED,
    (S.PENDING_REPLACE, OrderModifyRejected): S.ACCEPTED,
    (S.PENDING_REPLACE, OrderAccepted): S.PENDING_REPLACE,
}

LEGAL_PAIRS = sorted(
    ((status, event_type) for status, row in TRANSITIONS.items() for event_type in row),
    key=lambda pair: (pair[0].value, pair[1].__name__),
)
ILLEGAL_PAIRS = sorted(
    (
        (status, event_type)
        for status in OrderStatus
        for event_type in ORDER_EVENT_TYPES
        if event_type not in TRANSITIONS[status]
    ),
    key=lambda pair: (pair[0].value, pair[1].__name__),
)


def _pair_id(pair: tuple[OrderStatus, type[OrderEvent]]) -> str:
    return f"{pair[0].value}-{pair[1].__name__}"


def new_order(
    *,
    side: OrderSide = OrderSide.BUY,
    quantity: int = QTY,
    price: int | None = PRICE,
    order_type: OrderType = OrderType.LIMIT,
) -> Order:
    return Order(
        client_order_id="node-1-1",
        strategy_id="s1",
        instrument_id="XYZ.SIM",
        venue="SIM",
        side=side,
        order_type=order_type,
        quantity=quantity,
        price=price,
        time_in_force=TimeInForce.GTC,
        ts_init=1,
    )


def make_event(event_type: type[OrderEvent], order: Order, ts_ns: int = 100, **fields: object):
    """An event of ``event_type`` for ``order`` with plausible field values."""
    common = {
        "ts_ns": ts_ns,
        "client_order_id": order.client_order_id,
        "strategy_id": order.strategy_id,
        "instrument_id": order.instrument_id,
    }
    defaults: dict[type[OrderEvent], dict[str, object]] = {
        OrderInitialized: {
            "side": order.side,
            "order_type": order.order_type,
            "time_in_force": order.time_in_force,
            "quantity": order.quantity,
            "price": order.price,
        },
        OrderDenied: {"reason": "R", "message": "m"},
        OrderSubmitted: {"venue": "SIM"},
        OrderAccepted: {"venue_order_id": "SIM-1"},
        OrderRejected: {"reason": "R"},
        OrderUpdated: {"quantity": order.quantity + 5, "price": PRICE - 1},
        OrderCancelRejected: {"reason": "R"},
        OrderModifyRejected: {"reason": "R"},
        OrderFilled: {
            "venue_order_id": "SIM-1",
            "exec_id": f"E-{ts_ns}",
            "side": order.side,
            "last_qty": 1,
            "last_px": PRICE,
            "fee": Decimal(0),
            "fee_currency": "USD",
            "liquidity": LiquiditySide.TAKER,
        },
        OrderTransitionRefused: {"status": "X", "event": "Y"},
    }
    return event_type(**{**common, **defaults.get(event_type, {}), **fields})


def order_in(status: OrderStatus, **order_fields: object) -> Order:
    """A fresh order driven along a legal path into ``status``."""
    order = new_order(**order_fields)  # type: ignore[arg-type]
    for step, event_type in enumerate(PATHS[status]):
        extra: dict[str, object] = {}
        if event_type is OrderFilled:
            extra["last_qty"] = order.quantity if status is S.FILLED else 1
        order.apply(make_event(event_type, order, ts_ns=10 + step, **extra))
    assert order.status is status
    return order


def snapshot(order: Order) -> dict[str, object]:
    return {name: getattr(order, name) for name in Order.__slots__}


def test_when_expected_table_is_compared_then_it_covers_exactly_the_legal_pairs() -> None:
    """The independent table of outcomes names exactly the pairs TRANSITIONS allows."""
    assert set(EXPECTED) == set(LEGAL_PAIRS)


@pytest.mark.parametrize("pair", LEGAL_PAIRS, ids=_pair_id)
def test_when_legal_event_applied_then_status_is_expected(
    pair: tuple[OrderStatus, type[OrderEvent]],
) -> None:
    """Each legal (status, event) pair moves the order to the status the table gives."""
    status, event_type = pair
    order = order_in(status)
    order.apply(make_event(event_type, order, ts_ns=500))
    assert order.status is EXPECTED[pair]
    assert order.ts_last == 500


@pytest.mark.parametrize("pair", ILLEGAL_PAIRS, ids=_pair_id)
def test_when_illegal_event_applied_then_invalid_transition_and_order_unchanged(
    pair: tuple[OrderStatus, type[OrderEvent]],
) -> None:
    """An illegal (status, event) pair raises InvalidTransition and changes nothing."""
    status, event_type = pair
    order = order_in(status)
    before = snapshot(order)
    event = make_event(event_type, order, ts_ns=500)
    assert not order.can_apply(event)
    with pytest.raises(InvalidTransition) as excinfo:
        order.apply(event)
    assert excinfo.value.status is status
    assert excinfo.value.event_name == event_type.__name__
    assert snapshot(order) == before


@pytest.mark.parametrize(
    "status",
    sorted((s for s, row in TRANSITIONS.items() if OrderFilled in row), key=lambda s: s.value),
    ids=lambda s: s.value,
)
def test_when_fill_completes_quantity_then_filled_from_any_fillable_status(
    status: OrderStatus,
) -> None:
    """A fill of the whole remaining quantity ends in FILLED from every status allowing fills."""
    order = order_in(status)
    order.apply(make_event(OrderFilled, order, ts_ns=600, last_qty=order.leaves_qty))
    assert order.status is S.FILLED
    assert order.filled_qty == QTY
    assert order.leaves_qty == 0
    assert order.is_closed


def test_when_partial_fills_sum_to_quantity_then_partially_filled_then_filled() -> None:
    """Fills of 3, 3 and 4 go PARTIALLY_FILLED, PARTIALLY_FILLED, FILLED with an exact average."""
    order = order_in(S.ACCEPTED)
    statuses = []
    for n, (qty, px) in enumerate([(3, 10_000), (3, 10_001), (4, 10_003)]):
        order.apply(make_event(OrderFilled, order, ts_ns=700 + n, last_qty=qty, last_px=px))
        statuses.append(order.status)
    assert statuses == [S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, S.FILLED]
    assert order.filled_qty == 10
    assert order.filled_notional == 3 * 10_000 + 3 * 10_001 + 4 * 10_003
    assert order.avg_px * 10 == 100_015


def test_when_fill_exceeds_leaves_then_refused_and_order_unchanged() -> None:
    """An overfill (more than leaves) is refused; the earlier partial fill stays."""
    order = order_in(S.PARTIALLY_FILLED)
    before = snapshot(order)
    with pytest.raises(InvalidTransition):
        order.apply(make_event(OrderFilled, order, ts_ns=800, last_qty=QTY))
    assert snapshot(order) == before
    assert order.filled_qty == 1


@pytest.mark.parametrize("last_qty", [0, -1])
def test_when_fill_quantity_not_positive_then_refused(last_qty: int) -> None:
    """A fill of zero or negative quantity is refused."""
    order = order_in(S.ACCEPTED)
    before = snapshot(order)
    with pytest.raises(InvalidTransition):
        order.apply(make_event(OrderFilled, order, last_qty=last_qty))
    assert snapshot(order) == before


def test_when_fill_has_wrong_side_then_refused_and_order_unchanged() -> None:
    """A SELL execution reported for a BUY order is refused."""
    order = order_in(S.ACCEPTED)
    before = snapshot(order)
    with pytest.raises(InvalidTransition):
        order.apply(make_event(OrderFilled, order, side=OrderSide.SELL))
    assert snapshot(order) == before


def test_when_partial_fill_while_pending_cancel_then_stays_pending_remembering_fill() -> None:
    """A fill after the cancel request keeps PENDING_CANCEL and records PARTIALLY_FILLED."""
    order = order_in(S.PENDING_CANCEL)
    order.apply(make_event(OrderFilled, order, last_qty=4))
    assert order.status is S.PENDING_CANCEL
    assert order.previous_status is S.PARTIALLY_FILLED
    assert order.filled_qty == 4


def test_when_cancel_rejected_after_fill_while_pending_then_partially_filled() -> None:
    """A cancel reject after a fill during the pending cancel returns to PARTIALLY_FILLED."""
    order = order_in(S.PENDING_CANCEL)
    order.apply(make_event(OrderFilled, order, last_qty=4))
    order.apply(make_event(OrderCancelRejected, order))
    assert order.status is S.PARTIALLY_FILLED
    assert order.filled_qty == 4


def test_when_fill_completes_order_while_pending_cancel_then_filled() -> None:
    """A fill of the rest during a pending cancel ends the order FILLED."""
    order = order_in(S.PENDING_CANCEL)
    order.apply(make_event(OrderFilled, order, last_qty=4))
    order.apply(make_event(OrderFilled, order, last_qty=6, exec_id="E-2"))
    assert order.status is S.FILLED
    assert order.is_closed


@pytest.mark.parametrize(
    ("path", "reject"),
    [
        ([OrderSubmitted, OrderAccepted], OrderCancelRejected),
        ([OrderSubmitted, OrderAccepted, OrderFilled], OrderCancelRejected),
        ([OrderSubmitted], OrderCancelRejected),
        ([OrderSubmitted, OrderAccepted], OrderModifyRejected),
        ([OrderSubmitted, OrderAccepted, OrderFilled], OrderModifyRejected),
    ],
    ids=["accepted-cancel", "partial-cancel", "submitted-cancel", "accepted-mod", "partial-mod"],
)
def test_when_request_rejected_then_order_returns_to_prior_status(
    path: list[type[OrderEvent]], reject: type[OrderEvent]
) -> None:
    """A cancel or modify reject puts the order back in the status it had before the request."""
    order = new_order()
    for event_type in path:
        order.apply(make_event(event_type, order))
    prior = order.status
    pending = OrderPendingCancel if reject is OrderCancelRejected else OrderPendingReplace
    order.apply(make_event(pending, order))
    assert order.previous_status is prior
    order.apply(make_event(reject, order))
    assert order.status is prior


@pytest.mark.parametrize(
    ("pending", "reject"),
    [(OrderPendingCancel, OrderCancelRejected), (OrderPendingReplace, OrderModifyRejected)],
    ids=["cancel", "modify"],
)
def test_when_accepted_during_pending_request_and_request_rejected_then_accepted(
    pending: type[OrderEvent], reject: type[OrderEvent]
) -> None:
    """An ack that arrives while a request is pending is remembered: a reject goes to ACCEPTED."""
    order = order_in(S.SUBMITTED)
    order.apply(make_event(pending, order))
    order.apply(make_event(OrderAccepted, order, venue_order_id="SIM-9"))
    order.apply(make_event(reject, order))
    assert order.venue_order_id == "SIM-9"
    assert order.status is S.ACCEPTED


@pytest.mark.parametrize(
    ("pending", "closer"),
    [
        (OrderPendingCancel, OrderCancelRejected),
        (OrderPendingReplace, OrderModifyRejected),
        (OrderPendingReplace, OrderUpdated),
    ],
    ids=["cancel-rejected", "modify-rejected", "replaced"],
)
def test_when_fill_then_late_ack_during_pending_request_then_returns_partially_filled(
    pending: type[OrderEvent], closer: type[OrderEvent]
) -> None:
    """Pending request, a fill, then a late ack: ending the request returns PARTIALLY_FILLED."""
    order = order_in(S.SUBMITTED)
    order.apply(make_event(pending, order))
    order.apply(make_event(OrderFilled, order, last_qty=4))
    order.apply(make_event(OrderAccepted, order))
    order.apply(make_event(closer, order))
    assert order.filled_qty == 4
    assert order.status is S.PARTIALLY_FILLED


def test_when_replace_acknowledged_after_ack_during_pending_then_accepted() -> None:
    """Submit, modify before the ack, ack, then OrderUpdated: the order is ACCEPTED."""
    order = order_in(S.SUBMITTED)
    order.apply(make_event(OrderPendingReplace, order))
    order.apply(make_event(OrderAccepted, order))
    order.apply(make_event(OrderUpdated, order, quantity=12, price=PRICE + 1))
    assert order.quantity == 12
    assert order.status is S.ACCEPTED


def test_when_order_updated_then_quantity_and_price_change() -> None:
    """OrderUpdated in ACCEPTED sets the new quantity and price."""
    order = order_in(S.ACCEPTED)
    order.apply(make_event(OrderUpdated, order, quantity=25, price=9_990))
    assert (order.quantity, order.price, order.status) == (25, 9_990, S.ACCEPTED)
    assert order.leaves_qty == 25


def test_when_order_updated_with_no_price_then_price_kept() -> None:
    """OrderUpdated with price None changes only the quantity."""
    order = order_in(S.PENDING_REPLACE)
    order.apply(make_event(OrderUpdated, order, quantity=7, price=None))
    assert (order.quantity, order.price, order.status) == (7, PRICE, S.ACCEPTED)


def test_when_update_below_filled_then_refused_and_order_unchanged() -> None:
    """A new quantity below the filled quantity is refused; nothing changes."""
    order = order_in(S.ACCEPTED)
    order.apply(make_event(OrderFilled, order, last_qty=6))
    before = snapshot(order)
    with pytest.raises(InvalidTransition):
        order.apply(make_event(OrderUpdated, order, quantity=5, price=PRICE - 100))
    assert snapshot(order) == before
    assert (order.quantity, order.price, order.status) == (QTY, PRICE, S.PARTIALLY_FILLED)


def test_when_update_below_filled_while_pending_replace_then_still_pending() -> None:
    """A refused OrderUpdated during PENDING_REPLACE leaves the order pending and unchanged."""
    order = order_in(S.ACCEPTED)
    order.apply(make_event(OrderFilled, order, last_qty=6))
    order.apply(make_event(OrderPendingReplace, order))
    before = snapshot(order)
    with pytest.raises(InvalidTransition):
        order.apply(make_event(OrderUpdated, order, quantity=5, price=None))
    assert snapshot(order) == before
    assert order.status is S.PENDING_REPLACE


def test_when_accepted_then_venue_order_id_recorded() -> None:
    """OrderAccepted stores the venue's order id."""
    order = order_in(S.SUBMITTED)
    order.apply(make_event(OrderAccepted, order, venue_order_id="SIM-42"))
    assert order.venue_order_id == "SIM-42"
    assert order.is_open


def test_when_limit_order_without_price_then_value_error() -> None:
    """A limit order needs a price."""
    with pytest.raises(ValueError, match="limit order needs a price"):
        new_order(order_type=OrderType.LIMIT, price=None)


def test_when_market_order_with_price_then_value_error() -> None:
    """A market order takes no price."""
    with pytest.raises(ValueError, match="market order takes no price"):
        new_order(order_type=OrderType.MARKET, price=PRICE)


@pytest.mark.parametrize("quantity", [0, -5])
def test_when_quantity_not_positive_then_order_still_built_for_the_risk_gate(
    quantity: int,
) -> None:
    """A non-positive quantity is the risk gate's to deny (INVALID_QUANTITY), not a crash."""
    order = new_order(quantity=quantity)
    assert order.quantity == quantity
    assert order.status is S.INITIALIZED


def test_when_market_order_built_then_initialized_and_not_open() -> None:
    """A valid market order starts INITIALIZED, not open, nothing filled."""
    order = new_order(order_type=OrderType.MARKET, price=None)
    assert order.status is S.INITIALIZED
    assert not order.is_open
    assert not order.is_closed
    assert order.avg_px is None
    assert order.leaves_qty == QTY

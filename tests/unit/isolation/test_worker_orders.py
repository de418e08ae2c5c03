"""A strategy process's copy of its orders (``isolation.worker``): the requests it sends
move its copy ahead at once, as they move the core's once the gate passes them, and the
core's events (or its refusals) bring it back to the core's state."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bastion.isolation import protocol as p
from bastion.isolation.worker import Outbox, WorkerGate, WorkerOrders
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderInitialized,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingReplace,
    OrderSubmitted,
    OrderUpdated,
)
from bastion.model.orders import Order

S = OrderStatus


@pytest.fixture
def pair() -> Iterator[tuple[WorkerOrders, WorkerGate, socket.socket]]:
    mine, core = socket.socketpair()
    orders = WorkerOrders("n-1-", (1, 3))
    yield orders, WorkerGate(Outbox(mine), orders), core
    mine.close()
    core.close()


def _limit(orders: WorkerOrders) -> Order:
    return orders.create_order(
        strategy_id="s",
        instrument_id="XYZ.SIM",
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=5,
        price=100,
    )


def _event(kind: type, order: Order, **fields: object) -> object:
    return kind(
        ts_ns=1,
        client_order_id=order.client_order_id,
        strategy_id="s",
        instrument_id="XYZ.SIM",
        **fields,
    )


def _sent(gate: WorkerGate, core: socket.socket) -> list[object]:
    gate._outbox.flush()
    core.setblocking(False)
    buffer = p.FrameBuffer(p.MAX_WORKER_FRAME)
    buffer.feed(core.recv(1 << 16))
    out = []
    while (payload := buffer.next()) is not None:
        out.append(p.WORKER_DECODER.decode(payload))
    return out


def test_when_ids_run_out_then_granted_ranges_are_used_in_order(
    pair: tuple[WorkerOrders, WorkerGate, socket.socket],
) -> None:
    orders, _, _ = pair
    ids = [_limit(orders).client_order_id for _ in range(3)]
    orders.grant(10, 11)
    ids += [_limit(orders).client_order_id for _ in range(2)]
    assert ids == ["n-1-1", "n-1-2", "n-1-3", "n-1-10", "n-1-11"]
    with pytest.raises(Exception, match="no client order ids left"):
        _limit(orders)


def test_when_an_order_is_sent_then_it_counts_as_submitted_until_the_gate_answers(
    pair: tuple[WorkerOrders, WorkerGate, socket.socket],
) -> None:
    orders, gate, core = pair
    order = _limit(orders)
    assert gate.submit_order(order) is True
    assert order.status is S.SUBMITTED and order in orders.open_orders("s")
    assert orders.open_quantity("s", "XYZ.SIM") == 5
    assert gate.submit_order(order) is False  # never twice
    (sent,) = _sent(gate, core)
    assert isinstance(sent, p.Submit) and sent.client_order_id == order.client_order_id
    for event in (
        _event(
            OrderInitialized,
            order,
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=order.time_in_force,
            quantity=5,
            price=100,
        ),
        _event(OrderSubmitted, order, venue="SIM"),
    ):
        orders.apply(event)  # type: ignore[arg-type]
    assert order.status is S.SUBMITTED
    orders.apply(_event(OrderAccepted, order, venue_order_id="v1"))  # type: ignore[arg-type]
    assert _status(order) is S.ACCEPTED


def _status(order: Order) -> OrderStatus:
    """The order's status, read anew (mypy narrows ``order.status`` across calls)."""
    return order.status


def test_when_the_gate_denies_then_the_copy_is_denied_and_no_longer_open(
    pair: tuple[WorkerOrders, WorkerGate, socket.socket],
) -> None:
    orders, gate, _ = pair
    order = _limit(orders)
    gate.submit_order(order)
    orders.apply(_event(OrderDenied, order, reason="MAX_ORDER_QUANTITY", message="x"))  # type: ignore[arg-type]
    assert order.status is S.DENIED
    assert orders.open_orders() == [] and orders.order(order.client_order_id) is None


@pytest.mark.parametrize(
    ("request_kind", "pending", "refusal"),
    [
        ("cancel", S.PENDING_CANCEL, OrderCancelRejected),
        ("modify", S.PENDING_REPLACE, OrderModifyRejected),
    ],
)
def test_when_a_cancel_or_modify_is_refused_then_the_copy_returns_to_accepted(
    pair: tuple[WorkerOrders, WorkerGate, socket.socket],
    request_kind: str,
    pending: OrderStatus,
    refusal: type,
) -> None:
    orders, gate, core = pair
    order = _limit(orders)
    gate.submit_order(order)
    orders.apply(_event(OrderAccepted, order, venue_order_id="v1"))  # type: ignore[arg-type]
    if request_kind == "cancel":
        assert gate.cancel_order(order) is True
        assert gate.cancel_order(order) is True  # already pending: nothing more sent
    else:
        assert gate.modify_order(order, 6, 101) is True
    assert order.status is pending
    confirm = OrderPendingCancel if request_kind == "cancel" else OrderPendingReplace
    orders.apply(_event(confirm, order))  # type: ignore[arg-type]
    assert order.status is pending and order.previous_status is S.ACCEPTED
    orders.apply(_event(refusal, order, reason="refused by the risk gate"))  # type: ignore[arg-type]
    assert order.status is S.ACCEPTED
    kinds = [type(m) for m in _sent(gate, core)]
    assert kinds == [p.Submit, p.Cancel if request_kind == "cancel" else p.Modify]


def test_when_the_venue_confirms_then_the_copy_follows_and_forgets_the_order(
    pair: tuple[WorkerOrders, WorkerGate, socket.socket],
) -> None:
    orders, gate, _ = pair
    order = _limit(orders)
    gate.submit_order(order)
    orders.apply(_event(OrderAccepted, order, venue_order_id="v1"))  # type: ignore[arg-type]
    gate.modify_order(order, 7, 102)
    orders.apply(_event(OrderUpdated, order, quantity=7, price=102))  # type: ignore[arg-type]
    assert (order.status, order.quantity, order.price) == (S.ACCEPTED, 7, 102)
    gate.cancel_order(order)
    orders.apply(_event(OrderCanceled, order))  # type: ignore[arg-type]
    assert order.status is S.CANCELED
    assert orders.order(order.client_order_id) is None
    assert gate.cancel_order(order) is False and gate.modify_order(order, 1, 1) is False

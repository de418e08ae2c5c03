"""A kernel with two venues: each order goes to its instrument's venue (one addressed to
another is denied), each venue sees only its instruments' quotes, and one venue halted
leaves the other trading; status reports each venue and the instruments that cannot
trade."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bastion.errors import CommandRefused
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import OrderDenied, OrderModifyRejected, OrderRejected
from bastion.node.actions import NodeOperator
from bastion.strategy.runner import GateView, OrdersView
from kit.two_venues import T0, X, Y, send, two_venue_kernel


def test_when_orders_sent_then_each_reaches_its_instruments_venue(tmp_path: Path) -> None:
    """X.A rests at venue A, Y.B at venue B (venue order ids carry the venue's name)."""
    kernel = two_venue_kernel(tmp_path)
    at_a, at_b = send(kernel, X), send(kernel, Y)
    assert (at_a.status, at_b.status) == (OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
    assert at_a.venue_order_id.startswith("A-7-") and at_b.venue_order_id.startswith("B-7-")
    assert asyncio.run(kernel.venues["A"].open_order_ids()) == {at_a.client_order_id}
    assert asyncio.run(kernel.venues["B"].open_order_ids()) == {at_b.client_order_id}
    with pytest.raises(ValueError, match="2 venues"):
        _ = kernel.venue


def test_when_quote_arrives_then_only_its_venue_matches_on_it(tmp_path: Path) -> None:
    """A quote of Y.B that crosses a resting Y.B buy fills it at venue B; venue A's
    resting X.A buy at the same price is untouched."""
    kernel = two_venue_kernel(tmp_path)
    at_a, at_b = send(kernel, X), send(kernel, Y)
    kernel.on_quote(QuoteTick(Y, T0 + 1, 8_990, 9_000, 500, 500))
    assert at_b.status is OrderStatus.FILLED
    assert at_a.status is OrderStatus.ACCEPTED
    assert kernel.portfolio.net_quantity(Y) == 1 and kernel.portfolio.net_quantity(X) == 0


def test_when_one_venue_killed_then_its_orders_canceled_and_refused_other_trades_on(
    tmp_path: Path,
) -> None:
    """kill --venue A: A's order canceled, a new X.A order rejected with the reason, Y.B
    still accepted; status shows A halted and X.A unavailable; resume lets A trade."""
    kernel = two_venue_kernel(tmp_path)
    operator = NodeOperator(kernel)
    at_a, at_b = send(kernel, X), send(kernel, Y)
    rejected: list[OrderRejected] = []
    kernel.bus.subscribe(OrderRejected, rejected.append)

    answer = asyncio.run(operator.kill(flatten=False, who="op", why="drill", venue="A"))
    assert (answer["venue"], answer["cancels_sent"]) == ("A", 1)
    assert answer["halted"] == "kill by op: drill"
    assert answer["unavailable_instruments"] == [X]
    assert at_a.status is OrderStatus.CANCELED and at_b.status is OrderStatus.ACCEPTED
    refused = send(kernel, X)
    assert refused.status is OrderStatus.REJECTED
    assert [e.reason for e in rejected] == ["venue A halted: kill by op: drill"]
    assert send(kernel, Y).status is OrderStatus.ACCEPTED
    status = asyncio.run(operator.status())
    assert status["state"] == "ACTIVE"
    assert status["unavailable_instruments"] == [X]
    assert status["venues"]["A"] == {
        "kind": "sim",
        "connected": True,
        "halted": "kill by op: drill",
        "cancels_after_halt": 0,
        "open_orders": 0,
        "instruments": [X],
    }
    assert status["venues"]["B"]["open_orders"] == 2

    resumed = asyncio.run(operator.resume(who="op", why="over", venue="A"))
    assert resumed["resumed"] is True
    assert send(kernel, X).status is OrderStatus.ACCEPTED
    assert asyncio.run(operator.status())["unavailable_instruments"] == []


def test_when_kill_names_unknown_venue_or_flattens_one_then_refused(tmp_path: Path) -> None:
    """A venue the node does not have, or --flatten for one venue, is refused."""
    operator = NodeOperator(two_venue_kernel(tmp_path))
    with pytest.raises(CommandRefused, match="no venue 'C' on this node"):
        asyncio.run(operator.kill(flatten=False, who="op", why="", venue="C"))
    with pytest.raises(CommandRefused, match="whole node"):
        asyncio.run(operator.kill(flatten=True, who="op", why="", venue="A"))


def test_when_a_strategy_routes_an_order_to_another_venue_then_denied_wrong_venue(
    tmp_path: Path,
) -> None:
    """A strategy builds an order for X.A (venue A, halted) addressed to venue B: the gate
    denies it WRONG_VENUE, so it reaches neither venue (nor B's throttle); Y.B at B
    still trades."""
    kernel = two_venue_kernel(tmp_path)
    asyncio.run(NodeOperator(kernel).kill(flatten=False, who="op", why="drill", venue="A"))
    orders, gate = OrdersView(kernel.execution), GateView(kernel.risk)  # a strategy's views
    denied: list[OrderDenied] = []
    kernel.bus.subscribe(OrderDenied, denied.append)
    order = orders.create_order(
        strategy_id="s",
        instrument_id=X,
        venue="B",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=9_000,
    )
    assert gate.submit_order(order) is False
    kernel.flush()
    assert order.status is OrderStatus.DENIED
    assert [(e.reason, e.message) for e in denied] == [
        ("WRONG_VENUE", "X.A trades at venue A, not at B")
    ]
    for venue in ("A", "B"):
        assert asyncio.run(kernel.venues[venue].open_order_ids()) == set()
    assert send(kernel, Y).status is OrderStatus.ACCEPTED


def test_when_venue_halted_then_an_amend_is_refused_and_a_cancel_still_goes(
    tmp_path: Path,
) -> None:
    """An order still working at a halted venue cannot be made bigger or moved (the amend
    is refused with the halt's reason, the order keeps its size and price); it can
    still be canceled."""
    kernel = two_venue_kernel(tmp_path)
    order = send(kernel, X)
    size, price = order.quantity, order.price
    refused: list[OrderModifyRejected] = []
    kernel.bus.subscribe(OrderModifyRejected, refused.append)
    kernel.venues["A"].halt("drill")

    assert kernel.risk.modify_order(order, size * 5, 9_500)
    kernel.flush()
    assert [e.reason for e in refused] == ["venue A halted: drill"]
    assert (order.status, order.quantity, order.price) == (OrderStatus.ACCEPTED, size, price)
    assert kernel.risk.cancel_order(order)
    kernel.flush()
    assert order.status is OrderStatus.CANCELED

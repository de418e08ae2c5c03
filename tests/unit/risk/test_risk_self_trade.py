"""Self-trade prevention and strategy permissions."""

from __future__ import annotations

from decimal import Decimal

from bastion.model.enums import OrderStatus
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from kit.risk_node import BUY, COARSE, SELL, Node, assert_denied, assert_sent, stock_at


def test_when_buy_reaches_own_resting_sell_then_self_trade_and_one_tick_below_allowed() -> None:
    """self_trade=deny: s2's buy at s1's ask 100.05 is denied, at 100.04 it passes."""
    node = Node(self_trade="deny")
    resting = node.submit(SELL, 10, 10_005)
    assert_denied(node, node.submit(BUY, 5, 10_005, strategy="s2"), "SELF_TRADE")
    assert resting.client_order_id in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 5, 10_004, strategy="s2"))


def test_when_sell_reaches_own_resting_buy_then_self_trade() -> None:
    """A sell at or below the node's own resting bid would trade with it."""
    node = Node(self_trade="deny")
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(SELL, 5, 10_000), "SELF_TRADE")
    assert_sent(node, node.submit(SELL, 5, 10_001))


def test_when_market_order_and_own_resting_opposite_then_self_trade() -> None:
    """A market order crosses any resting order on the other side."""
    node = Node(self_trade="deny")
    node.submit(SELL, 10, 11_000)
    assert_denied(node, node.submit(BUY, 1), "SELF_TRADE")


def test_when_other_instrument_then_no_self_trade() -> None:
    """Resting orders on another instrument do not count."""
    node = Node(self_trade="deny")
    node.submit(SELL, 10, 10_000, instrument=COARSE)
    assert_sent(node, node.submit(BUY, 1, 10_000))


def test_when_cancel_resting_then_resting_canceled_and_new_order_sent() -> None:
    """self_trade=cancel_resting: the crossed resting order is canceled, the new one goes out."""
    node = Node(self_trade="cancel_resting")
    crossed = node.submit(SELL, 10, 10_005)
    far = node.submit(SELL, 10, 10_010)
    incoming = node.submit(BUY, 5, 10_005, strategy="s2")
    assert_sent(node, incoming)
    assert crossed.status is OrderStatus.PENDING_CANCEL
    assert far.status is OrderStatus.SUBMITTED
    assert node.venue.canceled == [crossed.client_order_id]


def test_when_cancel_resting_but_new_order_denied_then_nothing_canceled() -> None:
    """Resting orders are canceled only for an order that passes every other check."""
    node = Node(self_trade="cancel_resting", max_order_quantity=Decimal(5))
    crossed = node.submit(SELL, 5, 10_005)
    assert_denied(node, node.submit(BUY, 6, 10_005), "MAX_ORDER_QUANTITY")
    assert crossed.status is OrderStatus.SUBMITTED
    assert node.venue.canceled == []


def test_when_self_trade_off_then_crossing_allowed() -> None:
    """The default (off) does not look at resting orders."""
    node = Node()
    node.submit(SELL, 10, 10_000)
    assert_sent(node, node.submit(BUY, 10, 10_000))


def test_when_instrument_not_in_allow_list_then_not_permitted() -> None:
    """s1 may trade XYZ.SIM only; ABC.SIM is refused for it but not for s2."""
    node = Node(RiskConfig(strategies={"s1": StrategyRiskConfig(instruments=["XYZ.SIM"])}))
    assert_sent(node, node.submit(BUY, 1, 10_000))
    assert_denied(node, node.submit(BUY, 10, 10_000, instrument=COARSE), "NOT_PERMITTED")
    assert "ABC.SIM" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 10, 10_000, instrument=COARSE, strategy="s2"))


def test_when_venue_not_in_allow_list_then_not_permitted() -> None:
    """s1 may trade on SIM only: an order for an instrument at ALT is refused."""
    node = Node(
        RiskConfig(strategies={"s1": StrategyRiskConfig(venues=["SIM"])}), extra_venues=("ALT",)
    )
    assert_sent(node, node.submit(BUY, 1, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000, instrument=stock_at("ALT")), "NOT_PERMITTED")
    assert "venue ALT" in node.denied[-1].message

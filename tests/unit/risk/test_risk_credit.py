"""Credit: node-wide gross exposure and cash usage, working orders and the new order included."""

from __future__ import annotations

from decimal import Decimal

from kit.risk_node import BUY, COARSE, FUTURE, SELL, Node, assert_denied, assert_sent


def test_when_exposure_at_max_then_allowed_and_one_lot_beyond_denied() -> None:
    """Long 50 at mid 100 + sell 20 working + buy 30 = 10000 exposure passes; one more lot not."""
    node = Node(max_total_exposure=Decimal(10_000))
    node.quote(10_000, 10_000)
    node.hold(50)
    assert_sent(node, node.submit(SELL, 20, 10_000))
    assert_sent(node, node.submit(BUY, 30, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "CREDIT_LIMIT")
    assert "max_total_exposure 10000" in node.denied[-1].message


def test_when_exposure_one_tick_beyond_then_denied() -> None:
    """Buy 30 at 100.01 on top of 7000 makes 10000.30 of exposure: denied; at 100.00 it passes."""
    node = Node(max_total_exposure=Decimal(10_000))
    node.quote(10_000, 10_000)
    node.hold(70)
    assert_denied(node, node.submit(BUY, 30, 10_001), "CREDIT_LIMIT")
    assert_sent(node, node.submit(BUY, 30, 10_000))


def test_when_exposure_across_instruments_then_multiplier_and_scales_apply() -> None:
    """1 ES at 4000 x 50 = 200000 plus 10 ABC at 100 = 1000 fits 201000; one more ABC lot not."""
    node = Node(max_total_exposure=Decimal(201_000))
    assert_sent(node, node.submit(BUY, 1, 400_000, instrument=FUTURE))
    assert_sent(node, node.submit(SELL, 10, 10_000, instrument=COARSE))
    assert_denied(node, node.submit(SELL, 10, 10_000, instrument=COARSE), "CREDIT_LIMIT")


def test_when_another_instruments_quote_moves_then_the_exposure_follows_it() -> None:
    """Long 1 ES: at 4000.25 (x 50 = 200012.50) a buy of 1 XYZ at 100 exceeds 200100;
    an ES quote at 4000.00, with no order on ES, makes room for it (revalued at the quote)."""
    node = Node(max_total_exposure=Decimal(200_100))
    node.quote(10_000, 10_000)
    node.hold(1, 400_000, FUTURE)
    node.quote(400_025, 400_025, FUTURE)
    assert_denied(node, node.submit(BUY, 1, 10_000), "CREDIT_LIMIT")
    assert "total exposure 200112.50" in node.denied[-1].message
    node.quote(400_000, 400_000, FUTURE)
    assert_sent(node, node.submit(BUY, 1, 10_000))


def test_when_cash_usage_at_max_then_allowed_and_one_lot_beyond_denied() -> None:
    """5000 spent + buy 40 working + buy 10 = 10000 of cash passes; one more lot does not."""
    node = Node(max_cash_usage=Decimal(10_000))
    node.hold(50, px=10_000)
    assert_sent(node, node.submit(BUY, 40, 10_000))
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "CREDIT_LIMIT")
    assert "max_cash_usage 10000" in node.denied[-1].message
    assert_sent(node, node.submit(SELL, 100, 10_000))


def test_when_market_order_and_credit_limit_then_valued_at_mid() -> None:
    """A market buy is valued at the mid; without a quote it cannot be valued."""
    node = Node(max_cash_usage=Decimal(1_000))
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    node.quote(9_999, 10_001)
    assert_sent(node, node.submit(BUY, 10))
    assert_denied(node, node.submit(BUY, 1), "CREDIT_LIMIT")

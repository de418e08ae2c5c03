"""Price collar and reference price: allowed at the band's edge, denied one tick beyond."""

from __future__ import annotations

from decimal import Decimal

from bastion.risk.config import InstrumentRiskConfig, RiskConfig
from kit.risk_node import BUY, COARSE, SELL, STOCK, T0, Node, assert_denied, assert_sent

MS = 1_000_000


def test_when_limit_price_at_collar_ticks_then_allowed_and_one_tick_beyond_denied() -> None:
    """collar_ticks=5 around mid 100.01: buy 100.06 and sell 99.96 pass, 100.07 and 99.95 do not."""
    node = Node(collar_ticks=5)
    node.quote(10_000, 10_002)
    assert_sent(node, node.submit(BUY, 1, 10_006))
    assert_sent(node, node.submit(SELL, 1, 9_996))
    assert_denied(node, node.submit(BUY, 1, 10_007), "PRICE_COLLAR")
    assert "collar_ticks 5" in node.denied[-1].message
    assert_denied(node, node.submit(SELL, 1, 9_995), "PRICE_COLLAR")


def test_when_limit_price_at_collar_pct_then_allowed_and_one_tick_beyond_denied() -> None:
    """collar_pct=1 around mid 100.00: 101.00 and 99.00 pass, 101.01 and 98.99 do not."""
    node = Node(collar_pct=Decimal(1))
    node.quote(9_999, 10_001)
    assert_sent(node, node.submit(BUY, 1, 10_100))
    assert_sent(node, node.submit(SELL, 1, 9_900))
    assert_denied(node, node.submit(BUY, 1, 10_101), "PRICE_COLLAR")
    assert "collar_pct 1" in node.denied[-1].message
    assert "100.00" in node.denied[-1].message
    assert_denied(node, node.submit(SELL, 1, 9_899), "PRICE_COLLAR")


def test_when_mid_is_half_a_tick_then_collar_is_exact() -> None:
    """Mid 100.005, collar_ticks=1: 100.01 and 100.00 pass (half a tick), 100.02 and 99.99 not."""
    node = Node(collar_ticks=1)
    node.quote(10_000, 10_001)
    assert_sent(node, node.submit(BUY, 1, 10_001))
    assert_sent(node, node.submit(SELL, 1, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_002), "PRICE_COLLAR")
    assert_denied(node, node.submit(SELL, 1, 9_999), "PRICE_COLLAR")


def test_when_collar_reference_is_touch_then_buys_use_ask_and_sells_use_bid() -> None:
    """Touch reference, 2 ticks: buys are collared around the ask 100.02, sells around the bid."""
    node = Node(collar_ticks=2, collar_reference="touch")
    node.quote(10_000, 10_002)
    assert_sent(node, node.submit(BUY, 1, 10_004))
    assert_denied(node, node.submit(BUY, 1, 10_005), "PRICE_COLLAR")
    assert_sent(node, node.submit(SELL, 1, 9_998))
    assert_denied(node, node.submit(SELL, 1, 9_997), "PRICE_COLLAR")


def test_when_no_quote_and_collar_then_limit_and_market_orders_have_no_reference() -> None:
    """With a collar and no quote yet, neither a limit nor a market order can be checked."""
    node = Node(collar_ticks=5)
    assert_denied(node, node.submit(BUY, 1, 10_000), "NO_REFERENCE_PRICE")
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")


def test_when_quote_reaches_max_age_then_fresh_and_one_ns_older_is_stale() -> None:
    """reference_max_age_ms=500: a market order passes at exactly 500 ms, not 1 ns later."""
    node = Node(reference_max_age_ms=500)
    node.quote(10_000, 10_002, ts_ns=T0)
    node.clock.set_time(T0 + 500 * MS)
    assert_sent(node, node.submit(BUY, 1))
    node.clock.set_time(T0 + 500 * MS + 1)
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    assert "reference_max_age_ms 500" in node.denied[-1].message


def test_when_only_max_age_configured_then_limit_orders_need_no_reference() -> None:
    """Without a collar a limit order is not checked against the quote's age."""
    node = Node(reference_max_age_ms=500)
    assert_sent(node, node.submit(BUY, 1, 10_000))


def test_when_stale_quote_and_collar_then_limit_order_denied() -> None:
    """A collared limit order needs a fresh quote as much as a market order does."""
    node = Node(collar_ticks=5, reference_max_age_ms=100)
    node.quote(10_000, 10_002, ts_ns=T0)
    node.clock.set_time(T0 + 101 * MS)
    assert_denied(node, node.submit(BUY, 1, 10_001), "NO_REFERENCE_PRICE")


def test_when_instrument_overrides_collar_then_only_that_instrument_is_tighter() -> None:
    """[risk] collar_ticks=5 with collar_ticks=1 for XYZ.SIM: ABC.SIM keeps 5 ticks."""
    node = Node(
        RiskConfig(collar_ticks=5, instruments={STOCK.id: InstrumentRiskConfig(collar_ticks=1)})
    )
    node.quote(10_000, 10_000)
    node.quote(10_000, 10_000, instrument=COARSE)
    assert_sent(node, node.submit(BUY, 1, 10_001))
    assert_denied(node, node.submit(BUY, 1, 10_002), "PRICE_COLLAR")
    assert_sent(node, node.submit(BUY, 10, 10_025, instrument=COARSE))
    assert_denied(node, node.submit(BUY, 10, 10_030, instrument=COARSE), "PRICE_COLLAR")


def test_when_modify_reprices_beyond_collar_then_command_denied() -> None:
    """Moving a working order's price out of the collar is refused; the order keeps its price."""
    node = Node(collar_ticks=2)
    node.quote(10_000, 10_000)
    order = node.submit(BUY, 1, 10_000)
    assert node.gate.modify_order(order, 1, 10_003) is False
    assert node.command_denied[-1].reason == "PRICE_COLLAR"
    assert node.gate.modify_order(order, 1, 10_002) is True


def test_when_instrument_overrides_order_size_then_override_applies() -> None:
    """max_order_quantity=100 for the node and 10 for XYZ.SIM: 10 passes there, 11 does not."""
    node = Node(
        RiskConfig(
            max_order_quantity=Decimal(100),
            instruments={STOCK.id: InstrumentRiskConfig(max_order_quantity=Decimal(10))},
        )
    )
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(BUY, 11, 10_000), "MAX_ORDER_QUANTITY")
    assert "max_order_quantity 10" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 100, 10_000, instrument=COARSE))


def test_when_amend_keeps_the_price_then_not_collared() -> None:
    """Shrinking an order the market has moved away from stays possible."""
    node = Node(collar_ticks=2)
    node.quote(10_000, 10_000)
    order = node.submit(BUY, 5, 9_998)
    node.quote(10_100, 10_100)
    assert node.gate.modify_order(order, 3, 9_998) is True
    assert node.gate.modify_order(order, 3, 9_999) is False
    assert node.command_denied[-1].reason == "PRICE_COLLAR"

"""Position limits: worst case of position plus working orders, per instrument and strategy."""

from __future__ import annotations

from decimal import Decimal

from bastion.model.events import OrderCanceled, OrderModifyRejected
from bastion.risk.config import InstrumentRiskConfig, RiskConfig, StrategyRiskConfig
from kit.risk_node import BUY, COARSE, SELL, STOCK, Node, assert_denied, assert_sent


def test_when_long_at_max_long_then_allowed_and_one_lot_beyond_denied() -> None:
    """Hold 40, a buy 50 working: a buy 10 reaches max_long_quantity=100, one more lot does not."""
    node = Node(max_long_quantity=Decimal(100))
    node.hold(40)
    assert_sent(node, node.submit(BUY, 50, 10_000))
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    assert "max_long_quantity 100" in node.denied[-1].message


def test_when_short_at_max_short_then_allowed_and_one_lot_beyond_denied() -> None:
    """Short 40 with a sell 50 working: a sell 10 reaches max_short_quantity=100, 11 does not."""
    node = Node(max_short_quantity=Decimal(100))
    node.hold(-40)
    assert_sent(node, node.submit(SELL, 50, 10_000))
    assert_denied(node, node.submit(SELL, 11, 10_000), "POSITION_LIMIT")
    assert "max_short_quantity 100" in node.denied[-1].message
    assert_sent(node, node.submit(SELL, 10, 10_000))


def test_when_orders_in_flight_unacknowledged_then_they_count() -> None:
    """A sent buy that the venue has not acknowledged yet already uses the long limit."""
    node = Node(max_long_quantity=Decimal(100))
    first = node.submit(BUY, 60, 10_000)
    assert_sent(node, first)  # SUBMITTED: no ack from the recording venue
    assert_denied(node, node.submit(BUY, 41, 10_000), "POSITION_LIMIT")
    assert_sent(node, node.submit(BUY, 40, 10_000))


def test_when_working_orders_on_the_other_side_then_they_do_not_add_room() -> None:
    """Working sells do not make room for buys: the worst case is that only buys fill."""
    node = Node(max_long_quantity=Decimal(10))
    assert_sent(node, node.submit(SELL, 50, 10_100))
    assert_denied(node, node.submit(BUY, 11, 10_000), "POSITION_LIMIT")
    assert_sent(node, node.submit(BUY, 10, 10_000))


def test_when_working_order_canceled_then_its_room_returns() -> None:
    """Once a working buy is canceled by the venue its quantity no longer counts."""
    node = Node(max_long_quantity=Decimal(10))
    working = node.submit(BUY, 10, 10_000)
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    node.gate.cancel_order(working)
    node.execution.process(
        OrderCanceled(
            ts_ns=node.clock.timestamp_ns(),
            client_order_id=working.client_order_id,
            strategy_id="s1",
            instrument_id=STOCK.id,
        )
    )
    assert_sent(node, node.submit(BUY, 10, 10_000))


def test_when_working_order_fills_then_position_replaces_it() -> None:
    """A fill moves quantity from working to position: the total stays at the limit."""
    node = Node(max_long_quantity=Decimal(10))
    working = node.submit(BUY, 10, 10_000)
    node.fill(working, 4)
    assert node.portfolio.net_quantity(STOCK.id) == 4
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    node.fill(working)
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")


def test_when_beyond_the_limit_then_reducing_orders_still_allowed() -> None:
    """Long 50 over max_long_quantity=10: a sell is never blocked by the long limit."""
    node = Node(max_long_quantity=Decimal(10))
    node.hold(50)
    assert_sent(node, node.submit(SELL, 30, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")


def test_when_modify_increases_quantity_beyond_limit_then_command_denied() -> None:
    """Raising a working buy from 50 to 101 breaks max_long_quantity=100; to 100 it does not."""
    node = Node(max_long_quantity=Decimal(100))
    order = node.submit(BUY, 50, 10_000)
    assert node.gate.modify_order(order, 101, 10_000) is False
    assert node.command_denied[-1].reason == "POSITION_LIMIT"
    assert node.gate.modify_order(order, 100, 10_000) is True


def test_when_gross_notional_at_max_then_allowed_and_one_lot_beyond_denied() -> None:
    """Mid 100.00, max_gross_notional=10000: long 100 passes, 101 does not; same short."""
    node = Node(max_gross_notional=Decimal(10_000))
    node.quote(9_999, 10_001)
    assert_sent(node, node.submit(BUY, 60, 9_990))
    assert_denied(node, node.submit(BUY, 41, 9_990), "POSITION_LIMIT")
    assert "max_gross_notional 10000" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 40, 9_990))
    assert_sent(node, node.submit(SELL, 100, 10_010))
    assert_denied(node, node.submit(SELL, 1, 10_010), "POSITION_LIMIT")


def test_when_gross_notional_and_mid_one_tick_higher_then_denied() -> None:
    """Long 100 at mid 100.00 fits 10000; the same order at mid 100.01 does not."""
    node = Node(max_gross_notional=Decimal(10_000))
    node.quote(10_000, 10_000)
    assert_sent(node, node.submit(BUY, 100, 9_990))
    node.quote(10_001, 10_001)
    assert_denied(node, node.submit(BUY, 100, 9_990), "POSITION_LIMIT")


def test_when_instrument_override_then_position_limit_is_per_instrument() -> None:
    """max_long_quantity=20 for the node, 10 for XYZ.SIM: ABC.SIM keeps 20."""
    node = Node(
        RiskConfig(
            max_long_quantity=Decimal(20),
            instruments={STOCK.id: InstrumentRiskConfig(max_long_quantity=Decimal(10))},
        )
    )
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    assert_sent(node, node.submit(BUY, 20, 10_000, instrument=COARSE))
    assert_denied(node, node.submit(BUY, 10, 10_000, instrument=COARSE), "POSITION_LIMIT")


def test_when_instrument_limit_then_all_strategies_count_together() -> None:
    """The per-instrument limit adds up every strategy's position and working orders."""
    node = Node(max_long_quantity=Decimal(10))
    node.hold(4, strategy="s2")
    assert_sent(node, node.submit(BUY, 3, 10_000, strategy="s3"))
    assert_denied(node, node.submit(BUY, 4, 10_000), "POSITION_LIMIT")
    assert_sent(node, node.submit(BUY, 3, 10_000))


def test_when_strategy_limit_then_only_that_strategy_counts() -> None:
    """s1 may be long 10 in each instrument: its own position and orders count, s2's do not."""
    node = Node(RiskConfig(strategies={"s1": StrategyRiskConfig(max_long_quantity=Decimal(10))}))
    node.hold(4, strategy="s1")
    node.hold(50, strategy="s2")
    assert_sent(node, node.submit(BUY, 40, 10_000, strategy="s2"))
    assert_sent(node, node.submit(BUY, 3, 10_000))
    assert_sent(node, node.submit(BUY, 3, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    assert "risk.strategies.s1" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 10, 10_000, instrument=COARSE))


def test_when_strategy_short_and_gross_limits_then_each_applies() -> None:
    """s1's max_short_quantity=5 and max_gross_notional=1000 at mid 100.00."""
    node = Node(
        RiskConfig(
            strategies={
                "s1": StrategyRiskConfig(
                    max_short_quantity=Decimal(5), max_gross_notional=Decimal(1000)
                )
            }
        )
    )
    node.quote(10_000, 10_000)
    assert_sent(node, node.submit(SELL, 5, 10_000))
    assert_denied(node, node.submit(SELL, 1, 10_000), "POSITION_LIMIT")
    assert_sent(node, node.submit(BUY, 10, 10_000))
    assert_denied(node, node.submit(BUY, 1, 10_000), "POSITION_LIMIT")
    assert "max_gross_notional 1000" in node.denied[-1].message


def test_when_amend_in_flight_then_larger_size_counts_until_answered() -> None:
    """A buy 50 amended to 80 counts as 80 until the venue answers; a reject restores 50."""
    node = Node(max_long_quantity=Decimal(100))
    order = node.submit(BUY, 50, 10_000)
    assert node.gate.modify_order(order, 80, 10_000) is True
    assert_denied(node, node.submit(BUY, 21, 10_000), "POSITION_LIMIT")
    node.execution.process(
        OrderModifyRejected(
            ts_ns=node.clock.timestamp_ns(),
            client_order_id=order.client_order_id,
            strategy_id="s1",
            instrument_id=STOCK.id,
            reason="test",
        )
    )
    assert_sent(node, node.submit(BUY, 50, 10_000))

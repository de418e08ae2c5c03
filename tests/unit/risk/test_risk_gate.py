"""The pre-trade risk gate: limits at and one step past, trading states, and denial plumbing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.errors import ConfigError
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, TradingState
from bastion.model.instruments import Instrument
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from bastion.risk.gate import RiskGate
from kit.risk_node import (
    BUY,
    COARSE,
    FRACTIONAL,
    FUTURE,
    SELL,
    STOCK,
    T0,
    Node,
    assert_denied,
    assert_sent,
)

GHOST = Instrument(
    id="GHOST.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal(1),
    quote_currency="USD",
)


@pytest.mark.parametrize(
    ("instrument", "limit", "at_raw"),
    [(STOCK, Decimal(100), 100), (FRACTIONAL, Decimal("2.5"), 25)],
    ids=["whole-lots", "fractional-lots"],
)
def test_when_quantity_at_max_then_allowed_and_one_lot_above_denied(
    instrument: Instrument, limit: Decimal, at_raw: int
) -> None:
    """max_order_quantity allows exactly the limit and denies one lot more."""
    node = Node(max_order_quantity=limit)
    price = instrument.tick_raw * 20
    at = node.submit(BUY, at_raw, price, instrument=instrument)
    assert_sent(node, at)
    above = node.submit(BUY, at_raw + instrument.lot_raw, price, instrument=instrument)
    assert_denied(node, above, "MAX_ORDER_QUANTITY")
    assert "max_order_quantity" in node.denied[-1].message


def test_when_limit_notional_at_max_then_allowed_and_one_tick_above_denied() -> None:
    """10 @ 100.00 against a 1000 notional limit passes; 10 @ 100.01 is denied."""
    node = Node(max_order_notional=Decimal(1000))
    assert_sent(node, node.submit(BUY, 10, 10_000))
    above = node.submit(BUY, 10, 10_001)
    assert_denied(node, above, "MAX_ORDER_NOTIONAL")


def test_when_notional_with_multiplier_then_limit_counts_multiplier() -> None:
    """2 ES @ 4000.00 x 50 = 400000 passes a 400000 limit; one tick higher is denied."""
    node = Node(max_order_notional=Decimal(400_000))
    assert_sent(node, node.submit(SELL, 2, 400_000, instrument=FUTURE))
    assert_denied(node, node.submit(SELL, 2, 400_025, instrument=FUTURE), "MAX_ORDER_NOTIONAL")


def test_when_market_order_then_notional_uses_touch_by_side() -> None:
    """A market buy is valued at the ask and a market sell at the bid."""
    node = Node(max_order_notional=Decimal(1000))
    node.quotes[STOCK.id] = QuoteTick(STOCK.id, T0, 10_000, 10_001, 50, 50)
    assert_denied(node, node.submit(BUY, 10), "MAX_ORDER_NOTIONAL")  # 10 * 100.01
    assert_sent(node, node.submit(SELL, 10))  # 10 * 100.00
    node.quotes[STOCK.id] = QuoteTick(STOCK.id, T0, 9_999, 10_000, 50, 50)
    assert_sent(node, node.submit(BUY, 10))


def test_when_market_order_without_quote_and_notional_limit_then_no_reference_price() -> None:
    """With a notional limit, a market order before any quote cannot be valued: denied."""
    node = Node(max_order_notional=Decimal(1000))
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")


def test_when_market_order_without_quote_and_no_notional_limit_then_sent() -> None:
    """Without a notional limit a market order needs no reference price."""
    node = Node()
    assert_sent(node, node.submit(BUY, 1))


def test_when_halted_then_new_orders_denied_but_cancels_allowed() -> None:
    """HALTED denies every new order and any modify, yet lets a cancel through."""
    node = Node()
    working = node.submit(BUY, 5, 10_000)
    node.gate.set_trading_state(TradingState.HALTED, "operator")
    assert_denied(node, node.submit(SELL, 1, 10_000), "TRADING_HALTED")
    assert_denied(node, node.submit(BUY, 1), "TRADING_HALTED")
    assert node.gate.modify_order(working, 4, 10_000) is False
    assert node.command_denied[-1].reason == "TRADING_HALTED"
    assert node.venue.modified == []
    assert node.gate.cancel_order(working) is True
    assert node.venue.canceled == [working.client_order_id]
    assert working.status is OrderStatus.PENDING_CANCEL


def test_when_halted_from_config_then_orders_denied_from_the_start() -> None:
    """trading_state=HALTED in config starts the gate halted."""
    node = Node(trading_state=TradingState.HALTED)
    assert node.gate.state is TradingState.HALTED
    assert_denied(node, node.submit(BUY, 1, 10_000), "TRADING_HALTED")


def test_when_trading_state_changes_then_event_published_once() -> None:
    """A state change publishes TradingStateChanged; setting the same state again does not."""
    node = Node()
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown")
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown again")
    node.gate.set_trading_state(TradingState.ACTIVE, "reset")
    assert [(e.state, e.reason) for e in node.state_changes] == [
        (TradingState.REDUCING, "drawdown"),
        (TradingState.ACTIVE, "reset"),
    ]


@pytest.mark.parametrize(
    ("held", "side", "qty", "allowed"),
    [
        (10, SELL, 4, True),
        (10, SELL, 10, True),
        (10, SELL, 11, False),
        (10, BUY, 1, False),
        (-10, BUY, 10, True),
        (-10, BUY, 11, False),
        (-10, SELL, 1, False),
        (0, BUY, 1, False),
        (0, SELL, 1, False),
    ],
    ids=[
        "long-partial-close",
        "long-full-close",
        "long-flip",
        "long-add",
        "short-full-close",
        "short-flip",
        "short-add",
        "flat-buy",
        "flat-sell",
    ],
)
def test_when_reducing_then_only_orders_shrinking_without_flipping_allowed(
    held: int, side: OrderSide, qty: int, allowed: bool
) -> None:
    """REDUCING lets through only orders that shrink the net position and do not flip it."""
    node = Node(trading_state=TradingState.REDUCING)
    if held:
        node.hold(held)
    order = node.submit(side, qty, 10_000)
    if allowed:
        assert_sent(node, order)
    else:
        assert_denied(node, order, "REDUCING_ONLY")


def test_when_reducing_and_working_orders_already_close_position_then_more_denied() -> None:
    """Long 10 with a sell 10 working: a second sell 10 would flip the position, so it is denied."""
    node = Node()
    node.hold(10)
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown")
    first = node.submit(SELL, 10, 10_100)
    assert_sent(node, first)
    second = node.submit(SELL, 10, 10_100)
    assert_denied(node, second, "REDUCING_ONLY")


def test_when_quantity_off_lot_then_invalid_quantity() -> None:
    """A quantity that is not a multiple of the lot size (10) is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 15, 10_000, instrument=COARSE), "INVALID_QUANTITY")
    assert_sent(node, node.submit(BUY, 20, 10_000, instrument=COARSE))


def test_when_price_off_tick_then_invalid_price() -> None:
    """A price that is not a multiple of the tick (0.05) is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 10, 10_002, instrument=COARSE), "INVALID_PRICE")
    assert_sent(node, node.submit(BUY, 10, 10_005, instrument=COARSE))


def test_when_instrument_unknown_then_unknown_instrument() -> None:
    """An order for an instrument the gate does not know is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 1, 10_000, instrument=GHOST), "UNKNOWN_INSTRUMENT")


def test_when_venue_unknown_then_unknown_venue() -> None:
    """An order routed to a venue the node does not have is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 1, 10_000, venue="NOWHERE"), "UNKNOWN_VENUE")


def test_when_venue_is_another_than_the_instruments_then_wrong_venue() -> None:
    """An order for XYZ.SIM (venue SIM) routed to ALT, a venue the node has, is denied (s1
    may trade on ALT, but XYZ.SIM is not traded there); amending an open order that got
    there without the gate is refused too, and canceling it still goes."""
    node = Node(
        RiskConfig(strategies={"s1": StrategyRiskConfig(venues=["ALT"])}), extra_venues=("ALT",)
    )
    alt = node.execution._venues["ALT"]
    assert_denied(node, node.submit(BUY, 1, 10_000, venue="ALT"), "WRONG_VENUE")
    assert node.denied[-1].message == "XYZ.SIM trades at venue SIM, not at ALT"
    assert alt.submitted == []  # type: ignore[attr-defined]
    stray = node.order(BUY, 1, 10_000, venue="ALT")
    node.execution.submit(stray)  # e.g. recovered from a journal written before the check
    assert node.gate.modify_order(stray, 2, 10_000) is False
    assert [(e.reason, e.message) for e in node.command_denied] == [
        ("WRONG_VENUE", "XYZ.SIM trades at venue SIM, not at ALT")
    ]
    assert stray.quantity == 1 and alt.modified == []  # type: ignore[attr-defined]
    assert node.gate.cancel_order(stray) is True
    assert alt.canceled == [stray.client_order_id]  # type: ignore[attr-defined]
    assert node.gate.denials == {"WRONG_VENUE": 2}


def test_when_an_instruments_venue_is_not_the_gates_then_config_error() -> None:
    """The gate relies on each instrument's venue being one it knows (the config's rule)."""
    node = Node()
    with pytest.raises(ConfigError, match=r"instrument XYZ\.SIM: venue 'SIM' is not configured"):
        RiskGate(
            config=RiskConfig(),
            bus=node.bus,
            clock=node.clock,
            execution=node.execution,
            portfolio=node.portfolio,
            instruments={STOCK.id: STOCK},
            last_quotes=node.quotes,
            venues={"ALT"},
        )


def test_when_order_denied_then_venue_saw_nothing() -> None:
    """A denied order never reaches the venue: no submit, no OrderSubmitted event."""
    node = Node(max_order_quantity=Decimal(5))
    order = node.order(BUY, 6, 10_000)
    assert node.gate.submit_order(order) is False
    assert node.venue.submitted == []
    assert node.submitted == []
    assert node.execution.open_orders() == []
    assert order.is_closed


def test_when_denials_happen_then_counted_per_reason() -> None:
    """gate.denials counts each denial under its reason code."""
    node = Node(max_order_quantity=Decimal(5))
    node.submit(BUY, 6, 10_000)
    node.submit(SELL, 7, 10_000)
    node.submit(BUY, 10, 10_002, instrument=COARSE)
    node.submit(BUY, 5, 10_000)
    assert node.gate.denials == {"MAX_ORDER_QUANTITY": 2, "INVALID_PRICE": 1}
    assert node.reasons() == ["MAX_ORDER_QUANTITY", "MAX_ORDER_QUANTITY", "INVALID_PRICE"]


def test_when_cancel_of_closed_order_then_command_denied_not_open() -> None:
    """Canceling a denied (closed) order produces CommandDenied ORDER_NOT_OPEN."""
    node = Node(max_order_quantity=Decimal(5))
    order = node.submit(BUY, 6, 10_000)
    assert node.gate.cancel_order(order) is False
    assert [(e.client_order_id, e.reason) for e in node.command_denied] == [
        (order.client_order_id, "ORDER_NOT_OPEN")
    ]
    assert node.venue.canceled == []
    assert node.gate.denials["ORDER_NOT_OPEN"] == 1


def test_when_modify_breaks_a_limit_then_command_denied_and_order_unchanged() -> None:
    """A modify above max_order_quantity is refused with CommandDenied; the order keeps its size."""
    node = Node(max_order_quantity=Decimal(10))
    order = node.submit(BUY, 5, 10_000)
    assert node.gate.modify_order(order, 11, None) is False
    assert node.command_denied[-1].reason == "MAX_ORDER_QUANTITY"
    assert (order.quantity, order.status) == (5, OrderStatus.SUBMITTED)
    assert node.venue.modified == []
    assert node.gate.modify_order(order, 10, 10_001) is True
    assert node.venue.modified == [(order.client_order_id, 10, 10_001)]

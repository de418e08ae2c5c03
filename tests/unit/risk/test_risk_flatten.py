"""The kill switch's flatten: a position larger than max_order_quantity is closed in
slices of at most that size, which the duplicate filter does not hold back; every
other control still applies."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import OrderDenied
from bastion.node.kernel import OPERATOR_STRATEGY_ID, Kernel
from bastion.risk.config import RiskConfig

T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"


def long_position(tmp_path: Path, risk: RiskConfig, quantity: int) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="q.csv", instrument=IID)],
        risk=RiskConfig(),  # no limits while the position is built
        progress=False,
    )
    k = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)
    k.on_quote(QuoteTick(IID, T0, 10_000, 10_002, 10_000, 10_000))
    order = k.execution.create_order(
        strategy_id="s",
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET,
        quantity=quantity,
    )
    k.risk.submit_order(order)
    k.venue.flush()
    assert k.portfolio.net_quantity(IID) == quantity
    k.apply_risk_config(risk)
    return k


def flatten_orders(k: Kernel) -> list[tuple[int, OrderStatus]]:
    return [
        (o.quantity, o.status)
        for o in k.execution.orders()
        if o.strategy_id == OPERATOR_STRATEGY_ID
    ]


def test_when_position_exceeds_max_order_quantity_then_it_is_closed_in_slices(
    tmp_path: Path,
) -> None:
    risk = RiskConfig(max_order_quantity=Decimal(10), duplicate_window_ms=60_000)
    k = long_position(tmp_path, risk, 25)
    k.kill("test")
    assert k.flatten() == (3, 0)
    assert flatten_orders(k) == [
        (10, OrderStatus.FILLED),
        (10, OrderStatus.FILLED),
        (5, OrderStatus.FILLED),
    ]
    assert k.portfolio.net_quantity(IID) == 0
    assert k.risk.state is TradingState.HALTED


def test_when_position_is_exactly_max_order_quantity_then_one_order(tmp_path: Path) -> None:
    k = long_position(tmp_path, RiskConfig(max_order_quantity=Decimal(10)), 10)
    assert k.flatten() == (1, 0)
    assert flatten_orders(k) == [(10, OrderStatus.FILLED)]


def test_when_a_slice_is_denied_then_the_instrument_stops_there(tmp_path: Path) -> None:
    """Other controls still apply: with no fresh quote, the collar denies the first slice."""
    risk = RiskConfig(max_order_quantity=Decimal(10), collar_pct=Decimal(5))
    k = long_position(tmp_path, risk, 25)
    k.last_quotes.clear()
    denied: list[OrderDenied] = []
    k.bus.subscribe(OrderDenied, denied.append)
    assert k.flatten() == (0, 1)
    assert [d.reason for d in denied] == ["NO_REFERENCE_PRICE"]
    assert k.portfolio.net_quantity(IID) == 25

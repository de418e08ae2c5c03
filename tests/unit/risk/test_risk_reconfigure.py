"""New limits on a running gate (operator overrides) and orders recovered after a
restart: working orders keep counting against every limit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.risk.config import RiskConfig
from bastion.risk.overrides import apply_override

T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"
RISK = RiskConfig(max_long_quantity=Decimal(10))


def kernel(tmp_path: Path, journal: SqliteJournal | None = None, epoch: int = 1) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="q.csv", instrument=IID)],
        risk=RISK,
        progress=False,
    )
    k = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=epoch, journal=journal)
    k.on_quote(QuoteTick(IID, T0, 10_000, 10_002, 100, 100))
    return k


def buy(k: Kernel, quantity: int, price: int = 9_000) -> Order:
    """A resting limit buy (far under the market) through the gate."""
    order = k.execution.create_order(
        strategy_id="s",
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        price=price,
    )
    k.risk.submit_order(order)
    k.venue.flush()
    return order


def test_when_limits_change_then_working_orders_still_count(tmp_path: Path) -> None:
    k = kernel(tmp_path)
    assert buy(k, 6).status is OrderStatus.ACCEPTED
    k.apply_risk_config(apply_override(RISK, "max_long_quantity", "8"))
    assert buy(k, 3).status is OrderStatus.DENIED  # 6 working + 3 > 8
    assert buy(k, 2).status is OrderStatus.ACCEPTED  # 6 + 2 = 8: at the limit
    k.apply_risk_config(RISK)  # the override ends
    assert buy(k, 3).status is OrderStatus.DENIED  # 8 working + 3 > 10
    assert buy(k, 2).status is OrderStatus.ACCEPTED


def test_when_a_limit_is_added_then_orders_working_before_it_count(tmp_path: Path) -> None:
    """A gate that kept no book (no position limit) gets one from the open orders."""
    k = kernel(tmp_path)
    k.apply_risk_config(RiskConfig())
    assert buy(k, 9).status is OrderStatus.ACCEPTED
    k.apply_risk_config(RISK)
    assert buy(k, 2).status is OrderStatus.DENIED  # 9 + 2 > 10
    assert buy(k, 1).status is OrderStatus.ACCEPTED


def test_when_recovered_then_open_orders_count_once_tracked(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = kernel(tmp_path, journal)
        assert buy(live, 7).status is OrderStatus.ACCEPTED
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        restarted = kernel(tmp_path, epoch=2)
        recover_state(restarted, journal)
    finally:
        journal.close()
    (working,) = restarted.execution.open_orders()
    restarted.venue.restore(working, arrived_ns=T0)  # type: ignore[union-attr]
    restarted.risk.track_open_orders(restarted.execution.open_orders())
    assert buy(restarted, 4).status is OrderStatus.DENIED  # 7 recovered + 4 > 10
    assert buy(restarted, 3).status is OrderStatus.ACCEPTED

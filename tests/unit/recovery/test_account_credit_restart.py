"""A restart keeps a risk account's credit: the cash its strategies spent (fees included)
and its working orders still count against its limits after recovery, from a snapshot
plus the journal tail or from the journal alone."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture
from bastion.risk.config import AccountRiskConfig, RiskConfig
from bastion.strategy.config import StrategyConfig
from bastion.venues.sim.config import SimVenueConfig

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
IDLE = """
from bastion.strategy.base import Strategy


class Idle(Strategy):
    pass
"""


def build(base: Path, journal: SqliteJournal, max_cash_usage: Decimal) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(name=name, path="idle.py", class_name="Idle") for name in ("a", "b")
        ],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        venue=SimVenueConfig(taker_fee_bps=Decimal(7)),
        risk=RiskConfig(
            accounts={"desk": AccountRiskConfig(strategies=["a"], max_cash_usage=max_cash_usage)}
        ),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1, journal=journal)
    kernel.on_quote(QuoteTick(IID, T0, 9_999, 10_001, 1_000, 1_000))
    return kernel


def send(kernel: Kernel, strategy: str, qty: int, price: int | None = None) -> Order:
    order = kernel.execution.create_order(
        strategy_id=strategy,
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=qty,
        price=price,
    )
    kernel.risk.submit_order(order)
    kernel.venue.flush()
    return order


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot-and-tail", "journal-only"])
def test_when_restarted_then_the_accounts_earlier_spending_still_counts(
    tmp_path: Path, snapshot: bool
) -> None:
    """Strategy a spends (two market buys with fees) and leaves a buy working; after a
    restart, desk's room is its limit minus exactly that: an order filling it passes,
    one cent more is denied; strategy b (no account) is not held back."""
    (tmp_path / "idle.py").write_text(IDLE)
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = build(tmp_path, journal, Decimal(10**6))
        live.start()
        assert send(live, "a", 30).status is OrderStatus.FILLED  # at the ask 100.01
        if snapshot:
            journal.snapshot(capture(live, node_id="n", epoch=1), T0)
        assert send(live, "a", 20).status is OrderStatus.FILLED  # in the journal's tail
        assert send(live, "b", 40).status is OrderStatus.FILLED
        resting = send(live, "a", 10, 9_000)  # 900 working
        assert resting.status is OrderStatus.ACCEPTED
        fees = live.portfolio.strategy_fees["a"]
        spent = 50 * Decimal("100.01") + fees
        assert fees == Decimal("3.50035")  # 7 bps of 5000.50
    finally:
        journal.close()
    # the limit leaves room for exactly 500.00 beyond what a spent and has working
    limit = spent + 900 + 500
    journal = SqliteJournal(path)
    try:
        restarted = build(tmp_path, journal, limit)
        recover_state(restarted, journal)
        restarted.risk.track_open_orders(restarted.execution.open_orders())
        restarted.start()
        assert restarted.portfolio.strategy_fees == {"a": fees, "b": Decimal("2.80028")}
        over = send(restarted, "a", 1, 50_001)  # 500.01
        assert over.status is OrderStatus.DENIED
        denial = restarted.risk.denials
        assert denial == {"CREDIT_LIMIT": 1}
        assert send(restarted, "a", 1, 50_000).status is OrderStatus.ACCEPTED  # at the limit
        assert send(restarted, "a", 1, 1).status is OrderStatus.DENIED
        assert send(restarted, "b", 1, 50_000).status is OrderStatus.ACCEPTED
    finally:
        journal.close()

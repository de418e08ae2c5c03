"""A whole backtest Kernel (idle strategies ``a`` and ``b`` on one instrument) with the
risk controls under test: quotes and market orders pushed through it, the journal's event
types read back. The strategies' file is ``idle.py`` (``kit.strategies.IDLE_STRATEGY``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.journal.base import Journal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from bastion.strategy.config import StrategyConfig

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MS = 1_000_000
RISK = RiskConfig(
    collar_window_pct=Decimal(2),
    collar_window_ms=1_000,
    collar_window_pause_ms=100,
    max_fills=2,
    fills_window_ms=1_000,
    max_daily_loss_node=Decimal(1_000),
)


def build(base: Path, journal: Journal | None, risk: RiskConfig = RISK) -> Kernel:
    """A kernel on a ``SimClock`` at ``T0``, epoch 1, journaling to ``journal`` if given."""
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(name=name, path="idle.py", class_name="Idle") for name in ("a", "b")
        ],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        risk=risk,
        progress=False,
    )
    return Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1, journal=journal)


def quote(kernel: Kernel, mid: int, ts: int) -> None:
    """Move the clock to ``ts`` and hand the kernel a quote one tick either side of ``mid``."""
    kernel.clock.advance_to(ts)  # type: ignore[attr-defined]
    kernel.on_quote(QuoteTick(IID, ts, mid - 1, mid + 1, 50, 50))


def market(kernel: Kernel, strategy: str, side: OrderSide = OrderSide.BUY) -> Order:
    """A market order of one lot by ``strategy`` through the gate, the venue flushed."""
    order = kernel.execution.create_order(
        strategy_id=strategy,
        instrument_id=IID,
        venue="SIM",
        side=side,
        order_type=OrderType.MARKET,
        quantity=1,
    )
    kernel.risk.submit_order(order)
    kernel.venue.flush()
    return order


def journaled_types(path: Path) -> list[str]:
    """The class names of the journal's events, in order."""
    journal = SqliteJournal(path)
    try:
        return [type(event).__name__ for _, event in journal.read()]
    finally:
        journal.close()

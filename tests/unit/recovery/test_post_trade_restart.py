"""A restart in the middle of a trading day keeps the day's starting PnL: a node that
lost most of its daily limit before a crash cannot lose it all again after it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TradingState
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture
from bastion.risk.config import RiskConfig

T0 = 1_704_205_800_000_000_000  # 14:30 UTC: the trading day started at 00:00
IID = "XYZ.SIM"


def kernel(tmp_path: Path, journal: SqliteJournal | None, epoch: int) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="q.csv", instrument=IID)],
        risk=RiskConfig(max_daily_loss_node=Decimal(5)),
        progress=False,
    )
    return Kernel(
        config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=epoch, journal=journal
    )


def quote(k: Kernel, n: int, bid: int, ask: int) -> None:
    ts = T0 + n * 1_000_000
    k.clock.advance_to(ts)  # type: ignore[attr-defined]
    k.on_quote(QuoteTick(IID, ts, bid, ask, 1_000, 1_000))


def test_when_restarted_mid_day_then_the_daily_loss_counts_from_the_days_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = kernel(tmp_path, journal, epoch=1)
        quote(live, 1, 10_000, 10_001)
        live.start()  # the day's starting PnL: 0
        order = live.execution.create_order(
            strategy_id="s",
            instrument_id=IID,
            venue="SIM",
            side=OrderSide.BUY,
            order_type=OrderType.MARKET,
            quantity=100,
        )
        live.risk.submit_order(order)
        live.venue.flush()
        quote(live, 2, 9_997, 9_998)  # long 100 bought at 100.01, marked at 99.97: -4
        live.risk.check_post_trade()
        assert live.risk.state is TradingState.ACTIVE  # 4 <= 5
        journal.snapshot(capture(live, node_id="n", epoch=1), T0)
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        restarted = kernel(tmp_path, journal, epoch=2)
        recover_state(restarted, journal)
        quote(restarted, 3, 9_997, 9_998)
        restarted.start()
        assert restarted.risk.state is TradingState.ACTIVE  # still -4 for the day
        quote(restarted, 4, 9_995, 9_996)  # -6 since the day's start: beyond 5
        restarted.risk.check_post_trade()
    finally:
        journal.close()
    assert restarted.risk.state is TradingState.HALTED
    assert "max_daily_loss_node 5" in restarted.risk.state_reason

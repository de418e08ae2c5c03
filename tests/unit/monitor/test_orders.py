"""Order counts read off the order path: orders sent counted from the OMS's list (denied
ones and those created before the monitor are not), and tick-to-order sampled, a bounded
number of orders per interval."""

from __future__ import annotations

from pathlib import Path

from bastion.model.enums import OrderSide, OrderType
from bastion.monitor.orders import TICK_TO_ORDER_PER_SAMPLE, OrderStats
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from kit.risk_kernel import IID, MS, T0, build, market, quote


def stats_of(kernel: Kernel) -> OrderStats:
    return OrderStats(
        bus=kernel.bus,
        order=kernel.execution.order,
        orders_after=kernel.execution.orders_after,
        last_quotes=kernel.last_quotes,
        started_ns=kernel.clock.timestamp_ns(),
    )


def test_when_more_orders_than_the_budget_then_all_counted_and_the_first_timed(
    tmp_path: Path, idle_strategy_dir: Path
) -> None:
    """100 orders in one interval: 100 counted as sent, the first 64 timed; the next
    interval times again."""
    (tmp_path / "idle.py").write_text((idle_strategy_dir / "idle.py").read_text())
    kernel = build(tmp_path, None, RiskConfig())
    quote(kernel, 10_000, T0)
    kernel.clock.advance_to(T0 + 2 * MS)  # type: ignore[attr-defined]
    stats = stats_of(kernel)
    for n in range(100):
        market(kernel, "a", OrderSide.BUY if n % 2 else OrderSide.SELL)
    tick_to_order, acks, fills = stats.take_latencies()
    assert stats.submitted == {("a", "SIM"): 100}
    assert tick_to_order == [2 * MS] * TICK_TO_ORDER_PER_SAMPLE
    assert len(acks) == len(fills) == 100
    market(kernel, "a")
    assert stats.take_latencies()[0] == [2 * MS]


def test_when_order_denied_or_older_than_the_monitor_then_not_counted_as_sent(
    tmp_path: Path, idle_strategy_dir: Path
) -> None:
    """An order from before the monitor (as a recovered one) and a denied one are not
    sent orders; one created but not sent yet is counted once it is."""
    (tmp_path / "idle.py").write_text((idle_strategy_dir / "idle.py").read_text())
    kernel = build(tmp_path, None, RiskConfig(max_order_quantity=1))
    quote(kernel, 10_000, T0)
    market(kernel, "a")  # before the monitor
    kernel.clock.advance_to(T0 + MS)  # type: ignore[attr-defined]
    stats = stats_of(kernel)
    too_big = kernel.execution.create_order(
        strategy_id="b", instrument_id=IID, venue="SIM", side=OrderSide.BUY,
        order_type=OrderType.MARKET, quantity=2,
    )  # fmt: skip
    assert not kernel.risk.submit_order(too_big)
    waiting = kernel.execution.create_order(
        strategy_id="b", instrument_id=IID, venue="SIM", side=OrderSide.BUY,
        order_type=OrderType.MARKET, quantity=1,
    )  # fmt: skip
    stats.settle()
    assert stats.submitted == {}
    assert stats.denied == {("b", "MAX_ORDER_QUANTITY"): 1}
    kernel.risk.submit_order(waiting)
    stats.settle()
    assert stats.submitted == {("b", "SIM"): 1}

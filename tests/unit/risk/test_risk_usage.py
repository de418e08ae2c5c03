"""``RiskGate.limit_usage``: each configured limit with what counts against it, as its
check counts it: at the limit the ratio is 1, and the order one step past is denied."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.model.enums import OrderSide, OrderStatus, TradingState
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from bastion.risk.usage import LimitUse
from kit.risk_kernel import IID, MS, T0, build, market, quote


def usage(kernel: object) -> dict[tuple[str, str], LimitUse]:
    uses = kernel.risk.limit_usage()  # type: ignore[attr-defined]
    return {(u.limit, u.scope): u for u in uses}


@pytest.fixture
def base(tmp_path: Path, idle_strategy_dir: Path) -> Path:
    (tmp_path / "idle.py").write_text((idle_strategy_dir / "idle.py").read_text())
    return tmp_path


def test_when_no_limit_configured_then_no_usage(base: Path) -> None:
    """Only per-order limits (or none): nothing to report."""
    kernel = build(base, None, RiskConfig(max_order_quantity=Decimal(5)))
    assert kernel.risk.limit_usage() == []


def test_when_position_reaches_its_limit_then_ratio_is_one_and_next_order_denied(
    base: Path,
) -> None:
    """max_long_quantity 2: one lot is half, two the whole; the third is denied and the
    use stays at the limit. The short side counts from the other direction."""
    kernel = build(
        base, None, RiskConfig(max_long_quantity=Decimal(2), max_short_quantity=Decimal(4))
    )
    quote(kernel, 10_000, T0)
    assert usage(kernel)[("max_long_quantity", IID)].ratio == 0.0
    market(kernel, "a")
    assert usage(kernel)[("max_long_quantity", IID)].ratio == 0.5
    market(kernel, "a")
    long_use = usage(kernel)[("max_long_quantity", IID)]
    assert (long_use.used, long_use.cap, long_use.ratio) == (Decimal(2), Decimal(2), 1.0)
    assert market(kernel, "a").status is OrderStatus.DENIED
    assert usage(kernel)[("max_long_quantity", IID)].ratio == 1.0
    assert usage(kernel)[("max_short_quantity", IID)].ratio == 0.0


def test_when_orders_fill_the_throttle_window_then_full_until_it_slides(base: Path) -> None:
    """max_new_orders_per_s 2 per strategy: two orders fill it; a second later it is empty."""
    kernel = build(base, None, RiskConfig(max_new_orders_per_s=2))
    quote(kernel, 10_000, T0)
    market(kernel, "a")
    market(kernel, "a", OrderSide.SELL)
    assert usage(kernel)[("max_new_orders_per_s", "a")].ratio == 1.0
    assert usage(kernel)[("max_new_orders_per_s", "b")].ratio == 0.0
    assert market(kernel, "a").status is OrderStatus.DENIED
    quote(kernel, 10_000, T0 + 1_000 * MS)
    assert usage(kernel)[("max_new_orders_per_s", "a")].ratio == 0.0


def test_when_position_held_then_credit_limits_count_exposure_and_cash(base: Path) -> None:
    """One lot bought at 100.01: exposure at the mid (100.00) and the cash it spent."""
    kernel = build(
        base, None, RiskConfig(max_total_exposure=Decimal(1_000), max_cash_usage=Decimal(500))
    )
    quote(kernel, 10_000, T0)
    market(kernel, "a")
    uses = usage(kernel)
    assert uses[("max_total_exposure", "node")].used == Decimal("100.00")
    assert uses[("max_total_exposure", "node")].ratio == pytest.approx(0.1)
    assert uses[("max_cash_usage", "node")].used == Decimal("100.01")


def test_when_pnl_falls_then_daily_loss_and_drawdown_used_beyond_the_limit(base: Path) -> None:
    """The node's day starts at PnL 0; a lot bought at 100.01 and marked at 89.99 loses
    10.02: past max_daily_loss_node 10 (ratio above 1, the node halted); the strategy's
    own limit reports under its name."""
    risk = RiskConfig(
        max_daily_loss_node=Decimal(10),
        max_drawdown_node=Decimal(20),
        strategies={"a": StrategyRiskConfig(max_daily_loss=Decimal(50))},
    )
    kernel = build(base, None, risk)
    quote(kernel, 10_000, T0)
    kernel.risk.check_post_trade()
    market(kernel, "a")
    quote(kernel, 9_000, T0 + MS)
    kernel.risk.check_post_trade()
    uses = usage(kernel)
    assert uses[("max_daily_loss", "node")].used == Decimal("10.02")
    assert uses[("max_daily_loss", "node")].ratio > 1
    assert uses[("max_drawdown", "node")].used == Decimal("10.02")
    assert uses[("max_daily_loss", "a")].ratio == pytest.approx(10.02 / 50)
    assert kernel.risk.state is TradingState.HALTED

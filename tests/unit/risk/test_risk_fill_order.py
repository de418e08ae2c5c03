"""The order in which a node's components see a fill (``risk.fills``): portfolio, risk
book and credit, post-trade limits, strategies; also after new limits mid-run."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide
from bastion.model.events import OrderDenied, OrderFilled
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from bastion.risk.fills import FillPipeline
from bastion.strategy.config import StrategyConfig

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000

RECORDER = '''
from bastion.strategy.base import Strategy


class Recorder(Strategy):
    """Hands each of its fills to ``observe``, which the test sets."""

    observe = None

    def on_fill(self, fill):
        self.observe(self, fill)
'''


def _fill(n: int = 1) -> OrderFilled:
    return OrderFilled(
        ts_ns=T0,
        client_order_id=f"O-{n}",
        strategy_id="rec",
        instrument_id=IID,
        venue_order_id="V-1",
        exec_id=f"E-{n}",
        side=OrderSide.BUY,
        last_qty=1,
        last_px=10_000,
        fee=Decimal(0),
        fee_currency="USD",
        liquidity=LiquiditySide.TAKER,
    )


class _Stage:
    """Records which stage saw a fill, in one shared list."""

    def __init__(self, seen: list[str], fail: str | None = None) -> None:
        self.seen = seen
        self.fail = fail

    def _see(self, name: str) -> None:
        self.seen.append(name)
        if name == self.fail:
            raise RuntimeError(name)

    def on_fill(self, fill: OrderFilled) -> None:
        self._see("portfolio")

    def fill_pre_trade(self, fill: OrderFilled) -> None:
        self._see("risk pre-trade")

    def fill_post_trade(self, fill: OrderFilled) -> None:
        self._see("risk post-trade")

    def strategies(self, fill: OrderFilled) -> None:
        self._see("strategies")


ORDER = ["portfolio", "risk pre-trade", "risk post-trade", "strategies"]


def test_when_a_fill_comes_then_portfolio_risk_post_trade_and_strategies_see_it_in_turn() -> None:
    """The pipeline hands a fill to each consumer once, in the stated order."""
    seen: list[str] = []
    stage = _Stage(seen)
    pipeline = FillPipeline(portfolio=stage, risk=stage, strategies=stage.strategies)
    pipeline.on_fill(_fill())
    assert seen == ORDER
    assert [name for name, _ in pipeline.stages] == ORDER


def test_when_a_stage_fails_then_the_later_ones_still_see_the_fill_and_the_error_is_raised() -> (
    None
):
    """A failing consumer skips no other (as the bus isolates subscribers); its error is
    raised once all have run."""
    seen: list[str] = []
    stage = _Stage(seen, fail="risk pre-trade")
    pipeline = FillPipeline(portfolio=stage, risk=stage, strategies=stage.strategies)
    with pytest.raises(RuntimeError, match="risk pre-trade"):
        pipeline.on_fill(_fill())
    assert seen == ORDER


class _Idle(_Stage):
    """A risk gate with no control that follows fills, as a default config has."""

    books_fills = False
    watches_fills = False


def test_when_stages_have_nothing_to_do_then_refresh_leaves_them_out_in_order() -> None:
    """``refresh`` drops the risk stages no control needs and the strategies' when none
    listens; the others keep their order, and the stated order stays whole."""
    seen: list[str] = []
    stage = _Idle(seen)
    stage.watches_fills = True
    pipeline = FillPipeline(portfolio=stage, risk=stage, strategies=stage.strategies)
    pipeline.refresh(strategies_listen=False)
    pipeline.on_fill(_fill())
    assert seen == ["portfolio", "risk post-trade"]
    seen.clear()
    pipeline.refresh()
    pipeline.on_fill(_fill(2))
    assert seen == ["portfolio", "risk post-trade", "strategies"]
    assert [name for name, _ in pipeline.stages] == ORDER


def test_when_only_the_portfolio_has_work_then_the_bus_calls_it_in_the_pipelines_place() -> None:
    """Attached to a bus, a pipeline left with one stage has the bus call that stage
    directly, where the pipeline was (before later observers); with more stages again,
    the pipeline itself, in the same place."""
    bus = MessageBus()
    seen: list[str] = []
    stage = _Idle(seen)
    pipeline = FillPipeline(portfolio=stage, risk=stage, strategies=stage.strategies)
    pipeline.attach(bus)
    later: list[OrderFilled] = []
    bus.subscribe(OrderFilled, later.append)
    pipeline.refresh(strategies_listen=False)
    assert pipeline.on_fill == stage.on_fill
    assert bus.subscribers(OrderFilled) == (stage.on_fill, later.append)
    bus.publish(_fill())
    assert seen == ["portfolio"]
    stage.books_fills = True
    pipeline.refresh(strategies_listen=False)
    assert bus.subscribers(OrderFilled) == (pipeline.each, later.append)
    bus.publish(_fill(2))
    assert seen == ["portfolio", "portfolio", "risk pre-trade"]
    assert [f.exec_id for f in later] == ["E-1", "E-2"]


QUIET = '''
from bastion.strategy.base import Strategy


class Quiet(Strategy):
    """Listens to none of its orders' events."""
'''


def _kernel(base: Path, source: str = RECORDER, class_name: str = "Recorder") -> Kernel:
    (base / "strategy.py").write_text(source)
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="rec", path="strategy.py", class_name=class_name)],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1)
    kernel.start()
    kernel.on_quote(QuoteTick(IID, T0, 9_999, 10_001, 1_000, 1_000))
    return kernel


def _settle(kernel: Kernel) -> None:
    """Flush the venue until no request waits (a strategy may send from ``on_fill``)."""
    for _ in range(10):
        if not kernel.venue.inbox:
            return
        kernel.venue.flush()
    raise AssertionError("the venue still has requests")


def test_when_new_limits_watch_fills_mid_run_then_strategies_still_see_fills_last(
    tmp_path: Path,
) -> None:
    """Through a whole kernel: a strategy's ``on_fill`` finds the fill in the portfolio,
    in the risk book and positions (an order up to the position limit passes) and counted
    by the post-trade limits (the fill beyond ``max_fills`` has disabled it already),
    also for limits applied after the start; the node has one fill subscriber."""
    kernel = _kernel(tmp_path)
    strategy: Any = kernel.strategies.strategies["rec"]
    seen: list[tuple[int, int, bool]] = []
    probes: list[int] = []

    def observe(rec: Any, fill: OrderFilled) -> None:
        position = rec.position_raw(IID)
        seen.append((fill.last_qty, position, "rec" in kernel.risk.disabled))
        if position == 6 and not probes:
            # up to max_long_quantity 10 only if the filled order no longer counts as
            # working: the risk book has the fill already
            probes.append(rec.buy(IID, 4).quantity)

    strategy.observe = observe
    denied: list[OrderDenied] = []
    kernel.bus.subscribe(OrderDenied, denied.append)
    assert kernel.bus.subscribers(OrderFilled) == (kernel.fills.on_fill,)

    strategy.buy(IID, 1)
    _settle(kernel)
    kernel.apply_risk_config(
        RiskConfig(max_long_quantity=Decimal(10), max_fills=1, fills_window_ms=60_000)
    )
    strategy.buy(IID, 5)
    _settle(kernel)

    assert denied == []
    assert probes == [4]
    # the third fill is the second within the window: disabled before the strategy hears
    assert seen == [(1, 1, False), (5, 6, False), (4, 10, True)]
    assert kernel.portfolio.n_fills == 3
    assert kernel.bus.subscribers(OrderFilled) == (kernel.fills.on_fill,)


def test_when_no_control_and_no_strategy_follows_fills_then_the_bus_calls_the_portfolio(
    tmp_path: Path,
) -> None:
    """Through a whole kernel with a default risk config and a strategy that does not
    listen: a fill goes from the bus to the portfolio with no call in between; limits
    applied mid-run put the pipeline back in that place, and they count the next fill."""
    kernel = _kernel(tmp_path, QUIET, "Quiet")
    strategy: Any = kernel.strategies.strategies["rec"]
    assert kernel.bus.subscribers(OrderFilled) == (kernel.portfolio.on_fill,)
    assert kernel.fills.on_fill == kernel.portfolio.on_fill
    strategy.buy(IID, 1)
    _settle(kernel)
    assert kernel.portfolio.n_fills == 1

    kernel.apply_risk_config(RiskConfig(max_fills=1, fills_window_ms=60_000))
    assert kernel.bus.subscribers(OrderFilled) == (kernel.fills.each,)
    strategy.buy(IID, 1)
    _settle(kernel)
    strategy.buy(IID, 1)
    _settle(kernel)
    assert kernel.portfolio.n_fills == 3
    assert "rec" in kernel.risk.disabled  # the post-trade stage saw the fills after the change

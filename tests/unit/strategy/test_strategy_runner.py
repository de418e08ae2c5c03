"""Hosting strategies in a kernel: failure isolation, halting, target positions, loading."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import ConfigError
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import (
    OrderDenied,
    OrderEvent,
    OrderFilled,
    StrategyFailed,
    TradingStateChanged,
)
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig
from bastion.strategy.base import Strategy
from bastion.strategy.config import StrategyConfig
from bastion.strategy.runner import load_strategy

T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"


class Recorder(Strategy):
    """Subscribes to quotes and records every call it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.quotes: list[int] = []
        self.events: list[str] = []
        self.stopped = 0

    def on_start(self) -> None:
        self.subscribe_quotes(IID)

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote.ts_ns)

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(type(event).__name__)

    def on_stop(self) -> None:
        self.stopped += 1


class FailsOnQuote(Recorder):
    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote.ts_ns)
        raise ValueError("bad quote handling")


class FailsOnStart(Recorder):
    def on_start(self) -> None:
        self.subscribe_quotes(IID)
        raise RuntimeError("cannot start")


class FailsOnFill(Recorder):
    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote.ts_ns)
        if len(self.quotes) == 1:
            self.buy(IID, 1)

    def on_fill(self, fill: OrderFilled) -> None:
        raise KeyError("fill bookkeeping")


class Trader(Recorder):
    """Trades on every quote (a market buy of 1), to see whether the gate lets it."""

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote.ts_ns)
        self.buy(IID, 1)


def build_kernel(
    tmp_path: Path,
    strategies: list[tuple[str, Strategy, str]],
    strategy_configs: list[StrategyConfig] | None = None,
) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=strategy_configs or [],
        data=[ReplaySourceConfig(path="quotes.csv", instrument=IID)],
        risk=RiskConfig(),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)
    for name, strategy, on_error in strategies:
        kernel.strategies.add(strategy, name, {}, on_error)
    return kernel


def feed(kernel: Kernel, n: int, bid: int = 9_999, ask: int = 10_001, size: int = 100) -> int:
    """Send the n-th quote (1-based) through the kernel; return its timestamp."""
    ts = T0 + n * 1_000_000
    kernel.clock.advance_to(ts)  # type: ignore[attr-defined]
    kernel.on_quote(QuoteTick(IID, ts, bid, ask, size, size))
    return ts


def collect(kernel: Kernel, event_type: type) -> list:
    seen: list = []
    kernel.bus.subscribe(event_type, seen.append)
    return seen


def test_when_strategy_raises_in_on_quote_then_stopped_and_reported_by_name(
    tmp_path: Path,
) -> None:
    """A raising strategy gets StrategyFailed with its name, a failure line, and on_stop."""
    bad = FailsOnQuote()
    kernel = build_kernel(tmp_path, [("bad", bad, "stop")])
    failed = collect(kernel, StrategyFailed)
    kernel.start()
    ts = feed(kernel, 1)
    feed(kernel, 2)
    assert bad.quotes == [ts]
    assert [(e.strategy_id, e.ts_ns) for e in failed] == [("bad", ts)]
    assert "ValueError: bad quote handling" in failed[0].error
    assert kernel.strategies.failures == ["bad: ValueError: bad quote handling"]
    assert "bad" not in kernel.strategies.running
    assert bad.stopped == 1
    assert kernel.risk.state is TradingState.ACTIVE


def test_when_one_strategy_fails_then_others_receive_every_quote(tmp_path: Path) -> None:
    """Strategies after a failing one still get the quote it failed on and all later ones."""
    bad, good = FailsOnQuote(), Recorder()
    kernel = build_kernel(tmp_path, [("bad", bad, "stop"), ("good", good, "stop")])
    kernel.start()
    stamps = [feed(kernel, n) for n in (1, 2, 3)]
    assert good.quotes == stamps
    assert bad.quotes == stamps[:1]
    assert kernel.strategies.running == {"good"}


def test_when_runner_dispatches_and_one_fails_then_others_receive_every_quote(
    tmp_path: Path,
) -> None:
    """StrategyRunner.on_quote (not only the kernel's hot path) isolates a failing strategy."""
    bad, good = FailsOnQuote(), Recorder()
    kernel = build_kernel(tmp_path, [("bad", bad, "stop"), ("good", good, "stop")])
    kernel.start()
    quotes = [QuoteTick(IID, T0 + n, 9_999, 10_001, 5, 5) for n in (1, 2)]
    for quote in quotes:
        kernel.strategies.on_quote(quote)
    assert good.quotes == [T0 + 1, T0 + 2]
    assert kernel.strategies.failures == ["bad: ValueError: bad quote handling"]


def test_when_failing_strategy_has_on_error_halt_then_risk_gate_halted(tmp_path: Path) -> None:
    """on_error="halt": the failure halts trading; other strategies' orders are then denied."""
    bad, trader = FailsOnQuote(), Trader()
    kernel = build_kernel(tmp_path, [("bad", bad, "halt"), ("trader", trader, "stop")])
    changes = collect(kernel, TradingStateChanged)
    denied = collect(kernel, OrderDenied)
    kernel.start()
    feed(kernel, 1)
    assert kernel.risk.state is TradingState.HALTED
    assert [(e.state, e.reason) for e in changes] == [(TradingState.HALTED, "strategy bad failed")]
    assert [e.reason for e in denied] == ["TRADING_HALTED"]
    assert kernel.venue.n_fills == 0


def test_when_strategy_raises_in_on_start_then_stopped_and_never_fed(tmp_path: Path) -> None:
    """A strategy failing in on_start is stopped: no quotes reach it; the others start."""
    broken, good = FailsOnStart(), Recorder()
    kernel = build_kernel(tmp_path, [("broken", broken, "stop"), ("good", good, "stop")])
    failed = collect(kernel, StrategyFailed)
    kernel.start()
    ts = feed(kernel, 1)
    assert broken.quotes == []
    assert good.quotes == [ts]
    assert [e.strategy_id for e in failed] == ["broken"]
    assert kernel.strategies.failures == ["broken: RuntimeError: cannot start"]
    assert kernel.strategies.running == {"good"}


def test_when_strategy_raises_in_on_fill_then_stopped_after_position_updated(
    tmp_path: Path,
) -> None:
    """A raising on_fill stops the strategy; the portfolio has still booked the fill."""
    strategy = FailsOnFill()
    kernel = build_kernel(tmp_path, [("filler", strategy, "stop")])
    kernel.start()
    feed(kernel, 1)
    feed(kernel, 2)
    assert kernel.strategies.failures == ["filler: KeyError: 'fill bookkeeping'"]
    assert kernel.portfolio.net_quantity(IID) == 1
    assert strategy.quotes == [T0 + 1_000_000]


def test_when_order_events_flow_then_strategy_sees_its_own_in_order(tmp_path: Path) -> None:
    """on_order_event receives the lifecycle of the strategy's own orders, in order."""
    trader = Trader()
    kernel = build_kernel(tmp_path, [("trader", trader, "stop")])
    kernel.start()
    feed(kernel, 1)
    assert trader.events == [
        "OrderInitialized",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderFilled",
    ]


def test_when_set_target_position_then_sends_delta_net_of_position_and_working(
    tmp_path: Path,
) -> None:
    """set_target_position buys/sells the gap between target and position plus working orders."""
    strategy = Recorder()
    kernel = build_kernel(tmp_path, [("t", strategy, "stop")])
    kernel.start()
    feed(kernel, 1)
    first = strategy.set_target_position(IID, 5)
    assert first is not None
    assert (first.side, first.quantity, first.order_type) == (OrderSide.BUY, 5, OrderType.MARKET)
    kernel.venue.flush()
    assert first.status is OrderStatus.FILLED
    assert strategy.position(IID) == Decimal(5)
    assert strategy.set_target_position(IID, 5) is None

    working = strategy.buy(IID, 3, "99.00")
    kernel.venue.flush()
    assert working.status is OrderStatus.ACCEPTED
    gap = strategy.set_target_position(IID, 10)
    assert gap is not None
    assert (gap.side, gap.quantity) == (OrderSide.BUY, 2)
    assert strategy.set_target_position(IID, 10) is None  # the unfilled gap order counts too
    kernel.venue.flush()
    assert strategy.position_raw(IID) == 7

    flip = strategy.set_target_position(IID, -5)
    assert flip is not None
    assert (flip.side, flip.quantity) == (OrderSide.SELL, 15)


def test_when_set_target_position_fractional_target_off_lot_scale_then_value_error(
    tmp_path: Path,
) -> None:
    """A target with more decimals than the lot scale is refused before any order exists."""
    strategy = Recorder()
    kernel = build_kernel(tmp_path, [("t", strategy, "stop")])
    kernel.start()
    with pytest.raises(ValueError, match="decimals"):
        strategy.set_target_position(IID, "1.5")
    assert kernel.execution.n_orders == 0


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_when_strategy_file_lacks_class_then_config_error_names_it(tmp_path: Path) -> None:
    """Loading a file that does not define the configured class raises ConfigError naming it."""
    _write(
        tmp_path,
        "mine.py",
        """
        from bastion.strategy import Strategy

        class Present(Strategy):
            pass
        """,
    )
    config = StrategyConfig(name="alpha", path="mine.py", class_name="Missing")
    with pytest.raises(ConfigError) as excinfo:
        load_strategy(config, tmp_path)
    message = str(excinfo.value)
    assert "'Missing'" in message
    assert "'alpha'" in message
    assert "mine.py" in message


def test_when_class_is_not_a_strategy_subclass_then_config_error(tmp_path: Path) -> None:
    """A name that exists but is not a Strategy subclass is refused the same way."""
    _write(tmp_path, "plain.py", "class Plain:\n    pass\n")
    config = StrategyConfig(name="beta", path="plain.py", class_name="Plain")
    with pytest.raises(ConfigError, match="no Strategy subclass 'Plain'"):
        load_strategy(config, tmp_path)


def test_when_strategy_file_missing_then_config_error(tmp_path: Path) -> None:
    """A strategy path that does not exist is a ConfigError naming the strategy."""
    config = StrategyConfig(name="gamma", path="absent.py", class_name="X")
    with pytest.raises(ConfigError, match="strategy 'gamma': file not found"):
        load_strategy(config, tmp_path)


def test_when_kernel_built_from_config_then_strategy_loaded_with_params(tmp_path: Path) -> None:
    """The kernel loads configured strategy files, names them and passes their params."""
    _write(
        tmp_path,
        "quoter.py",
        """
        from bastion.strategy import Strategy

        class Quoter(Strategy):
            def on_start(self):
                self.subscribe_quotes(self.params["instrument"])
                self.seen = 0

            def on_quote(self, quote):
                self.seen += 1
        """,
    )
    config = StrategyConfig(
        name="q1", path="quoter.py", class_name="Quoter", params={"instrument": IID}
    )
    kernel = build_kernel(tmp_path, [], strategy_configs=[config])
    kernel.start()
    feed(kernel, 1)
    feed(kernel, 2)
    strategy = kernel.strategies.strategies["q1"]
    assert strategy.id == "q1"
    assert strategy.params == {"instrument": IID}
    assert strategy.seen == 2  # type: ignore[attr-defined]


def test_when_kernel_config_names_missing_class_then_config_error(tmp_path: Path) -> None:
    """Building a kernel whose strategy class is absent fails with ConfigError naming it."""
    _write(tmp_path, "empty.py", "X = 1\n")
    config = StrategyConfig(name="delta", path="empty.py", class_name="Nope")
    with pytest.raises(ConfigError, match="'Nope'"):
        build_kernel(tmp_path, [], strategy_configs=[config])


def test_when_strategy_looks_at_its_context_then_only_the_gate_can_send(tmp_path: Path) -> None:
    """The context hands a strategy order commands through the gate only: no venue, no
    execution-engine submit, no way to change the trading state or the limits."""
    strategy = Recorder()
    kernel = build_kernel(tmp_path, [("s", strategy, "stop")])
    ctx = strategy.ctx
    assert not hasattr(ctx.execution, "submit")
    assert not hasattr(ctx.execution, "cancel")
    assert not hasattr(ctx.execution, "process")
    assert not hasattr(ctx.risk, "set_trading_state")
    assert set(type(ctx.risk).__slots__) == {"submit_order", "cancel_order", "modify_order"}
    assert not any("venue" in name for name in vars(ctx) if not name.startswith("_"))
    assert kernel.risk.state is TradingState.ACTIVE

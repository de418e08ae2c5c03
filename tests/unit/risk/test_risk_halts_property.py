"""Property: through a whole Kernel and the simulated venue, no sequence of quotes,
orders, amends, cancels, fills, waits and operator actions gets an order (or a risk-adding
amend) of a disabled strategy, or on a paused instrument or stale data, to the venue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.model.events import (
    InstrumentPaused,
    OrderFilled,
    StrategyDisabled,
    StrategyEnabled,
)
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from bastion.strategy.config import StrategyConfig
from kit.risk_steps import send

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MS = 1_000_000
STALE_MS, MAX_FILLS, FILLS_WINDOW_MS = 40, 3, 100
RISK = RiskConfig(
    collar_window_pct=Decimal(1),
    collar_window_ms=50,
    collar_window_pause_ms=30,
    stale_data_ms=STALE_MS,
    max_fills=MAX_FILLS,
    fills_window_ms=FILLS_WINDOW_MS,
    max_drawdown=Decimal(2),
    strategies={"a": StrategyRiskConfig(max_daily_loss=Decimal(1))},
)


class Oracle:
    """What the events said: disabled strategies, the pause's end, and each strategy's
    fills since it was last enabled; checks every request that reaches the venue."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.disabled: set[str] = set()
        self.paused_until = 0
        self.fills: dict[str, list[int]] = {}
        bus = kernel.bus
        bus.subscribe(StrategyDisabled, lambda e: self.disabled.add(e.strategy_id))
        bus.subscribe(StrategyEnabled, self.on_enabled)
        bus.subscribe(InstrumentPaused, self.on_paused)
        bus.subscribe(OrderFilled, self.on_fill)
        venue = kernel.venue
        self._submit = venue.submit
        self._modify = venue.modify
        venue.submit = self.submit  # type: ignore[method-assign]
        venue.modify = self.modify  # type: ignore[method-assign]
        self.sent = 0

    def on_enabled(self, event: StrategyEnabled) -> None:
        self.disabled.discard(event.strategy_id)
        self.fills[event.strategy_id] = []

    def on_paused(self, event: InstrumentPaused) -> None:
        self.paused_until = max(self.paused_until, event.until_ns)

    def on_fill(self, event: OrderFilled) -> None:
        self.fills.setdefault(event.strategy_id, []).append(self.kernel.clock.timestamp_ns())

    def blocked(self, order: Order) -> None:
        now = self.kernel.clock.timestamp_ns()
        assert now >= self.paused_until, "an order went out on a paused instrument"
        quote = self.kernel.last_quotes.get(IID)
        assert quote is not None and now - quote.ts_ns <= STALE_MS * MS, "stale data"

    def submit(self, order: Order) -> None:
        assert order.strategy_id not in self.disabled, "a disabled strategy's order went out"
        self.blocked(order)
        self.sent += 1
        self._submit(order)

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        assert order.strategy_id not in self.disabled, "a disabled strategy's amend went out"
        if price != order.price or quantity > order.quantity:
            self.blocked(order)
        self._modify(order, quantity, price)

    def check_fills(self) -> None:
        """More than max_fills within the window since the last enable: disabled."""
        now = self.kernel.clock.timestamp_ns()
        for sid, times in self.fills.items():
            recent = [t for t in times if now - t < FILLS_WINDOW_MS * MS]
            if len(recent) > MAX_FILLS:
                assert sid in self.disabled


def build(base: Path) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(name=name, path="idle.py", class_name="Idle") for name in ("a", "b")
        ],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        risk=RISK,
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1)
    kernel.start()
    return kernel


strategy_name = st.sampled_from(["a", "b"])
quote_step = st.tuples(
    st.just("quote"),
    st.one_of(st.integers(-20, 20), st.integers(-150, 150)),  # ticks; 100 ticks = 1 %
    st.one_of(st.integers(0, 10), st.integers(0, 60)),  # ms later
)
order_step = st.tuples(
    st.just("order"),
    strategy_name,
    st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(-3, 3)),  # ticks from the mid; None: market
)
cancel_step = st.tuples(st.just("cancel"), st.integers(0, 20))
modify_step = st.tuples(
    st.just("modify"), st.integers(0, 20), st.integers(1, 4), st.integers(-2, 2)
)
wait_step = st.tuples(st.just("wait"), st.one_of(st.integers(1, 20), st.integers(1, 80)))
enable_step = st.tuples(st.just("enable"), strategy_name)
check_step = st.tuples(st.just("check"))
# weighted: mostly quotes and orders
step = st.sampled_from(
    [quote_step] * 3
    + [order_step] * 4
    + [cancel_step, modify_step, wait_step, enable_step, check_step]
).flatmap(lambda chosen: chosen)
steps = st.lists(step, min_size=10, max_size=80)


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(steps)
def test_when_any_sequence_then_no_order_passes_a_disable_or_a_pause(
    idle_strategy_dir: Path, actions: list[tuple[Any, ...]]
) -> None:
    """Disabled strategies, paused instruments and stale data let nothing out; cancels go."""
    kernel = build(idle_strategy_dir)
    oracle = Oracle(kernel)
    clock = kernel.clock
    assert isinstance(clock, SimClock)
    mid, now = 10_000, T0
    kernel.on_quote(QuoteTick(IID, now, mid - 1, mid + 1, 5, 5))
    for action in actions:
        kind = action[0]
        if kind == "quote":
            mid = max(1_000, mid + int(action[1]))
            now += int(action[2]) * MS
            clock.advance_to(now)
            kernel.on_quote(QuoteTick(IID, now, mid - 1, mid + 1, 5, 5))
        elif kind == "wait":
            now += int(action[1]) * MS
            clock.advance_to(now)
        elif kind == "enable":
            kernel.risk.enable_strategy(str(action[1]), "ops", "test")
        elif kind == "check":
            kernel.risk.check_post_trade()
        elif kind in ("cancel", "modify"):
            open_orders = kernel.execution.open_orders()
            if open_orders:
                target = open_orders[int(action[1]) % len(open_orders)]
                if kind == "cancel":
                    assert kernel.risk.cancel_order(target)
                elif target.price is not None:
                    quantity = max(target.filled_qty + 1, int(action[2]))
                    kernel.risk.modify_order(target, quantity, target.price + int(action[3]))
        else:
            _, strategy, side, qty, ticks = action
            price = None if ticks is None else mid + int(ticks)
            send(kernel, IID, str(strategy), side, int(qty), price)
        kernel.venue.flush()
        oracle.check_fills()

"""Property: through a whole Kernel and the simulated venue, no sequence of orders,
quotes, cancels and fills leaves a position beyond max_long / max_short."""

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
from bastion.node.kernel import Kernel
from bastion.risk.config import InstrumentRiskConfig, RiskConfig, StrategyRiskConfig
from bastion.strategy.config import StrategyConfig
from kit.risk_steps import cancel_or_modify, send

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
MAX_LONG, MAX_SHORT = 20, 15  # the instrument, all strategies together
A_LONG, A_SHORT = 8, 6  # strategy "a" alone


def build(base: Path) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(name=name, path="idle.py", class_name="Idle") for name in ("a", "b")
        ],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        risk=RiskConfig(
            instruments={
                IID: InstrumentRiskConfig(
                    max_long_quantity=Decimal(MAX_LONG), max_short_quantity=Decimal(MAX_SHORT)
                )
            },
            strategies={
                "a": StrategyRiskConfig(
                    max_long_quantity=Decimal(A_LONG), max_short_quantity=Decimal(A_SHORT)
                )
            },
            self_trade="cancel_resting",
        ),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1)
    kernel.start()
    return kernel


order_step = st.tuples(
    st.just("order"),
    st.sampled_from(["a", "b"]),
    st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    st.integers(min_value=1, max_value=12),
    st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),  # ticks from mid
)
quote_step = st.tuples(st.just("quote"), st.integers(min_value=-4, max_value=4))
cancel_step = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20))
modify_step = st.tuples(
    st.just("modify"),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=1, max_value=12),
)
steps = st.lists(
    st.one_of(order_step, quote_step, cancel_step, modify_step), min_size=1, max_size=40
)


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(steps)
def test_when_any_orders_and_fills_then_positions_stay_within_limits(
    idle_strategy_dir: Path, actions: list[tuple[Any, ...]]
) -> None:
    """Positions (node and strategy a) never pass max_long/max_short, whatever fills."""
    kernel = build(idle_strategy_dir)
    clock = kernel.clock
    assert isinstance(clock, SimClock)
    mid, ts = 10_000, T0
    for action in actions:
        if action[0] == "quote":
            mid += int(action[1])
            ts += 1_000_000
            clock.advance_to(ts)
            kernel.on_quote(QuoteTick(IID, ts, mid - 1, mid + 1, 5, 5))
        elif action[0] in ("cancel", "modify"):
            resize = int(action[2]) if action[0] == "modify" else 0
            cancel_or_modify(kernel, action[0], int(action[1]), resize)
        else:
            _, strategy, side, qty, ticks = action
            price = None if ticks is None else mid + int(ticks)
            send(kernel, IID, str(strategy), side, int(qty), price)
        kernel.venue.flush()
        net = kernel.portfolio.net_quantity(IID)
        assert -MAX_SHORT <= net <= MAX_LONG
        position = kernel.portfolio.position("a", IID)
        held = 0 if position is None else position.quantity
        assert -A_SHORT <= held <= A_LONG
        assert_sums_match(kernel)


def assert_sums_match(kernel: Kernel) -> None:
    """The gate's running sums of working orders equal a recount of the open orders."""
    checks = kernel.risk._checks
    assert checks is not None and checks._book is not None
    book = checks._book
    buys = sells = 0
    strategy_buys: dict[str, int] = {}
    for order in kernel.execution.open_orders():
        leaves = order.quantity - order.filled_qty
        if order.side is OrderSide.BUY:
            buys += leaves
            strategy_buys[order.strategy_id] = strategy_buys.get(order.strategy_id, 0) + leaves
        else:
            sells += leaves
    assert book.sides(IID).buys == buys
    assert book.sides(IID).sells == sells
    for sid in ("a", "b"):
        assert book.lane_sides(sid, IID).buys == strategy_buys.get(sid, 0)

"""Property: through a whole Kernel and the simulated venue, no sequence of orders,
amends, cancels and fills leaves a risk account's exposure (or cash usage) beyond its
limit, nor the node's beyond the node's, and the account's running sums equal a
recount."""

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
from bastion.risk.config import AccountRiskConfig, RiskConfig
from bastion.strategy.config import StrategyConfig
from kit.risk_steps import cancel_or_modify, send

IID = "XYZ.SIM"
T0 = 1_704_205_800_000_000_000
# The quote stays locked at 100.00 / 100.00: a market order fills at the mid it was
# valued at, a limit order at its price or better.
MID = 10_000
ACCOUNT_EXPOSURE = Decimal(1_500)  # account "desk": strategies a and b
ACCOUNT_CASH = Decimal(1_000)
NODE_EXPOSURE = Decimal(2_000)  # a, b and c (in no account) together


def build(base: Path) -> Kernel:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name=name, path="idle.py", class_name="Idle") for name in "abc"],
        data=[ReplaySourceConfig(path="unused.csv", instrument=IID)],
        risk=RiskConfig(
            max_total_exposure=NODE_EXPOSURE,
            accounts={
                "desk": AccountRiskConfig(
                    strategies=["a", "b"],
                    max_total_exposure=ACCOUNT_EXPOSURE,
                    max_cash_usage=ACCOUNT_CASH,
                )
            },
        ),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=base, clock=SimClock(T0), epoch=1)
    kernel.on_quote(QuoteTick(IID, T0, MID, MID, 5, 5))
    kernel.start()
    return kernel


# Limit sells at or above the mid: one filled below it would value the new position
# above what its order counted (the node's limit works the same way).
order_step = st.tuples(
    st.just("order"),
    st.sampled_from("abc"),
    st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    st.integers(min_value=1, max_value=12),
    st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),  # ticks from the mid
)
cancel_step = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20))
modify_step = st.tuples(
    st.just("modify"),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=1, max_value=12),
)
steps = st.lists(st.one_of(order_step, cancel_step, modify_step), min_size=10, max_size=40)


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(steps)
def test_when_any_orders_fills_and_cancels_then_accounts_stay_within_credit_limits(
    idle_strategy_dir: Path, actions: list[tuple[Any, ...]]
) -> None:
    """Account desk's exposure and cash usage, and the node's exposure, never pass their
    limits; the account's running sums equal a recount after every step."""
    kernel = build(idle_strategy_dir)
    for action in actions:
        if action[0] in ("cancel", "modify"):
            resize = int(action[2]) if action[0] == "modify" else 0
            cancel_or_modify(kernel, action[0], int(action[1]), resize)
        else:
            _, strategy, side, qty, ticks = action
            if ticks is not None and side is OrderSide.SELL:
                ticks = abs(ticks)
            price = None if ticks is None else MID + int(ticks)
            send(kernel, IID, str(strategy), side, int(qty), price)
        kernel.venue.flush()
        exposure, cash = recount(kernel, {"a", "b"})
        assert exposure <= ACCOUNT_EXPOSURE
        assert cash <= ACCOUNT_CASH
        assert recount(kernel, {"a", "b", "c"})[0] <= NODE_EXPOSURE
        assert_account_sums_match(kernel, exposure, cash)


def recount(kernel: Kernel, strategies: set[str]) -> tuple[Decimal, Decimal]:
    """Exposure (|net| at the mid + working orders at their price) and cash usage (spent +
    fees + working buys) of ``strategies``, from the portfolio and the open orders."""
    net = spent_raw = 0
    for position in kernel.portfolio.positions():
        if position.strategy_id in strategies:
            net += position.quantity
            spent_raw += position.cost - position.realized  # type: ignore[assignment]
    working = buys = 0
    for order in kernel.execution.open_orders():
        if order.strategy_id in strategies:
            assert order.price is not None  # market orders are done after a flush
            notional = (order.quantity - order.filled_qty) * order.price
            working += notional
            if order.side is OrderSide.BUY:
                buys += notional
    fees = sum((kernel.portfolio.strategy_fees.get(s, Decimal(0)) for s in strategies), Decimal(0))
    exposure = (Decimal(abs(net) * MID) + Decimal(working)) / 100
    cash = Decimal(spent_raw + buys) / 100 + fees
    return exposure, cash


def assert_account_sums_match(kernel: Kernel, exposure: Decimal, cash: Decimal) -> None:
    checks = kernel.risk._checks
    assert checks is not None and checks._credit is not None
    credit = checks._credit
    account = credit.accounts["desk"]
    account.check(False, 0, 0, 0)  # brings its lazy state up to date
    working = account.working
    den = credit.denominator
    assert Decimal(working.exposure + account.positions_exposure) / den == exposure
    assert Decimal(account.flow + working.buy_notional) / den + account.fees == cash

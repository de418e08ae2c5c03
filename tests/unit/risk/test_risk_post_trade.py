"""Repeated-execution throttle and post-trade limits (daily loss, drawdown): at the limit
and one fill / one cent beyond, per strategy and per node, re-enabling, trading days."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.model.enums import TradingState
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from kit.risk_node import (
    BUY,
    FUTURE,
    MS,
    SECOND,
    SELL,
    STOCK,
    T0,
    Wired,
    assert_denied,
    assert_sent,
)

HOUR = 3_600 * SECOND

# -- repeated executions -----------------------------------------------------------------


def test_when_max_fills_within_window_then_allowed_and_the_next_fill_disables() -> None:
    """max_fills=3 in 1000 ms: three fills leave the strategy enabled; a fourth at
    999 ms disables it (StrategyDisabled naming the limit) and its next order is denied."""
    node = Wired(max_fills=3, fills_window_ms=1_000)
    for n in range(3):
        node.at(T0 + n * MS)
        node.trade(BUY, 1, 10_000)
    assert node.disabled == [] and node.gate.disabled == {}
    node.at(T0 + 999 * MS)
    node.trade(BUY, 1, 10_000)
    assert [e.strategy_id for e in node.disabled] == ["s1"]
    assert "4 fills within fills_window_ms 1000: beyond max_fills 3" in node.disabled[0].reason
    denied = node.submit(BUY, 1, 10_000)
    assert_denied(node, denied, "STRATEGY_DISABLED")
    assert "max_fills 3" in node.denied[-1].message
    assert node.gate.denials["STRATEGY_DISABLED"] == 1


def test_when_oldest_fill_is_fills_window_ms_old_then_it_no_longer_counts() -> None:
    """A fill at t counts while now - t < fills_window_ms: at exactly 1000 ms it has left."""
    node = Wired(max_fills=3, fills_window_ms=1_000)
    for n in range(3):
        node.at(T0 + n * MS)
        node.trade(BUY, 1, 10_000)
    node.at(T0 + SECOND)
    node.trade(BUY, 1, 10_000)
    assert node.disabled == []
    node.trade(BUY, 1, 10_000)  # the same instant: 4 fills in the window now
    assert len(node.disabled) == 1


def test_when_partial_fills_then_each_execution_counts() -> None:
    """Repeated executions count fills, not orders: one order filled in 3 parts is 3."""
    node = Wired(max_fills=2, fills_window_ms=1_000)
    order = node.submit(BUY, 3, 10_000)
    node.execute(order, 1)
    node.execute(order, 1)
    assert node.disabled == []
    node.execute(order, 1)
    assert len(node.disabled) == 1


def test_when_disabled_then_orders_and_amends_denied_cancels_pass_and_others_trade() -> None:
    """A disabled strategy cannot send or amend; it can cancel; other strategies go on."""
    node = Wired(max_fills=1, fills_window_ms=1_000)
    resting = node.submit(BUY, 2, 9_900)
    node.trade(BUY, 1, 10_000)
    node.trade(BUY, 1, 10_000)
    assert node.gate.disabled.keys() == {"s1"}
    assert not node.gate.modify_order(resting, 1, 9_900)
    assert node.command_denied[-1].reason == "STRATEGY_DISABLED"
    assert node.gate.cancel_order(resting)
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s2"))
    assert node.gate.state is TradingState.ACTIVE


def test_when_operator_enables_then_strategy_trades_again_and_fills_count_afresh() -> None:
    """enable_strategy(who, why) publishes StrategyEnabled; the fill window restarts."""
    node = Wired(max_fills=2, fills_window_ms=1_000)
    for _ in range(3):
        node.trade(BUY, 1, 10_000)
    assert node.gate.disabled.keys() == {"s1"}
    assert node.gate.enable_strategy("s1", "alice", "runaway loop fixed")
    assert [(e.strategy_id, e.who, e.why) for e in node.enabled] == [
        ("s1", "alice", "runaway loop fixed")
    ]
    assert not node.gate.enable_strategy("s1", "alice", "again")  # not disabled: no event
    assert len(node.enabled) == 1
    node.trade(BUY, 1, 10_000)
    node.trade(BUY, 1, 10_000)
    assert len(node.disabled) == 1  # two fresh fills are within max_fills 2
    node.trade(BUY, 1, 10_000)
    assert len(node.disabled) == 2


def test_when_strategy_overrides_max_fills_then_it_replaces_the_default() -> None:
    """[risk.strategies.s2] max_fills=1 applies to s2; s1 keeps the [risk] default 3."""
    node = Wired(
        RiskConfig(
            max_fills=3,
            fills_window_ms=1_000,
            strategies={"s2": StrategyRiskConfig(max_fills=1)},
        )
    )
    for _ in range(2):
        node.trade(BUY, 1, 10_000, strategy="s1")
        node.trade(BUY, 1, 10_000, strategy="s2")
    assert node.gate.disabled.keys() == {"s2"}


# -- daily loss --------------------------------------------------------------------------


def test_when_strategy_daily_loss_at_limit_then_allowed_and_one_cent_more_disables() -> None:
    """max_daily_loss=10: long 1 @ 100.00 marked at 90.00 is a loss of exactly 10 (ok);
    at 89.99 it is 10.01: the strategy is disabled, the node stays ACTIVE."""
    node = Wired(max_daily_loss=Decimal(10))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()  # the day's starting PnL: 0
    node.trade(BUY, 1, 10_000)
    node.tick(9_000)
    node.gate.check_post_trade()
    assert node.disabled == []
    node.tick(8_999)
    node.gate.check_post_trade()
    assert [e.strategy_id for e in node.disabled] == ["s1"]
    reason = node.disabled[0].reason
    assert "daily loss 10.01 USD" in reason and "max_daily_loss 10" in reason
    assert node.gate.state is TradingState.ACTIVE
    assert_denied(node, node.submit(SELL, 1, 8_999), "STRATEGY_DISABLED")


def test_when_fees_paid_then_they_count_toward_the_daily_loss() -> None:
    """PnL is net of fees: a 0.01 fee plus 9.99 unrealized is exactly 10; 10.00 is beyond."""
    node = Wired(max_daily_loss=Decimal(10))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000, fee="0.01")
    node.tick(9_001)
    node.gate.check_post_trade()
    assert node.disabled == []
    node.tick(9_000)
    node.gate.check_post_trade()
    assert len(node.disabled) == 1


def test_when_a_fill_realizes_the_loss_then_it_is_checked_on_that_fill() -> None:
    """Post-trade limits are checked on every fill, without waiting for the timer."""
    node = Wired(max_daily_loss=Decimal(10))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    node.trade(SELL, 1, 9_000)  # realized -10.00: at the limit
    assert node.disabled == []
    node.trade(BUY, 1, 10_000)
    node.trade(SELL, 1, 9_999)  # another -0.01
    assert len(node.disabled) == 1


def test_when_one_strategy_breaches_then_only_that_strategy_is_disabled() -> None:
    """s1 long loses, s2 short gains: only s1 is disabled; s2 and the node trade on."""
    node = Wired(max_daily_loss=Decimal(5))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000, strategy="s1")
    node.trade(SELL, 1, 10_000, strategy="s2")
    node.tick(9_000)
    node.gate.check_post_trade()
    assert node.gate.disabled.keys() == {"s1"}
    assert node.gate.state is TradingState.ACTIVE
    assert_sent(node, node.submit(SELL, 1, 9_000, strategy="s2"))


def test_when_node_daily_loss_beyond_limit_then_node_halts_with_the_limit_named() -> None:
    """max_daily_loss_node=10: 10.00 is allowed, 10.01 HALTs (post_trade_action default)."""
    node = Wired(max_daily_loss_node=Decimal(10))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    node.tick(9_000)
    node.gate.check_post_trade()
    assert node.gate.state is TradingState.ACTIVE
    node.tick(8_999)
    node.gate.check_post_trade()
    assert node.gate.state is TradingState.HALTED
    reason = node.state_changes[-1].reason
    assert "node daily loss 10.01 USD" in reason and "max_daily_loss_node 10" in reason
    assert node.gate.disabled == {}


def test_when_post_trade_action_reducing_then_node_goes_to_reducing_not_halted() -> None:
    """post_trade_action = "REDUCING"; a node already HALTED is never relaxed to it."""
    node = Wired(max_daily_loss_node=Decimal(1), post_trade_action="REDUCING")
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    node.tick(9_899)
    node.gate.check_post_trade()
    assert node.gate.state is TradingState.REDUCING
    halted = Wired(max_daily_loss_node=Decimal(1), post_trade_action="REDUCING")
    halted.tick(10_000, ts_ns=T0)
    halted.gate.check_post_trade()
    halted.trade(BUY, 1, 10_000)
    halted.gate.set_trading_state(TradingState.HALTED, "kill by ops")
    halted.tick(9_899)
    halted.gate.check_post_trade()
    assert halted.gate.state is TradingState.HALTED
    assert halted.gate.state_reason == "kill by ops"


# -- drawdown ----------------------------------------------------------------------------


def test_when_strategy_drawdown_at_limit_then_allowed_and_one_cent_more_disables() -> None:
    """max_drawdown=5: PnL peaks at +10 then falls to +5 (ok), then +4.99 (disabled)."""
    node = Wired(max_drawdown=Decimal(5))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    for bid in (11_000, 10_500):
        node.tick(bid)
        node.gate.check_post_trade()
    assert node.disabled == []
    node.tick(10_499)
    node.gate.check_post_trade()
    assert len(node.disabled) == 1
    assert "drawdown 5.01 USD" in node.disabled[0].reason
    assert "max_drawdown 5" in node.disabled[0].reason


def test_when_node_drawdown_beyond_limit_then_node_halts() -> None:
    """max_drawdown_node=5 on the node's PnL (all strategies together)."""
    node = Wired(max_drawdown_node=Decimal(5))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000, strategy="s1")
    node.trade(BUY, 1, 10_000, strategy="s2")
    node.tick(10_500)  # +10 in total
    node.gate.check_post_trade()
    node.tick(10_250)  # back to +5: drawdown 5
    node.gate.check_post_trade()
    assert node.gate.state is TradingState.ACTIVE
    node.tick(10_249)  # drawdown 5.02
    node.gate.check_post_trade()
    assert node.gate.state is TradingState.HALTED
    assert "max_drawdown_node 5" in node.gate.state_reason


# -- trading day, marks, re-arming -------------------------------------------------------


def test_when_trading_day_starts_then_the_loss_counts_from_its_first_evaluation() -> None:
    """trading_day_start = "13:30" (T0 is 14:30 UTC): a loss of 8 the day before does not
    count after 13:30 the next day; a further 10.01 from there does."""
    node = Wired(max_daily_loss=Decimal(10), trading_day_start="13:30")
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    node.tick(9_200, ts_ns=T0 + 23 * HOUR - 1)  # last ns of the day: loss 8
    node.gate.check_post_trade()
    node.tick(9_200, ts_ns=T0 + 23 * HOUR)  # the new day starts at PnL -8
    node.gate.check_post_trade()
    node.tick(8_200)  # -18 in all, -10 today
    node.gate.check_post_trade()
    assert node.disabled == []
    node.tick(8_199)
    node.gate.check_post_trade()
    assert len(node.disabled) == 1


def test_when_a_position_has_no_quote_then_its_pnl_waits_for_one() -> None:
    """Unmarked positions make the PnL unknown: no evaluation (and no false breach) until
    a quote marks them; then the day's starting PnL still applies."""
    node = Wired(max_daily_loss=Decimal(10))
    node.at(T0)
    node.gate.check_post_trade()  # no position: the day starts at 0
    node.trade(BUY, 1, 10_000)  # no quote yet
    node.gate.check_post_trade()
    assert node.disabled == []
    node.tick(8_999)
    node.gate.check_post_trade()
    assert len(node.disabled) == 1


def test_when_enabled_while_still_beyond_then_it_holds_until_the_limit_is_crossed_again() -> None:
    """A limit acts when crossed: the operator's enable holds while the loss stays beyond
    it; after the PnL comes back within the limit, a new crossing disables again."""
    node = Wired(max_daily_loss=Decimal(10))
    node.tick(10_000, ts_ns=T0)
    node.gate.check_post_trade()
    node.trade(BUY, 1, 10_000)
    node.tick(8_900)
    node.gate.check_post_trade()
    assert node.gate.enable_strategy("s1", "bob", "accept the loss for today")
    node.gate.check_post_trade()
    assert node.gate.disabled == {}
    node.tick(9_500)
    node.gate.check_post_trade()
    node.tick(8_999)
    node.gate.check_post_trade()
    assert node.gate.disabled.keys() == {"s1"}
    assert len(node.disabled) == 2


def test_when_only_post_trade_keys_then_pre_trade_path_unchanged() -> None:
    """Post-trade keys build no pre-trade checks: orders pay nothing extra for them."""
    node = Wired(max_daily_loss=Decimal(10), max_fills=5, fills_window_ms=1_000)
    assert node.gate._checks is None
    assert node.gate.quote_hook is None
    assert node.gate.watches_fills


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2"]),
            st.sampled_from([STOCK, FUTURE]),
            st.booleans(),
            st.integers(1, 7),
            st.integers(-40, 40),
            st.sampled_from(["0", "0.01", "0.0037"]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(-50, 50),
)
def test_when_any_fills_then_post_trade_pnl_equals_the_portfolios(
    fills: list[tuple[str, Any, bool, int, int, str]], mark_move: int
) -> None:
    """The monitor's integer cash-flow PnL equals Portfolio realized + unrealized - fees
    exactly, uneven average prices (Fractions) included, fills before and after its
    first evaluation."""
    node = Wired(max_daily_loss=Decimal(10**9), max_daily_loss_node=Decimal(10**9))
    monitor = node.gate._post_trade
    assert monitor is not None
    for n, (strategy, instrument, buy, qty, ticks, fee) in enumerate(fills):
        px = 10_000 * instrument.tick_raw + ticks * instrument.tick_raw
        node.tick(px - instrument.tick_raw, px + instrument.tick_raw, instrument=instrument)
        node.trade(BUY if buy else SELL, qty, px, strategy=strategy, fee=fee)
        if n == len(fills) // 2:
            node.gate.check_post_trade()
    for instrument in (STOCK, FUTURE):
        mid = 10_000 * instrument.tick_raw + mark_move * instrument.tick_raw
        node.tick(mid - instrument.tick_raw, mid + instrument.tick_raw, instrument=instrument)
    by_strategy, unmarked = monitor._pnl()
    portfolio = node.portfolio
    assert not unmarked
    assert sum(by_strategy.values(), Decimal(0)) == (
        portfolio.realized_pnl() + portfolio.unrealized_pnl()
    )
    fees = sum((monitor._fees.get(s, Decimal(0)) for s in ("s1", "s2")), Decimal(0))
    assert fees == portfolio.fees

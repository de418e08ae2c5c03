"""Property: the pre-trade checks' incremental state (working-order sums, best resting
prices, the positions' exposure and the cash room of the credit limits, for the node and
for a risk account) always equals a recount from scratch, whatever orders, fills,
amends, cancels and quotes came before."""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.model.enums import LiquiditySide, OrderSide
from bastion.model.events import OrderCanceled, OrderFilled, OrderModifyRejected, OrderUpdated
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.risk.book import WorkingBook
from bastion.risk.checks import PreTradeChecks
from bastion.risk.config import AccountRiskConfig, RiskConfig, StrategyRiskConfig
from bastion.risk.credit import CreditLimits, _spent
from kit.risk_node import BUY, FUTURE, SELL, STOCK, Node

INSTRUMENTS = (STOCK, FUTURE)
MIDS = {STOCK.id: 10_000, FUTURE.id: 400_000}
CASH_LIMIT = Decimal("5000000.005")  # not on the cent: the room's floor matters

order_step = st.tuples(
    st.just("order"),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(INSTRUMENTS),
    st.sampled_from([BUY, SELL]),
    st.integers(min_value=1, max_value=5),
    st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),  # ticks from the mid
)
fill_step = st.tuples(
    st.just("fill"),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=1, max_value=5),
    st.sampled_from(["0", "0.01", "1.237", "0.0001"]),
)
cancel_step = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=30))
modify_step = st.tuples(
    st.just("modify"),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=-2, max_value=2),
    st.sampled_from(["updated", "rejected", "pending"]),
)
quote_step = st.tuples(
    st.just("quote"), st.sampled_from(INSTRUMENTS), st.integers(min_value=-3, max_value=3)
)
hold_step = st.tuples(
    st.just("hold"), st.sampled_from(INSTRUMENTS), st.integers(min_value=-4, max_value=4)
)
steps = st.lists(
    st.one_of(order_step, fill_step, cancel_step, modify_step, quote_step, hold_step),
    min_size=1,
    max_size=50,
)


def build() -> Node:
    node = Node(
        RiskConfig(
            max_total_exposure=Decimal(10**9),
            max_cash_usage=CASH_LIMIT,
            max_long_quantity=Decimal(1_000),
            max_short_quantity=Decimal(1_000),
            self_trade="cancel_resting",
            strategies={"s1": StrategyRiskConfig(max_long_quantity=Decimal(500))},
            accounts={
                "desk": AccountRiskConfig(
                    strategies=["s1"],
                    max_total_exposure=Decimal(10**9),
                    max_cash_usage=CASH_LIMIT,
                )
            },
        )
    )
    for inst in INSTRUMENTS:
        mid = MIDS[inst.id]
        node.quote(mid - inst.tick_raw, mid + inst.tick_raw, inst)
    return node


def parts(node: Node) -> tuple[PreTradeChecks, WorkingBook, CreditLimits]:
    checks = node.gate._checks
    assert checks is not None
    assert checks._book is not None and checks._credit is not None
    return checks, checks._book, checks._credit


def probe(node: Node, side: OrderSide) -> None:
    """A check that reaches the credit limits (it updates their lazy state)."""
    order = node.order(side, 1, 1 if side is BUY else 10**9, STOCK, strategy="probe")
    node.gate._check(order, side, 1, order.price, is_increase=True, is_new=True)


def assert_matches_recount(node: Node, pending: dict[str, int]) -> None:
    """``pending``: the largest quantity of an amend in flight, per order (it counts)."""
    _, book, credit = parts(node)
    open_orders = node.execution.open_orders()
    buys: dict[str, int] = {}
    sells: dict[str, int] = {}
    best: dict[tuple[str, bool], int] = {}
    for order in open_orders:
        leaves = max(order.quantity, pending.get(order.client_order_id, 0)) - order.filled_qty
        sums = buys if order.side is BUY else sells
        sums[order.instrument_id] = sums.get(order.instrument_id, 0) + leaves
        if order.price is not None:
            key = (order.instrument_id, order.side is BUY)
            pick = max if order.side is BUY else min
            best[key] = pick(best.get(key, order.price), order.price)
    for inst in INSTRUMENTS:
        iid = inst.id
        assert book.sides(iid).buys == buys.get(iid, 0)
        assert book.sides(iid).sells == sells.get(iid, 0)
        assert book.resting(iid, buys=True).best == best.get((iid, True))
        assert book.resting(iid, buys=False).best == best.get((iid, False))
    # the positions' exposure, as revalued by the last check
    probe(node, SELL)
    expected = 0
    for iid, weight in credit.weights.items():
        net = node.portfolio.net_quantity(iid)
        quote = node.quotes.get(iid)
        if net and quote is not None:
            expected += abs(net) * (quote.bid + quote.ask) * weight
    assert credit.positions_exposure == expected
    # the cash room, as the last buy check left it (or moved by fills since)
    probe(node, BUY)
    spent = node.portfolio.starting_cash - node.portfolio.cash()
    room = (CASH_LIMIT - spent) * credit.denominator
    assert credit._cash_room == math.floor(room.to_integral_value(ROUND_FLOOR))
    assert_account_matches_recount(node, credit)


def assert_account_matches_recount(node: Node, credit: CreditLimits) -> None:
    """Account desk (strategy s1): its working sums, positions' exposure and cash room."""
    account = credit.accounts["desk"]
    assert account.check(False, 0, 0, 0) is None  # brings its lazy state up to date
    _, book, _ = parts(node)
    s1 = [w for w in book.by_id.values() if w.order.strategy_id == "s1"]
    assert account.working.exposure == sum(w.notional for w in s1)
    assert account.working.buy_notional == sum(w.notional for w in s1 if w.is_buy)
    expected = flow = 0
    for iid, weight in credit.weights.items():
        position = node.portfolio.position("s1", iid)
        if position is None:
            continue
        quote = node.quotes[iid]
        expected += abs(position.quantity) * (quote.bid + quote.ask) * weight
        flow += 2 * _spent(position.cost, position.realized) * weight
    assert account.positions_exposure == expected
    fees = node.portfolio.strategy_fees.get("s1", Decimal(0))
    room = (CASH_LIMIT - fees) * credit.denominator
    assert account.cash_room == math.floor(room.to_integral_value(ROUND_FLOOR)) - flow


def answer_modify(node: Node, order: Order, qty: int, price: int | None, how: str) -> None:
    fields: dict[str, Any] = {
        "ts_ns": node.clock.timestamp_ns(),
        "client_order_id": order.client_order_id,
        "strategy_id": order.strategy_id,
        "instrument_id": order.instrument_id,
    }
    if how == "updated":
        node.execution.process(OrderUpdated(quantity=qty, price=price, **fields))
    elif how == "rejected":
        node.execution.process(OrderModifyRejected(reason="no", **fields))


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(steps)
def test_when_any_orders_fills_cancels_and_quotes_then_incremental_sums_equal_recount(
    actions: list[tuple[Any, ...]],
) -> None:
    """Book sums, best resting prices, positions' exposure and cash room match a recount."""
    node = build()
    mids = dict(MIDS)
    pending: dict[str, int] = {}
    n_exec = 0
    for action in actions:
        kind = action[0]
        open_orders = node.execution.open_orders()
        if kind == "order":
            _, strategy, inst, side, lots, ticks = action
            assert isinstance(inst, Instrument)
            price = None if ticks is None else mids[inst.id] + ticks * inst.tick_raw
            order = node.order(side, lots * inst.lot_raw, price, inst, strategy=strategy)
            node.gate.submit_order(order)
            for resting in node.execution.open_orders():  # self-trade cancels confirmed
                if resting.client_order_id in node.venue.canceled:
                    node.execution.process(_canceled(resting, node.clock.timestamp_ns()))
        elif kind == "quote":
            _, inst, move = action
            mids[inst.id] += move * inst.tick_raw
            mid = mids[inst.id]
            node.quote(mid - inst.tick_raw, mid + inst.tick_raw, inst)
        elif kind == "hold":  # a fill the gate does not see (as after a restore)
            _, inst, qty = action
            if qty:
                node.hold(qty, mids[inst.id], inst)
        elif open_orders:
            target = open_orders[action[1] % len(open_orders)]
            if kind == "cancel":
                node.gate.cancel_order(target)
                node.execution.process(_canceled(target, node.clock.timestamp_ns()))
            elif kind == "fill":
                n_exec += 1
                node.execution.process(
                    OrderFilled(
                        ts_ns=node.clock.timestamp_ns(),
                        client_order_id=target.client_order_id,
                        strategy_id=target.strategy_id,
                        instrument_id=target.instrument_id,
                        venue_order_id="V",
                        exec_id=f"E{n_exec}",
                        side=target.side,
                        last_qty=min(target.leaves_qty, action[2]),
                        last_px=target.price or mids[target.instrument_id],
                        fee=Decimal(action[3]),
                        fee_currency="USD",
                        liquidity=LiquiditySide.TAKER,
                    )
                )
            else:
                _, _, qty, ticks, how = action
                inst = STOCK if target.instrument_id == STOCK.id else FUTURE
                qty = max(target.filled_qty + inst.lot_raw, qty * inst.lot_raw)
                price = None if target.price is None else target.price + ticks * inst.tick_raw
                if price is not None and price <= 0:
                    price = target.price
                if node.gate.modify_order(target, qty, price):
                    coid = target.client_order_id
                    if how == "pending":
                        pending[coid] = max(pending.get(coid, 0), qty)
                    else:
                        pending.pop(coid, None)
                        answer_modify(node, target, qty, price, how)
        assert_matches_recount(node, pending)


def _canceled(order: Order, ts_ns: int) -> OrderCanceled:
    return OrderCanceled(
        ts_ns=ts_ns,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        instrument_id=order.instrument_id,
    )

"""Property: whatever accounts send and however quotes move, across restarts, the ledger
balances (positions == sum of fills), no order overfills and no exec id repeats."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bastion.model.enums import OrderSide, TimeInForce
from bastion.venue_server.messages import ExecReport
from kit.venuesim_desk import BUY, DAY, GTC, IOC, NS_PER_DAY, SELL, Desk

ACCOUNTS = st.sampled_from(["A", "B"])
OFFSETS = st.integers(min_value=-3, max_value=3)
PRICES = st.one_of(st.none(), OFFSETS, OFFSETS)  # None: a market order (or keep the price)
PICKS = st.integers(min_value=0, max_value=10_000)


def _price(offset: int | None) -> str | None:
    return None if offset is None else str(Decimal(10_000 + offset).scaleb(-2))


class VenueMachine(RuleBasedStateMachine):
    """Two accounts trade on one simulator that restarts now and then."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.desk = Desk(Path(self.tmp.name) / "venue.db", taker_fee_bps=Decimal("2.5"))
        self.ids: list[tuple[str, str]] = []  # (account, ClOrdID) ever sent
        self.reports: list[tuple[str, ExecReport]] = []
        self.n = 0
        self.restarted = False  # since the last sweep

    def _fresh(self, account: str) -> str:
        self.n += 1
        self.ids.append((account, f"x{self.n}"))
        return f"x{self.n}"

    @rule(
        account=ACCOUNTS,
        side=st.sampled_from([BUY, SELL]),
        qty=st.integers(min_value=1, max_value=8),
        offset=PRICES,
        tif=st.sampled_from([GTC, GTC, IOC, DAY]),
        how=st.sampled_from(["fresh", "fresh", "fresh", "reuse", "poss_dup"]),
        pick=PICKS,
    )
    def new_order(
        self,
        account: str,
        side: OrderSide,
        qty: int,
        offset: int | None,
        tif: TimeInForce,
        how: str,
        pick: int,
    ) -> None:
        if how == "fresh" or not self.ids:
            cl_ord_id = self._fresh(account)
        else:
            account, cl_ord_id = self.ids[pick % len(self.ids)]
        self.desk.new(
            cl_ord_id, side, qty, _price(offset), tif, account=account, poss_dup=how == "poss_dup"
        )

    @rule(pick=PICKS)
    def cancel(self, pick: int) -> None:
        if self.ids:
            account, orig = self.ids[pick % len(self.ids)]
            order = self.desk.ledger.find(account, orig)
            side = BUY if order is None else order.side
            self.desk.cancel(self._fresh(account), orig, side, account=account)

    @rule(pick=PICKS, qty=st.integers(min_value=1, max_value=10), offset=PRICES)
    def replace(self, pick: int, qty: int, offset: int | None) -> None:
        if self.ids:
            account, orig = self.ids[pick % len(self.ids)]
            order = self.desk.ledger.find(account, orig)
            side = BUY if order is None else order.side
            cl_ord_id = self._fresh(account)
            self.desk.replace(cl_ord_id, orig, qty, _price(offset), side, account=account)

    @rule(
        mid=OFFSETS,
        bid_size=st.integers(min_value=0, max_value=4),
        ask_size=st.integers(min_value=0, max_value=4),
    )
    def quote(self, mid: int, bid_size: int, ask_size: int) -> None:
        self.desk.quote(10_000 + mid - 1, 10_000 + mid + 1, bid_size, ask_size)

    @rule(hours=st.integers(min_value=1, max_value=30))
    def later(self, hours: int) -> None:
        self.desk.clock.advance_to(self.desk.clock.timestamp_ns() + hours * NS_PER_DAY // 24)

    @rule(account=ACCOUNTS)
    def disconnect(self, account: str) -> None:
        self.desk.engine.cancel_all(account, "cancel on disconnect")

    @precondition(lambda self: bool(self.desk.engine.open_orders()))
    @rule()
    def restart(self) -> None:
        self.reports += _drain(self.desk)
        self.desk.restart()
        self.restarted = True

    @precondition(lambda self: self.restarted)
    @rule()
    def sweep(self) -> None:
        """Quotes through both sides: every open order, restored or not, must be in the book."""
        self.restarted = False
        self.desk.quote(20_000, 20_001, bid_size=1_000, ask_size=1_000)
        self.desk.quote(1, 2, bid_size=1_000, ask_size=1_000)
        assert self.desk.engine.open_orders() == []

    @invariant()
    def ledger_balances(self) -> None:
        self.reports += _drain(self.desk)
        _check(self.desk, self.reports)

    def teardown(self) -> None:
        self.desk.close()
        self.tmp.cleanup()


def _drain(desk: Desk) -> list[tuple[str, ExecReport]]:
    taken, desk.reports[:] = list(desk.reports), []
    return [(account, r) for account, r in taken if isinstance(r, ExecReport)]


def _check(desk: Desk, reports: list[tuple[str, ExecReport]]) -> None:
    ledger = desk.ledger
    assert ledger.verify() == []
    exec_ids = [r.exec_id for _, r in reports]
    assert len(set(exec_ids)) == len(exec_ids)
    fills = [(account, r) for account, r in reports if r.exec_type == "F"]
    assert [r.exec_id for _, r in fills] == [f.exec_id for f in ledger.fills()]
    filled: dict[str, Decimal] = defaultdict(Decimal)
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for account, r in fills:
        assert r.cum_qty <= r.order_qty
        filled[r.order_id] += r.last_qty
        net[account, r.symbol] += r.last_qty if r.side is BUY else -r.last_qty
    for order in ledger.orders():
        assert order.cum_qty <= order.quantity
        assert order.cum_qty == filled.get(order.order_id, 0)
    for position in ledger.positions():
        assert position.net_qty == net[position.account, position.symbol]
    engine_open = [(o.order_id, o.cum_qty, o.status) for o in desk.engine.open_orders()]
    ledger_open = [(o.order_id, o.cum_qty, o.status) for o in ledger.open_orders()]
    assert engine_open == ledger_open


VenueMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, derandomize=True, database=None
)
test_when_random_requests_quotes_and_restarts_then_ledger_balances = VenueMachine.TestCase

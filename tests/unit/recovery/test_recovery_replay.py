"""Recovery rebuilds exactly the state the node had: from the whole journal, or from a
snapshot plus the events after it. Property: for any trading history, both equal the
live kernel's orders, ExecIDs, positions, cash, fees, trading state and strategy state."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import TradingState
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.recovery.state import SnapshotError, capture, decode
from bastion.risk.config import RiskConfig
from bastion.strategy.base import Strategy

T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"


class RandomTrader(Strategy):
    """Market and limit orders, cancels and modifies, chosen by a seeded RNG; it keeps
    a counter through on_save/on_load."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.actions = 0
        self.loaded: dict[str, Any] | None = None

    def on_start(self) -> None:
        self.subscribe_quotes(IID)

    def on_save(self) -> dict[str, Any]:
        return {"actions": self.actions, "note": Decimal("1.5")}

    def on_load(self, state: dict[str, Any]) -> None:
        self.loaded = state

    def on_quote(self, quote: QuoteTick) -> None:
        self.actions += 1
        choice = self.rng.random()
        inst = self.instrument(IID)
        open_orders = self.open_orders(IID)
        if choice < 0.3:
            self.buy(IID, self.rng.randint(1, 3)) if self.rng.random() < 0.5 else self.sell(
                IID, self.rng.randint(1, 3)
            )
        elif choice < 0.6:
            side_buy = self.rng.random() < 0.5
            touch = quote.bid if side_buy else quote.ask
            px = inst.price(touch + self.rng.randint(-2, 2))
            if side_buy:
                self.buy(IID, self.rng.randint(1, 3), price=px)
            else:
                self.sell(IID, self.rng.randint(1, 3), price=px)
        elif choice < 0.8 and open_orders:
            self.cancel(self.rng.choice(open_orders))
        elif open_orders:
            order = self.rng.choice(open_orders)
            if order.price is not None:
                self.modify(order, price=inst.price(order.price + self.rng.randint(-1, 1)))


def build(tmp_path: Path, journal: SqliteJournal | None) -> tuple[Kernel, RandomTrader]:
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="quotes.csv", instrument=IID)],
        risk=RiskConfig(max_order_quantity=Decimal(100)),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1, journal=journal)
    trader = RandomTrader()
    kernel.strategies.add(trader, "rt", {})
    return kernel, trader


def state_of(kernel: Kernel) -> dict[str, Any]:
    portfolio = kernel.portfolio
    return {
        "orders": sorted(
            (
                o.client_order_id,
                o.strategy_id,
                o.venue,
                o.side,
                o.order_type,
                o.quantity,
                o.price,
                o.status,
                o.previous_status,
                o.filled_qty,
                o.filled_notional,
                o.venue_order_id,
            )
            for o in kernel.execution.orders()
        ),
        "open": sorted(o.client_order_id for o in kernel.execution.open_orders()),
        "open_qty": kernel.execution.open_quantity("rt", IID),
        "exec_ids": sorted(kernel.execution.exec_ids),
        "net": portfolio.net_quantity(IID),
        "cash": portfolio.cash(),
        "fees": portfolio.fees,
        "fills": portfolio.n_fills,
        "realized": portfolio.realized_pnl(),
        "position": [
            (p.strategy_id, p.quantity, p.cost, p.realized) for p in portfolio.positions()
        ],
        "state": (kernel.risk.state, kernel.risk.state_reason),
    }


def trade(kernel: Kernel, prices: list[int], snapshot_at: int | None) -> None:
    kernel.start()
    mid = 10_000
    for n, move in enumerate(prices, 1):
        mid = max(100, mid + move)
        ts = T0 + n * 1_000_000
        kernel.clock.advance_to(ts)  # type: ignore[attr-defined]
        kernel.on_quote(QuoteTick(IID, ts, mid - 1, mid + 1, 5, 5))
        if n == len(prices) // 2:
            kernel.risk.set_trading_state(TradingState.REDUCING, "test")
        if snapshot_at == n and kernel.journal is not None:
            kernel.journal.snapshot(capture(kernel, node_id="n", epoch=1), ts)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(
    prices=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=80),
    snapshot_frac=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
)
def test_when_recovered_then_state_equals_the_live_kernels(
    tmp_path_factory: pytest.TempPathFactory, prices: list[int], snapshot_frac: float | None
) -> None:
    tmp_path = tmp_path_factory.mktemp("r")
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    live, _trader = build(tmp_path, journal)
    snapshot_at = None if snapshot_frac is None else max(1, int(snapshot_frac * len(prices)))
    try:
        trade(live, prices, snapshot_at)
        expected = state_of(live)
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        recovered, _ = build(tmp_path, None)
        report = recover_state(recovered, journal)
    finally:
        journal.close()
    assert state_of(recovered) == expected
    assert report.snapshot_seq == (None if snapshot_at is None else report.snapshot_seq)
    assert report.open_orders == len(expected["open"])
    if snapshot_at is not None:
        assert report.snapshot_seq is not None
        assert report.replayed_events == report.last_seq - report.snapshot_seq
        saved = recovered.strategies.restored_states["rt"]
        assert saved  # the strategy's on_save state travels in the snapshot


def test_when_strategy_state_restored_then_on_load_runs_before_on_start(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    live, trader = build(tmp_path, journal)
    try:
        trade(live, [1, -1, 2], None)
        journal.snapshot(capture(live, node_id="n", epoch=1), T0)
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        recovered, fresh = build(tmp_path, None)
        recover_state(recovered, journal)
    finally:
        journal.close()
    assert fresh.loaded is None
    recovered.start()
    assert fresh.loaded == {"actions": trader.actions, "note": "1.5"}


def test_when_snapshot_is_of_another_version_then_decode_refuses_it(tmp_path: Path) -> None:
    import msgspec

    live, _ = build(tmp_path, None)
    payload = capture(live, node_id="n", epoch=1)
    raw = msgspec.msgpack.decode(payload)
    raw["version"] = 99
    with pytest.raises(SnapshotError, match="version 99"):
        decode(msgspec.msgpack.encode(raw))
    with pytest.raises(SnapshotError, match="does not decode"):
        decode(b"\x93garbage")


def test_when_snapshot_unusable_then_the_whole_journal_is_replayed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    live, _ = build(tmp_path, journal)
    try:
        trade(live, [1, 2, -1, -2, 3], None)
        journal.snapshot(b"\x81\xa7version\x63", T0)  # a snapshot of version 99
        expected = state_of(live)
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        recovered, _ = build(tmp_path, None)
        report = recover_state(recovered, journal)
    finally:
        journal.close()
    assert report.snapshot_seq is None and report.snapshot_problem is not None
    assert report.replayed_events == report.last_seq
    assert state_of(recovered) == expected


def test_when_values_outgrow_64_bits_then_the_snapshot_keeps_them_exact(tmp_path: Path) -> None:
    """Exact averages and notionals are unbounded; a snapshot round-trips them exactly."""
    from fractions import Fraction

    from bastion.recovery.state import restore

    live, _ = build(tmp_path, None)
    positions, _, fees, n_fills = live.portfolio.export_state()
    from bastion.portfolio.position import Position

    huge = Position("rt", IID)
    huge.quantity = 7
    huge.cost = Fraction(3**200 + 1, 7**90)
    huge.realized = -(2**130)
    live.portfolio.restore_state([huge], {IID: 10**40}, Decimal("1.25"), 3)
    snapshot = decode(capture(live, node_id="n", epoch=1))
    again, _ = build(tmp_path, None)
    restore(again, snapshot)
    (p,) = list(again.portfolio.positions())
    assert (p.quantity, p.cost, p.realized) == (7, huge.cost, -(2**130))
    assert again.portfolio.export_state()[1] == {IID: 10**40}
    assert (again.portfolio.fees, again.portfolio.n_fills) == (Decimal("1.25"), 3)
    assert (positions, fees, n_fills) == ([], Decimal(0), 0)


def test_when_node_has_many_orders_then_snapshot_keeps_open_and_recent_ones_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot's size does not grow with the node's age: open orders, the last few
    closed ones and the last ExecIDs; recovery from it still equals the live state."""
    import bastion.recovery.state as state_module

    monkeypatch.setattr(state_module, "RECENT_ORDERS", 5)
    monkeypatch.setattr(state_module, "RECENT_EXEC_IDS", 4)
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path)
    live, _ = build(tmp_path, journal)
    prices = [random.Random(7).randint(-3, 3) for _ in range(300)]
    try:
        trade(live, prices, snapshot_at=250)
        expected = state_of(live)
    finally:
        journal.close()
    assert len(expected["orders"]) > 50
    journal = SqliteJournal(path)
    try:
        stored = journal.latest_snapshot()
        recovered, _ = build(tmp_path, None)
        recover_state(recovered, journal)
    finally:
        journal.close()
    assert stored is not None
    snapshot = decode(stored.payload)
    assert len(snapshot.exec_ids) <= 4
    assert len(snapshot.orders) <= 5 + len(expected["open"])
    got = state_of(recovered)
    for key in ("open", "open_qty", "net", "cash", "fees", "fills", "realized", "position"):
        assert got[key] == expected[key], key
    live_orders = {o[0]: o for o in expected["orders"]}
    assert all(live_orders[o[0]] == o for o in got["orders"])  # what it has, it has right

"""ExecIDs are unique only per venue: the same ExecID from two venues is two fills, live,
after a snapshot and after a journal replay; a snapshot of the layout that held bare
ExecIDs is reported and the whole journal replayed; each FIX venue is seeded with its
own venue's ExecIDs only."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec

from bastion.bus import MessageBus
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.journal import SqliteJournal
from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus
from bastion.model.events import OrderAccepted, OrderFilled, OrderSubmitted
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture, decode
from kit.fix_link import IID as FIX_IID
from kit.fix_link import Link, execution, order
from kit.two_venues import T0, X, Y, send, two_venue_kernel
from kit.venues import RecordingVenue


def fill(kernel: Kernel, order: Order, exec_id: str = "E1") -> None:
    """The order's venue reports one execution numbered ``exec_id``."""
    kernel.venues[order.venue].emit(
        OrderFilled(
            ts_ns=T0,
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            venue_order_id="v",
            exec_id=exec_id,
            side=OrderSide.BUY,
            last_qty=1,
            last_px=9_000,
            fee=Decimal(0),
            fee_currency="USD",
            liquidity=LiquiditySide.MAKER,
        )
    )


def positions(kernel: Kernel) -> tuple[int, int]:
    return kernel.portfolio.net_quantity(X), kernel.portfolio.net_quantity(Y)


def test_when_two_venues_report_the_same_exec_id_then_both_fills_apply(tmp_path: Path) -> None:
    """A's E1 and B's E1 are two executions; B repeating its E1 is the only duplicate."""
    kernel = two_venue_kernel(tmp_path)
    at_a, at_b = send(kernel, X), send(kernel, Y)
    fill(kernel, at_a)
    fill(kernel, at_b)
    fill(kernel, at_b)
    assert (at_a.status, at_b.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    assert positions(kernel) == (1, 1)
    assert kernel.execution.duplicate_fills == 1
    assert sorted(kernel.execution.exec_ids) == [("A", "E1"), ("B", "E1")]
    assert kernel.execution.venue_exec_ids("B") == ["E1"]


def traded(tmp_path: Path) -> Path:
    """A journal where venues A and B each filled one order with ExecID E1."""
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path)
    try:
        live = two_venue_kernel(tmp_path, journal)
        at_a, at_b = send(live, X), send(live, Y)
        fill(live, at_a)
        fill(live, at_b)
        assert positions(live) == (1, 1)
    finally:
        journal.close()
    return path


def recovered(tmp_path: Path, path: Path) -> tuple[Kernel, str | None]:
    journal = SqliteJournal(path)
    try:
        kernel = two_venue_kernel(tmp_path, quoted=False)
        report = recover_state(kernel, journal)
    finally:
        journal.close()
    return kernel, report.snapshot_problem


def store_snapshot(path: Path, payload: bytes) -> None:
    journal = SqliteJournal(path)
    try:
        journal.snapshot(payload, T0)
    finally:
        journal.close()


def test_when_the_journal_is_replayed_then_the_same_exec_id_at_two_venues_is_two_fills(
    tmp_path: Path,
) -> None:
    kernel, problem = recovered(tmp_path, traded(tmp_path))
    assert problem is None
    assert positions(kernel) == (1, 1)
    assert sorted(kernel.execution.exec_ids) == [("A", "E1"), ("B", "E1")]


def test_when_restored_from_a_snapshot_then_exec_ids_keep_their_venue(tmp_path: Path) -> None:
    """The snapshot holds (venue, exec_id): after it, B repeating E1 is a duplicate and
    A's E1 is not mistaken for it."""
    path = traded(tmp_path)
    live, _ = recovered(tmp_path, path)
    store_snapshot(path, capture(live, node_id="n", epoch=7))
    kernel, problem = recovered(tmp_path, path)
    assert problem is None
    snapshot = decode(capture(kernel, node_id="n", epoch=7))
    assert sorted(snapshot.exec_ids) == [("A", "E1"), ("B", "E1")]
    assert positions(kernel) == (1, 1)


def test_when_the_snapshot_holds_bare_exec_ids_then_it_is_reported_and_the_journal_replayed(
    tmp_path: Path,
) -> None:
    """A version-1 snapshot (ExecIDs without their venue) cannot say whose E1 it holds:
    recovery says so and rebuilds everything from the journal."""
    path = traded(tmp_path)
    live, _ = recovered(tmp_path, path)
    old = msgspec.msgpack.decode(capture(live, node_id="n", epoch=7))
    old["version"] = 1
    old["exec_ids"] = [exec_id for _venue, exec_id in old["exec_ids"]]
    store_snapshot(path, msgspec.msgpack.encode(old))
    kernel, problem = recovered(tmp_path, path)
    assert problem is not None and "snapshot version 1" in problem
    assert positions(kernel) == (1, 1)
    assert sorted(kernel.execution.exec_ids) == [("A", "E1"), ("B", "E1")]


def test_when_a_fix_venue_recovers_then_it_is_seeded_with_its_own_exec_ids_only(
    tmp_path: Path,
) -> None:
    """Venue SIM applied E1; the FIX venue's own first execution, also E1, is a fill."""
    link = Link(tmp_path)
    sim = RecordingVenue("SIM")
    engine = ExecutionEngine(
        bus=MessageBus(),
        clock=link.clock,
        ids=ClientOrderIdGenerator("node", 1),
        venues={"SIM": sim, link.adapter.name: link.adapter},
    )
    at_fix = order()
    at_fix.apply(OrderSubmitted(ts_ns=T0, venue=at_fix.venue, **ids(at_fix)))
    at_fix.apply(OrderAccepted(ts_ns=T0, venue_order_id="V-1", **ids(at_fix)))
    engine.restore([at_fix], [("SIM", "E1")])
    link.adapter.prepare_recovery(engine, order_id_prefix="node-")
    try:
        link.connect()
        link.send(execution(at_fix.client_order_id, "F", "E1", (32, "0.5"), (31, "101")))
    finally:
        link.close()
    assert link.adapter.counters["duplicate_exec_ids"] == 0
    assert at_fix.filled_qty > 0
    assert engine.venue_exec_ids(link.adapter.name) == ["E1"]
    assert at_fix.instrument_id == FIX_IID


def ids(o: Order) -> dict[str, str]:
    return {
        "client_order_id": o.client_order_id,
        "strategy_id": o.strategy_id,
        "instrument_id": o.instrument_id,
    }

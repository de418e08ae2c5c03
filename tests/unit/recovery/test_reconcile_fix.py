"""Reconciliation against the venue simulator, both in this process over a real TCP FIX
session: what the node does with orders it never sent, orders the venue never got,
orders the journal lost, and positions that disagree."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.clock import LiveClock
from bastion.config import PaperConfig, load_config
from bastion.journal import SqliteJournal
from bastion.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingState,
)
from bastion.model.events import (
    OrderFilled,
    OrderRejected,
    ReconciliationCompleted,
    ReconciliationMismatch,
)
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.config import RecoveryConfig
from bastion.recovery.reconcile import ReconciliationReport, reconcile
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import NewOrderRequest
from bastion.venue_server.server import VenueSimServer
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.fix.reconcile import NOT_KNOWN_AT_VENUE
from kit.fix_desk import listening_port, node_fix_venue_toml, venue_sim_toml
from kit.waiting import until

IID = "XYZ.SIM"
PREFIX = "recnode-"

NODE_TOML = """
strategies = []

[node]
id = "recnode"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

"""


Scenario = Callable[[Kernel, VenueSimServer], Awaitable[None]]


def run(
    tmp_path: Path, before: Scenario, after: Scenario | None = None
) -> tuple[ReconciliationReport, Kernel, list[Any]]:
    """Start the venue, connect a node kernel, run ``before``, reconcile, then run
    ``after`` (still connected)."""

    async def main() -> tuple[ReconciliationReport, Kernel, list[Any]]:
        (tmp_path / "venue-sim.toml").write_text(venue_sim_toml(0, feed_interval_ms=50))
        server = VenueSimServer(load_config(tmp_path / "venue-sim.toml", VenueSimConfig), tmp_path)
        venue_task = asyncio.create_task(server.run())
        await listening_port(server, venue_task)
        (tmp_path / "node.toml").write_text(NODE_TOML + node_fix_venue_toml(server.port))
        config = load_config(tmp_path / "node.toml", PaperConfig)
        journal = SqliteJournal(tmp_path / "journal.sqlite")
        kernel = Kernel(
            config=config, base_dir=tmp_path, clock=LiveClock(), epoch=1, journal=journal
        )
        published: list[Any] = []
        for event_type in (ReconciliationCompleted, ReconciliationMismatch, OrderRejected):
            kernel.bus.subscribe(event_type, published.append)
        venue = kernel.venue
        assert isinstance(venue, FixVenueAdapter)
        try:
            await venue.connect()
            assert await venue.wait_logged_on(10)
            venue.reconciled_logon = venue.logons  # ``before`` is the node's earlier run
            await before(kernel, server)
            report = await reconcile(
                kernel, epoch=1, config=RecoveryConfig(timeout_s=5), order_id_prefix=PREFIX
            )
            if after is not None:
                await after(kernel, server)
        finally:
            await venue.disconnect()
            server.stop_requested.set()
            await venue_task
            journal.close()
        return report, kernel, published

    return asyncio.run(main())


def rest_at_venue(server: VenueSimServer, cl_ord_id: str) -> None:
    """An order placed on the account directly at the venue, far from the market."""
    with server._committing():
        server.engine.handle(
            "acct",
            NewOrderRequest(
                cl_ord_id=cl_ord_id,
                symbol=IID,
                side=OrderSide.BUY,
                order_type=OrderType.LIMIT,
                quantity=Decimal(2),
                price=Decimal("1.00"),
                time_in_force=TimeInForce.GTC,
            ),
        )


def test_when_in_agreement_then_no_mismatch_and_positions_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def nothing(kernel: Kernel, server: VenueSimServer) -> None:
        return None

    report, kernel, published = run(tmp_path, nothing)
    assert report.mismatches == [] and report.positions_compared
    assert kernel.risk.state is TradingState.ACTIVE
    assert [type(e) for e in published] == [ReconciliationCompleted]


def test_when_venue_holds_an_order_this_node_never_sent_then_halted_with_an_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def foreign(kernel: Kernel, server: VenueSimServer) -> None:
        rest_at_venue(server, "someone-else-1")

    report, kernel, published = run(tmp_path, foreign)
    assert report.mismatches == ["venue holds open order someone-else-1 that this node never sent"]
    assert not report.node_wide  # this venue's orders only
    assert kernel.risk.state is TradingState.HALTED
    alert = published[-1]
    assert isinstance(alert, ReconciliationMismatch) and alert.state is TradingState.HALTED


def test_when_venue_holds_an_order_with_our_prefix_the_journal_lost_then_it_is_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def lost(kernel: Kernel, server: VenueSimServer) -> None:
        rest_at_venue(server, f"{PREFIX}0-7")

    report, kernel, _ = run(tmp_path, lost)
    assert (report.adopted, report.mismatches) == (1, [])
    order = kernel.execution.order(f"{PREFIX}0-7")
    assert order is not None and order.status is OrderStatus.ACCEPTED
    assert (order.quantity, order.price, order.strategy_id) == (2, 100, "unknown")


def test_when_an_open_order_never_reached_the_venue_then_rejected_not_resent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def never_sent(kernel: Kernel, server: VenueSimServer) -> None:
        order = Order(
            client_order_id=f"{PREFIX}1-1",
            strategy_id="s",
            instrument_id=IID,
            venue="FIXSIM",
            side=OrderSide.SELL,
            order_type=OrderType.LIMIT,
            quantity=1,
            price=99_999,
        )
        kernel.execution.adopt(order, reason="test: journaled, never sent")

    report, kernel, published = run(tmp_path, never_sent)
    order = kernel.execution.order(f"{PREFIX}1-1")
    assert order is not None and order.status is OrderStatus.REJECTED
    assert (report.resolved, report.mismatches) == (1, [])
    rejected = [e for e in published if isinstance(e, OrderRejected)]
    assert [(e.client_order_id, e.reason) for e in rejected] == [
        (f"{PREFIX}1-1", NOT_KNOWN_AT_VENUE)
    ]
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.find("acct", f"{PREFIX}1-1") is None  # asked about, never sent


def _journal_intent_only(kernel: Kernel, price: int) -> Order:
    """An order journaled as created (``OrderInitialized``) by a node that died before
    its submission: never submitted, never sent by this process."""
    return kernel.execution.create_order(
        strategy_id="s",
        instrument_id=IID,
        venue="FIXSIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=2,
        price=price,
        client_order_id=f"{PREFIX}3-4",
    )


def test_when_an_order_was_journaled_but_never_submitted_then_rejected_not_known_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INITIALIZED order (its node died between journaling it and sending it) is asked
    about like an open one, rejected as not known at the venue, and never sent."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def intent_only(kernel: Kernel, server: VenueSimServer) -> None:
        _journal_intent_only(kernel, price=100)

    report, kernel, published = run(tmp_path, intent_only)
    order = kernel.execution.order(f"{PREFIX}3-4")
    assert order is not None and order.status is OrderStatus.REJECTED
    assert (report.resolved, report.mismatches) == (1, [])
    rejected = [e for e in published if isinstance(e, OrderRejected)]
    assert [(e.client_order_id, e.reason) for e in rejected] == [
        (f"{PREFIX}3-4", NOT_KNOWN_AT_VENUE)
    ]
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.find("acct", f"{PREFIX}3-4") is None  # asked about, never sent


def test_when_an_order_journaled_only_as_created_is_open_at_the_venue_then_it_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its submission's record lost (group commit), the order reached the venue: the
    venue's listing makes it submitted and accepted, not a mismatch."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def sent_unrecorded(kernel: Kernel, server: VenueSimServer) -> None:
        _journal_intent_only(kernel, price=100)
        rest_at_venue(server, f"{PREFIX}3-4")

    report, kernel, _ = run(tmp_path, sent_unrecorded)
    assert (report.adopted, report.mismatches) == (1, [])
    order = kernel.execution.order(f"{PREFIX}3-4")
    assert order is not None and order.status is OrderStatus.ACCEPTED
    assert order in kernel.execution.open_orders()


def test_when_positions_disagree_beyond_tolerance_then_mismatch_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")

    async def phantom_fill(kernel: Kernel, server: VenueSimServer) -> None:
        kernel.portfolio.on_fill(
            OrderFilled(
                ts_ns=1,
                client_order_id="x",
                strategy_id="s",
                instrument_id=IID,
                venue_order_id="v",
                exec_id="e",
                side=OrderSide.BUY,
                last_qty=3,
                last_px=10_000,
                fee=Decimal(0),
                fee_currency="USD",
                liquidity=LiquiditySide.TAKER,
            )
        )

    report, kernel, _ = run(tmp_path, phantom_fill)
    assert report.mismatches == ["XYZ.SIM: position 3 in the node, 0 at the venue"]
    assert report.node_wide  # positions are the whole node's
    assert kernel.risk.state is TradingState.HALTED


async def rest_own_order(kernel: Kernel) -> Order:
    """A limit buy of 1 at 1.00 sent by the node; returns once the venue accepted it."""
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=IID,
        venue="FIXSIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=100,
    )
    kernel.execution.submit(order)
    await until(lambda: order.status is OrderStatus.ACCEPTED)
    return order


def test_when_a_cancel_never_reached_the_venue_then_start_sends_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node journaled a cancel (PENDING_CANCEL) that the venue never got (the node
    stopped; a FIX message stored before a restart is gap-filled, not resent): the venue
    still lists the order open, reconciliation leaves it pending, and the start sends
    the cancel again, so the order does not stay working at the venue."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")
    coids: list[str] = []

    async def cancel_lost(kernel: Kernel, server: VenueSimServer) -> None:
        order = await rest_own_order(kernel)
        coids.append(order.client_order_id)
        venue_cancel = kernel.venue.cancel
        monkeypatch.setattr(kernel.venue, "cancel", lambda order: None)  # lost on the way
        assert kernel.execution.cancel(order)
        monkeypatch.setattr(kernel.venue, "cancel", venue_cancel)
        assert order.status is OrderStatus.PENDING_CANCEL

    resent: list[int] = []

    async def start(kernel: Kernel, server: VenueSimServer) -> None:
        order = kernel.execution.order(coids[0])
        assert order is not None and order.status is OrderStatus.PENDING_CANCEL
        resent.append(kernel.resend_pending_cancels())
        await until(lambda: order.status is OrderStatus.CANCELED)

    report, _, _ = run(tmp_path, cancel_lost, start)
    assert report.mismatches == [] and resent == [1]
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        row = ledger.find("acct", coids[0])
        assert row is not None and row.status == "4"  # FIX OrdStatus: canceled


def test_when_an_amend_never_reached_the_venue_then_start_rejects_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An amend journaled (PENDING_REPLACE) that the venue never got: after
    reconciliation the order is still pending; the start rejects the amend, so the order
    is ACCEPTED again at the size the venue has (1, not 2), and can be amended anew."""
    monkeypatch.setenv("BASTION_FIX_PASSWORD", "pw-reconcile")
    coids: list[str] = []

    async def amend_lost(kernel: Kernel, server: VenueSimServer) -> None:
        order = await rest_own_order(kernel)
        coids.append(order.client_order_id)
        venue_modify = kernel.venue.modify
        monkeypatch.setattr(kernel.venue, "modify", lambda order, qty, px: None)
        assert kernel.execution.modify(order, 2, 100)
        monkeypatch.setattr(kernel.venue, "modify", venue_modify)
        assert order.status is OrderStatus.PENDING_REPLACE

    settled: list[int] = []

    async def start(kernel: Kernel, server: VenueSimServer) -> None:
        order = kernel.execution.order(coids[0])
        assert order is not None and order.status is OrderStatus.PENDING_REPLACE
        settled.append(kernel.settle_pending_amends())
        assert order.status is OrderStatus.ACCEPTED and order.quantity == 1
        assert kernel.settle_pending_amends() == 0
        assert kernel.execution.modify(order, 3, 100)  # amendable again, and it arrives
        await until(lambda: order.status is OrderStatus.ACCEPTED and order.quantity == 3)

    report, _, _ = run(tmp_path, amend_lost, start)
    assert report.mismatches == [] and settled == [1]

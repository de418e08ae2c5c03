"""Which reconciliation mismatch halts what. On a node with several venues and
``recovery.on_mismatch = "HALTED"``, a mismatch confined to one venue's orders (a query
the venue did not answer, somebody else's order) halts that venue only, journaled as
``VenueHalted`` with the mismatch as its reason, so it stays halted across a restart
until ``bastion resume --venue``; the other venues trade on. A mismatch touching what
the node shares (a fill or a position that differs) halts the whole node, as does any
mismatch on a node with one venue, and ``REDUCING`` stays node-wide."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.feeds.config import SyntheticFeedEntry
from bastion.journal import SqliteJournal
from bastion.model.enums import OrderStatus, TradingState
from bastion.model.events import ReconciliationMismatch, VenueHalted
from bastion.node.kernel import Kernel
from bastion.recovery.config import RecoveryConfig
from bastion.recovery.reconcile import reconcile
from bastion.recovery.replay import recover_state
from bastion.venues.base import ReconcileContext, VenueAdapter, VenueReconciliation
from bastion.venues.sim.config import SimVenueEntry
from kit.fix_link import VENUE
from kit.fix_venue_node import fix_venue_kernel
from kit.two_venues import X, Y, send, two_venue_kernel

ORDERS_ONLY = "venue holds open order other-1 that this node never sent"
POSITION = "Y.B: position 1 in the node, 0 at the venue"


def reporting(venue: VenueAdapter, mismatch: str, *, node_wide: bool) -> None:
    """``venue``'s reconciliation finds ``mismatch``."""

    async def reconcile_venue(context: ReconcileContext) -> VenueReconciliation:
        return VenueReconciliation(venue=venue.name, mismatches=[mismatch], node_wide=node_wide)

    venue.reconcile = reconcile_venue  # type: ignore[method-assign]


def reconciled(
    kernel: Kernel, venue: str, on_mismatch: Literal["HALTED", "REDUCING"] = "HALTED"
) -> VenueReconciliation:
    return asyncio.run(
        reconcile(
            kernel,
            venue=kernel.venues[venue],
            epoch=7,
            config=RecoveryConfig(on_mismatch=on_mismatch),
            order_id_prefix="node-1-",
        )
    )


def test_when_a_fix_venue_drops_during_its_reconciliation_then_only_that_venue_halts(
    tmp_path: Path,
) -> None:
    """The review's case: the FIX venue's session is down while it is reconciled (the
    queries fail); the node stays ACTIVE and the in-process venue takes orders."""
    kernel, link = fix_venue_kernel(tmp_path)
    try:
        halts: list[VenueHalted] = []
        kernel.bus.subscribe(VenueHalted, halts.append)
        report = reconciled(kernel, VENUE)
        assert report.mismatches and not report.node_wide
        assert kernel.risk.state is TradingState.ACTIVE
        (halt,) = halts
        assert halt.venue == VENUE and halt.who == "node"
        assert halt.reason == f"reconciliation mismatch: {report.mismatches[0]}"
        assert kernel.venues[VENUE].halted == halt.reason
        assert kernel.venues["A"].halted is None
        assert send(kernel, X).status is OrderStatus.ACCEPTED
    finally:
        link.close()


def test_when_a_mismatch_touches_one_venues_orders_then_it_halts_and_stays_halted_after_restart(
    tmp_path: Path,
) -> None:
    """Venue B halted (journaled, the mismatch as reason); B's new orders rejected, A's
    accepted; a restarted node takes the halt over from the journal."""
    journal = SqliteJournal(tmp_path / "j.sqlite")
    try:
        kernel = two_venue_kernel(tmp_path, journal)
        alerts: list[ReconciliationMismatch] = []
        kernel.bus.subscribe(ReconciliationMismatch, alerts.append)
        reporting(kernel.venues["B"], ORDERS_ONLY, node_wide=False)
        reconciled(kernel, "B")
        reason = f"reconciliation mismatch: {ORDERS_ONLY}"
        assert kernel.venues["B"].halted == reason
        assert kernel.risk.state is TradingState.ACTIVE
        assert [(a.venue, a.state, a.mismatches) for a in alerts] == [
            ("B", TradingState.ACTIVE, [ORDERS_ONLY])
        ]
        assert send(kernel, Y).status is OrderStatus.REJECTED
        assert send(kernel, X).status is OrderStatus.ACCEPTED
    finally:
        journal.close()
    journal = SqliteJournal(tmp_path / "j.sqlite")
    try:
        restarted = two_venue_kernel(tmp_path, journal, quoted=False)
        report = recover_state(restarted, journal)
        assert report.halted_venues == {"B": reason}
        assert restarted.venues["B"].halted == reason
        assert restarted.risk.state is TradingState.ACTIVE
    finally:
        journal.close()


def test_when_a_position_differs_at_one_of_several_venues_then_the_node_halts(
    tmp_path: Path,
) -> None:
    """Positions are shared state (the portfolio, PnL, node-wide limits read them): the
    node goes HALTED and no venue is halted on its own."""
    kernel = two_venue_kernel(tmp_path)
    reporting(kernel.venues["B"], POSITION, node_wide=True)
    reconciled(kernel, "B")
    assert kernel.risk.state is TradingState.HALTED
    assert kernel.risk.state_reason == "reconciliation with B: mismatch"
    assert (kernel.venues["A"].halted, kernel.venues["B"].halted) == (None, None)


def test_when_on_mismatch_is_reducing_then_a_venue_only_mismatch_reduces_the_node(
    tmp_path: Path,
) -> None:
    """``REDUCING`` lets reducing orders through everywhere, which a venue halt would not:
    it stays node-wide."""
    kernel = two_venue_kernel(tmp_path)
    reporting(kernel.venues["B"], ORDERS_ONLY, node_wide=False)
    reconciled(kernel, "B", on_mismatch="REDUCING")
    assert kernel.risk.state is TradingState.REDUCING
    assert kernel.venues["B"].halted is None


@pytest.mark.parametrize("node_wide", [False, True])
def test_when_a_node_has_one_venue_then_any_mismatch_halts_the_node(
    tmp_path: Path, node_wide: bool
) -> None:
    """One venue: exactly as before, whatever the mismatch."""
    config = PaperConfig(
        instruments=[InstrumentConfig(id=Y, venue="B", tick_size=Decimal("0.01"))],
        strategies=[],
        venues=[SimVenueEntry(name="B")],
        feeds=[SyntheticFeedEntry(name="house", instruments=[Y])],
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=7)
    reporting(kernel.venue, ORDERS_ONLY, node_wide=node_wide)
    reconciled(kernel, "B")
    assert kernel.risk.state is TradingState.HALTED
    assert kernel.venue.halted is None

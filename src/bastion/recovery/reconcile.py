"""Reconciliation: make the node's orders and positions agree with each venue's.

Run on start, after the journal is replayed and before any strategy trades, once per
venue, and again for a venue after every new logon of its session. Until then, the
venue's instruments are unavailable (``VenueAdapter.reconciled``): orders for them
are rejected at once. What a venue
checks is its own (``VenueAdapter.reconcile``): a FIX venue is asked for its open
orders, the status of the node's others and its positions
(``bastion.venues.fix.reconcile``); the in-process simulated venue, which lives and
dies with the node, rests its open orders again.

Fills are never invented here. A cumulative quantity that still differs, a position
off by more than the tolerance, or a query the venue does not answer is a mismatch:
the node goes to ``recovery.on_mismatch`` (HALTED or REDUCING) and publishes a
``ReconciliationMismatch`` alert rather than trading on wrong state. With several
venues and ``on_mismatch = "HALTED"``, a mismatch confined to the venue's orders (the
report is not ``node_wide``: no fill or position differs, no other venue is involved)
halts that venue only, journaled as ``VenueHalted`` (it stays halted across restarts
until ``bastion resume --venue``), and the other venues trade on.

Before any of it, ``refuse_unknown_venues``: an open order the journal holds at a
venue the config no longer names can be neither reconciled nor canceled, so the node
refuses to start (``OperationalError`` naming the orders and the venue) rather than
trade beside an order it cannot reach.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import msgspec
import structlog

from bastion.errors import OperationalError
from bastion.model.enums import TradingState
from bastion.model.events import ReconciliationCompleted, ReconciliationMismatch
from bastion.model.orders import Order
from bastion.recovery.config import RecoveryConfig
from bastion.recovery.node import RecoverableNode
from bastion.venues.base import ReconcileContext, VenueAdapter, VenueReconciliation

__all__ = ["ReconciliationReport", "reconcile", "refuse_unknown_venues"]

log = structlog.get_logger("bastion.recovery")

ReconciliationReport = VenueReconciliation

_LISTED = 10  # orders named per venue in the error


def refuse_unknown_venues(open_orders: Iterable[Order], venues: Collection[str]) -> None:
    """``OperationalError`` if a recovered open order is at a venue not configured (a
    venue renamed or removed while it had orders working): it could be neither
    reconciled nor canceled, and may still fill. Put the venue back in the config (same
    name) to reconcile and cancel it, then remove it."""
    orphans: dict[str, list[str]] = {}
    for order in open_orders:
        if order.venue not in venues:
            orphans.setdefault(order.venue, []).append(order.client_order_id)
    if not orphans:
        return
    parts = []
    for venue, ids in sorted(orphans.items()):
        shown = ", ".join(ids[:_LISTED]) + (
            f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else ""
        )
        parts.append(f"{len(ids)} at venue {venue!r} ({shown})")
    raise OperationalError(
        "the journal holds open orders at venues the config does not name: "
        + "; ".join(parts)
        + f" (configured venues: {', '.join(sorted(venues)) or 'none'}); they could be "
        "neither reconciled nor canceled. Add each venue back under [[venues]] with the "
        "same name so its orders are reconciled (and canceled if need be), then remove it"
    )


async def reconcile(
    kernel: RecoverableNode,
    *,
    epoch: int,
    config: RecoveryConfig,
    order_id_prefix: str,
    adopted_before: int = 0,
    venue: VenueAdapter | None = None,
) -> ReconciliationReport:
    """Reconcile ``kernel`` with ``venue`` (default: its only venue); publish the outcome
    (journaled by the kernel)."""
    if venue is None:
        venue = kernel.venue
    context = ReconcileContext(
        orders=kernel.execution,
        net_quantity=kernel.portfolio.net_quantity,
        clock=kernel.clock,
        instruments=kernel.instruments,
        order_id_prefix=order_id_prefix,
        timeout_s=config.timeout_s,
        compare_positions=config.compare_positions,
        position_tolerance=config.position_tolerance,
    )
    logon = venue.logons  # a drop and a new logon meanwhile leave the venue unreconciled
    report = await venue.reconcile(context)
    venue.reconciled_logon = logon
    report.adopted += adopted_before
    clock = kernel.clock
    kernel.bus.publish(
        ReconciliationCompleted(
            ts_ns=clock.timestamp_ns(),
            venue=venue.name,
            epoch=epoch,
            orders_checked=report.orders_checked,
            adopted=report.adopted,
            resolved=report.resolved,
            mismatches=report.mismatches,
        )
    )
    if report.mismatches:
        state = TradingState(config.on_mismatch)
        risk = kernel.risk
        venue_only = (
            state is TradingState.HALTED and len(kernel.venues) > 1 and not report.node_wide
        )
        if venue_only:
            _halt_venue(kernel, venue, report.mismatches)
        elif risk.state is TradingState.ACTIVE or state is TradingState.HALTED:
            risk.set_trading_state(state, f"reconciliation with {venue.name}: mismatch")
        kernel.bus.publish(
            ReconciliationMismatch(
                ts_ns=clock.timestamp_ns(),
                venue=venue.name,
                state=risk.state,
                mismatches=report.mismatches,
            )
        )
        log.error(
            "reconciliation_mismatch",
            venue=venue.name,
            scope="venue" if venue_only else "node",
            mismatches=report.mismatches,
        )
    else:
        log.info("reconciliation_completed", **msgspec.structs.asdict(report))
    return report


_SHOWN = 3  # mismatches named in a venue's halt reason


def _halt_venue(kernel: RecoverableNode, venue: VenueAdapter, mismatches: list[str]) -> None:
    """Halt ``venue`` for a mismatch confined to its orders (journaled ``VenueHalted``,
    so it holds across restarts until ``bastion resume --venue``); a venue already
    halted keeps the reason it has."""
    if venue.halted is not None:
        return
    more = len(mismatches) - _SHOWN
    listed = "; ".join(mismatches[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
    kernel.halt_venue(
        venue.name,
        f"reconciliation mismatch: {listed}",
        who="node",
        why="reconciliation mismatch at this venue",
    )


def combined_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The venues' reconciliation reports as one (with one venue: its report)."""
    if len(reports) == 1:
        return reports[0]
    return {
        "venue": ", ".join(r["venue"] for r in reports),
        "orders_checked": sum(r["orders_checked"] for r in reports),
        "adopted": sum(r["adopted"] for r in reports),
        "resolved": sum(r["resolved"] for r in reports),
        "positions_compared": all(r["positions_compared"] for r in reports),
        "node_wide": any(r["node_wide"] for r in reports),
        "mismatches": [f"{r['venue']}: {m}" for r in reports for m in r["mismatches"]],
    }

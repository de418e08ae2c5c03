"""Cancel-on-disconnect, node side: a FIX venue's open orders when its session drops.

``fix_venue.cancel_on_disconnect`` picks who cancels (``CancelOnDisconnect``):

- ``venue``: the Logon carries CancelOrdersOnDisconnect (8013=Y) and the venue cancels
  when the session drops. Its reports reach the node through the resend after the next
  logon, like any report made while the node was away.
- ``reconnect``: for venues without that service. After the next logon, once the resend
  and the reconciliation have settled, the node cancels every order of the venue that
  was not sent on this logon (strategies trade again while the reconciliation runs).
- ``off``: the orders keep working.

A node restart is a dropped session too: the orders recovered from the journal are
treated as the ones open when it dropped. Whatever the mode, what happened is logged
(``fix_cancel_on_disconnect``) and counted on the adapter's ``counters``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

import msgspec
import structlog

from bastion.model.enums import OrderStatus
from bastion.model.orders import Order
from bastion.venues.fix.config import CancelOnDisconnect

log = structlog.get_logger("bastion.venues.fix")


class AfterReconnect(msgspec.Struct, frozen=True, kw_only=True):
    """What became of the orders that were open when the session dropped."""

    mode: str
    open_at_drop: int
    canceled_while_away: int
    closed_otherwise: int
    cancels_sent: int
    open_after_reconcile: list[str]
    """The venue's orders from before this logon still open once reconciled (in
    ``reconnect`` mode, the ones it then cancels)."""


class _Venue(Protocol):
    """What this needs of the FIX venue adapter."""

    name: str
    counters: Counter[str]
    submitted_since_logon: set[str]

    @property
    def connected(self) -> bool: ...

    def logon_settled(self) -> None: ...


class DisconnectCancels:
    """Applies one venue's ``cancel_on_disconnect`` mode around each reconnection.

    The node calls ``session_lost`` when the session drops (and once at start, with the
    recovered orders), then ``after_reconcile`` once the next logon is reconciled.
    """

    def __init__(self, venue: _Venue, mode: CancelOnDisconnect) -> None:
        self.venue = venue
        self.mode = mode
        self._open_at_drop: dict[str, Order] = {}

    def session_lost(self, open_orders: Iterable[Order]) -> None:
        """Remember the venue's orders open now; nothing reaches the venue until the next
        logon, so these are the orders the drop left working."""
        for order in open_orders:
            if order.venue == self.venue.name:
                self._open_at_drop[order.client_order_id] = order

    def after_reconcile(
        self, open_orders: Iterable[Order], cancel: Callable[[Order], bool]
    ) -> AfterReconnect | None:
        """Count what the drop did; in ``reconnect`` mode cancel what is left open.

        ``cancel`` is the risk gate's cancel (allowed in every trading state). Returns
        None when the session dropped again meanwhile: the next logon does it.
        """
        venue = self.venue
        if not venue.connected:
            log.info("fix_cancel_on_disconnect_deferred", venue=venue.name, mode=self.mode.value)
            return None
        was = self._open_at_drop
        self._open_at_drop = {}
        canceled = sum(1 for o in was.values() if o.status is OrderStatus.CANCELED)
        closed = sum(1 for o in was.values() if not o.is_open)
        left = [
            o
            for o in open_orders
            if o.venue == venue.name and o.client_order_id not in venue.submitted_since_logon
        ]
        venue.logon_settled()
        sent = 0
        if self.mode is CancelOnDisconnect.RECONNECT:
            for order in left:
                pending = order.status is OrderStatus.PENDING_CANCEL
                if cancel(order) and not pending:
                    sent += 1
        outcome = AfterReconnect(
            mode=self.mode.value,
            open_at_drop=len(was),
            canceled_while_away=canceled,
            closed_otherwise=closed - canceled,
            cancels_sent=sent,
            open_after_reconcile=sorted(o.client_order_id for o in left),
        )
        counters = venue.counters
        counters["disconnect_orders_open"] += len(was)
        counters["disconnect_canceled_while_away"] += canceled
        counters["disconnect_cancels_sent"] += sent
        fields = msgspec.structs.asdict(outcome)
        if self.mode is CancelOnDisconnect.VENUE and any(o.client_order_id in was for o in left):
            # the venue did not honour 8013=Y (or an order filled partly and stayed open)
            log.warning("fix_cancel_on_disconnect_not_done_by_venue", venue=venue.name, **fields)
        elif was or left:
            log.info("fix_cancel_on_disconnect", venue=venue.name, **fields)
        return outcome

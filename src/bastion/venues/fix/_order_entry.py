"""Orders out to a FIX venue, and the adapter's record of them.

Orders map to NewOrderSingle (D), OrderCancelRequest (F) and
OrderCancelReplaceRequest (G). Cancel and replace requests carry a new ClOrdID
``<client order id>/<epoch>.<request number>`` (``bastion.execution.ids.amend_id``: the
epoch is the sending run's, so a venue can fence a deposed HA leader's cancels) and name
the venue's current ClOrdID of the order as OrigClOrdID, so any ClOrdID the venue
reports maps back to the node's order by what precedes the ``/``, without state that a
restart would lose. A request the adapter refuses itself is answered after the caller
returns, as a venue would; each request sent is remembered by its MsgSeqNum, so a
session-level reject of it fails it.

A part of ``FixVenueAdapter`` (``bastion.venues.fix.adapter``), which sets the state
``OrderEntry`` declares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from bastion.clock import Clock
from bastion.execution.ids import amend_id, order_id_of
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession
from bastion.fix.timestamps import format_utc_timestamp
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import (
    OrderCancelRejected,
    OrderEvent,
    OrderModifyRejected,
    OrderRejected,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import EventSink

SIDE_OUT = {OrderSide.BUY: "1", OrderSide.SELL: "2"}
_TYPE_OUT = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
_TIF_OUT = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3"}
NOT_LOGGED_ON = "venue session not logged on"


class OrderEntry:
    """Orders out: the node's orders by client order id, the ClOrdID the venue knows
    each by, and the requests a session-level reject can fail."""

    # set by ``FixVenueAdapter``
    name: str
    epoch: int
    clock: Clock
    account: str | None
    instruments: dict[str, Instrument]
    session: FixSession
    counters: Counter[str]
    emit: EventSink
    reconciled_logon: int
    submitted_since_logon: set[str]
    # ``FixVenueAdapter.refusal``, only declared here: its ``super()`` is ``VenueAdapter``'s
    refusal: Callable[[], str | None]
    _logons: int
    _track_submitted: bool
    _orders: dict[str, Order]
    _venue_cl_ord_id: dict[str, str]
    _sent: dict[int, tuple[str, str]]
    _amend_logons: dict[str, int]
    _request_ids: Iterator[int]

    def submit(self, order: Order) -> None:
        instrument = self.instruments.get(order.instrument_id)
        reason = (
            f"{order.instrument_id} is not on {self.name}" if instrument is None else self.refusal()
        )
        if reason is not None or instrument is None:
            self._emit_later(OrderRejected, order, reason=reason or "")
            return
        coid = order.client_order_id
        self._orders[coid] = order
        self._venue_cl_ord_id[coid] = coid
        if self._track_submitted:
            self.submitted_since_logon.add(coid)
        msg = FixMessage.of(
            "D",
            (11, coid),
            *(((1, self.account),) if self.account else ()),
            (55, instrument.id),
            (54, SIDE_OUT[order.side]),
            (60, _transact_time(self.clock)),
            (38, instrument.size(order.quantity)),
            (40, _TYPE_OUT[order.order_type]),
            *(((44, instrument.price(order.price)),) if order.price is not None else ()),
            (59, _TIF_OUT[order.time_in_force]),
            (526, order.strategy_id),
        )
        self._sent_request(msg, coid)

    def cancel(self, order: Order) -> None:
        self._amend(order, "F", OrderCancelRejected, order.quantity, None)

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        reason = self.refusal()
        if reason is not None:
            self._emit_later(OrderModifyRejected, order, reason=reason)
            return
        self._amend(order, "G", OrderModifyRejected, quantity, price)

    def _amend(
        self,
        order: Order,
        msg_type: str,
        refused: type[OrderCancelRejected | OrderModifyRejected],
        quantity: int,
        price: int | None,
    ) -> None:
        """A cancel (F) or cancel/replace (G) of the order the venue knows by its last ClOrdID."""
        coid = order.client_order_id
        if not self.session.logged_on or coid not in self._venue_cl_ord_id:
            reason = "order unknown to venue" if self.session.logged_on else NOT_LOGGED_ON
            self._emit_later(refused, order, reason=reason)
            return
        instrument = self.instruments[order.instrument_id]
        fields: list[tuple[int, object]] = [
            (11, self._request_id(coid)),
            (41, self._venue_cl_ord_id[coid]),
            *(((1, self.account),) if self.account else ()),
            (55, instrument.id),
            (54, SIDE_OUT[order.side]),
            (60, _transact_time(self.clock)),
            (38, instrument.size(quantity)),
        ]
        if msg_type == "G":
            new_price = price if price is not None else order.price
            fields.append((40, _TYPE_OUT[order.order_type]))
            if new_price is not None:
                fields.append((44, instrument.price(new_price)))
            fields.append((59, _TIF_OUT[order.time_in_force]))
            self._amend_logons[coid] = self._logons
        self._sent_request(FixMessage.of(msg_type, *fields), coid)

    def _request_id(self, coid: str) -> str:
        return amend_id(coid, self.epoch, next(self._request_ids))

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def send_request(self, msg: FixMessage, ref: str) -> None:
        """Send a request whose session-level reject must reach whoever waits on ``ref``."""
        self._sent_request(msg, ref)

    def _sent_request(self, msg: FixMessage, coid: str) -> None:
        seq = self.session.send(msg)
        self._sent[seq] = (msg.msg_type, coid)
        if len(self._sent) > 100_000:  # only recent requests can be rejected
            for old in list(self._sent)[:50_000]:
                del self._sent[old]

    def _emit_later(self, event_type: type[OrderEvent], order: Order, **fields: Any) -> None:
        """Answer a request we refuse locally after the caller returns, as a venue would."""
        event = event_type(
            ts_ns=self.clock.timestamp_ns(),
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            **fields,
        )
        self.counters["refused_locally"] += 1
        asyncio.get_running_loop().call_soon(self.emit, event)

    def register(self, order: Order) -> None:
        """Know a recovered order, so reports about it map back to it."""
        coid = order.client_order_id
        self._orders[coid] = order
        self._venue_cl_ord_id.setdefault(coid, coid)

    def set_venue_cl_ord_id(self, client_order_id: str, cl_ord_id: str) -> None:
        """The ClOrdID the venue knows the order by now (after replaces)."""
        if order_id_of(cl_ord_id) == client_order_id:
            self._venue_cl_ord_id[client_order_id] = cl_ord_id

    def lost_amends(self) -> list[Order]:
        """Amends (G) sent on a logon before the one last reconciled and still unanswered:
        the drop lost them (the next logon gap-fills them, never resends them), and the
        venue's answer to one it had received came back with the resend, before the
        reconciliation's answers. Amends sent on the reconciled logon are left alone."""
        lost: list[Order] = []
        for coid, logon in list(self._amend_logons.items()):
            order = self._orders.get(coid)
            if order is None or order.status is not OrderStatus.PENDING_REPLACE:
                del self._amend_logons[coid]  # answered
            elif logon < self.reconciled_logon:
                del self._amend_logons[coid]
                lost.append(order)
        return lost

    def logon_settled(self) -> None:
        """The logon's reconciliation is done: stop noting the orders sent since."""
        self.submitted_since_logon.clear()
        self._track_submitted = False


def _transact_time(clock: Clock) -> str:
    return format_utc_timestamp(clock.timestamp_ns())

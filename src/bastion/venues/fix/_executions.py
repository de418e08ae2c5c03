"""Execution reports in from a FIX venue, and the status queries they answer.

An ExecutionReport (8) becomes the order's event (``bastion.venues.fix.reports``:
OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUpdated);
one whose ExecID was seen before (a PossDup resend, or a venue repeating itself) never
becomes a second fill. An OrderCancelReject (9) becomes OrderCancelRejected or
OrderModifyRejected, and a Reject (3) or BusinessMessageReject (j) of one of our
requests fails that request. OrderStatusRequest (H) and OrderMassStatusRequest (AF)
answer reconciliation queries (``order_status``, ``mass_status``, ``open_order_ids``;
``bastion.venues.fix.reconcile``) with ExecutionReports of ExecType I.

A part of ``FixVenueAdapter`` (``bastion.venues.fix.adapter``), which sets the state
``ExecutionReports`` declares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import structlog

from bastion.clock import Clock
from bastion.errors import VenueRequestFailed, VenueUnavailable
from bastion.execution.ids import order_id_of
from bastion.fix.codec import REQUIRED_TAG_MISSING, FixMessage
from bastion.fix.rejects import RejectMessage
from bastion.fix.session import FixSession
from bastion.model.enums import OrderStatus
from bastion.model.events import (
    OrderCancelRejected,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import EventSink
from bastion.venues.fix._order_entry import NOT_LOGGED_ON, SIDE_OUT
from bastion.venues.fix.reports import already_applied, report_event

log = structlog.get_logger("bastion.venues.fix")

_OPEN_STATUSES = frozenset({"0", "1", "5", "6", "9", "A", "D", "E"})
_EXEC_REPORT_REQUIRED = (37, 17, 150, 39, 54, 151, 14, 6)


class ExecutionReports:
    """Reports in: the events they make, the ExecIDs already applied, and the status
    queries waiting for their answers."""

    # set by ``FixVenueAdapter``
    name: str
    clock: Clock
    instruments: dict[str, Instrument]
    session: FixSession
    counters: Counter[str]
    emit: EventSink
    adopt_reported: Callable[[FixMessage], Order | None] | None
    position_requests: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]]
    _orders: dict[str, Order]
    _venue_cl_ord_id: dict[str, str]
    _sent: dict[int, tuple[str, str]]
    _exec_ids: set[str]
    _mass_status: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]]
    _status: dict[str, asyncio.Future[FixMessage]]
    _request_ids: Iterator[int]

    def seed_exec_ids(self, exec_ids: Iterable[str]) -> None:
        """This venue's ExecIDs already applied (from the journal): a resend of them is
        skipped."""
        self._exec_ids.update(exec_ids)

    # -- reconciliation queries -----------------------------------------------------------
    async def open_order_ids(self) -> set[str]:
        """Client order ids the venue reports open (OrderMassStatusRequest)."""
        reports = await self.mass_status()
        return {
            order_id_of(r.get(11) or "")
            for r in reports
            if r.get(39) in _OPEN_STATUSES and r.get(11) not in (None, "NONE")
        }

    async def mass_status(self, timeout_s: float = 5.0) -> list[FixMessage]:
        """Every open order's ExecutionReport (ExecType I), as the venue reports it."""
        if not self.session.logged_on:
            raise VenueUnavailable(NOT_LOGGED_ON)
        req_id = f"MS-{next(self._request_ids):x}"
        future: asyncio.Future[list[FixMessage]] = asyncio.get_running_loop().create_future()
        self._mass_status[req_id] = (future, [])
        self.session.send(FixMessage.of("AF", (584, req_id), (585, "7")))
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as error:
            raise VenueRequestFailed(f"no OrderMassStatus answer in {timeout_s} s") from error
        finally:
            self._mass_status.pop(req_id, None)

    async def order_status(self, order: Order, timeout_s: float = 5.0) -> FixMessage:
        """The venue's ExecutionReport (ExecType I) for one order (OrderStatusRequest)."""
        if not self.session.logged_on:
            raise VenueUnavailable(NOT_LOGGED_ON)
        coid = order.client_order_id
        future: asyncio.Future[FixMessage] = asyncio.get_running_loop().create_future()
        self._status[coid] = future
        self.session.send(
            FixMessage.of(
                "H",
                (11, self._venue_cl_ord_id.get(coid, coid)),
                (55, order.instrument_id),
                (54, SIDE_OUT[order.side]),
            )
        )
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as error:
            raise VenueRequestFailed(f"no OrderStatus answer in {timeout_s} s") from error
        finally:
            self._status.pop(coid, None)

    # -- reports in -----------------------------------------------------------------------
    def _on_execution_report(self, msg: FixMessage) -> None:
        for tag in _EXEC_REPORT_REQUIRED:
            if msg.get(tag) is None:
                raise RejectMessage(REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}")
        exec_type = msg.get(150) or ""
        mass_id = msg.get(584)
        if exec_type == "I":
            self._on_status_report(msg, mass_id)
            return
        cl_ord_id = msg.get(11)
        if cl_ord_id is None:
            raise RejectMessage(REQUIRED_TAG_MISSING, 11, "Required tag missing: 11")
        coid = order_id_of(cl_ord_id)
        order = self._orders.get(coid)
        adopt = self.adopt_reported
        if adopt is not None and (
            (order is None and msg.get(43) == "Y")
            or (order is not None and order.status is OrderStatus.INITIALIZED)
        ):
            # a report on an order the journal lost (resent: the venue's resend after a
            # restart or takeover), or on one journaled as created only: it was sent
            order = adopt(msg) or order
        if order is None and msg.get(43) == "Y":
            self.counters["resent_reports_unknown_order"] += 1  # closed before the snapshot
            return
        if order is None:
            self.counters["unknown_order_reports"] += 1
            log.warning(
                "fix_report_for_unknown_order",
                venue=self.name,
                cl_ord_id=cl_ord_id,
                exec_type=exec_type,
            )
            return
        instrument = self.instruments[order.instrument_id]
        event = report_event(msg, order, instrument, self.clock.timestamp_ns())
        if event is None:
            self.counters[f"exec_type_{exec_type}_ignored"] += 1
            return
        if type(event) is OrderFilled:
            if not self._once(msg):
                return  # a resend of a fill already applied
            self.counters["fills"] += 1
            self.emit(event)
            return
        if exec_type == "5":
            if not self._once(msg):
                return
            self._venue_cl_ord_id[coid] = cl_ord_id
        else:
            self._once(msg)
        if msg.get(43) == "Y" and already_applied(order, event):
            # a resend (after a restart rewound the inbound stream) of a report whose
            # effect the journal already holds
            self.counters["resent_reports_already_applied"] += 1
            return
        self.emit(event)

    def _once(self, msg: FixMessage) -> bool:
        """False for an ExecID already seen; the OMS refuses repeated state changes anyway."""
        exec_id = msg.get(17) or ""
        if exec_id in self._exec_ids:
            self.counters["duplicate_exec_ids"] += 1
            return False
        self._exec_ids.add(exec_id)
        return True

    def _on_status_report(self, msg: FixMessage, mass_id: str | None) -> None:
        if mass_id is not None:
            entry = self._mass_status.get(mass_id)
            if entry is None:
                return
            future, reports = entry
            if msg.get(911) != "0":
                reports.append(msg)
            if msg.get(912) == "Y" and not future.done():
                future.set_result(reports)
            return
        coid = order_id_of(msg.get(11) or "")
        status = self._status.get(coid)
        if status is not None and not status.done():
            status.set_result(msg)

    def _on_cancel_reject(self, msg: FixMessage) -> None:
        cl_ord_id = msg.get(11)
        if cl_ord_id is None:
            raise RejectMessage(REQUIRED_TAG_MISSING, 11, "Required tag missing: 11")
        coid = order_id_of(cl_ord_id)
        order = self._orders.get(coid)
        if order is None:
            self.counters["unknown_order_reports"] += 1
            return
        event_type = OrderModifyRejected if msg.get(434) == "2" else OrderCancelRejected
        self.emit(
            event_type(
                ts_ns=self.clock.timestamp_ns(),
                client_order_id=coid,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                reason=msg.get(58) or f"CxlRejReason {msg.get(102) or 'unknown'}",
            )
        )

    def _on_reject(self, msg: FixMessage) -> None:
        """A Reject or BusinessMessageReject of one of our order requests fails that request."""
        ref_seq = msg.get(45)
        sent = self._sent.pop(int(ref_seq), None) if ref_seq and ref_seq.isdigit() else None
        if sent is None:
            return
        msg_type, coid = sent
        if msg_type == "AN":
            entry = self.position_requests.get(coid)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(VenueRequestFailed(f"venue rejected AN: {msg.get(58)}"))
            return
        order = self._orders.get(coid)
        if order is None:
            return
        reason = f"venue rejected {msg_type}: {msg.get(58) or msg.get(373) or msg.get(380)}"
        event_type = {"D": OrderRejected, "F": OrderCancelRejected, "G": OrderModifyRejected}.get(
            msg_type
        )
        if event_type is None:
            return
        self.emit(
            event_type(
                ts_ns=self.clock.timestamp_ns(),
                client_order_id=coid,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                reason=reason,
            )
        )

"""A venue reached over FIX 4.4: orders out, execution reports and market data in.

Orders map to NewOrderSingle (D), OrderCancelRequest (F) and
OrderCancelReplaceRequest (G). Cancel and replace requests carry a new ClOrdID
``<client order id>/<request number>`` and name the venue's current ClOrdID of the
order as OrigClOrdID, so any ClOrdID the venue reports maps back to the node's
order by what precedes the ``/``, without state that a restart would lose.

Events emitted (through the execution engine's sink): OrderAccepted,
OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUpdated,
OrderCancelRejected, OrderModifyRejected. An ExecutionReport whose ExecID was
seen before (a PossDup resend, or a venue repeating itself) never becomes a
second fill. While the session is not logged on, new orders are rejected at
once rather than queued: an order must never reach a venue late.

Market data: on logon, a MarketDataRequest (V) subscribes to top of book for
every instrument of this venue; snapshots (W) and incremental refreshes (X)
become ``QuoteTick`` s handed to ``on_quote`` (the node's data path).
OrderStatusRequest (H) and OrderMassStatusRequest (AF) answer reconciliation
queries (``order_status``, ``open_order_ids``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import structlog

from bastion.clock import Clock
from bastion.fix.codec import (
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    FixMessage,
)
from bastion.fix.session import (
    BusinessReject,
    FixSession,
    RejectMessage,
    SessionSettings,
    format_utc_timestamp,
)
from bastion.fix.store import SqliteSessionStore
from bastion.fix.transport import FixInitiator
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import VenueAdapter

log = structlog.get_logger("bastion.venues.fix")

_SIDE_OUT = {OrderSide.BUY: "1", OrderSide.SELL: "2"}
_SIDE_IN = {"1": OrderSide.BUY, "2": OrderSide.SELL}
_TYPE_OUT = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
_TIF_OUT = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3"}
_OPEN_STATUSES = frozenset({"0", "1", "5", "6", "9", "A", "D", "E"})
_EXEC_REPORT_REQUIRED = (37, 17, 150, 39, 54, 151, 14, 6)
NOT_LOGGED_ON = "venue session not logged on"

QuoteSink = Callable[[QuoteTick], None]


class FixVenueAdapter(VenueAdapter):
    """One venue over one FIX 4.4 initiator session."""

    def __init__(
        self,
        *,
        name: str,
        settings: SessionSettings,
        store_path: Path,
        host: str,
        port: int,
        clock: Clock,
        instruments: dict[str, Instrument],
        account: str | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        subscribe_market_data: bool = True,
    ) -> None:
        super().__init__(name)
        self.clock = clock
        self.instruments = {iid: i for iid, i in instruments.items() if i.venue == name}
        self.account = account
        self.subscribe_market_data = subscribe_market_data
        self.on_quote_sink: QuoteSink | None = None
        self.store = SqliteSessionStore(store_path, settings.key, now_ns=clock.timestamp_ns())
        self.session = FixSession(settings, self.store, self, now_ns=clock.timestamp_ns)
        self.initiator = FixInitiator(
            self.session,
            host,
            port,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        self.inbox: deque[Any] = deque()  # the kernel's flush contract; FIX sends at once
        self.counters: Counter[str] = Counter()
        self._orders: dict[str, Order] = {}
        self._venue_cl_ord_id: dict[str, str] = {}
        self._exec_ids: set[str] = set()
        self._request_ids = itertools.count(time.time_ns() // 1_000_000)
        self._sent: dict[int, tuple[str, str]] = {}  # MsgSeqNum -> (MsgType, client order id)
        self._books: dict[str, list[int | None]] = {}
        self._mass_status: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]] = {}
        self._status: dict[str, asyncio.Future[FixMessage]] = {}
        self._run_task: asyncio.Task[None] | None = None
        self.logged_on = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Start keeping the session connected (returns at once; see ``wait_logged_on``)."""
        if self._run_task is None:
            self._run_task = asyncio.create_task(self.initiator.run(), name=f"fix-{self.name}")

    async def wait_logged_on(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.logged_on.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def disconnect(self) -> None:
        await self.initiator.stop()
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
        self.store.close()

    def flush(self) -> None:
        """Nothing is queued: FIX messages leave when they are sent."""

    def on_quote(self, quote: QuoteTick) -> None:
        """The venue matches on its own side; quotes are not echoed to it."""

    def on_bar(self, bar: Bar) -> None:
        """As ``on_quote``."""

    # -- orders out ----------------------------------------------------------------------
    def submit(self, order: Order) -> None:
        instrument = self.instruments.get(order.instrument_id)
        if instrument is None or not self.session.logged_on:
            reason = NOT_LOGGED_ON if instrument else f"{order.instrument_id} is not on {self.name}"
            self._emit_later(OrderRejected, order, reason=reason)
            return
        coid = order.client_order_id
        self._orders[coid] = order
        self._venue_cl_ord_id[coid] = coid
        msg = FixMessage.of(
            "D",
            (11, coid),
            *(((1, self.account),) if self.account else ()),
            (55, instrument.id),
            (54, _SIDE_OUT[order.side]),
            (60, _transact_time(self.clock)),
            (38, instrument.size(order.quantity)),
            (40, _TYPE_OUT[order.order_type]),
            *(((44, instrument.price(order.price)),) if order.price is not None else ()),
            (59, _TIF_OUT[order.time_in_force]),
        )
        self._sent_request(msg, coid)

    def cancel(self, order: Order) -> None:
        self._amend(order, "F", OrderCancelRejected, order.quantity, None)

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
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
            (54, _SIDE_OUT[order.side]),
            (60, _transact_time(self.clock)),
            (38, instrument.size(quantity)),
        ]
        if msg_type == "G":
            new_price = price if price is not None else order.price
            fields.append((40, _TYPE_OUT[order.order_type]))
            if new_price is not None:
                fields.append((44, instrument.price(new_price)))
            fields.append((59, _TIF_OUT[order.time_in_force]))
        self._sent_request(FixMessage.of(msg_type, *fields), coid)

    def _request_id(self, coid: str) -> str:
        return f"{coid}/{next(self._request_ids):x}"

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

    # -- reconciliation queries -----------------------------------------------------------
    async def open_order_ids(self) -> set[str]:
        """Client order ids the venue reports open (OrderMassStatusRequest)."""
        reports = await self.mass_status()
        return {
            _order_key(r.get(11) or "")
            for r in reports
            if r.get(39) in _OPEN_STATUSES and r.get(11) not in (None, "NONE")
        }

    async def mass_status(self, timeout_s: float = 5.0) -> list[FixMessage]:
        """Every open order's ExecutionReport (ExecType I), as the venue reports it."""
        if not self.session.logged_on:
            raise ConnectionError(NOT_LOGGED_ON)
        req_id = f"MS-{next(self._request_ids):x}"
        future: asyncio.Future[list[FixMessage]] = asyncio.get_running_loop().create_future()
        self._mass_status[req_id] = (future, [])
        self.session.send(FixMessage.of("AF", (584, req_id), (585, "7")))
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._mass_status.pop(req_id, None)

    async def order_status(self, order: Order, timeout_s: float = 5.0) -> FixMessage:
        """The venue's ExecutionReport (ExecType I) for one order (OrderStatusRequest)."""
        if not self.session.logged_on:
            raise ConnectionError(NOT_LOGGED_ON)
        coid = order.client_order_id
        future: asyncio.Future[FixMessage] = asyncio.get_running_loop().create_future()
        self._status[coid] = future
        self.session.send(
            FixMessage.of(
                "H",
                (11, self._venue_cl_ord_id.get(coid, coid)),
                (55, order.instrument_id),
                (54, _SIDE_OUT[order.side]),
            )
        )
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._status.pop(coid, None)

    # -- session callbacks ------------------------------------------------------------------
    def on_logon(self, session: FixSession) -> None:
        self.logged_on.set()
        if self.subscribe_market_data and self.instruments:
            symbols = sorted(self.instruments)
            fields: list[tuple[int, object]] = [
                (262, f"MD-{next(self._request_ids):x}"),
                (263, "1"),
                (264, "1"),
                (265, "1"),
                (267, "2"),
                (269, "0"),
                (269, "1"),
                (146, len(symbols)),
            ]
            fields += [(55, s) for s in symbols]
            session.send(FixMessage.of("V", *fields))

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logged_on.clear()
        self._books.clear()
        error = ConnectionError(f"session closed: {reason}")
        for future, _ in self._mass_status.values():
            if not future.done():
                future.set_exception(error)
        for status in self._status.values():
            if not status.done():
                status.set_exception(error)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None  # initiator side: the venue authenticates us

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        msg_type = message.msg_type
        if msg_type == "8":
            self._on_execution_report(message)
        elif msg_type == "9":
            self._on_cancel_reject(message)
        elif msg_type in ("W", "X"):
            self._on_market_data(message, snapshot=msg_type == "W")
        elif msg_type == "3" or msg_type == "j":
            self._on_reject(message)
        elif msg_type == "Y":
            self.counters["market_data_rejects"] += 1
            log.warning("fix_market_data_rejected", venue=self.name, text=message.get(58))
        else:
            raise BusinessReject(3, f"unsupported message type {msg_type}")

    # -- execution reports ------------------------------------------------------------------
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
        coid = _order_key(cl_ord_id)
        order = self._orders.get(coid)
        if order is None:
            self.counters["unknown_order_reports"] += 1
            log.warning(
                "fix_report_for_unknown_order",
                venue=self.name,
                cl_ord_id=cl_ord_id,
                exec_type=exec_type,
            )
            return
        ts = self.clock.timestamp_ns()
        base: dict[str, Any] = {
            "ts_ns": ts,
            "client_order_id": coid,
            "strategy_id": order.strategy_id,
            "instrument_id": order.instrument_id,
        }
        venue_order_id = msg.get(37) or ""
        if exec_type == "F":
            self._on_trade(msg, order, base, venue_order_id)
        elif exec_type == "0":
            self._once(msg)
            self.emit(OrderAccepted(venue_order_id=venue_order_id, **base))
        elif exec_type == "4":
            self._once(msg)
            self.emit(OrderCanceled(reason=msg.get(58) or "canceled", **base))
        elif exec_type == "5":
            if not self._once(msg):
                return
            instrument = self.instruments[order.instrument_id]
            quantity = _decimal_field(msg, 38)
            price_text = msg.get(44)
            self._venue_cl_ord_id[coid] = cl_ord_id
            self.emit(
                OrderUpdated(
                    quantity=_to_raw(instrument.size_raw, quantity, 38),
                    price=None
                    if price_text is None
                    else _to_raw(instrument.price_raw, _decimal_field(msg, 44), 44),
                    **base,
                )
            )
        elif exec_type == "8":
            self._once(msg)
            self.emit(OrderRejected(reason=_reject_text(msg), **base))
        elif exec_type == "C":
            self._once(msg)
            self.emit(OrderExpired(**base))
        else:
            self.counters[f"exec_type_{exec_type}_ignored"] += 1

    def _once(self, msg: FixMessage) -> bool:
        """False for an ExecID already seen; the OMS refuses repeated state changes anyway."""
        exec_id = msg.get(17) or ""
        if exec_id in self._exec_ids:
            self.counters["duplicate_exec_ids"] += 1
            return False
        self._exec_ids.add(exec_id)
        return True

    def _on_trade(
        self, msg: FixMessage, order: Order, base: dict[str, Any], venue_order_id: str
    ) -> None:
        instrument = self.instruments[order.instrument_id]
        last_qty = _to_raw(instrument.size_raw, _decimal_field(msg, 32), 32)
        last_px = _to_raw(instrument.price_raw, _decimal_field(msg, 31), 31)
        if last_qty <= 0 or last_px <= 0:
            raise RejectMessage(
                VALUE_INCORRECT,
                32 if last_qty <= 0 else 31,
                "Value is incorrect (out of range) for this tag",
            )
        side = _SIDE_IN.get(msg.get(54) or "")
        if side is None:
            raise RejectMessage(
                VALUE_INCORRECT, 54, "Value is incorrect (out of range) for this tag"
            )
        if not self._once(msg):
            return  # a resend of a fill already applied
        fee_text = msg.get(12)
        fee = _decimal_field(msg, 12) if fee_text is not None else Decimal(0)
        self.counters["fills"] += 1
        self.emit(
            OrderFilled(
                venue_order_id=venue_order_id,
                exec_id=msg.get(17) or "",
                side=side,
                last_qty=last_qty,
                last_px=last_px,
                fee=fee,
                fee_currency=instrument.quote_currency,
                liquidity=LiquiditySide.MAKER if msg.get(851) == "1" else LiquiditySide.TAKER,
                **base,
            )
        )

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
        coid = _order_key(msg.get(11) or "")
        status = self._status.get(coid)
        if status is not None and not status.done():
            status.set_result(msg)

    def _on_cancel_reject(self, msg: FixMessage) -> None:
        cl_ord_id = msg.get(11)
        if cl_ord_id is None:
            raise RejectMessage(REQUIRED_TAG_MISSING, 11, "Required tag missing: 11")
        coid = _order_key(cl_ord_id)
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

    # -- market data ------------------------------------------------------------------------
    def _on_market_data(self, msg: FixMessage, *, snapshot: bool) -> None:
        """W: the whole top of book of one symbol. X: entries that each start with
        MDUpdateAction (279) and carry their own MDEntryType (269) and Symbol (55)."""
        symbol = msg.get(55)
        entries: list[dict[str, str]] = []
        current: dict[str, str] | None = None
        for tag, value in msg.fields:
            starts_entry = (tag == 279) or (tag == 269 and (current is None or "269" in current))
            if starts_entry:
                current = {}
                entries.append(current)
            if current is not None and tag in (55, 269, 270, 271, 279):
                current[str(tag)] = value
        touched: set[str] = set()
        if snapshot:
            instrument = self.instruments.get(symbol or "")
            if instrument is None:
                self.counters["market_data_unknown_symbol"] += 1
                return
            self._books[instrument.id] = [None, None, None, None]  # a snapshot replaces
            touched.add(instrument.id)
        for entry in entries:
            self._apply_entry(entry, symbol, touched)
        for sym in touched:
            self._publish(sym)

    def _apply_entry(self, entry: dict[str, str], symbol: str | None, touched: set[str]) -> None:
        sym = entry.get("55", symbol)
        instrument = self.instruments.get(sym or "")
        if instrument is None:
            self.counters["market_data_unknown_symbol"] += 1
            return
        side = entry.get("269")
        if side not in ("0", "1"):
            return
        book = self._books.setdefault(instrument.id, [None, None, None, None])
        offset = 0 if side == "0" else 2
        if entry.get("279") == "2":
            book[offset] = book[offset + 1] = None
            touched.add(instrument.id)
            return
        try:
            price = instrument.price_raw(Decimal(entry["270"]))
            size = instrument.size_raw(Decimal(entry.get("271", "0")))
        except (KeyError, ArithmeticError, ValueError) as error:
            raise RejectMessage(
                INCORRECT_DATA_FORMAT, 270, f"bad market data entry: {error}"
            ) from None
        if price <= 0 or size < 0:
            self.counters["market_data_invalid"] += 1
            return
        book[offset], book[offset + 1] = price, size
        touched.add(instrument.id)

    def _publish(self, instrument_id: str) -> None:
        bid, bid_size, ask, ask_size = self._books[instrument_id]
        if bid is None or ask is None or bid_size is None or ask_size is None:
            return
        if bid >= ask:
            self.counters["market_data_crossed"] += 1
            return
        sink = self.on_quote_sink
        if sink is not None:
            sink(QuoteTick(instrument_id, self.clock.timestamp_ns(), bid, ask, bid_size, ask_size))


def _order_key(cl_ord_id: str) -> str:
    return cl_ord_id.split("/", 1)[0]


def _transact_time(clock: Clock) -> str:
    return format_utc_timestamp(clock.timestamp_ns())


def _decimal_field(msg: FixMessage, tag: int) -> Decimal:
    text = msg.get(tag)
    if text is None:
        raise RejectMessage(REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RejectMessage(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value") from None
    if not value.is_finite():
        raise RejectMessage(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value")
    return value


def _to_raw(convert: Callable[[Decimal], int], value: Decimal, tag: int) -> int:
    try:
        return convert(value)
    except (ValueError, ArithmeticError):
        raise RejectMessage(
            VALUE_INCORRECT, tag, "Value is incorrect (out of range) for this tag"
        ) from None


def _reject_text(msg: FixMessage) -> str:
    text = msg.get(58)
    reason = msg.get(103)
    if text and reason:
        return f"{text} (OrdRejReason {reason})"
    return text or (f"OrdRejReason {reason}" if reason else "rejected by venue")

"""The venue simulator's engine: accounts' FIX requests against bastion's matching engine.

``VenueSimEngine`` puts a ``SimVenue`` (the matching engine backtests use) behind
FIX 4.4 order-handling rules and a persistent ``VenueLedger``. Every venue order
is a ``SimVenue`` order whose client order id is the venue's own order id and whose
strategy id is the account, so every matching event finds its way back.

Reports emitted through ``on_report(account, report)``, each only after the ledger
has committed what it reports:

- ``ExecReport`` ExecType 0 New, 8 Rejected, F Trade, 4 Canceled, 5 Replaced,
  C Expired, I OrderStatus (answers to status, mass status and PossDup resends);
- ``CancelReject`` for a cancel or replace that cannot be applied;
- ``PositionsAck`` then one ``PositionReport`` per position row (answers to
  RequestForPositions; they only read the ledger).

Each match is also a public trade: ``on_trade(TradeUpdate)`` (its price, size and
time), for the server to publish as market data.

Rules: a ClOrdID is never reused by an account (a NewOrderSingle reusing one is
rejected with OrdRejReason 6, unless it is a PossDup resend, which is answered with
the existing order's status); cancel and replace carry a new ClOrdID and name the
order by any ClOrdID of its chain; after a replace, reports carry the new ClOrdID.

Constructing the engine on an existing ledger restores every open order into the
books with its filled quantity and time priority. An open order that cannot rest
(IOC, a market remainder the venue cancels, a symbol no longer configured) is
canceled then, with a report, so ``on_report`` may be called from the constructor;
a restored DAY order sets a clock timer there too (with a ``LiveClock``, construct
the engine inside the running event loop). ``latency_ms`` delays each new order,
cancel and replace before it is applied; a second cancel/replace for an order whose
first is still in flight is refused (CxlRejReason 3). Status, mass status and positions
requests, and ``refuse``, are never delayed: their reports are all emitted before the
call returns (a read-only session's answers are routed by that,
``bastion.venue_server.read_only``). A ledger ``OperationalError`` means the process must
stop: the matching engine may be ahead of the ledger, and a restart reconciles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import msgspec
import structlog

import bastion.venue_server._exact as _exact
from bastion.clock import Clock
from bastion.errors import ConfigError
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import LiquiditySide, OrderType, TimeInForce
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
from bastion.venue_server._reports import (
    cancel_reject,
    no_order_report,
    order_report,
    position_report,
    positions_ack,
)
from bastion.venue_server._requests import (
    new_order_problem,
    order_row,
    positions_problem,
    price_raw,
    quantity_raw,
    sim_order,
)
from bastion.venue_server.ledger import FillRow, OrderRow, VenueLedger
from bastion.venue_server.messages import (
    CXL_ALREADY_PENDING,
    CXL_DUPLICATE_CL_ORD_ID,
    CXL_OTHER,
    CXL_TOO_LATE,
    CXL_UNKNOWN_ORDER,
    EXEC_CANCELED,
    EXEC_EXPIRED,
    EXEC_NEW,
    EXEC_REJECTED,
    EXEC_REPLACED,
    EXEC_STATUS,
    EXEC_TRADE,
    LIQUIDITY_ADDED,
    LIQUIDITY_REMOVED,
    NONE_ID,
    REJ_BROKER_OPTION,
    REJ_DUPLICATE_ORDER,
    REJ_EXCEEDS_LIMIT,
    REJ_UNKNOWN_ORDER,
    REJ_UNKNOWN_SYMBOL,
    RESPONSE_TO_CANCEL,
    RESPONSE_TO_REPLACE,
    STATUS_CANCELED,
    STATUS_EXPIRED,
    STATUS_FILLED,
    STATUS_NEW,
    STATUS_PARTIALLY_FILLED,
    STATUS_REJECTED,
    CancelRequest,
    ExecReport,
    ExecTypeCode,
    LiquidityCode,
    MassStatusRequest,
    NewOrderRequest,
    OrdStatusCode,
    PositionsRequest,
    QuoteUpdate,
    ReplaceRequest,
    Report,
    Request,
    StatusRequest,
    TradeUpdate,
)
from bastion.venues.sim import SimVenue, SimVenueConfig

__all__ = ["ReportSink", "VenueSimEngine"]

log = structlog.get_logger("bastion.venue_server")

ReportSink = Callable[[str, Report], None]
TradeSink = Callable[[TradeUpdate], None]

# SimVenue's reject reasons that have their own OrdRejReason; any other is 0 (venue option).
_REJECT_CODES: Final = {"quantity above the venue's maximum": REJ_EXCEEDS_LIMIT}


class _Cancel(msgspec.Struct, frozen=True):
    """A cancel being applied: the request (None for cancel-on-disconnect) and its text."""

    request: CancelRequest | None
    text: str


class VenueSimEngine:
    """FIX 4.4 order handling for many accounts over one ``SimVenue`` and a ledger."""

    def __init__(
        self,
        *,
        instruments: Mapping[str, Instrument],
        sim_config: SimVenueConfig,
        ledger: VenueLedger,
        clock: Clock,
        on_report: ReportSink,
        on_trade: TradeSink | None = None,
    ) -> None:
        foreign = sorted(s for s, i in instruments.items() if i.venue != sim_config.name)
        if foreign:
            raise ConfigError(f"instruments {foreign} are not on venue {sim_config.name}")
        self.name = sim_config.name
        self._instruments = dict(instruments)
        self._config = sim_config
        self._ledger = ledger
        self._clock = clock
        self._on_report = on_report
        self._latency_ns = sim_config.latency_ms * 1_000_000
        # the engine applies latency itself, so each request meets the matching engine
        # in one synchronous step and the events it causes can be tied to it
        self._venue = SimVenue(
            config=msgspec.structs.replace(sim_config, latency_ms=0),
            clock=clock,
            instruments=self._instruments,
        )
        self._venue.bind(self._on_event)
        self._on_trade = on_trade
        if on_trade is not None:
            self._venue.on_trade_sink = self._trade
        self._open: dict[str, OrderRow] = {}  # by order id
        self._cancels: dict[str, _Cancel] = {}  # order id -> the cancel being applied
        self._replaces: dict[str, ReplaceRequest] = {}  # order id -> the replace being applied
        self._in_flight: set[str] = set()  # order ids with a cancel/replace in latency
        self._restore()

    # -- requests -----------------------------------------------------------------------
    def handle(self, account: str, request: Request) -> None:
        """Apply any request from ``account`` (dispatches on its type)."""
        if isinstance(request, NewOrderRequest):
            self.new_order(account, request)
        elif isinstance(request, CancelRequest):
            self.cancel(account, request)
        elif isinstance(request, ReplaceRequest):
            self.replace(account, request)
        elif isinstance(request, StatusRequest):
            self.status(account, request)
        elif isinstance(request, MassStatusRequest):
            self.mass_status(account, request)
        else:
            self.positions(account, request)

    def new_order(self, account: str, request: NewOrderRequest) -> None:
        if self._latency_ns:
            self._clock.call_later(self._latency_ns, lambda _ts: self._new(account, request))
        else:
            self._new(account, request)

    def cancel(self, account: str, request: CancelRequest) -> None:
        self._after_latency(account, request)

    def replace(self, account: str, request: ReplaceRequest) -> None:
        self._after_latency(account, request)

    def status(self, account: str, request: StatusRequest) -> None:
        """Answer with the order's status (ExecType I), or OrdStatus 8 if it is unknown."""
        found = self._ledger.find(account, request.cl_ord_id)
        exec_id = self._exec_id()
        self._ledger.save_counters()
        now = self._clock.timestamp_ns()
        if found is None:
            report = no_order_report(
                exec_type=EXEC_STATUS,
                exec_id=exec_id,
                ts_ns=now,
                cl_ord_id=request.cl_ord_id,
                symbol=request.symbol,
                side=request.side,
                ord_rej_reason=REJ_UNKNOWN_ORDER,
                text="unknown order",
            )
        else:
            report = self._report(found, EXEC_STATUS, exec_id, ts_ns=now)
        self._on_report(account, report)

    def mass_status(self, account: str, request: MassStatusRequest) -> None:
        """One ExecType I report per open order of ``account``; the last says so.

        With no open orders, one report with OrdStatus 8 and "NONE" ids.
        """
        req_id = request.mass_status_req_id
        orders = self.open_orders(account)
        exec_ids = [self._exec_id() for _ in range(max(1, len(orders)))]
        self._ledger.save_counters()
        now = self._clock.timestamp_ns()
        if not orders:
            none = no_order_report(
                exec_type=EXEC_STATUS, exec_id=exec_ids[0], ts_ns=now, mass_status_req_id=req_id
            )
            self._on_report(account, none)
            return
        for i, (order, exec_id) in enumerate(zip(orders, exec_ids, strict=True)):
            report = order_report(
                order,
                exec_type=EXEC_STATUS,
                exec_id=exec_id,
                ts_ns=now,
                price_precision=self._price_precision(order.symbol),
                mass_status_req_id=req_id,
                tot_num_reports=len(orders),
                last_rpt_requested=i == len(orders) - 1,
            )
            self._on_report(account, report)

    def positions(self, account: str, request: PositionsRequest) -> None:
        """A RequestForPositionsAck, then one PositionReport per position row of ``account``
        (narrowed to ``request.symbol``), flat ones too: the node sees which symbols the
        venue knows. None follows an ack that rejects the request."""
        problem = positions_problem(account, request)
        held = [] if problem else self._ledger.positions(account)
        rows = [p for p in held if request.symbol in (None, p.symbol)]
        # the exec counter is persisted, so sharing it keeps PosMaintRptIDs unique across restarts
        rpt_ids = [f"{self.name}-P{self._ledger.take_id('exec')}" for _ in range(1 + len(rows))]
        self._ledger.save_counters()
        now, total = self._clock.timestamp_ns(), len(rows)
        ack = positions_ack(
            request, account=account, rpt_id=rpt_ids[0], total=total, problem=problem
        )
        self._on_report(account, ack)
        for row, rpt_id in zip(rows, rpt_ids[1:], strict=True):
            report = position_report(
                row,
                request=request,
                rpt_id=rpt_id,
                total=total,
                ts_ns=now,
                price_precision=self._price_precision(row.symbol),
            )
            self._on_report(account, report)

    def cancel_all(self, account: str, reason: str) -> int:
        """Cancel every open order of ``account`` (cancel-on-disconnect); return how many."""
        orders = self.open_orders(account)
        for order in orders:
            self._apply_cancel(order, _Cancel(None, reason))
        return len(orders)

    # -- market data --------------------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> QuoteUpdate | None:
        """Match resting orders against ``quote``; return it for publication (None if the
        symbol is not traded here)."""
        instrument = self._instruments.get(quote.instrument_id)
        if instrument is None:
            return None
        self._venue.on_quote(quote)
        return QuoteUpdate(
            symbol=quote.instrument_id,
            bid=instrument.price(quote.bid),
            ask=instrument.price(quote.ask),
            bid_size=instrument.size(quote.bid_size),
            ask_size=instrument.size(quote.ask_size),
            ts_ns=quote.ts_ns,
        )

    # -- queries ------------------------------------------------------------------------
    def open_orders(self, account: str | None = None) -> list[OrderRow]:
        """Open orders (of one account, or all) in time priority."""
        return sorted(
            (o for o in self._open.values() if account is None or o.account == account),
            key=lambda o: o.priority,
        )

    # -- new orders ---------------------------------------------------------------------
    def _new(self, account: str, request: NewOrderRequest) -> None:
        if self._ledger.find(account, request.cl_ord_id) is not None:
            if request.poss_dup:  # a resend: say how the order stands, never trade it twice
                status = StatusRequest(
                    cl_ord_id=request.cl_ord_id, symbol=request.symbol, side=request.side
                )
                self.status(account, status)
            else:
                self._reject_duplicate(account, request)
            return
        now = self._clock.timestamp_ns()
        order = order_row(account, f"{self.name}-{self._ledger.take_id('order')}", request, now)
        instrument = self._instruments.get(request.symbol)
        if instrument is None:
            self._reject_new(order, REJ_UNKNOWN_SYMBOL, f"unknown symbol {request.symbol}")
            return
        problem = new_order_problem(instrument, request)
        if problem is not None:
            self._reject_new(order, *problem)
            return
        self._open[order.order_id] = order
        self._venue.submit(sim_order(order, instrument, self.name))
        self._venue.flush()

    def refuse(
        self,
        account: str,
        request: NewOrderRequest | CancelRequest | ReplaceRequest,
        text: str,
        *,
        ord_rej_reason: int = REJ_BROKER_OPTION,
    ) -> None:
        """Refuse a request before the books see it (the venue's fence, a read-only
        session), at once: a new order gets ExecType 8 (``ord_rej_reason``, by default 0,
        broker option) and is not recorded as an order; a cancel or replace gets an
        OrderCancelReject (CxlRejReason 99), the order untouched."""
        if isinstance(request, NewOrderRequest):
            order = order_row(account, NONE_ID, request, self._clock.timestamp_ns())
            order.status = STATUS_REJECTED
            exec_id = self._exec_id()
            self._ledger.save_counters()
            report = self._report(order, EXEC_REJECTED, exec_id, ord_rej_reason, text)
            self._on_report(account, report)
        else:
            target = self._ledger.find(account, request.orig_cl_ord_id)
            self._cancel_reject(account, request, target, CXL_OTHER, text)

    def _reject_duplicate(self, account: str, request: NewOrderRequest) -> None:
        """ExecType 8 for the request itself; the order that holds the id is untouched."""
        order = order_row(account, NONE_ID, request, self._clock.timestamp_ns())
        order.status = STATUS_REJECTED
        exec_id = self._exec_id()
        self._ledger.save_counters()
        text = f"duplicate ClOrdID {request.cl_ord_id}"
        report = self._report(order, EXEC_REJECTED, exec_id, REJ_DUPLICATE_ORDER, text)
        self._on_report(account, report)

    def _reject_new(self, order: OrderRow, code: int, text: str) -> None:
        self._open.pop(order.order_id, None)
        order.status = STATUS_REJECTED
        exec_id = self._exec_id()
        self._ledger.insert_order(order)
        self._on_report(order.account, self._report(order, EXEC_REJECTED, exec_id, code, text))

    # -- cancel / replace ---------------------------------------------------------------
    def _after_latency(self, account: str, request: CancelRequest | ReplaceRequest) -> None:
        if not self._latency_ns:
            self._cancel_or_replace(account, request)
            return
        target = self._ledger.find(account, request.orig_cl_ord_id)
        if target is not None:
            if target.order_id in self._in_flight:
                self._cancel_reject(account, request, target, CXL_ALREADY_PENDING, "pending")
                return
            self._in_flight.add(target.order_id)

        def apply(_ts_ns: int) -> None:
            if target is not None:
                self._in_flight.discard(target.order_id)
            self._cancel_or_replace(account, request)

        self._clock.call_later(self._latency_ns, apply)

    def _cancel_or_replace(self, account: str, request: CancelRequest | ReplaceRequest) -> None:
        order = self._target(account, request)
        if order is None:
            return
        if isinstance(request, CancelRequest):
            self._apply_cancel(order, _Cancel(request, ""))
            return
        instrument = self._instruments[order.symbol]
        try:
            quantity = quantity_raw(instrument, request.quantity)
            price = None if request.price is None else price_raw(instrument, request.price)
        except ValueError as error:
            self._cancel_reject(account, request, order, CXL_OTHER, str(error))
            return
        self._replaces[order.order_id] = request
        try:
            self._venue.modify(sim_order(order, instrument, self.name), quantity, price)
            self._venue.flush()
        finally:
            self._replaces.pop(order.order_id, None)

    def _target(self, account: str, request: CancelRequest | ReplaceRequest) -> OrderRow | None:
        """The open order a cancel/replace names, or None after rejecting the request."""
        found = self._ledger.find(account, request.orig_cl_ord_id)
        order = None if found is None else self._open.get(found.order_id)
        if self._ledger.find(account, request.cl_ord_id) is not None:
            reason, text = CXL_DUPLICATE_CL_ORD_ID, f"duplicate ClOrdID {request.cl_ord_id}"
        elif found is None:
            reason, text = CXL_UNKNOWN_ORDER, "unknown order"
        elif order is None:
            reason, text = CXL_TOO_LATE, "order is closed"
        elif order.symbol != request.symbol or order.side is not request.side:
            reason, text = CXL_OTHER, "symbol or side does not match the order"
        else:
            return order
        self._cancel_reject(account, request, order or found, reason, text)
        return None

    def _apply_cancel(self, order: OrderRow, cancel: _Cancel) -> None:
        self._cancels[order.order_id] = cancel
        try:
            self._venue.cancel(sim_order(order, self._instruments[order.symbol], self.name))
            self._venue.flush()
        finally:
            self._cancels.pop(order.order_id, None)

    def _cancel_reject(
        self,
        account: str,
        request: CancelRequest | ReplaceRequest,
        order: OrderRow | None,
        reason: int,
        text: str,
    ) -> None:
        reject = cancel_reject(
            cl_ord_id=request.cl_ord_id,
            orig_cl_ord_id=request.orig_cl_ord_id,
            order=order,
            response_to=(
                RESPONSE_TO_CANCEL if isinstance(request, CancelRequest) else RESPONSE_TO_REPLACE
            ),
            reason=reason,
            text=text,
            ts_ns=self._clock.timestamp_ns(),
        )
        self._on_report(account, reject)

    # -- matching engine events ---------------------------------------------------------
    def _trade(self, trade: TradeTick) -> None:
        instrument = self._instruments[trade.instrument_id]
        assert self._on_trade is not None
        self._on_trade(
            TradeUpdate(
                symbol=trade.instrument_id,
                price=instrument.price(trade.price),
                size=instrument.size(trade.size),
                ts_ns=trade.ts_ns,
            )
        )

    def _on_event(self, event: OrderEvent) -> None:
        order = self._open.get(event.client_order_id)
        if order is None:  # the books and the engine disagree: never apply it blindly
            log.error(
                "venuesim_event_for_unknown_order",
                order_id=event.client_order_id,
                event_type=type(event).__name__,
            )
            return
        order.updated_ns = event.ts_ns
        if isinstance(event, OrderFilled):
            self._filled(order, event)
        elif isinstance(event, OrderAccepted):
            self._accepted(order)
        elif isinstance(event, OrderRejected):
            code = _REJECT_CODES.get(event.reason, REJ_BROKER_OPTION)
            self._reject_new(order, code, event.reason)
        elif isinstance(event, OrderCanceled):
            self._canceled(order, event.reason)
        elif isinstance(event, OrderExpired):
            self._close(order, STATUS_EXPIRED, EXEC_EXPIRED, "DAY order expired")
        elif isinstance(event, OrderUpdated):
            self._replaced(order, event)
        elif isinstance(event, OrderCancelRejected | OrderModifyRejected):
            self._refused(order, event.reason)

    def _accepted(self, order: OrderRow) -> None:
        order.status = STATUS_NEW
        order.priority = self._ledger.take_id("priority")
        exec_id = self._exec_id()
        self._ledger.insert_order(order)
        self._on_report(order.account, self._report(order, EXEC_NEW, exec_id))

    def _filled(self, order: OrderRow, event: OrderFilled) -> None:
        instrument = self._instruments[order.symbol]
        qty, px = instrument.size(event.last_qty), instrument.price(event.last_px)
        order.cum_qty = _exact.add(order.cum_qty, qty)
        order.cum_notional = _exact.add(order.cum_notional, _exact.mul(qty, px))
        done = order.cum_qty == order.quantity
        order.status = STATUS_FILLED if done else STATUS_PARTIALLY_FILLED
        if done:
            del self._open[order.order_id]
        exec_id = self._exec_id()
        liquidity: LiquidityCode = (
            LIQUIDITY_ADDED if event.liquidity is LiquiditySide.MAKER else LIQUIDITY_REMOVED
        )
        fill = FillRow(
            exec_id=exec_id,
            account=order.account,
            order_id=order.order_id,
            cl_ord_id=order.cl_ord_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            px=px,
            fee=event.fee,
            fee_currency=event.fee_currency,
            liquidity=liquidity,
            ts_ns=event.ts_ns,
        )
        self._ledger.record_fill(order, fill)
        report = order_report(
            order,
            exec_type=EXEC_TRADE,
            exec_id=exec_id,
            ts_ns=event.ts_ns,
            price_precision=instrument.price_precision,
            last_qty=qty,
            last_px=px,
            commission=event.fee,
            liquidity=liquidity,
        )
        self._on_report(order.account, report)

    def _canceled(self, order: OrderRow, venue_reason: str) -> None:
        cancel = self._cancels.pop(order.order_id, None)
        if cancel is None or cancel.request is None:  # IOC/market remainder, or disconnect
            text = venue_reason if cancel is None else cancel.text
            self._close(order, STATUS_CANCELED, EXEC_CANCELED, text)
            return
        order.orig_cl_ord_id, order.cl_ord_id = order.cl_ord_id, cancel.request.cl_ord_id
        self._close(order, STATUS_CANCELED, EXEC_CANCELED, "", new_cl_ord_id=True)

    def _replaced(self, order: OrderRow, event: OrderUpdated) -> None:
        instrument = self._instruments[order.symbol]
        request = self._replaces.pop(order.order_id, None)
        if request is not None:
            order.orig_cl_ord_id, order.cl_ord_id = order.cl_ord_id, request.cl_ord_id
        order.quantity = instrument.size(event.quantity)
        order.price = None if event.price is None else instrument.price(event.price)
        order.priority = self._ledger.take_id("priority")  # a replace loses time priority
        exec_id = self._exec_id()
        self._ledger.update_order(order, new_cl_ord_id=request is not None)
        self._on_report(order.account, self._report(order, EXEC_REPLACED, exec_id))

    def _refused(self, order: OrderRow, reason: str) -> None:
        """The matching engine refused a cancel or replace the engine had let through."""
        cancel = self._cancels.pop(order.order_id, None)
        request = cancel.request if cancel is not None else self._replaces.pop(order.order_id, None)
        if request is None:
            log.error("venuesim_cancel_refused", order_id=order.order_id, reason=reason)
            return
        self._cancel_reject(order.account, request, order, CXL_OTHER, reason)

    def _close(
        self,
        order: OrderRow,
        status: OrdStatusCode,
        exec_type: ExecTypeCode,
        text: str,
        *,
        new_cl_ord_id: bool = False,
    ) -> None:
        self._open.pop(order.order_id, None)
        order.status = status
        exec_id = self._exec_id()
        self._ledger.update_order(order, new_cl_ord_id=new_cl_ord_id)
        self._on_report(order.account, self._report(order, exec_type, exec_id, text=text))

    # -- restart ------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rest the ledger's open orders again, oldest priority first; cancel those that
        cannot rest (IOC, a market remainder the venue cancels, an unknown symbol)."""
        restored = closed = 0
        for order in self._ledger.open_orders():
            instrument = self._instruments.get(order.symbol)
            if instrument is None:
                reason = "symbol no longer traded after a venue restart"
            elif order.time_in_force is TimeInForce.IOC or (
                order.order_type is OrderType.MARKET and self._config.market_remainder == "cancel"
            ):
                reason = "order could not rest across a venue restart"
            else:
                sim = sim_order(order, instrument, self.name)
                sim.filled_qty = instrument.size_raw(order.cum_qty)
                sim.venue_order_id = order.order_id
                self._open[order.order_id] = order
                self._venue.restore(sim, arrived_ns=order.created_ns)
                restored += 1
                continue
            order.updated_ns = self._clock.timestamp_ns()
            self._close(order, STATUS_CANCELED, EXEC_CANCELED, reason)
            closed += 1
        if restored or closed:
            log.info("venuesim_restored", path=str(self._ledger.path), open=restored, closed=closed)

    # -- helpers ------------------------------------------------------------------------
    def _exec_id(self) -> str:
        return f"{self.name}-E{self._ledger.take_id('exec')}"

    def _price_precision(self, symbol: str) -> int:
        instrument = self._instruments.get(symbol)
        return 0 if instrument is None else instrument.price_precision

    def _report(
        self,
        order: OrderRow,
        exec_type: ExecTypeCode,
        exec_id: str,
        ord_rej_reason: int | None = None,
        text: str = "",
        *,
        ts_ns: int | None = None,
    ) -> ExecReport:
        """A non-trade report on ``order``, at the time it last changed unless ``ts_ns``."""
        return order_report(
            order,
            exec_type=exec_type,
            exec_id=exec_id,
            ts_ns=order.updated_ns if ts_ns is None else ts_ns,
            price_precision=self._price_precision(order.symbol),
            ord_rej_reason=ord_rej_reason,
            text=text,
        )

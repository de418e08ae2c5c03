"""A venue reached over FIX 4.4: orders out, execution reports and market data in.

Orders map to NewOrderSingle (D), OrderCancelRequest (F) and
OrderCancelReplaceRequest (G). Cancel and replace requests carry a new ClOrdID
``<client order id>/<epoch>.<request number>`` (``bastion.execution.ids.amend_id``: the
epoch is the sending run's, so a venue can fence a deposed HA leader's cancels) and name
the venue's current ClOrdID of the order as OrigClOrdID, so any ClOrdID the venue
reports maps back to the node's order by what precedes the ``/``, without state that a
restart would lose.

Events emitted (through the execution engine's sink): OrderAccepted,
OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUpdated,
OrderCancelRejected, OrderModifyRejected. An ExecutionReport whose ExecID was
seen before (a PossDup resend, or a venue repeating itself) never becomes a
second fill. While the session is not logged on, and from each logon until the node
has reconciled the venue on it (``reconciled``), new orders are rejected at once
rather than queued: an order must never reach a venue late, nor before the node
knows what the venue holds.

Market data: on logon, a MarketDataRequest (V) subscribes to top of book and
trades for every instrument of this venue, and after a sequence gap on the session a
V asks for snapshots of every book (``bastion.venues.fix.marketdata``); snapshots (W)
and incremental refreshes (X) become ``QuoteTick`` s handed to ``on_quote_sink`` (set
by ``subscribe_quotes``: a venue feed, ``bastion.feeds``) and ``TradeTick`` s handed to
``on_trade_sink``.
OrderStatusRequest (H) and OrderMassStatusRequest (AF) answer reconciliation
queries (``order_status``, ``open_order_ids``; ``bastion.venues.fix.reconcile``).
Cancel-on-disconnect (``bastion.venues.fix.disconnect``) runs on ``session_lost`` and
``after_reconcile``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from bastion.clock import Clock
from bastion.errors import VenueRequestFailed, VenueUnavailable
from bastion.execution.ids import amend_id, order_id_of
from bastion.fix.codec import (
    REQUIRED_TAG_MISSING,
    FixMessage,
)
from bastion.fix.rejects import BusinessReject, RejectMessage
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp
from bastion.fix.tls import ClientTls
from bastion.fix.transport import FixInitiator
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import (
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.storage.keys import resolve_key
from bastion.venues.base import (
    NodeOrders,
    QuoteSink,
    ReconcileContext,
    SenderSeqs,
    VenueAdapter,
    VenueContext,
    VenueMark,
    VenueReconciliation,
    VenueStats,
)
from bastion.venues.fix import recovery
from bastion.venues.fix.config import CancelOnDisconnect, FixVenueConfig
from bastion.venues.fix.disconnect import DisconnectCancels
from bastion.venues.fix.marketdata import (
    SNAPSHOT,
    SUBSCRIBE,
    TopOfBook,
    market_data_request,
)
from bastion.venues.fix.reconcile import reconcile
from bastion.venues.fix.reports import already_applied, report_event

log = structlog.get_logger("bastion.venues.fix")

_SIDE_OUT = {OrderSide.BUY: "1", OrderSide.SELL: "2"}
_TYPE_OUT = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
_TIF_OUT = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3"}
_OPEN_STATUSES = frozenset({"0", "1", "5", "6", "9", "A", "D", "E"})
_EXEC_REPORT_REQUIRED = (37, 17, 150, 39, 54, 151, 14, 6)
NOT_LOGGED_ON = "venue session not logged on"
_MD_REJECTS = {  # reason (bastion_md_rejects_total) -> the adapter's counter
    "crossed_book": "market_data_crossed",
    "invalid_entry": "market_data_invalid",
    "malformed_entry": "market_data_malformed",
    "unknown_symbol": "market_data_unknown_symbol",
    "undated_trade": "market_data_trade_undated",
    "resent": "resent_market_data_ignored",
}
NOT_RECONCILED = "venue not reconciled since its logon"


def build(config: FixVenueConfig, context: VenueContext) -> FixVenueAdapter:
    """A venue reached over FIX 4.4 (``kind = "fix"``)."""
    adapter = FixVenueAdapter(
        name=config.name,
        epoch=context.epoch,
        settings=config.settings(context.secrets, fencing_epoch=context.fencing_epoch),
        store_path=_resolve(context.base_dir, config.store_path),
        sender_seqs=context.sender_seqs,
        store_key=resolve_key(
            config.store_encryption_key,
            f"venues[name={config.name}].store_encryption_key",
            context.secrets,
        ),
        host=config.host,
        port=config.port,
        clock=context.clock,
        instruments=context.instruments,
        account=config.account,
        backoff_initial_s=config.reconnect_initial_ms / 1000,
        backoff_max_s=config.reconnect_max_ms / 1000,
        subscribe_market_data=config.market_data,
        cancel_on_disconnect=config.cancel_on_disconnect,
        tls=None
        if config.tls is None
        else config.tls.client(
            context.base_dir, f"venues[name={config.name}].tls", secrets=context.secrets
        ),
    )
    adapter.initiator.outbound = config.outbound()  # a venue that stops reading: dropped
    return adapter


def _resolve(base_dir: Path, path: str) -> Path:
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else base_dir / resolved


class FixVenueAdapter(VenueAdapter):
    """One venue over one FIX 4.4 initiator session."""

    kind = "fix"

    def __init__(
        self,
        *,
        name: str,
        epoch: int,
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
        cancel_on_disconnect: CancelOnDisconnect = CancelOnDisconnect.OFF,
        tls: ClientTls | None = None,
        store_key: bytes | None = None,
        sender_seqs: Callable[[str], SenderSeqs] | None = None,
    ) -> None:
        """``epoch``: the node's run (an HA member's fencing epoch), the one in its client
        order ids; its cancels and replaces carry it too."""
        super().__init__(name)
        self.epoch = epoch
        self.clock = clock
        self.instruments = {iid: i for iid, i in instruments.items() if i.venue == name}
        self.account = account
        self.subscribe_market_data = subscribe_market_data
        self.on_quote_sink: QuoteSink | None = None
        self.store = SqliteSessionStore(
            store_path, settings.key, now_ns=clock.timestamp_ns(), encryption_key=store_key
        )
        self.sender_seqs: SenderSeqs | None = None
        """An HA member's outgoing numbers, shared by the group: raised at the first
        logon above every number an older leader may have used, then checked before
        each is used (``bastion.ha.fix_seqs``). None: alone, or reset at every logon."""
        if sender_seqs is not None and not settings.reset_on_logon:
            self.sender_seqs = sender_seqs(settings.key)
            self.store.sender_guard = self.sender_seqs.check
        self._seqs_begun = False
        # every logon gap-fills the orders and amends sent before it: one lost with a
        # dropped connection never reaches the venue late (reconciliation settles it by
        # ClOrdID); a lost cancel is still resent, late does no harm
        self.session = FixSession(
            settings,
            self.store,
            self,
            clock=clock,
            gap_fill_before_logon=True,
            resent_below_floor=frozenset({"F"}),
        )
        self.initiator = FixInitiator(
            self.session,
            host,
            port,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            tls=tls,
            clock=clock,
        )
        self.counters: Counter[str] = Counter()
        self._orders: dict[str, Order] = {}
        self._venue_cl_ord_id: dict[str, str] = {}
        self._exec_ids: set[str] = set()
        # set by recovery: takes over an order a resent report names and the journal lost
        self.adopt_reported: Callable[[FixMessage], Order | None] | None = None
        # only grows within a run (amend ids need that; the epoch sets runs apart), and
        # starts at the clock's milliseconds so the MS-, MD- and POS- request ids, which
        # carry no epoch, do not repeat an earlier run's either
        self._request_ids = itertools.count(clock.timestamp_ns() // 1_000_000)
        self._sent: dict[int, tuple[str, str]] = {}  # MsgSeqNum -> (MsgType, client order id)
        self._book = TopOfBook(self)
        self._md_gaps = 0
        """The session's ``gaps_detected`` already answered with snapshots."""
        self._mass_status: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]] = {}
        self._status: dict[str, asyncio.Future[FixMessage]] = {}
        self.position_requests: dict[
            str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]
        ] = {}
        self.position_expected: dict[str, int] = {}
        self.resume_mark: VenueMark | None = None
        self.submitted_since_logon: set[str] = set()
        """Orders sent on the current logon, from the logon until ``logon_settled``:
        cancel-on-reconnect leaves them alone."""
        self._track_submitted = False
        self._amend_logons: dict[str, int] = {}
        """The logon each order's last amend (G) was sent on (``lost_amends``)."""
        self._logons = 0
        self.logged_on = asyncio.Event()
        self.logged_off = asyncio.Event()
        self.logged_off.set()
        self.disconnect_cancels = DisconnectCancels(self, cancel_on_disconnect)

    # -- lifecycle ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Start keeping the session connected (returns at once; see ``wait_logged_on``).

        An HA member first reserves its outgoing numbers (``sender_seqs``) and raises
        the store's next one above every number an older leader may have sent."""
        seqs = self.sender_seqs
        if seqs is not None and not self._seqs_begun:
            store = self.store
            own = store.next_sender_seq
            first = await asyncio.to_thread(seqs.begin, own)
            self._seqs_begun = True
            if first > own:
                store.set_next_sender_seq(first)
                log.warning(
                    "fix_sender_seq_raised",
                    venue=self.name,
                    from_seq=own,
                    to_seq=first,
                    note="numbers an older leader reserved are skipped: the venue asks for "
                    "them and is answered with a GapFill",
                )
        self.initiator.start(f"fix-{self.name}", on_failure=self._connection_loop_failed)

    def _connection_loop_failed(self, error: BaseException, restart_in_s: float) -> None:
        """The connection loop died (a bug, or the session store failing to write): the
        session is dropped, so the venue is down until the loop, started again after the
        backoff, logs on and is reconciled (``FixInitiator.start``)."""
        self.counters["connection_loop_failures"] += 1
        log.error(
            "fix_connection_loop_failed",
            venue=self.name,
            error=repr(error),
            restart_in_s=round(restart_in_s, 3),
        )

    async def wait_logged_on(self, timeout_s: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self.logged_on.wait()
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self.session.logged_on

    @property
    def logons(self) -> int:
        return self._logons

    @property
    def logon_timeout_s(self) -> float:
        return self.session.settings.logon_timeout_s

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        return await self.wait_logged_on(timeout_s)

    async def wait_disconnected(self) -> None:
        while self.session.logged_on:
            await self.logged_off.wait()

    async def disconnect(self) -> None:
        await self.initiator.stop()
        self._close_store()

    async def abandon(self) -> None:
        """Drop the connection without a Logout (a deposed HA leader sends nothing)."""
        self.session.disconnect("deposed: no longer the HA group's leader")
        await self.initiator.stop()
        self._close_store()

    def _close_store(self) -> None:
        if self.sender_seqs is not None:
            self.sender_seqs.close()
        self.store.close()

    def subscribe_quotes(self, sink: QuoteSink) -> bool:
        """Top of book from this venue's market data goes to ``sink``."""
        self.on_quote_sink = sink
        return self.subscribe_market_data

    # -- orders out ----------------------------------------------------------------------
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
            (54, _SIDE_OUT[order.side]),
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

    def refusal(self) -> str | None:
        """Halted, not logged on, or logged on but not yet reconciled (what the venue
        holds is not known yet: an order or amend now could double what it works)."""
        if self.halted is not None:
            return super().refusal()
        if not self.session.logged_on:
            return NOT_LOGGED_ON
        if self.reconciled_logon != self._logons:
            return NOT_RECONCILED
        return None

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
            self._amend_logons[coid] = self._logons
        self._sent_request(FixMessage.of(msg_type, *fields), coid)

    def _request_id(self, coid: str) -> str:
        return amend_id(coid, self.epoch, next(self._request_ids))

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
                (54, _SIDE_OUT[order.side]),
            )
        )
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as error:
            raise VenueRequestFailed(f"no OrderStatus answer in {timeout_s} s") from error
        finally:
            self._status.pop(coid, None)

    async def positions(self, timeout_s: float = 5.0) -> dict[str, Decimal]:
        """The account's net position per symbol, as the venue reports (RequestForPositions)."""
        return await recovery.positions(self, timeout_s)

    def next_request_id(self) -> int:
        return next(self._request_ids)

    # -- recovery ---------------------------------------------------------------------------
    def recovery_mark(self) -> VenueMark:
        """Where the inbound stream stands, for a snapshot."""
        return recovery.mark(self)

    def restore_mark(self, mark: VenueMark) -> None:
        """The last snapshot's mark: ``prepare_recovery`` rewinds the inbound stream to it."""
        self.resume_mark = mark

    def prepare_recovery(self, orders: NodeOrders, *, order_id_prefix: str) -> dict[str, Any]:
        """Before connecting after a restart (see ``bastion.venues.fix.recovery``)."""
        prep = recovery.prepare(self, orders, self.resume_mark, order_id_prefix=order_id_prefix)
        return msgspec.structs.asdict(prep)

    async def reconcile(self, context: ReconcileContext) -> VenueReconciliation:
        """Orders and positions against the venue's (``bastion.venues.fix.reconcile``)."""
        return await reconcile(self, context)

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

    def session_lost(self, open_orders: Iterable[Order]) -> None:
        self.disconnect_cancels.session_lost(open_orders)

    def after_reconcile(
        self, open_orders: Iterable[Order], cancel: Callable[[Order], bool]
    ) -> None:
        self.disconnect_cancels.after_reconcile(open_orders, cancel)

    def stats(self) -> VenueStats:
        session = self.session
        counters = session.counters
        mine = self.counters
        return VenueStats(
            logons=self._logons,
            disconnects=counters["disconnects"],
            heartbeat_rtt_s=session.heartbeat_rtt_s,
            last_received_s=session.last_received_s,
            resend_requests=counters["resend_requests_sent"] + counters["resend_requests_received"],
            gap_fills=counters["gap_fills_sent"] + counters["gap_fills_received"],
            md_rejects={reason: mine[key] for reason, key in _MD_REJECTS.items() if mine[key]},
        )

    def probe_round_trip(self, every_s: float) -> None:
        """A TestRequest every ``every_s`` while logged on (``FixSession.rtt_probe_s``)."""
        self.session.rtt_probe_s = every_s

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "cancel_on_disconnect": self.disconnect_cancels.mode.value,
            "refused_locally": self.counters["refused_locally"],
            "connection_loop_failures": self.counters["connection_loop_failures"],
        }

    def register(self, order: Order) -> None:
        """Know a recovered order, so reports about it map back to it."""
        coid = order.client_order_id
        self._orders[coid] = order
        self._venue_cl_ord_id.setdefault(coid, coid)

    def set_venue_cl_ord_id(self, client_order_id: str, cl_ord_id: str) -> None:
        """The ClOrdID the venue knows the order by now (after replaces)."""
        if order_id_of(cl_ord_id) == client_order_id:
            self._venue_cl_ord_id[client_order_id] = cl_ord_id

    def logon_settled(self) -> None:
        """The logon's reconciliation is done: stop noting the orders sent since."""
        self.submitted_since_logon.clear()
        self._track_submitted = False

    def seed_exec_ids(self, exec_ids: Iterable[str]) -> None:
        """This venue's ExecIDs already applied (from the journal): a resend of them is
        skipped."""
        self._exec_ids.update(exec_ids)

    # -- session callbacks ------------------------------------------------------------------
    def on_logon(self, session: FixSession) -> None:
        self._logons += 1  # new orders wait for this logon's reconciliation
        self.submitted_since_logon.clear()
        self._track_submitted = True
        self.logged_off.clear()
        self.logged_on.set()
        # a gap before this logon is not one in this subscription: it starts from snapshots
        self._md_gaps = session.counters["gaps_detected"]
        if self.subscribe_market_data and self.instruments:
            request = f"MD-{next(self._request_ids):x}"
            session.send(market_data_request(request, sorted(self.instruments), kind=SUBSCRIBE))

    def _on_gap(self, session: FixSession) -> None:
        """The session found a sequence gap: market data in it is lost (resent as stale, or
        gap-filled), so every book is refreshed from a snapshot."""
        if not (self.subscribe_market_data and self.instruments):
            return
        request = f"MD-{next(self._request_ids):x}"
        symbols = sorted(self.instruments)
        self.counters["market_data_snapshots_requested"] += 1
        log.warning("fix_market_data_gap", venue=self.name, request=request, symbols=symbols)
        session.send(market_data_request(request, symbols, kind=SNAPSHOT))

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logged_on.clear()
        self.logged_off.set()
        self._book.clear()
        error = VenueUnavailable(f"session closed: {reason}")
        for future, _ in self._mass_status.values():
            if not future.done():
                future.set_exception(error)
        for status in self._status.values():
            if not status.done():
                status.set_exception(error)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None  # initiator side: the venue authenticates us

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        gaps = session.counters["gaps_detected"]
        if gaps != self._md_gaps:
            self._md_gaps = gaps
            self._on_gap(session)
        msg_type = message.msg_type
        if msg_type == "8":
            self._on_execution_report(message)
        elif msg_type == "9":
            self._on_cancel_reject(message)
        elif msg_type in ("W", "X"):
            if message.get(43) == "Y":
                self.counters["resent_market_data_ignored"] += 1  # stale: a resend
                return
            self._book.on_market_data(message, snapshot=msg_type == "W")
        elif msg_type == "3" or msg_type == "j":
            self._on_reject(message)
        elif msg_type == "AO" or msg_type == "AP":
            recovery.on_position_message(self, message)
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


def _transact_time(clock: Clock) -> str:
    return format_utc_timestamp(clock.timestamp_ns())

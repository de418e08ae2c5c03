"""A venue reached over FIX 4.4: orders out, execution reports and market data in.

Events emitted (through the execution engine's sink): OrderAccepted,
OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUpdated,
OrderCancelRejected, OrderModifyRejected. While the session is not logged on, and from
each logon until the node has reconciled the venue on it (``reconciled``), new orders
are rejected at once rather than queued: an order must never reach a venue late, nor
before the node knows what the venue holds.

``FixVenueAdapter`` is built of parts, each in a module of its own:
``bastion.venues.fix._order_entry`` (orders out: NewOrderSingle, cancel and replace
requests, the ClOrdIDs they carry), ``bastion.venues.fix._executions`` (execution
reports and cancel rejects into events, each ExecID applied once; the status queries
of reconciliation: OrderStatusRequest (H), OrderMassStatusRequest (AF)) and
``bastion.venues.fix._session_events`` (the session's callbacks: the adapter is its
application; market data subscribed on logon, snapshots after a gap); here, building
it, its lifecycle, and what it hands recovery, reconciliation and monitoring.

Market data (``bastion.venues.fix.marketdata``): snapshots (W) and incremental
refreshes (X) become ``QuoteTick`` s handed to ``on_quote_sink`` (set by
``subscribe_quotes``: a venue feed, ``bastion.feeds``) and ``TradeTick`` s handed to
``on_trade_sink``. Cancel-on-disconnect (``bastion.venues.fix.disconnect``) runs on
``session_lost`` and ``after_reconcile``.
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
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.fix.tls import ClientTls
from bastion.fix.transport import FixInitiator
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
from bastion.venues.fix._order_entry import NOT_LOGGED_ON, OrderEntry
from bastion.venues.fix._session_events import SessionEvents
from bastion.venues.fix.config import CancelOnDisconnect, FixVenueConfig
from bastion.venues.fix.disconnect import DisconnectCancels
from bastion.venues.fix.marketdata import (
    TopOfBook,
)
from bastion.venues.fix.reconcile import reconcile

__all__ = ["NOT_LOGGED_ON", "NOT_RECONCILED", "FixVenueAdapter", "build"]

log = structlog.get_logger("bastion.venues.fix")

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


class FixVenueAdapter(OrderEntry, SessionEvents, VenueAdapter):
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

    # -- orders ---------------------------------------------------------------------------
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

    async def positions(self, timeout_s: float = 5.0) -> dict[str, Decimal]:
        """The account's net position per symbol, as the venue reports (RequestForPositions)."""
        return await recovery.positions(self, timeout_s)

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
            slow_consumer_drops=counters["slow_consumer_drops"],
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

"""The one interface every venue adapter implements, and what recovery exchanges with it.

Order commands are non-blocking: ``submit``, ``cancel`` and ``modify`` hand the
request to the adapter (which sends it or queues it) and return at once.
Everything the venue says back — acks, rejects, fills, cancels — arrives as
order events through the ``on_event`` callback given to ``bind``. Connection
lifecycle and queries that wait on the venue are async.

Besides orders, the node (kernel, runner, reconciliation, kill switch, status) uses
only what is declared here, so it never needs to know which kind of venue it holds:

- data path: ``on_quote`` / ``on_bar`` for a venue that matches on the node's own
  market data (``matches_on_quotes``), ``inbox`` and ``flush`` for one that queues
  requests until the callback that made them returns; trade prints go to
  ``on_trade_sink``; a venue with market data of its own hands quotes to the sink
  given to ``subscribe_quotes`` (a feed, ``bastion.feeds``);
- session: ``connected``, ``wait_connected``, ``wait_disconnected``, ``logons`` and
  ``reconciled`` (orders only once reconciled since the last logon);
- recovery: ``recovery_mark`` / ``restore_mark`` (snapshot), ``prepare_recovery``
  (before connecting), ``reconcile`` (once connected), ``lost_amends`` (after it),
  ``session_lost`` and ``after_reconcile`` (cancel-on-disconnect);
- the operator: ``halt`` / ``resume`` (a per-venue kill switch; the kernel journals
  each as ``VenueHalted`` / ``VenueResumed`` and recovery halts the venue again after a
  restart) and ``status``;
- monitoring: ``stats`` (session counters, round trip, market data dropped) and
  ``probe_round_trip`` (measure the round trip even on a busy session).

Each hook has a default for a venue that has nothing to do there (the in-process
venue never disconnects). A venue kind is one package under ``bastion.venues``
with a config struct tagged by its ``kind``, listed in ``bastion.venues.registry``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.events import OrderEvent
from bastion.model.orders import Order
from bastion.vault.refs import SecretSource

if TYPE_CHECKING:
    from bastion.clock import Clock
    from bastion.model.instruments import Instrument

EventSink = Callable[[OrderEvent], None]
QuoteSink = Callable[[QuoteTick], None]
TradeSink = Callable[[TradeTick], None]


class SenderSeqs(Protocol):
    """A session's outgoing sequence numbers reserved for the HA group's leader."""

    def begin(self, next_seq: int) -> int:
        """Reserve the first block (blocking); the number to send next."""
        ...

    def check(self, seq: int) -> None:
        """Before ``seq`` is used: return when it is reserved, else raise."""
        ...

    def close(self) -> None: ...


class VenueMark(msgspec.Struct, frozen=True, kw_only=True):
    """Where a venue's inbound stream stood when a snapshot was taken: recovery asks
    the venue to resend from here (the journal may have lost what followed)."""

    venue: str
    session_key: str
    creation_ns: int
    next_target_seq: int
    next_sender_seq: int


class VenueReconciliation(msgspec.Struct, kw_only=True):
    """What reconciling the node with one venue found."""

    venue: str
    orders_checked: int = 0
    adopted: int = 0
    resolved: int = 0
    positions_compared: bool = False
    mismatches: list[str] = msgspec.field(default_factory=list)
    node_wide: bool = False
    """A mismatch touches state the whole node shares, not only this venue's orders: a
    fill or a position that differs (the portfolio, PnL and node-wide limits read them),
    or another venue's order. A node with several venues halts only this venue for a
    mismatch that does not (``bastion.recovery.reconcile``)."""


class NodeOrders(Protocol):
    """The node's orders as a venue's recovery sees them (the execution engine)."""

    def venue_exec_ids(self, venue: str) -> list[str]: ...

    def order(self, client_order_id: str) -> Order | None: ...

    def orders(self) -> Iterable[Order]: ...

    def open_orders(
        self, strategy_id: str | None = None, instrument_id: str | None = None
    ) -> list[Order]: ...

    def resolve(self, order: Order, event: OrderEvent) -> bool: ...

    def adopt(self, order: Order, *, reason: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ReconcileContext:
    """What a venue's ``reconcile`` may read and change in the node."""

    orders: NodeOrders
    net_quantity: Callable[[str], int]
    """The node's net raw position in an instrument."""
    clock: Clock
    instruments: dict[str, Instrument]
    order_id_prefix: str
    timeout_s: float
    compare_positions: bool
    position_tolerance: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueStats:
    """A venue session's counters since the node started, for monitoring (``stats``).

    A venue without a session (the in-process one) has none of them: it never drops."""

    logons: int = 0
    disconnects: int = 0
    """Logged-on sessions that dropped (by either side, or a lost connection)."""
    slow_consumer_drops: int = 0
    """Connections this node dropped because the venue stopped reading what it sent
    (``bastion.fix.outbound``); each is also a disconnect."""
    heartbeat_rtt_s: float | None = None
    """The last round trip measured: a TestRequest to its Heartbeat (None: none yet)."""
    last_received_s: float | None = None
    """When the venue last sent anything, on the node clock's monotonic seconds."""
    resend_requests: int = 0
    """ResendRequests exchanged: sent for a gap in what the venue sent, and received."""
    gap_fills: int = 0
    """SequenceReset-GapFills exchanged, sent and received."""
    md_rejects: dict[str, int] = field(default_factory=dict)
    """Market data dropped, by reason (a crossed book, a bad entry, an unknown symbol)."""


@dataclass(frozen=True, kw_only=True)
class VenueContext:
    """What building a venue adapter may use (given by the kernel)."""

    clock: Clock
    instruments: dict[str, Instrument]
    base_dir: Path
    epoch: int
    live: bool
    """A live node (ids must stay unique across restarts), not a backtest."""
    request_flush: Callable[[], None] | None = None
    secrets: SecretSource | None = None
    """Where a venue's credentials come from (the vault's, resolved at node start)."""
    fencing_epoch: int | None = None
    """An HA member's lease epoch (``bastion.ha``): a venue with a session announces it
    at logon (FIX: ``FencingEpoch``, tag 8014) so the venue drops an older leader's
    session; None for a node that runs alone."""
    sender_seqs: Callable[[str], SenderSeqs] | None = None
    """An HA member's outgoing sequence numbers, shared by the group (``bastion.ha.
    fix_seqs``): a venue with a sequenced session gets its block keeper by session key;
    None for a node that runs alone."""


class VenueAdapter(ABC):
    """A connection to one venue."""

    name: str
    kind: str = "venue"
    matches_on_quotes: bool = False
    """True for a venue that matches on the market data the node sees (the kernel then
    hands it each quote and bar of its instruments before the strategies)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.emit: EventSink = self._unbound
        self.on_trade_sink: TradeSink | None = None
        self.inbox: Sized = deque()
        self.halted: str | None = None
        """Why the operator halted this venue (``halt``); None while it takes orders."""
        self.reconciled_logon = 0
        """The logon (``logons``) the node last reconciled this venue on
        (``bastion.recovery.reconcile`` sets it)."""

    def bind(self, sink: EventSink) -> None:
        """Route this venue's order events to ``sink`` (the execution engine).

        After this, ``emit`` *is* the sink: one call per event, no indirection.
        """
        self.emit = sink

    def _unbound(self, event: OrderEvent) -> None:
        raise RuntimeError(f"venue {self.name} is not bound to an execution engine")

    # -- orders ---------------------------------------------------------------------------
    @abstractmethod
    def submit(self, order: Order) -> None:
        """Send a new order (refused with a reject while ``halted`` or disconnected)."""

    @abstractmethod
    def cancel(self, order: Order) -> None:
        """Request cancellation of an open order."""

    @abstractmethod
    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        """Request a cancel/replace with a new total quantity and/or price."""

    @abstractmethod
    async def open_order_ids(self) -> set[str]:
        """Client order ids the venue holds open (for reconciliation)."""

    # -- data path ------------------------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:  # noqa: B027 - optional hook
        """A quote of one of this venue's instruments (``matches_on_quotes`` venues)."""

    def on_bar(self, bar: Bar) -> None:  # noqa: B027 - optional hook
        """A bar of one of this venue's instruments (``matches_on_quotes`` venues)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Deliver the requests queued in ``inbox`` (nothing, for a venue that sends at once)."""

    def subscribe_quotes(self, sink: QuoteSink) -> bool:
        """Hand this venue's own market data to ``sink``; False if it has none."""
        return False

    # -- session --------------------------------------------------------------------------
    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the session (returns at once; see ``wait_connected``)."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Close the session."""

    async def abandon(self) -> None:
        """Close the session without a word to the venue (no Logout, nothing at all): a
        deposed HA leader must not send anything more. By default ``disconnect``."""
        await self.disconnect()

    @property
    def connected(self) -> bool:
        """The venue takes orders and answers queries now."""
        return True

    @property
    def logon_timeout_s(self) -> float:
        """How long the node waits for the first logon before it says so."""
        return 0.0

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until ``connected`` (at most ``timeout_s``); True if it is."""
        return True

    @property
    def logons(self) -> int:
        """How many times the session has logged on since the node started (0 for a
        venue without a session, which never drops)."""
        return 0

    @property
    def reconciled(self) -> bool:
        """Reconciled since the session's last logon. From a drop until then, the
        venue's instruments are unavailable: a venue with a session rejects new orders
        at once."""
        return self.reconciled_logon == self.logons

    async def wait_disconnected(self) -> None:
        """Return once the session has dropped (never, for a venue that cannot drop)."""
        await asyncio.Event().wait()

    # -- recovery -------------------------------------------------------------------------
    def recovery_mark(self) -> VenueMark | None:
        """Where the inbound stream stands, for a snapshot (None: nothing to resume)."""
        return None

    def restore_mark(self, mark: VenueMark) -> None:  # noqa: B027 - optional hook
        """The last snapshot's mark for this venue (``prepare_recovery`` uses it)."""

    def prepare_recovery(self, orders: NodeOrders, *, order_id_prefix: str) -> dict[str, Any]:
        """Before connecting after a restart: what the venue's own recovery did.

        ``adopted`` (a list of client order ids) counts in the reconciliation report."""
        return {}

    async def reconcile(self, context: ReconcileContext) -> VenueReconciliation:
        """Make the node's orders (and positions) agree with the venue's, once connected.

        Fills are never invented here; what cannot be resolved is a mismatch. This
        default only compares ``open_order_ids`` with the node's open orders at this
        venue: any difference is a mismatch."""
        report = VenueReconciliation(venue=self.name)
        theirs = await self.open_order_ids()
        ours = {o.client_order_id for o in context.orders.open_orders() if o.venue == self.name}
        report.orders_checked = len(theirs | ours)
        report.mismatches += [f"{c}: open at the venue, not in the node" for c in theirs - ours]
        report.mismatches += [f"{c}: open in the node, not at the venue" for c in ours - theirs]
        report.node_wide = bool(ours - theirs)  # closed at the venue: it may have filled
        return report

    def session_lost(self, open_orders: Iterable[Order]) -> None:  # noqa: B027
        """The session dropped (or the node restarted) with these orders open."""

    def lost_amends(self) -> list[Order]:
        """Orders whose amend was sent on a logon before the one last reconciled and is
        still unanswered: a dropped connection lost it (it is never sent again) and the
        venue's answer, had it had one, came back before the reconciliation ended. The
        node rejects them (``Kernel.reject_lost_amends``). None for a venue that cannot
        drop."""
        return []

    def after_reconcile(  # noqa: B027 - optional hook
        self, open_orders: Iterable[Order], cancel: Callable[[Order], bool]
    ) -> None:
        """Reconciled after a new logon: apply the venue's cancel-on-disconnect policy."""

    # -- operator -------------------------------------------------------------------------
    def halt(self, reason: str) -> None:
        """Refuse new orders and amends at this venue (cancels still go)."""
        self.halted = reason

    def refusal(self) -> str | None:
        """Why this venue takes no new order or amend now (None: it takes them): every
        adapter's ``submit`` and ``modify`` ask here, so a halt (and, for a session, a
        logon not yet reconciled) stops both the same way. Cancels are never refused."""
        return None if self.halted is None else f"venue {self.name} halted: {self.halted}"

    def resume(self) -> bool:
        """Take orders again; False if the venue was not halted."""
        was = self.halted is not None
        self.halted = None
        return was

    # -- monitoring -----------------------------------------------------------------------
    def stats(self) -> VenueStats:
        """The session's counters for monitoring (read on the trading loop; cheap)."""
        return VenueStats(logons=self.logons)

    def probe_round_trip(self, every_s: float) -> None:  # noqa: B027 - optional hook
        """Measure the round trip to the venue at least every ``every_s`` seconds (a venue
        without a session has none to measure)."""

    def status(self) -> dict[str, Any]:
        """The venue's state for ``bastion status``."""
        return {
            "kind": self.kind,
            "connected": self.connected,
            "halted": self.halted,
        }


def order_event(
    event_type: type[OrderEvent], ts_ns: int, order: Order, **fields: object
) -> OrderEvent:
    """An event about ``order`` (its ids filled in), as a venue would report it."""
    return event_type(
        ts_ns=ts_ns,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        instrument_id=order.instrument_id,
        **fields,
    )

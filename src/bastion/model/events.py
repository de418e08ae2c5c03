"""Typed events and commands carried on the bus and written to the journal.

Order events move an order through its state machine (``model.orders``).
Each is a tagged msgspec struct; ``EVENT_REGISTRY`` at the end states every event
type once, with its journal tag and who journals it, and the journal codec and the
node take their lists from it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from bastion.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce, TradingState


class Event(msgspec.Struct, frozen=True, tag=True, kw_only=True, gc=False):
    """Base of every event: ``ts_ns`` is when the event happened (clock time).

    Events hold only scalars (and lists or dicts of scalars): they cannot form a cycle,
    so they are untracked by the cyclic GC (``gc=False``).
    """

    ts_ns: int


class OrderEvent(Event, frozen=True, kw_only=True):
    client_order_id: str
    strategy_id: str
    instrument_id: str


class OrderInitialized(OrderEvent, frozen=True, kw_only=True):
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int | None = None
    reduce_only: bool = False
    venue: str = ""


class OrderDenied(OrderEvent, frozen=True, kw_only=True):
    """The risk gate refused the order; it never left the node."""

    reason: str
    message: str


class OrderSubmitted(OrderEvent, frozen=True, kw_only=True):
    venue: str


class OrderAccepted(OrderEvent, frozen=True, kw_only=True):
    venue_order_id: str


class OrderRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderPendingCancel(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderPendingReplace(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderCanceled(OrderEvent, frozen=True, kw_only=True):
    reason: str = ""


class OrderExpired(OrderEvent, frozen=True, kw_only=True):
    pass


class OrderUpdated(OrderEvent, frozen=True, kw_only=True):
    quantity: int
    price: int | None


class OrderCancelRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderModifyRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderFilled(OrderEvent, frozen=True, kw_only=True):
    """An execution. ``exec_id`` is the venue's id; a repeated one is never applied twice."""

    venue_order_id: str
    exec_id: str
    side: OrderSide
    last_qty: int
    last_px: int
    fee: Decimal
    fee_currency: str
    liquidity: LiquiditySide


class OrderTransitionRefused(OrderEvent, frozen=True, kw_only=True):
    """An event arrived that the order's state machine does not allow; it was not applied."""

    status: str
    event: str


class TradingStateChanged(Event, frozen=True, kw_only=True):
    state: TradingState
    reason: str


class StrategyFailed(Event, frozen=True, kw_only=True):
    strategy_id: str
    error: str


class CommandDenied(Event, frozen=True, kw_only=True):
    """The risk gate refused a cancel or modify request (the order itself is unchanged)."""

    client_order_id: str
    strategy_id: str
    reason: str
    message: str


class ReconciliationCompleted(Event, frozen=True, kw_only=True):
    """The node compared its state with a venue (on start and after each logon).

    ``adopted``: orders the venue holds that the journal had lost (sent just before a
    crash), taken over from the FIX session store or the venue's report; ``resolved``:
    open orders whose final state came from the venue's status answer;
    ``mismatches``: what could not be made to agree (empty when reconciled).
    """

    venue: str
    epoch: int
    orders_checked: int
    adopted: int
    resolved: int
    mismatches: list[str] = msgspec.field(default_factory=list)


class ReconciliationMismatch(Event, frozen=True, kw_only=True):
    """An alert: the node's state and the venue's disagree beyond tolerance; the node
    moved to ``state`` instead of trading on wrong state (or, with several venues and a
    mismatch confined to this venue's orders, halted only the venue: a ``VenueHalted``
    precedes this, and ``state`` is the node's, unchanged)."""

    venue: str
    state: TradingState
    mismatches: list[str]


class InstrumentPaused(Event, frozen=True, kw_only=True):
    """The risk gate paused new orders on an instrument until ``until_ns`` (its mid
    moved beyond ``collar_window_pct`` within ``collar_window_ms``); cancels still go.
    A further move during the pause extends it with another ``InstrumentPaused``."""

    instrument_id: str
    reason: str
    until_ns: int


class InstrumentResumed(Event, frozen=True, kw_only=True):
    """An instrument's pause ended: new orders on it are checked as usual again. ``who``
    and ``why`` are set when an operator ended it early (``bastion resume --instrument``)."""

    instrument_id: str
    who: str = ""
    why: str = ""


class StrategyDisabled(Event, frozen=True, kw_only=True):
    """The risk gate disabled a strategy (repeated executions, or one of its post-trade
    limits): its new orders and amends are denied until an operator enables it.

    ``cancels_requested``: how many of its open orders the gate then asked the venues
    to cancel (``risk.cancel_on_disable``; 0 when off, or in a journal written before
    the field existed). Each cancel follows as its own ``OrderPendingCancel``."""

    strategy_id: str
    reason: str
    cancels_requested: int = 0


class StrategyEnabled(Event, frozen=True, kw_only=True):
    """An operator enabled a disabled strategy again."""

    strategy_id: str
    who: str
    why: str


class RiskLimitsChanged(Event, frozen=True, kw_only=True):
    """The node started with other risk limits than it last journaled: ``changes`` says
    what changed (``key: old -> new``), ``config`` is the new ``[risk]`` (canonical JSON),
    ``who`` the OS user that started it, ``source`` the config file."""

    who: str
    source: str
    changes: list[str]
    config: str


class RiskOverrideSet(Event, frozen=True, kw_only=True):
    """An operator set one risk limit (``path``) to ``value`` until ``expires_ns``;
    ``previous`` is the value it replaced."""

    override_id: str
    path: str
    value: str
    previous: str
    who: str
    why: str
    expires_ns: int


class RiskOverrideEnded(Event, frozen=True, kw_only=True):
    """An override ended: ``how`` is ``expired`` or ``cleared`` (by ``who``, for ``why``);
    the limit is back to the config's value (or to an older override still running)."""

    override_id: str
    path: str
    how: str
    who: str
    why: str


class VenueHalted(Event, frozen=True, kw_only=True):
    """An operator halted one venue (``bastion kill --venue``), or a reconciliation
    mismatch confined to its orders did (``who`` = ``node``): it refuses new orders,
    cancels still go, the other venues trade on. It stays halted across restarts (recovery
    takes it over from the journal) until a ``VenueResumed``. ``reason`` is what the venue
    answers an order with (``kill by who: why``)."""

    venue: str
    reason: str
    who: str
    why: str


class VenueResumed(Event, frozen=True, kw_only=True):
    """An operator let a halted venue take orders again (``bastion resume --venue``)."""

    venue: str
    who: str
    why: str


class RunManifest(Event, frozen=True, kw_only=True):
    """What a node ran, journaled at every start (``bastion manifest show|diff``).

    ``files``: every strategy file (its path as the config gives it) with its SHA-256;
    ``config_sha256``: the config file's (it holds secret references, never values).
    ``git_commit``/``git_dirty``: the desk's git repository, when it is one (``None``
    otherwise); ``untracked``: the run's files git does not track (a dirty tree too).
    ``who``: the OS user that started the node."""

    node_id: str
    epoch: int
    mode: str
    version: str
    python: str
    host: str
    who: str
    config_path: str
    config_sha256: str
    files: dict[str, str]
    git_commit: str | None = None
    git_dirty: bool | None = None
    untracked: list[str] = []


class JournalTailSetAside(Event, frozen=True, kw_only=True):
    """The journal, as it opened, found its last records torn (cut mid-write, or not
    verifying) and moved records ``first_seq``..``last_seq`` (``byte_count`` bytes) to
    ``torn_records``; ``problem`` is what was wrong. Whatever they held comes back from
    the venues through reconciliation; an operator looks at why."""

    first_seq: int
    last_seq: int
    byte_count: int
    problem: str


class LiveArmed(Event, frozen=True, kw_only=True):
    """A live node started on an arming (``bastion arm``), which it consumed: ``who``
    armed it (the OS user) and ``why``, at ``armed_at_ns``, valid until ``expires_ns``,
    for the config whose SHA-256 is ``config_sha256``. ``token_id`` is the arming's
    id: a copy of a consumed token is refused because its id is journaled here."""

    token_id: str
    node_id: str
    who: str
    why: str
    armed_at_ns: int
    expires_ns: int
    config_sha256: str


class VenueSessionLost(Event, frozen=True, kw_only=True):
    """The node has no session with a venue: it dropped (``reason``), or it was not
    logged on within its logon wait at start. Orders for the venue's instruments are
    rejected until it is logged on and reconciled again (``VenueLoggedOn`` follows)."""

    venue: str
    reason: str


class VenueLoggedOn(Event, frozen=True, kw_only=True):
    """A venue's session logged on (the ``logons``-th time since the node started); the
    node reconciles the venue next."""

    venue: str
    logons: int


class AlertFired(Event, frozen=True, kw_only=True):
    """An alert rule's condition held (``bastion.monitor.alerts``): alert ``alert_id``
    of rule ``alert`` for the series or event group ``labels``, with the rendered
    ``summary``, the ``value`` that set it off (a metric's value, or how many events),
    and its ``runbook``. ``silenced``: a silence matched it, so nobody was notified."""

    alert_id: str
    alert: str
    severity: str
    labels: dict[str, str]
    summary: str
    value: float
    runbook: str
    silenced: bool = False


class AlertResolved(Event, frozen=True, kw_only=True):
    """Alert ``alert_id``'s condition cleared (``how``: why it is over)."""

    alert_id: str
    alert: str
    labels: dict[str, str]
    how: str


class AlertAcknowledged(Event, frozen=True, kw_only=True):
    """An operator took alert ``alert_id`` on: it is no longer repeated nor escalated."""

    alert_id: str
    alert: str
    who: str
    why: str


class AlertSilenced(Event, frozen=True, kw_only=True):
    """An operator silenced the alerts of rule ``alert`` whose labels include ``labels``
    until ``until_ns``: they are journaled but nobody is notified; the silence ends by
    itself."""

    silence_id: str
    alert: str
    labels: dict[str, str]
    until_ns: int
    who: str
    why: str


class OperatorCommand(Event, frozen=True, kw_only=True):
    """An operator's command the node carries out, journaled before its effects: who
    gave it as the kernel says (``operator``, mapped from the peer's ``uid``, with
    ``roles``; ``pid`` the process that asked), over ``source`` (``local socket``), the
    command (a ``bastion.security.Command``), what it acts on (``detail``, the request's
    fields as JSON) and the reason given. Its effects follow (a ``TradingStateChanged``,
    a ``RiskOverrideSet``, ...), or an ``OperatorRefused`` if the node could not do it."""

    operator: str
    roles: list[str]
    uid: int
    pid: int
    source: str
    command: str
    detail: str
    why: str


class OperatorRefused(Event, frozen=True, kw_only=True):
    """A command the node refused, and why: the peer's ``uid`` maps to no operator (then
    ``operator`` is empty), the operator's roles do not allow it, an approval that is
    their own, expired, already used or beyond their right, or the node could not do
    it. Nothing changed."""

    operator: str
    roles: list[str]
    uid: int
    pid: int
    source: str
    command: str
    detail: str
    why: str
    reason: str


class ApprovalRequested(Event, frozen=True, kw_only=True):
    """A four-eyes command waits for a second operator: ``approval_id`` until
    ``expires_ns``; requested by ``operator`` (``uid``, ``pid``, ``source``) for ``why``.
    Nothing changed yet."""

    approval_id: str
    command: str
    detail: str
    operator: str
    roles: list[str]
    uid: int
    pid: int
    source: str
    why: str
    expires_ns: int


class ApprovalGranted(Event, frozen=True, kw_only=True):
    """A second operator (``operator``, ``uid``, ``pid``, ``source``, for ``why``)
    approved ``approval_id``, which ``requested_by`` asked for: the command runs now and
    its effects follow."""

    approval_id: str
    command: str
    detail: str
    requested_by: str
    operator: str
    roles: list[str]
    uid: int
    pid: int
    source: str
    why: str


class RiskCeilingRaised(Event, frozen=True, kw_only=True):
    """The bound an override of ``path`` may reach is now ``ceiling`` (was ``previous``:
    ``max_override_factor`` times the config's value), until the node stops; ``who``
    asked for ``why`` (a four-eyes command: its ``ApprovalGranted`` precedes this)."""

    path: str
    ceiling: str
    previous: str
    who: str
    why: str


class OperatorAuth(Event, frozen=True, kw_only=True):
    """A console sign-in event, as the console (a ``[access] consoles`` peer, ``uid``
    ``pid``) reports it: ``operator`` (as typed: maybe nobody's name) from ``source``
    (the browser's address), ``kind`` (``login``, ``step_up``, ``logout``, ``expired``,
    ``lockout``), ``outcome`` (``ok`` or why refused) and ``why``. Nothing changed on
    the node."""

    operator: str
    source: str
    kind: str
    outcome: str
    why: str
    uid: int
    pid: int


class FeedSwitched(Event, frozen=True, kw_only=True):
    """The feed arbiter now delivers ``instrument_id``'s quotes from feed ``to_feed``
    instead of ``from_feed``, because of ``reason``: ``stale`` (no quote while another
    feed ticked), ``gap`` (a sequence gap), ``rejects`` (repeated validation failures),
    ``diverged`` (outvoted by the other feeds' mids) or ``return`` (a preferred feed
    healthy for ``arbitration.hold_ms``). ``preferred``: ``to_feed`` is the instrument's
    first feed by priority (a return to normal), else a failover."""

    instrument_id: str
    from_feed: str
    to_feed: str
    reason: str
    preferred: bool


class FeedStatus(Event, frozen=True, kw_only=True):
    """Whether ``instrument_id`` has a healthy feed: ``healthy`` false when none of its
    feeds ticked for ``arbitration.stale_ms`` (no quote reaches the strategies), true
    again with the ``feed`` that brought it back. ``reason`` says why."""

    instrument_id: str
    healthy: bool
    feed: str
    reason: str


class LeaderTookOver(Event, frozen=True, kw_only=True):
    """``member`` now leads HA group ``group`` under fencing ``epoch`` (the group's lease
    was held at ``previous_epoch`` by ``previous_holder``; 0 and "" when it never was),
    ``wait_ms`` after it won the lease (its state recovered, its venues reconciled).
    ``reason``: ``lease expired`` (the leader stopped renewing: a failover),
    ``switchover`` (the leader released it) or ``first start`` (the group had no
    leader). Journaled by the new leader once it trades (recovered, reconciled)."""

    group: str
    member: str
    epoch: int
    previous_epoch: int
    previous_holder: str
    wait_ms: int
    reason: str


class LeaderStepDown(Event, frozen=True, kw_only=True):
    """``member`` no longer leads HA group ``group`` (its ``epoch``) and sends nothing
    more: ``reason`` is ``switchover`` (it released the lease; journaled before the
    release), ``deposed`` (another member holds a newer epoch), ``lease lost`` (its
    local deadline passed without a renewal) or ``fenced`` (a journal write or a venue
    refused its epoch). Once deposed its journal refuses it, so the last three may
    reach only its bus (its alerts, its log), not the group's journal."""

    group: str
    member: str
    epoch: int
    reason: str


class StandbyStatus(Event, frozen=True, kw_only=True):
    """The leader's view of standby ``member`` of ``group`` changed, as read from the
    members table (``bastion_ha_members``): ``state`` ``ok`` (heartbeating, caught
    up), ``lagging`` (more than ``ha.max_lag_events`` or ``ha.max_lag_ms`` behind),
    ``lost`` (no heartbeat for ``ha.standby_lost_s``) or ``left`` (its row is gone
    or no longer a standby's). ``lag_events``, ``lag_ms`` (None: unknown) and
    ``heartbeat_age_ms`` as read; ``reason`` says why in words. A standby writes no
    journal: its leader journals this."""

    group: str
    member: str
    state: str
    reason: str
    lag_events: int | None
    lag_ms: int | None
    heartbeat_age_ms: int


class DrDrillCompleted(Event, frozen=True, kw_only=True):
    """A disaster-recovery drill of this node (``bastion dr drill``, run elsewhere on its
    backups) ended: ``ok`` when it recovered within ``rto_target_s`` and, where it was
    reconciled with the venue (through a read-only session, or the venue's positions),
    agreed with it (``reconciled``; None: not checked; ``mismatches`` as found).
    ``rto_s`` measured; ``rpo_events``/``rpo_s`` the journal the backups lacked (None:
    not measurable where the drill ran).
    ``backup_id`` the full backup restored, ``report`` where the drill wrote its JSON
    report ("" for none). Recorded through the control socket (``record_drill``), and
    in the drills' own journal on the host that ran it (``bastion.backup.drill_log``)."""

    ok: bool
    backup_id: str
    rto_s: float
    rto_target_s: float
    rpo_events: int | None
    rpo_s: float | None
    reconciled: bool | None
    mismatches: list[str]
    report: str


class JournaledBy(enum.Enum):
    """Who writes an event type to the journal."""

    EXECUTION = "execution"
    """The execution engine, as it applies the event to its order (order events)."""
    BUS = "bus"
    """The node, as the event is published on the bus."""
    JOURNAL = "journal"
    """The journal itself, about its own file, as it opens."""


@dataclass(frozen=True, slots=True)
class EventKind:
    """One registered event type: its journal tag (the record's ``type`` column and the
    payload's msgpack tag; never change it, old journals are decoded by it) and who
    journals it."""

    type: type[Event]
    tag: str
    journaled_by: JournaledBy


_EXECUTION = JournaledBy.EXECUTION
_BUS = JournaledBy.BUS
_JOURNAL = JournaledBy.JOURNAL

EVENT_REGISTRY: tuple[EventKind, ...] = (
    EventKind(OrderInitialized, "OrderInitialized", _EXECUTION),
    EventKind(OrderDenied, "OrderDenied", _EXECUTION),
    EventKind(OrderSubmitted, "OrderSubmitted", _EXECUTION),
    EventKind(OrderAccepted, "OrderAccepted", _EXECUTION),
    EventKind(OrderRejected, "OrderRejected", _EXECUTION),
    EventKind(OrderPendingCancel, "OrderPendingCancel", _EXECUTION),
    EventKind(OrderPendingReplace, "OrderPendingReplace", _EXECUTION),
    EventKind(OrderCanceled, "OrderCanceled", _EXECUTION),
    EventKind(OrderExpired, "OrderExpired", _EXECUTION),
    EventKind(OrderUpdated, "OrderUpdated", _EXECUTION),
    EventKind(OrderCancelRejected, "OrderCancelRejected", _EXECUTION),
    EventKind(OrderModifyRejected, "OrderModifyRejected", _EXECUTION),
    EventKind(OrderFilled, "OrderFilled", _EXECUTION),
    EventKind(OrderTransitionRefused, "OrderTransitionRefused", _EXECUTION),
    EventKind(TradingStateChanged, "TradingStateChanged", _BUS),
    EventKind(StrategyFailed, "StrategyFailed", _BUS),
    EventKind(CommandDenied, "CommandDenied", _BUS),
    EventKind(ReconciliationCompleted, "ReconciliationCompleted", _BUS),
    EventKind(ReconciliationMismatch, "ReconciliationMismatch", _BUS),
    EventKind(InstrumentPaused, "InstrumentPaused", _BUS),
    EventKind(InstrumentResumed, "InstrumentResumed", _BUS),
    EventKind(StrategyDisabled, "StrategyDisabled", _BUS),
    EventKind(StrategyEnabled, "StrategyEnabled", _BUS),
    EventKind(RiskLimitsChanged, "RiskLimitsChanged", _BUS),
    EventKind(RiskOverrideSet, "RiskOverrideSet", _BUS),
    EventKind(RiskOverrideEnded, "RiskOverrideEnded", _BUS),
    EventKind(VenueHalted, "VenueHalted", _BUS),
    EventKind(VenueResumed, "VenueResumed", _BUS),
    EventKind(RunManifest, "RunManifest", _BUS),
    EventKind(JournalTailSetAside, "JournalTailSetAside", _JOURNAL),
    EventKind(LiveArmed, "LiveArmed", _BUS),
    EventKind(VenueSessionLost, "VenueSessionLost", _BUS),
    EventKind(VenueLoggedOn, "VenueLoggedOn", _BUS),
    EventKind(AlertFired, "AlertFired", _BUS),
    EventKind(AlertResolved, "AlertResolved", _BUS),
    EventKind(AlertAcknowledged, "AlertAcknowledged", _BUS),
    EventKind(AlertSilenced, "AlertSilenced", _BUS),
    EventKind(OperatorCommand, "OperatorCommand", _BUS),
    EventKind(OperatorRefused, "OperatorRefused", _BUS),
    EventKind(ApprovalRequested, "ApprovalRequested", _BUS),
    EventKind(ApprovalGranted, "ApprovalGranted", _BUS),
    EventKind(RiskCeilingRaised, "RiskCeilingRaised", _BUS),
    EventKind(OperatorAuth, "OperatorAuth", _BUS),
    EventKind(FeedSwitched, "FeedSwitched", _BUS),
    EventKind(FeedStatus, "FeedStatus", _BUS),
    EventKind(LeaderTookOver, "LeaderTookOver", _BUS),
    EventKind(LeaderStepDown, "LeaderStepDown", _BUS),
    EventKind(StandbyStatus, "StandbyStatus", _BUS),
    EventKind(DrDrillCompleted, "DrDrillCompleted", _BUS),
)
"""Every event type, stated once: the journal codec decodes exactly these, the execution
engine journals the order events and the node subscribes the journal to the others.
A new event type is added here (a test fails otherwise)."""

EVENT_BASES: tuple[type[Event], ...] = (Event, OrderEvent)
"""Abstract bases: never published nor journaled themselves."""


def _check_registry() -> None:
    for kind in EVENT_REGISTRY:
        if kind.type.__struct_config__.tag != kind.tag:
            raise TypeError(
                f"{kind.type.__name__} is tagged {kind.type.__struct_config__.tag!r}, "
                f"registered as {kind.tag!r}: old journals would not decode"
            )
        if (kind.journaled_by is _EXECUTION) != issubclass(kind.type, OrderEvent):
            raise TypeError(f"{kind.tag}: the execution engine journals exactly the order events")


_check_registry()

EVENT_TYPES: tuple[type[Event], ...] = tuple(kind.type for kind in EVENT_REGISTRY)
"""Every journaled event type, in registry order."""

ORDER_EVENT_TYPES: tuple[type[OrderEvent], ...] = tuple(
    t for t in EVENT_TYPES if issubclass(t, OrderEvent)
)
"""The order events (the execution engine applies and journals them)."""

BUS_JOURNALED_EVENT_TYPES: tuple[type[Event], ...] = tuple(
    kind.type for kind in EVENT_REGISTRY if kind.journaled_by is _BUS
)
"""The events the node journals from the bus."""

JOURNAL_OWN_EVENT_TYPES: tuple[type[Event], ...] = tuple(
    kind.type for kind in EVENT_REGISTRY if kind.journaled_by is _JOURNAL
)
"""The events the journal writes about itself."""

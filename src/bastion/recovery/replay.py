"""Rebuilding the node's state on start: the last snapshot, then the journal tail.

Nothing is sent, published or journaled while replaying: the events are already in
the journal. A snapshot that cannot be used (another version, damaged) is reported
and the whole journal is replayed instead.

``Replayer`` applies journaled events one at a time; it is the one replay routine,
used by ``recover_state`` at start and by a warm standby (``bastion.ha.tail``), which
applies each committed event as it comes and hands its state over on takeover
(``recover_state(..., start=handover)``: only the events after it are read then).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

import msgspec
import structlog

from bastion.journal.sqlite import JournalEvent, StoredSnapshot
from bastion.model.events import (
    OrderEvent,
    OrderFilled,
    RiskLimitsChanged,
    RiskOverrideEnded,
    RiskOverrideSet,
    StrategyDisabled,
    StrategyEnabled,
    TradingStateChanged,
    VenueHalted,
    VenueResumed,
)
from bastion.monitor.alerts.known import ALERT_EVENTS
from bastion.recovery.node import RecoverableNode
from bastion.recovery.state import (
    NodeSnapshot,
    SnapshotError,
    adopt_unjournaled,
    decode,
    restore,
    restore_venue_halts,
)
from bastion.risk.overrides import Override

log = structlog.get_logger("bastion.recovery")

_ALERT_TYPES: frozenset[type] = frozenset(ALERT_EVENTS)


class RecoveryReport(msgspec.Struct, kw_only=True):
    """What recovery found: where it started from and how much it replayed."""

    snapshot_seq: int | None
    replayed_events: int
    last_seq: int
    torn_tail: int | None
    open_orders: int
    positions: dict[str, int]
    elapsed_ms: float
    snapshot_problem: str | None = None
    disabled_strategies: list[str] = msgspec.field(default_factory=list)
    halted_venues: dict[str, str] = msgspec.field(default_factory=dict)
    """Venues the operator had halted (name: reason): they stay halted until resumed."""
    handed_over_seq: int | None = None
    """The seq a warm standby's state covered when it took over (None: a cold start)."""


class JournalSource(Protocol):
    """What recovery reads: a journal's committed events and its newest snapshot
    (``SqliteJournal`` is one)."""

    @property
    def last_seq(self) -> int: ...

    @property
    def torn_tail(self) -> int | None: ...

    def read(self, after: int = 0) -> Iterable[tuple[int, JournalEvent]]: ...

    def latest_snapshot(self) -> StoredSnapshot | None: ...


class Handover(NamedTuple):
    """A warm standby's state at takeover: everything up to ``seq``, as a snapshot that
    keeps every order and ExecID (``bastion.ha.tail.JournalTail.promote``)."""

    seq: int
    snapshot: NodeSnapshot


class Replayer:
    """Applies journaled events to a kernel restored from a snapshot (or empty), in
    order; nothing is sent, published or journaled. Order events, fills and positions
    apply at once, as do the alerts firing and the silences (``kernel.alerts``); the
    trading state, disabled strategies, operator overrides and venue halts are gathered
    and put into the kernel by ``settle`` (after a batch: cheap when nothing of them
    changed)."""

    def __init__(self, kernel: RecoverableNode, halted: dict[str, str]) -> None:
        self.kernel = kernel
        self.halted = dict(halted)  # venue: reason, the snapshot's, then the journal's
        self.disabled = dict(kernel.risk.disabled)
        self.active = dict(kernel.risk_overrides.active)
        self.journaled_config = kernel.risk_overrides.journaled_config
        self._last_state: TradingStateChanged | None = None
        self._overrides_changed = True  # the snapshot's overrides are applied once
        self._halts_changed = True
        self._replay = kernel.execution.replay
        self._on_fill = kernel.portfolio.on_fill
        self._alerts = kernel.alerts

    def apply_all(self, events: Iterable[tuple[int, JournalEvent]]) -> int:
        """Apply ``events``; return how many."""
        applied = 0
        for _seq, event in events:
            self.apply(event)
            applied += 1
        return applied

    def apply(self, event: JournalEvent) -> None:
        """Apply one event (events of other types change nothing recovery restores)."""
        event_type = type(event)
        if event_type is OrderFilled:
            if self._replay(event):  # type: ignore[arg-type]
                self._on_fill(event)  # type: ignore[arg-type]
        elif event_type is TradingStateChanged:
            self._last_state = event  # type: ignore[assignment]
        elif event_type is StrategyDisabled:
            self.disabled[event.strategy_id] = event.reason  # type: ignore[attr-defined]
        elif event_type is StrategyEnabled:
            self.disabled.pop(event.strategy_id, None)  # type: ignore[attr-defined]
        elif event_type is RiskOverrideSet:
            assert isinstance(event, RiskOverrideSet)
            self.active[event.override_id] = Override(
                id=event.override_id,
                path=event.path,
                value=event.value,
                who=event.who,
                why=event.why,
                set_ns=event.ts_ns,
                expires_ns=event.expires_ns,
            )
            self._overrides_changed = True
        elif event_type is RiskOverrideEnded:
            self.active.pop(event.override_id, None)  # type: ignore[attr-defined]
            self._overrides_changed = True
        elif event_type is RiskLimitsChanged:
            self.journaled_config = event.config  # type: ignore[attr-defined]
            self._overrides_changed = True
        elif event_type is VenueHalted:
            self.halted[event.venue] = event.reason  # type: ignore[attr-defined]
            self._halts_changed = True
        elif event_type is VenueResumed:
            self.halted.pop(event.venue, None)  # type: ignore[attr-defined]
            self._halts_changed = True
        elif event_type in _ALERT_TYPES:
            self._alerts.apply(event)
        elif isinstance(event, OrderEvent):
            self._replay(event)

    def settle(self) -> None:
        """Put the gathered trading state, disabled strategies, overrides and venue
        halts into the kernel (only what changed since the last ``settle``)."""
        kernel = self.kernel
        if self._last_state is not None:
            kernel.restore_trading_state(self._last_state.state, self._last_state.reason)
            self._last_state = None
        if self.disabled != kernel.risk.disabled:
            kernel.risk.restore_disabled(self.disabled)
        if self._overrides_changed:
            kernel.risk_overrides.restore(list(self.active.values()), self.journaled_config)
            self.active = dict(kernel.risk_overrides.active)  # less any dropped
            self._overrides_changed = False
        if self._halts_changed:
            restore_venue_halts(kernel, self.halted)
            for name in sorted(set(self.halted) - set(kernel.venues)):  # not in the config
                log.warning("venue_halt_of_unknown_venue", venue=name, reason=self.halted[name])
            self._halts_changed = False


def recover_state(
    kernel: RecoverableNode, journal: JournalSource, *, start: Handover | None = None
) -> RecoveryReport:
    """Load the newest usable snapshot into ``kernel`` and replay the events after it.

    ``start``: a warm standby's state (``JournalTail.promote``) instead of the journal's
    snapshot; only the events after ``start.seq`` are read."""
    started = kernel.clock.monotonic_s()
    after = 0
    snapshot_seq: int | None = None
    problem: str | None = None
    halted: dict[str, str] = {}
    if start is not None:
        restore(kernel, start.snapshot)
        halted = dict(start.snapshot.halted_venues)
        after = start.seq
    else:
        stored = journal.latest_snapshot()
        if stored is not None:
            try:
                snapshot = decode(stored.payload)
            except SnapshotError as error:
                problem = f"snapshot at seq {stored.seq} not used: {error}"
                log.error("snapshot_unusable", seq=stored.seq, error=str(error))
            else:
                restore(kernel, snapshot)
                halted = dict(snapshot.halted_venues)
                after = snapshot_seq = stored.seq
    replayer = Replayer(kernel, halted)
    replayed = replayer.apply_all(journal.read(after))
    replayer.settle()
    if start is not None and replayed:
        _adopt_newer_snapshot(kernel, journal, start.seq)
    portfolio = kernel.portfolio
    report = RecoveryReport(
        snapshot_seq=snapshot_seq,
        replayed_events=replayed,
        last_seq=journal.last_seq,
        torn_tail=journal.torn_tail,
        open_orders=len(kernel.execution.open_orders()),
        positions={iid: portfolio.net_quantity(iid) for iid in portfolio.instruments_traded()},
        elapsed_ms=round((kernel.clock.monotonic_s() - started) * 1000, 3),
        snapshot_problem=problem,
        disabled_strategies=sorted(replayer.disabled),
        halted_venues=dict(sorted(replayer.halted.items())),
        handed_over_seq=None if start is None else start.seq,
    )
    log.info("state_recovered", **msgspec.structs.asdict(report))
    return report


def _adopt_newer_snapshot(kernel: RecoverableNode, journal: JournalSource, seq: int) -> None:
    """A snapshot stored after a standby's last poll has what no event carries (the
    strategies' saved states…): taken too, as a restart from it would."""
    stored = journal.latest_snapshot()
    if stored is None or stored.seq <= seq:
        return
    try:
        adopt_unjournaled(kernel, decode(stored.payload))
    except SnapshotError as error:
        log.error("snapshot_unusable", seq=stored.seq, error=str(error))

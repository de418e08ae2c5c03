"""Rebuilding the node's state on start: the last snapshot, then the journal tail.

Nothing is sent, published or journaled while replaying: the events are already in
the journal. A snapshot that cannot be used (another version, damaged) is reported
and the whole journal is replayed instead.
"""

from __future__ import annotations

import msgspec
import structlog

from bastion.journal.base import Journal
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
from bastion.recovery.node import RecoverableNode
from bastion.recovery.state import SnapshotError, decode, restore, restore_venue_halts
from bastion.risk.overrides import Override

log = structlog.get_logger("bastion.recovery")


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


def recover_state(kernel: RecoverableNode, journal: Journal) -> RecoveryReport:
    """Load the newest usable snapshot into ``kernel`` and replay the events after it."""
    started = kernel.clock.monotonic_s()
    after = 0
    snapshot_seq: int | None = None
    problem: str | None = None
    halted: dict[str, str] = {}  # venue: reason, the snapshot's, then the journal's changes
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
    replay = kernel.execution.replay
    on_fill = kernel.portfolio.on_fill
    last_state: TradingStateChanged | None = None
    disabled = dict(kernel.risk.disabled)  # the snapshot's, then the journal's changes
    overrides = kernel.risk_overrides
    active = dict(overrides.active)
    journaled_config = overrides.journaled_config
    replayed = 0
    for _seq, event in journal.read(after):
        replayed += 1
        event_type = type(event)
        if event_type is OrderFilled:
            if replay(event):  # type: ignore[arg-type]
                on_fill(event)  # type: ignore[arg-type]
        elif event_type is TradingStateChanged:
            last_state = event  # type: ignore[assignment]
        elif event_type is StrategyDisabled:
            disabled[event.strategy_id] = event.reason  # type: ignore[attr-defined]
        elif event_type is StrategyEnabled:
            disabled.pop(event.strategy_id, None)  # type: ignore[attr-defined]
        elif event_type is RiskOverrideSet:
            assert isinstance(event, RiskOverrideSet)
            active[event.override_id] = Override(
                id=event.override_id,
                path=event.path,
                value=event.value,
                who=event.who,
                why=event.why,
                set_ns=event.ts_ns,
                expires_ns=event.expires_ns,
            )
        elif event_type is RiskOverrideEnded:
            active.pop(event.override_id, None)  # type: ignore[attr-defined]
        elif event_type is RiskLimitsChanged:
            journaled_config = event.config  # type: ignore[attr-defined]
        elif event_type is VenueHalted:
            halted[event.venue] = event.reason  # type: ignore[attr-defined]
        elif event_type is VenueResumed:
            halted.pop(event.venue, None)  # type: ignore[attr-defined]
        elif isinstance(event, OrderEvent):
            replay(event)
    if last_state is not None:
        kernel.restore_trading_state(last_state.state, last_state.reason)
    if disabled != kernel.risk.disabled:
        kernel.risk.restore_disabled(disabled)
    overrides.restore(list(active.values()), journaled_config)
    restore_venue_halts(kernel, halted)
    for name in sorted(set(halted) - set(kernel.venues)):  # the config no longer lists it
        log.warning("venue_halt_of_unknown_venue", venue=name, reason=halted[name])
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
        disabled_strategies=sorted(disabled),
        halted_venues=dict(sorted(halted.items())),
    )
    log.info("state_recovered", **msgspec.structs.asdict(report))
    return report

"""Sample journal events: one of every journaled type, and a hypothesis strategy for them."""

from __future__ import annotations

import enum
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict, get_args

from hypothesis import strategies as st
from msgspec import inspect as mi

from bastion.journal.sqlite import JournalEvent
from bastion.model import events as ev
from bastion.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderType,
    TimeInForce,
    TradingState,
)

T0 = 1_704_205_800_000_000_000
EVENT_TYPES: tuple[type[Any], ...] = get_args(JournalEvent)


class _OrderIds(TypedDict):
    client_order_id: str
    strategy_id: str
    instrument_id: str


def one_of_each(ts_ns: int = T0) -> list[Any]:
    """One event of every journaled type, with realistic fields."""
    order: _OrderIds = {
        "client_order_id": "O-node-1-1-000001",
        "strategy_id": "ema",
        "instrument_id": "X",
    }
    return [
        ev.OrderInitialized(
            ts_ns=ts_ns,
            **order,
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            quantity=5,
            price=10_001,
        ),
        ev.OrderDenied(ts_ns=ts_ns + 1, **order, reason="MAX_QTY", message="too big"),
        ev.OrderSubmitted(ts_ns=ts_ns + 2, **order, venue="SIM"),
        ev.OrderAccepted(ts_ns=ts_ns + 3, **order, venue_order_id="V1"),
        ev.OrderRejected(ts_ns=ts_ns + 4, **order, reason="no market"),
        ev.OrderPendingCancel(ts_ns=ts_ns + 5, **order),
        ev.OrderPendingReplace(ts_ns=ts_ns + 6, **order),
        ev.OrderCanceled(ts_ns=ts_ns + 7, **order, reason="user"),
        ev.OrderExpired(ts_ns=ts_ns + 8, **order),
        ev.OrderUpdated(ts_ns=ts_ns + 9, **order, quantity=3, price=None),
        ev.OrderCancelRejected(ts_ns=ts_ns + 10, **order, reason="unknown"),
        ev.OrderModifyRejected(ts_ns=ts_ns + 11, **order, reason="unknown"),
        ev.OrderFilled(
            ts_ns=ts_ns + 12,
            **order,
            venue_order_id="V1",
            exec_id="E1",
            side=OrderSide.BUY,
            last_qty=2,
            last_px=10_001,
            fee=Decimal("0.012345"),
            fee_currency="USD",
            liquidity=LiquiditySide.MAKER,
        ),
        ev.OrderTransitionRefused(ts_ns=ts_ns + 13, **order, status="FILLED", event="x"),
        ev.TradingStateChanged(ts_ns=ts_ns + 14, state=TradingState.HALTED, reason="kill"),
        ev.StrategyFailed(ts_ns=ts_ns + 15, strategy_id="ema", error="ZeroDivisionError()"),
        ev.CommandDenied(
            ts_ns=ts_ns + 16,
            client_order_id="O-node-1-1-000001",
            strategy_id="ema",
            reason="ORDER_NOT_OPEN",
            message="closed",
        ),
        ev.ReconciliationCompleted(
            ts_ns=ts_ns + 17,
            venue="FIXSIM",
            epoch=2,
            orders_checked=3,
            adopted=1,
            resolved=1,
            mismatches=[],
        ),
        ev.ReconciliationMismatch(
            ts_ns=ts_ns + 18,
            venue="FIXSIM",
            state=TradingState.HALTED,
            mismatches=["XYZ.SIM position: node 1, venue 2"],
        ),
        ev.InstrumentPaused(
            ts_ns=ts_ns + 19,
            instrument_id="X",
            reason="mid of X moved 5.010% (100.00 to 105.01) within collar_window_ms 1000",
            until_ns=ts_ns + 5_000_000_019,
        ),
        ev.InstrumentResumed(ts_ns=ts_ns + 20, instrument_id="X"),
        ev.StrategyDisabled(
            ts_ns=ts_ns + 21,
            strategy_id="ema",
            reason="strategy ema: 11 fills within fills_window_ms 1000: beyond max_fills 10",
        ),
        ev.StrategyEnabled(ts_ns=ts_ns + 22, strategy_id="ema", who="alice", why="checked"),
        ev.RiskLimitsChanged(
            ts_ns=ts_ns + 23,
            who="alice",
            source="paper.toml",
            changes=["max_order_quantity: 10 -> 20"],
            config='{"max_order_quantity":"20"}',
        ),
        ev.RiskOverrideSet(
            ts_ns=ts_ns + 24,
            override_id="3.1",
            path="instruments.X.collar_pct",
            value="2",
            previous="1",
            who="alice",
            why="news",
            expires_ns=ts_ns + 10**12,
        ),
        ev.RiskOverrideEnded(
            ts_ns=ts_ns + 25,
            override_id="3.1",
            path="instruments.X.collar_pct",
            how="cleared",
            who="bob",
            why="done",
        ),
        ev.VenueHalted(
            ts_ns=ts_ns + 26, venue="FIXSIM", reason="kill by bob: drill", who="bob", why="drill"
        ),
        ev.VenueResumed(ts_ns=ts_ns + 27, venue="FIXSIM", who="bob", why="over"),
        ev.RunManifest(
            ts_ns=ts_ns + 28,
            node_id="node-1",
            epoch=2,
            mode="live",
            version="0.1.0",
            python="3.11.7",
            host="desk-1",
            who="alice",
            config_path="desk/live.toml",
            config_sha256="ab" * 32,
            files={"strategies/ema.py": "cd" * 32},
            git_commit="ef" * 20,
            git_dirty=False,
            untracked=[],
        ),
        ev.JournalTailSetAside(
            ts_ns=ts_ns + 29, first_seq=9, last_seq=9, byte_count=120, problem="hash mismatch"
        ),
        ev.LiveArmed(
            ts_ns=ts_ns + 30,
            token_id="9f" * 16,
            node_id="node-1",
            who="alice",
            why="go live after review",
            armed_at_ns=ts_ns - 60_000_000_000,
            expires_ns=ts_ns + 840_000_000_000,
            config_sha256="ab" * 32,
        ),
        ev.VenueSessionLost(ts_ns=ts_ns + 31, venue="FIXSIM", reason="session dropped"),
        ev.VenueLoggedOn(ts_ns=ts_ns + 32, venue="FIXSIM", logons=2),
        ev.AlertFired(
            ts_ns=ts_ns + 33,
            alert_id="2.1",
            alert="venue-disconnected",
            severity="critical",
            labels={"venue": "FIXSIM"},
            summary="venue FIXSIM: session dropped",
            value=1.0,
            runbook="docs/runbooks/venue-disconnected.md",
        ),
        ev.AlertResolved(
            ts_ns=ts_ns + 34,
            alert_id="2.1",
            alert="venue-disconnected",
            labels={"venue": "FIXSIM"},
            how="VenueLoggedOn",
        ),
        ev.AlertAcknowledged(
            ts_ns=ts_ns + 35, alert_id="2.1", alert="venue-disconnected", who="alice", why="on it"
        ),
        ev.AlertSilenced(
            ts_ns=ts_ns + 36,
            silence_id="2.s1",
            alert="stale-market-data",
            labels={"instrument": "X"},
            until_ns=ts_ns + 1_800_000_000_000,
            who="alice",
            why="exchange holiday",
        ),
        ev.OperatorCommand(
            ts_ns=ts_ns + 37,
            operator="alice",
            roles=["risk_officer"],
            uid=1001,
            pid=4242,
            source="local socket",
            command="kill",
            detail='{"flatten":false}',
            why="drill",
        ),
        ev.OperatorRefused(
            ts_ns=ts_ns + 38,
            operator="carol",
            roles=["viewer"],
            uid=1003,
            pid=4343,
            source="local socket",
            command="resume",
            detail="{}",
            why="",
            reason="carol (viewer) may not resume",
        ),
        ev.ApprovalRequested(
            ts_ns=ts_ns + 39,
            approval_id="3.a1",
            command="resume",
            detail="{}",
            operator="alice",
            roles=["risk_officer"],
            uid=1001,
            pid=4444,
            source="local socket",
            why="drill over",
            expires_ns=ts_ns + 900_000_000_000,
        ),
        ev.ApprovalGranted(
            ts_ns=ts_ns + 40,
            approval_id="3.a1",
            command="resume",
            detail="{}",
            requested_by="alice",
            operator="bob",
            roles=["risk_officer"],
            uid=1002,
            pid=4545,
            source="local socket",
            why="checked the fills",
        ),
        ev.RiskCeilingRaised(
            ts_ns=ts_ns + 41,
            path="max_order_quantity",
            ceiling="50",
            previous="20",
            who="dave, approved by erin",
            why="index rebalance",
        ),
        ev.OperatorAuth(
            ts_ns=ts_ns + 42,
            operator="alice",
            source="console 203.0.113.7 (uid 1005)",
            kind="login",
            outcome="ok",
            why="",
            uid=1005,
            pid=4646,
        ),
        ev.FeedSwitched(
            ts_ns=ts_ns + 43,
            instrument_id="XYZ.SIM",
            from_feed="primary",
            to_feed="backup",
            reason="stale",
            preferred=False,
        ),
        ev.FeedStatus(
            ts_ns=ts_ns + 44,
            instrument_id="XYZ.SIM",
            healthy=False,
            feed="",
            reason="no feed ticked for 1000 ms",
        ),
        ev.LeaderTookOver(
            ts_ns=ts_ns + 45,
            group="desk-1",
            member="nyc-b",
            epoch=8,
            previous_epoch=7,
            previous_holder="nyc-a",
            wait_ms=412,
            reason="lease expired",
        ),
        ev.LeaderStepDown(
            ts_ns=ts_ns + 46,
            group="desk-1",
            member="nyc-b",
            epoch=8,
            reason="switchover",
        ),
        ev.StandbyStatus(
            ts_ns=ts_ns + 47,
            group="desk-1",
            member="nyc-a",
            state="lagging",
            reason="1500 events behind (ha.max_lag_events 1000)",
            lag_events=1500,
            lag_ms=2300,
            heartbeat_age_ms=180,
        ),
        ev.DrDrillCompleted(
            ts_ns=ts_ns + 48,
            ok=False,
            backup_id="full-20261207T063029696Z-000000001234",
            rto_s=71.5,
            rto_target_s=60.0,
            rpo_events=12,
            rpo_s=2.5,
            reconciled=False,
            mismatches=["XYZ.SIM: 3 in the restored node, 4 at the venue"],
            report="/srv/drills/drill.json",
        ),
    ]


def fills(n: int, ts_ns: int = T0) -> list[ev.OrderFilled]:
    """``n`` distinct fills."""
    return [
        ev.OrderFilled(
            ts_ns=ts_ns + i,
            client_order_id=f"O-node-1-1-{i:06d}",
            strategy_id="ema",
            instrument_id="X",
            venue_order_id=f"V{i}",
            exec_id=f"E{i}",
            side=OrderSide.SELL if i % 2 else OrderSide.BUY,
            last_qty=1 + i % 7,
            last_px=10_000 + i,
            fee=Decimal(i) / 1000,
            fee_currency="USD",
            liquidity=LiquiditySide.TAKER,
        )
        for i in range(n)
    ]


def rows(path: Path) -> list[tuple[Any, ...]]:
    """Every stored record, raw, in seq order."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT seq, ts_ns, type, client_order_id, payload, prev_hash, hash "
            "FROM events ORDER BY seq"
        ).fetchall()
    finally:
        db.close()


def execute(path: Path, sql: str, *params: object) -> None:
    """Change the file behind the journal's back (tampering, simulated damage)."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(sql, params)
    finally:
        db.close()


# -- hypothesis ----------------------------------------------------------------------

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _for_type(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.IntType):
        return _INT64
    if isinstance(t, mi.StrType):
        return st.text(max_size=20)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False)  # NaN != NaN: a round trip could not compare
    if isinstance(t, mi.DecimalType):
        return st.decimals(allow_nan=False, allow_infinity=False, places=8)
    if isinstance(t, mi.EnumType):
        members: list[enum.Enum] = list(t.cls)
        return st.sampled_from(members)
    if isinstance(t, mi.UnionType):
        return st.one_of([_for_type(x) for x in t.types])
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.ListType):
        return st.lists(_for_type(t.item_type), max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(_for_type(t.key_type), _for_type(t.value_type), max_size=3)
    raise NotImplementedError(t)


def _for_event(cls: type[Any]) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {f.name: _for_type(f.type) for f in info.fields}
    fields["ts_ns"] = st.integers(min_value=0, max_value=2**63 - 1)
    return st.builds(cls, **fields)


any_event: st.SearchStrategy[Any] = st.one_of([_for_event(cls) for cls in EVENT_TYPES])

__all__ = ["EVENT_TYPES", "T0", "any_event", "execute", "fills", "one_of_each", "rows"]

"""What a snapshot holds: the node's whole recoverable state, as one msgpack document.

``capture`` encodes it from a running kernel; ``restore`` puts it back into a new
kernel before the journal tail is replayed on top. Prices and quantities stay raw
integers; notionals, cash and exact averages (``Fraction``), which can outgrow 64
bits, are stored as decimal strings (``"123"``, ``"7/3"``).

A snapshot holds every open order and the last ``RECENT_ORDERS`` orders (so late
reports about just-closed orders still find them), and the last ``RECENT_EXEC_IDS``
ExecIDs: recovery asks the venue to resend only what followed the snapshot, so
older fills cannot come back. Taking one costs the same at any age of the node.
``SNAPSHOT_VERSION`` changes when the layout does; a snapshot of another version is
not used (recovery reports it and replays the whole journal instead, which the
journal always holds). Version 2 keys ExecIDs by venue (``[venue, exec_id]``):
version 1 held bare ExecIDs, which are unique only per venue. A field added since
(``alerts``, ``silences``, ...) has a default, so an older snapshot of the same version
still loads.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import msgspec
import structlog

from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingState
from bastion.model.orders import Order
from bastion.monitor.alerts.book import FiringAlert, SilenceState
from bastion.portfolio.position import Exact, Position
from bastion.recovery.node import RecoverableNode
from bastion.risk.gate import CONFIGURED_STATE_REASON
from bastion.risk.overrides import Override
from bastion.venues.base import VenueMark

SNAPSHOT_VERSION: Final = 2
RECENT_ORDERS: Final = 1000
RECENT_EXEC_IDS: Final = 10_000

log = structlog.get_logger("bastion.recovery")


class OrderState(msgspec.Struct, array_like=True, frozen=True, gc=False):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    venue: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: int
    price: int | None
    reduce_only: bool
    ts_init: int
    ts_last: int
    status: OrderStatus
    previous_status: OrderStatus
    filled_qty: int
    filled_notional: str
    venue_order_id: str


class PositionState(msgspec.Struct, array_like=True, frozen=True, gc=False):
    strategy_id: str
    instrument_id: str
    quantity: int
    cost: str
    realized: str
    fees: str = "0"  # older snapshots: none recorded


class NodeSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    version: int = SNAPSHOT_VERSION
    node_id: str
    epoch: int
    ts_ns: int
    orders: list[OrderState]
    exec_ids: list[tuple[str, str]]  # (venue, exec_id), oldest first
    positions: list[PositionState]
    cash_raw: dict[str, str]
    fees: Decimal
    n_fills: int
    trading_state: TradingState
    trading_reason: str
    strategies: dict[str, bytes]
    venues: list[VenueMark] = msgspec.field(default_factory=list)
    # strategies the risk gate disabled, and why (older snapshots: none)
    disabled_strategies: dict[str, str] = msgspec.field(default_factory=dict)
    # operator overrides of risk limits still running, and the [risk] last journaled
    risk_overrides: list[Override] = msgspec.field(default_factory=list)
    risk_config: str | None = None
    # the post-trade limits' trading day: starting PnL, peak, limits crossed
    post_trade: dict[str, Any] = msgspec.field(default_factory=dict)
    # fees per strategy (the risk accounts' cash usage; older snapshots: none)
    strategy_fees: dict[str, Decimal] = msgspec.field(default_factory=dict)
    # venues the operator halted, and why (``kill --venue``; older snapshots: none)
    halted_venues: dict[str, str] = msgspec.field(default_factory=dict)
    # the alerts firing and the silences running (older snapshots: none)
    alerts: list[FiringAlert] = msgspec.field(default_factory=list)
    silences: list[SilenceState] = msgspec.field(default_factory=list)


class _Versioned(msgspec.Struct):
    """Only the version of a snapshot: read first, so a snapshot of another layout is
    reported as such rather than as undecodable."""

    version: int = 1


_encode = msgspec.msgpack.Encoder().encode
_decoder = msgspec.msgpack.Decoder(NodeSnapshot)
_version_decoder = msgspec.msgpack.Decoder(_Versioned)


class SnapshotError(Exception):
    """A stored snapshot that cannot be used (another version, or undecodable)."""


def capture(kernel: RecoverableNode, *, node_id: str, epoch: int) -> bytes:
    """The kernel's state, encoded."""
    return _encode(snapshot_of(kernel, node_id=node_id, epoch=epoch))


def snapshot_of(
    kernel: RecoverableNode,
    *,
    node_id: str,
    epoch: int,
    recent_orders: int | None = None,
    recent_exec_ids: int | None = None,
) -> NodeSnapshot:
    """The kernel's state (``capture`` encodes it). A standby handing its state over
    keeps every order and ExecID (``recent_orders=n_orders``): nothing is lost that a
    replay of the whole journal would have rebuilt. None: ``RECENT_ORDERS``,
    ``RECENT_EXEC_IDS``."""
    positions, cash_raw, fees, n_fills = kernel.portfolio.export_state()
    marks = [venue.recovery_mark() for venue in kernel.venues.values()]
    return NodeSnapshot(
        node_id=node_id,
        epoch=epoch,
        ts_ns=kernel.clock.timestamp_ns(),
        orders=[
            order_state(o)
            for o in kernel.execution.recent_orders(
                RECENT_ORDERS if recent_orders is None else recent_orders
            )
        ],
        exec_ids=kernel.execution.recent_exec_ids(
            RECENT_EXEC_IDS if recent_exec_ids is None else recent_exec_ids
        ),
        positions=[position_state(p) for p in positions],
        cash_raw={iid: str(raw) for iid, raw in cash_raw.items()},
        fees=fees,
        n_fills=n_fills,
        trading_state=kernel.risk.state,
        trading_reason=kernel.risk.state_reason,
        strategies=kernel.strategies.save_states(),
        venues=[mark for mark in marks if mark is not None],
        disabled_strategies=dict(kernel.risk.disabled),
        risk_overrides=list(kernel.risk_overrides.active.values()),
        risk_config=kernel.risk_overrides.journaled_config,
        post_trade=kernel.risk.post_trade_state(),
        strategy_fees=dict(kernel.portfolio.strategy_fees),
        halted_venues={
            name: venue.halted for name, venue in kernel.venues.items() if venue.halted is not None
        },
        alerts=sorted(kernel.alerts.firing.values(), key=lambda a: (a.fired_ns, a.alert_id)),
        silences=kernel.alerts.running_silences(kernel.clock.timestamp_ns()),
    )


def decode(payload: bytes) -> NodeSnapshot:
    """A stored snapshot; ``SnapshotError`` if it is of another version or damaged."""
    try:
        version = _version_decoder.decode(payload).version
        if version != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"snapshot version {version}, this bastion reads {SNAPSHOT_VERSION}"
            )
        return _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SnapshotError(f"snapshot does not decode: {error}") from error


def restore(kernel: RecoverableNode, snapshot: NodeSnapshot) -> None:
    """Put a snapshot's state into a freshly built kernel (before anything runs)."""
    kernel.execution.restore((order_from_state(s) for s in snapshot.orders), snapshot.exec_ids)
    positions = [position_from_state(s) for s in snapshot.positions]
    cash_raw = {iid: int(raw) for iid, raw in snapshot.cash_raw.items()}
    kernel.portfolio.restore_state(
        positions, cash_raw, snapshot.fees, snapshot.n_fills, snapshot.strategy_fees
    )
    if snapshot.trading_reason != CONFIGURED_STATE_REASON:  # else the config's state applies
        kernel.restore_trading_state(snapshot.trading_state, snapshot.trading_reason)
    kernel.strategies.restored_states = dict(snapshot.strategies)
    if snapshot.disabled_strategies:
        kernel.risk.restore_disabled(snapshot.disabled_strategies)
    # applied once the journal tail is replayed too (``recover_state``)
    kernel.risk_overrides.active = {o.id: o for o in snapshot.risk_overrides}
    kernel.risk_overrides.journaled_config = snapshot.risk_config
    kernel.risk.restore_post_trade(snapshot.post_trade)
    for mark in snapshot.venues:
        venue = kernel.venues.get(mark.venue)
        if venue is not None:
            venue.restore_mark(mark)
    restore_venue_halts(kernel, snapshot.halted_venues)
    kernel.alerts.restore(snapshot.alerts, snapshot.silences)


def adopt_unjournaled(kernel: RecoverableNode, snapshot: NodeSnapshot) -> None:
    """Take from a newer snapshot what no journal event carries: the strategies' saved
    states, the post-trade limits' trading day and the venues' recovery marks. A warm
    standby (``bastion.ha.tail``) does this as each snapshot appears, so its state stays
    what a restart from that snapshot would rebuild."""
    kernel.strategies.restored_states = dict(snapshot.strategies)
    kernel.risk.restore_post_trade(snapshot.post_trade)
    for mark in snapshot.venues:
        venue = kernel.venues.get(mark.venue)
        if venue is not None:
            venue.restore_mark(mark)


def restore_venue_halts(kernel: RecoverableNode, halted: dict[str, str]) -> None:
    """Halt exactly the node's venues named in ``halted`` (name: reason), as the journal
    last recorded them, before any order can be sent (a name the node has no venue for
    is left to the caller to report)."""
    for name, venue in kernel.venues.items():
        reason = halted.get(name)
        if reason is None:
            venue.resume()
        elif venue.halted != reason:
            log.warning("venue_halt_restored", venue=name, reason=reason)
            venue.halt(reason)


def order_state(o: Order) -> OrderState:
    return OrderState(
        o.client_order_id,
        o.strategy_id,
        o.instrument_id,
        o.venue,
        o.side,
        o.order_type,
        o.time_in_force,
        o.quantity,
        o.price,
        o.reduce_only,
        o.ts_init,
        o.ts_last,
        o.status,
        o.previous_status,
        o.filled_qty,
        str(o.filled_notional),
        o.venue_order_id,
    )


def order_from_state(s: OrderState) -> Order:
    order = Order(
        client_order_id=s.client_order_id,
        strategy_id=s.strategy_id,
        instrument_id=s.instrument_id,
        venue=s.venue,
        side=s.side,
        order_type=s.order_type,
        quantity=s.quantity,
        price=s.price,
        time_in_force=s.time_in_force,
        reduce_only=s.reduce_only,
        ts_init=s.ts_init,
    )
    order.ts_last = s.ts_last
    order.status = s.status
    order.previous_status = s.previous_status
    order.filled_qty = s.filled_qty
    order.filled_notional = int(s.filled_notional)
    order.venue_order_id = s.venue_order_id
    return order


def position_state(p: Position) -> PositionState:
    return PositionState(
        p.strategy_id, p.instrument_id, p.quantity, str(p.cost), str(p.realized), str(p.fees)
    )


def position_from_state(s: PositionState) -> Position:
    position = Position(s.strategy_id, s.instrument_id)
    position.quantity = s.quantity
    position.cost = _exact(s.cost)
    position.realized = _exact(s.realized)
    position.fees = Decimal(s.fees)
    return position


def _exact(text: str) -> Exact:
    value = Fraction(text)
    return value.numerator if value.denominator == 1 else value

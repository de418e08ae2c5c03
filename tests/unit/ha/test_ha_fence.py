"""The leader's fence on the order path: nothing leaves for a venue once its deadline
passed or it was revoked; a denial is an event with a reason, and the node is told."""

from __future__ import annotations

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.ha.fence import LEASE_LOST, Fence, monotonic_ns
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    OrderAccepted,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderModifyRejected,
)
from bastion.model.orders import Order
from bastion.venues.fix.config import (
    CANCEL_ORDERS_ON_DISCONNECT,
    FENCING_EPOCH,
    CancelOnDisconnect,
    FixVenueConfig,
)
from kit.venues import RecordingVenue

T0 = 1_704_205_800_000_000_000


class FakeMonotonic:
    def __init__(self) -> None:
        self.ns = 1_000

    def __call__(self) -> int:
        return self.ns


class Guarded:
    """An execution engine over a recording venue, fenced by a fence on a fake clock."""

    def __init__(self, deadline_ns: int = 2_000) -> None:
        self.now = FakeMonotonic()
        self.fence = Fence(7, deadline_ns, now_ns=self.now)
        self.venue = RecordingVenue()
        self.bus = MessageBus()
        self.clock = SimClock(T0)
        self.halts: list[str] = []
        self.engine = ExecutionEngine(
            bus=self.bus,
            clock=self.clock,
            ids=ClientOrderIdGenerator("node", 7),
            venues={"SIM": self.venue},
            fence=self.fence,
            on_fenced=self.halts.append,
        )
        self.published: list[OrderEvent] = []
        for event_type in ORDER_EVENT_TYPES:
            self.bus.subscribe(event_type, self.published.append)

    def new(self) -> Order:
        return self.engine.create_order(
            strategy_id="s1",
            instrument_id="XYZ.SIM",
            venue="SIM",
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            quantity=10,
            price=10_000,
        )

    def accept(self, order: Order) -> None:
        self.engine.process(
            OrderAccepted(
                ts_ns=T0,
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                venue_order_id="V1",
            )
        )


def test_fence_allows_up_to_its_deadline_and_not_at_it() -> None:
    now = FakeMonotonic()
    fence = Fence(3, 2_000, now_ns=now)
    now.ns = 1_999
    assert fence.may_send() and fence.refusal() is None
    now.ns = 2_000
    assert not fence.may_send()
    assert "deadline passed" in (fence.refusal() or "")


def test_when_revoked_then_no_renewal_moves_the_deadline_again() -> None:
    now = FakeMonotonic()
    fence = Fence(3, 2_000, now_ns=now)
    assert fence.extend(3_000) and not fence.extend(2_500)
    fence.revoke("deposed: epoch 4 holds it")
    assert not fence.extend(10**18)
    assert not fence.may_send()
    assert fence.refusal() == "lease lost (epoch 3): deposed: epoch 4 holds it"


def test_when_before_deadline_then_orders_cancels_and_amends_reach_the_venue() -> None:
    g = Guarded()
    order = g.new()
    g.engine.submit(order)
    g.accept(order)
    assert g.engine.modify(order, 5, 10_000)
    assert g.venue.submitted == [order.client_order_id] and g.venue.modified
    assert not g.halts and g.engine.fenced == 0


def test_when_deadline_passed_then_order_denied_with_lease_lost_and_node_told() -> None:
    g = Guarded()
    g.now.ns = 2_000
    order = g.new()
    g.engine.submit(order)
    assert g.venue.submitted == []
    denied = [e for e in g.published if isinstance(e, OrderDenied)]
    assert len(denied) == 1 and denied[0].reason == LEASE_LOST
    assert "epoch 7" in denied[0].message
    assert order.status is OrderStatus.DENIED
    assert len(g.halts) == 1 and g.engine.fenced == 1


def test_when_deadline_passed_then_cancel_and_amend_refused_as_events() -> None:
    g = Guarded()
    order = g.new()
    g.engine.submit(order)
    g.accept(order)
    g.fence.revoke("deposed")
    assert g.engine.modify(order, 5, 10_000)
    assert g.engine.cancel(order)
    assert g.venue.canceled == [] and g.venue.modified == []
    kinds = [type(e) for e in g.published[-4:]]
    assert OrderModifyRejected in kinds and OrderCancelRejected in kinds
    assert order.status is OrderStatus.ACCEPTED
    assert not g.engine.resend_cancel(order)
    assert len(g.halts) == 2


def test_the_real_clock_is_monotonic_and_counts_nanoseconds() -> None:
    a = monotonic_ns()
    b = monotonic_ns()
    assert isinstance(a, int) and b >= a


def test_when_node_runs_ha_then_its_fix_logon_carries_the_fencing_epoch() -> None:
    config = FixVenueConfig(
        port=9876,
        sender_comp_id="NODE",
        target_comp_id="VENUE",
        cancel_on_disconnect=CancelOnDisconnect.VENUE,
    )
    assert config.settings(fencing_epoch=12).logon_fields == (
        (CANCEL_ORDERS_ON_DISCONNECT, "Y"),
        (FENCING_EPOCH, "12"),
    )
    assert config.settings().logon_fields == ((CANCEL_ORDERS_ON_DISCONNECT, "Y"),)

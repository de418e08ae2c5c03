"""The execution engine (OMS): applying venue events, duplicates, refusals and order ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderTransitionRefused,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import VenueAdapter
from bastion.venues.sim.config import SimVenueConfig
from bastion.venues.sim.venue import SimVenue
from kit.venues import RecordingVenue

BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = 1_704_205_800_000_000_000
IID = "XYZ.SIM"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class Oms:
    """An execution engine over a recording venue, with every published event collected."""

    def __init__(self, venue: VenueAdapter | None = None, epoch: int = 1) -> None:
        self.bus = MessageBus()
        self.clock = SimClock(T0)
        self.venue = venue if venue is not None else RecordingVenue()
        self.journal: list[object] = []
        self.engine = ExecutionEngine(
            bus=self.bus,
            clock=self.clock,
            ids=ClientOrderIdGenerator("node", epoch),
            venues={"SIM": self.venue},
            journal=self.journal.append,
        )
        self.published: list[OrderEvent] = []
        for event_type in ORDER_EVENT_TYPES:
            self.bus.subscribe(event_type, self.published.append)

    def new(self, side: OrderSide = BUY, qty: int = 10, price: int | None = 10_000) -> Order:
        return self.engine.create_order(
            strategy_id="s1",
            instrument_id=IID,
            venue="SIM",
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=qty,
            price=price,
        )

    def accepted(self, **kwargs: object) -> Order:
        """A new order, submitted and acknowledged by the venue."""
        order = self.new(**kwargs)  # type: ignore[arg-type]
        self.engine.submit(order)
        self.engine.process(accepted(order))
        return order


def _ids(order: Order) -> dict[str, str]:
    return {
        "client_order_id": order.client_order_id,
        "strategy_id": order.strategy_id,
        "instrument_id": order.instrument_id,
    }


def accepted(order: Order) -> OrderAccepted:
    return OrderAccepted(ts_ns=T0 + 1, venue_order_id="SIM-1", **_ids(order))


def fill(order: Order, exec_id: str, qty: int, px: int = 10_000) -> OrderFilled:
    return OrderFilled(
        ts_ns=T0 + 2,
        venue_order_id="SIM-1",
        exec_id=exec_id,
        side=order.side,
        last_qty=qty,
        last_px=px,
        fee=Decimal(0),
        fee_currency="USD",
        liquidity=LiquiditySide.TAKER,
        **_ids(order),
    )


def snapshot(order: Order) -> dict[str, object]:
    return {name: getattr(order, name) for name in Order.__slots__}


def test_when_same_exec_id_reported_twice_then_applied_once_and_counted() -> None:
    """A repeated exec_id is dropped: one fill applied, one published, one duplicate counted."""
    oms = Oms()
    order = oms.accepted()
    oms.engine.process(fill(order, "E-1", 3))
    oms.engine.process(fill(order, "E-1", 3))
    assert order.filled_qty == 3
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert oms.engine.duplicate_fills == 1
    assert [e.exec_id for e in oms.published if isinstance(e, OrderFilled)] == ["E-1"]


def test_when_distinct_exec_ids_then_each_fill_applied() -> None:
    """Fills with different exec ids all apply, up to FILLED."""
    oms = Oms()
    order = oms.accepted()
    for n, qty in enumerate([3, 3, 4]):
        oms.engine.process(fill(order, f"E-{n}", qty))
    assert order.status is OrderStatus.FILLED
    assert oms.engine.duplicate_fills == 0
    assert oms.engine.open_orders() == []


def test_when_event_for_unknown_order_then_counted_and_ignored() -> None:
    """An event for an order the engine never created is counted, not raised, not published."""
    oms = Oms()
    ghost = OrderCanceled(
        ts_ns=T0, client_order_id="other-9-9", strategy_id="s1", instrument_id=IID
    )
    oms.engine.process(ghost)
    assert oms.engine.unknown_events == 1
    assert oms.published == []
    assert oms.journal == []


def test_when_venue_event_illegal_then_transition_refused_published_and_order_unchanged() -> None:
    """A reject for an accepted order is refused: OrderTransitionRefused, order untouched."""
    oms = Oms()
    order = oms.accepted()
    before = snapshot(order)
    oms.published.clear()
    oms.engine.process(OrderRejected(ts_ns=T0 + 5, reason="late", **_ids(order)))
    assert snapshot(order) == before
    assert oms.engine.refused_transitions == 1
    (refused,) = oms.published
    assert isinstance(refused, OrderTransitionRefused)
    assert (refused.client_order_id, refused.status, refused.event) == (
        order.client_order_id,
        "ACCEPTED",
        "OrderRejected",
    )
    assert refused.ts_ns == T0 + 5
    assert oms.journal[-1] == refused


def test_when_overfill_reported_then_refused_and_exec_id_not_consumed() -> None:
    """An overfill is refused (not applied) and does not count as a duplicate later."""
    oms = Oms()
    order = oms.accepted()
    oms.engine.process(fill(order, "E-1", 11))
    assert order.filled_qty == 0
    assert oms.engine.refused_transitions == 1
    oms.engine.process(fill(order, "E-1", 10))
    assert order.status is OrderStatus.FILLED
    assert oms.engine.duplicate_fills == 0


def test_when_fill_arrives_after_cancel_request_then_applied() -> None:
    """Fills after a cancel request are applied; the final cancel closes the order."""
    oms = Oms()
    order = oms.accepted()
    assert oms.engine.cancel(order) is True
    assert oms.venue.canceled == [order.client_order_id]
    assert order.status is OrderStatus.PENDING_CANCEL
    oms.engine.process(fill(order, "E-1", 4))
    assert order.filled_qty == 4
    assert order.status is OrderStatus.PENDING_CANCEL
    assert oms.engine.open_quantity("s1", IID) == 6
    oms.engine.process(OrderCanceled(ts_ns=T0 + 9, **_ids(order)))
    assert order.status is OrderStatus.CANCELED
    assert oms.engine.open_orders() == []
    assert oms.engine.refused_transitions == 0


def test_when_cancel_of_terminal_order_then_false_and_venue_not_asked() -> None:
    """Canceling a filled order returns False, publishes a refusal, and sends nothing."""
    oms = Oms()
    order = oms.accepted()
    oms.engine.process(fill(order, "E-1", 10))
    assert oms.engine.cancel(order) is False
    assert oms.venue.canceled == []
    assert isinstance(oms.published[-1], OrderTransitionRefused)


def test_when_order_not_initialized_is_submitted_again_then_venue_not_asked() -> None:
    """Re-submitting an order that already filled is refused and never reaches the venue."""
    oms = Oms()
    order = oms.accepted()
    oms.engine.process(fill(order, "E-1", 10))
    assert oms.venue.submitted == [order.client_order_id]
    oms.engine.submit(order)
    assert isinstance(oms.published[-1], OrderTransitionRefused)
    assert oms.venue.submitted == [order.client_order_id]
    assert oms.engine.open_orders() == []


def test_when_orders_work_then_open_quantity_is_signed_leaves() -> None:
    """open_quantity sums leaves of open orders: buys positive, sells negative."""
    oms = Oms()
    buy = oms.accepted(side=BUY, qty=10)
    oms.accepted(side=SELL, qty=4)
    oms.engine.process(fill(buy, "E-1", 3))
    assert oms.engine.open_quantity("s1", IID) == 7 - 4
    assert oms.engine.open_quantity("s2", IID) == 0
    assert len(oms.engine.open_orders("s1", IID)) == 2


def test_when_order_created_then_initialized_event_journaled_and_published() -> None:
    """create_order records OrderInitialized with the order's fields."""
    oms = Oms()
    order = oms.new(side=SELL, qty=7, price=9_900)
    (event,) = oms.published
    assert type(event).__name__ == "OrderInitialized"
    assert (event.client_order_id, event.quantity, event.price, event.side) == (  # type: ignore[attr-defined]
        order.client_order_id,
        7,
        9_900,
        SELL,
    )
    assert oms.journal == [event]
    assert oms.engine.order(order.client_order_id) is order


def test_when_modified_before_ack_on_sim_venue_then_order_ends_accepted() -> None:
    """Submit then modify before the venue acks: after the ack and the update it is ACCEPTED."""
    clock = SimClock(T0)
    venue = SimVenue(config=SimVenueConfig(), clock=clock, instruments={IID: INSTRUMENT})
    oms = Oms(venue=venue)
    venue.on_quote(QuoteTick(IID, T0, 9_999, 10_001, 10, 10))
    order = oms.new(qty=5, price=9_990)
    oms.engine.submit(order)
    assert oms.engine.modify(order, 6, 9_995) is True
    venue.flush()
    assert (order.quantity, order.price) == (6, 9_995)
    assert order.venue_order_id == "SIM-1"
    assert order.status is OrderStatus.ACCEPTED


def test_when_ids_generated_then_node_epoch_sequence() -> None:
    """Ids read node-epoch-seq, counting from 1 (or from start + 1)."""
    ids = ClientOrderIdGenerator("node-a", 7)
    assert [ids.next() for _ in range(3)] == ["node-a-7-1", "node-a-7-2", "node-a-7-3"]
    assert ids.count == 3
    resumed = ClientOrderIdGenerator("node-a", 7, start=41)
    assert resumed.next() == "node-a-7-42"


def test_when_same_node_and_epoch_then_ids_deterministic_and_unique() -> None:
    """Two generators with the same node and epoch give the same, duplicate-free sequence."""
    first = ClientOrderIdGenerator("n1", 3)
    second = ClientOrderIdGenerator("n1", 3)
    a = [first.next() for _ in range(500)]
    b = [second.next() for _ in range(500)]
    assert a == b
    assert len(set(a)) == 500


@pytest.mark.parametrize(("epoch_a", "epoch_b"), [(1, 11), (1, 2), (12, 1), (0, 10)])
def test_when_epochs_differ_then_ids_never_collide(epoch_a: int, epoch_b: int) -> None:
    """Ids from two epochs of one node share nothing, even where digits could run together."""
    a = ClientOrderIdGenerator("node", epoch_a)
    b = ClientOrderIdGenerator("node", epoch_b)
    ids_a = {a.next() for _ in range(300)}
    ids_b = {b.next() for _ in range(300)}
    assert ids_a.isdisjoint(ids_b)


def test_when_engines_of_two_epochs_create_orders_then_ids_differ() -> None:
    """The engine uses its generator: a restarted node (new epoch) never reuses an id."""
    before = Oms(epoch=1)
    after = Oms(epoch=2)
    ids_before = {before.new().client_order_id for _ in range(20)}
    ids_after = {after.new().client_order_id for _ in range(20)}
    assert ids_before.isdisjoint(ids_after)
    assert "node-2-1" in ids_after


@pytest.mark.parametrize("node_id", ["", "-lead", "has space", "x" * 65, "semi;colon"])
def test_when_node_id_invalid_then_value_error(node_id: str) -> None:
    """Node ids must be 1-64 letters, digits, '.', '_' or '-' and start alphanumeric."""
    with pytest.raises(ValueError, match="node id"):
        ClientOrderIdGenerator(node_id, 1)


def test_when_epoch_negative_then_value_error() -> None:
    """A negative epoch is refused."""
    with pytest.raises(ValueError, match="epoch"):
        ClientOrderIdGenerator("node", -1)

"""FIX reconciliation with one venue never takes its word about another venue's
orders or positions: an order the node holds at venue A that venue B lists is a
mismatch, left as it is; a position B reports in A's instrument is a mismatch too."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.fix.codec import FixMessage
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.base import ReconcileContext
from bastion.venues.fix.reconcile import reconcile
from kit.venues import RecordingVenue

T0 = 1_704_205_800_000_000_000
X = Instrument(
    id="X.A", venue="A", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
Y = Instrument(
    id="Y.B", venue="B", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class VenueB:
    """FIX venue B as reconciliation sees it: it lists ``listed`` open and reports
    ``net`` positions."""

    def __init__(self, listed: list[str], net: dict[str, Decimal]) -> None:
        self.name = "B"
        self.instruments = {Y.id: Y}
        self.listed = listed
        self.net = net
        self.venue_cl_ord_ids: dict[str, str] = {}

    async def mass_status(self, timeout_s: float = 5.0) -> list[FixMessage]:
        return [
            FixMessage.of("8", (37, "B-1"), (11, coid), (150, "I"), (39, "0"), (14, "0"))
            for coid in self.listed
        ]

    async def order_status(self, order: Order, timeout_s: float = 5.0) -> FixMessage:
        raise AssertionError(f"no order of the node is open at B, asked for {order}")

    async def positions(self, timeout_s: float = 5.0) -> dict[str, Decimal]:
        return self.net

    def set_venue_cl_ord_id(self, client_order_id: str, cl_ord_id: str) -> None:
        self.venue_cl_ord_ids[client_order_id] = cl_ord_id

    def register(self, order: Order) -> None:
        raise AssertionError("nothing to adopt")


def test_when_a_venue_lists_an_order_held_at_another_venue_then_mismatch_and_untouched() -> None:
    clock = SimClock(T0)
    engine = ExecutionEngine(
        bus=MessageBus(),
        clock=clock,
        ids=ClientOrderIdGenerator("node", 1),
        venues={"A": RecordingVenue("A"), "B": RecordingVenue("B")},
    )
    at_a = engine.create_order(
        strategy_id="s",
        instrument_id=X.id,
        venue="A",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=100,
    )
    engine.submit(at_a)
    venue = VenueB([at_a.client_order_id], {X.id: Decimal(3)})
    context = ReconcileContext(
        orders=engine,
        net_quantity=lambda iid: 0,
        clock=clock,
        instruments={X.id: X, Y.id: Y},
        order_id_prefix="node-",
        timeout_s=1.0,
        compare_positions=True,
        position_tolerance=Decimal(0),
    )
    report = asyncio.run(reconcile(venue, context))
    assert report.mismatches == [
        f"venue lists open order {at_a.client_order_id}, which the node holds at venue A",
        "X.A: venue position 3, traded by the node at venue A",
    ]
    assert report.node_wide  # another venue's order and position: the node halts
    assert at_a.status is OrderStatus.SUBMITTED  # B's word never accepted it
    assert venue.venue_cl_ord_ids == {}
    assert report.resolved == 0 and report.adopted == 0

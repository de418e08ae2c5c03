"""SimVenue.restore: an order open before a restart rests again, filled and in priority."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bastion.clock import SimClock
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import OrderEvent, OrderExpired, OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.sim.config import SimVenueConfig
from bastion.venues.sim.venue import SimVenue

NS_PER_DAY = 86_400_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
MIDNIGHT = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
IID = "XYZ.SIM"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


def venue_at(ts_ns: int) -> tuple[SimVenue, SimClock, list[OrderEvent]]:
    clock = SimClock(ts_ns)
    venue = SimVenue(config=SimVenueConfig(), clock=clock, instruments={IID: INSTRUMENT})
    events: list[OrderEvent] = []
    venue.bind(events.append)
    return venue, clock, events


def order(
    coid: str, qty: int, price: int, filled: int = 0, tif: TimeInForce = TimeInForce.GTC
) -> Order:
    o = Order(
        client_order_id=coid,
        strategy_id="acct",
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=qty,
        price=price,
        time_in_force=tif,
    )
    o.filled_qty = filled
    o.venue_order_id = f"V-{coid}"
    return o


def test_when_orders_restored_then_they_fill_only_their_rest_in_restore_order() -> None:
    """Restored orders keep their fills and rank in restore order, ahead of new orders."""
    venue, _, events = venue_at(T0)
    venue.restore(order("old", 10, 10_000, filled=4), arrived_ns=T0)
    venue.restore(order("second", 5, 10_000), arrived_ns=T0)
    venue.submit(order("new", 5, 10_000))
    venue.flush()
    events.clear()
    venue.on_quote(QuoteTick(IID, T0, 9_999, 10_000, 10, 8))
    fills = [
        (e.client_order_id, e.last_qty, e.venue_order_id)
        for e in events
        if isinstance(e, OrderFilled)
    ]
    assert len(fills) == len(events)
    assert fills == [("old", 6, "V-old"), ("second", 2, "V-second")]
    assert asyncio.run(venue.open_order_ids()) == {"second", "new"}


def test_when_day_order_restored_after_its_midnight_then_it_expires_at_that_midnight() -> None:
    """A DAY order from yesterday expires as soon as the clock runs, stamped at its midnight."""
    venue, clock, events = venue_at(MIDNIGHT + 5)
    venue.restore(order("day", 5, 10_000, tif=TimeInForce.DAY), arrived_ns=T0)
    clock.advance_to(MIDNIGHT + 5)
    assert [(type(e), e.ts_ns) for e in events] == [(OrderExpired, MIDNIGHT)]


@pytest.mark.parametrize(
    ("coid", "filled", "instrument_id", "message"),
    [
        ("a", 5, IID, "nothing left"),
        ("b", 0, "ABC.OTHER", "not traded"),
    ],
)
def test_when_restore_is_impossible_then_value_error(
    coid: str, filled: int, instrument_id: str, message: str
) -> None:
    """A fully filled order or an unknown instrument cannot be restored."""
    venue, _, _ = venue_at(T0)
    o = order(coid, 5, 10_000, filled=filled)
    o.instrument_id = instrument_id
    with pytest.raises(ValueError, match=message):
        venue.restore(o, arrived_ns=T0)


def test_when_order_restored_twice_then_value_error() -> None:
    """Restoring an id that is already open is refused."""
    venue, _, _ = venue_at(T0)
    venue.restore(order("x", 5, 10_000), arrived_ns=T0)
    with pytest.raises(ValueError, match="already open"):
        venue.restore(order("x", 5, 10_000), arrived_ns=T0)

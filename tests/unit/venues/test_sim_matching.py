"""The simulated venue, driven directly: matching, liquidity, modify, expiry, fees, latency."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bastion.clock import SimClock
from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.sim.config import SimVenueConfig
from bastion.venues.sim.venue import SimVenue

BUY, SELL = OrderSide.BUY, OrderSide.SELL
GTC, IOC, DAY = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.DAY
MAKER, TAKER = LiquiditySide.MAKER, LiquiditySide.TAKER
NS_PER_DAY = 86_400_000_000_000
NS_PER_MS = 1_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
MIDNIGHT = (T0 // NS_PER_DAY + 1) * NS_PER_DAY  # 2024-01-03T00:00:00Z
IID = "XYZ.SIM"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
OTHER = Instrument(
    id="ABC.OTHER",
    venue="OTHER",
    tick_size=Decimal("0.01"),
    lot_size=Decimal(1),
    quote_currency="USD",
)


class Desk:
    """A SimVenue on a SimClock with its events collected in a list."""

    def __init__(self, **config: object) -> None:
        self.clock = SimClock(T0)
        self.venue = SimVenue(
            config=SimVenueConfig(**config),  # type: ignore[arg-type]
            clock=self.clock,
            instruments={IID: INSTRUMENT, OTHER.id: OTHER},
        )
        self.events: list[OrderEvent] = []
        self.venue.bind(self.events.append)
        self._seq = 0

    def order(
        self,
        side: OrderSide,
        qty: int,
        price: int | None = None,
        tif: TimeInForce = GTC,
        instrument_id: str = IID,
    ) -> Order:
        self._seq += 1
        return Order(
            client_order_id=f"node-1-{self._seq}",
            strategy_id="s1",
            instrument_id=instrument_id,
            venue="SIM",
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=qty,
            price=price,
            time_in_force=tif,
        )

    def send(self, *args: object, **kwargs: object) -> Order:
        """Submit a new order and flush the zero-latency inbox."""
        order = self.order(*args, **kwargs)  # type: ignore[arg-type]
        self.venue.submit(order)
        self.venue.flush()
        return order

    def quote(
        self, bid: int, ask: int, bid_size: int = 10, ask_size: int = 10, ts_ns: int | None = None
    ) -> None:
        ts = self.clock.timestamp_ns() if ts_ns is None else ts_ns
        self.clock.advance_to(ts)
        self.venue.on_quote(QuoteTick(IID, ts, bid, ask, bid_size, ask_size))

    def take(self) -> list[OrderEvent]:
        """The events emitted since the last call."""
        events, self.events[:] = list(self.events), []
        return events

    def fills(self) -> list[tuple[str, int, int, LiquiditySide]]:
        return [
            (e.client_order_id, e.last_qty, e.last_px, e.liquidity)
            for e in self.take()
            if isinstance(e, OrderFilled)
        ]

    def open_ids(self) -> set[str]:
        return asyncio.run(self.venue.open_order_ids())


def kinds(events: list[OrderEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_when_market_buy_exceeds_ask_size_then_fills_at_ask_and_remainder_canceled() -> None:
    """A market buy of 5 against 3 offered fills 3 at the ask; the other 2 are canceled."""
    desk = Desk()
    desk.quote(9_999, 10_001, bid_size=5, ask_size=3)
    order = desk.send(BUY, 5)
    events = desk.take()
    assert kinds(events) == ["OrderAccepted", "OrderFilled", "OrderCanceled"]
    fill = events[1]
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.last_px, fill.liquidity, fill.side) == (3, 10_001, TAKER, BUY)
    assert events[2].client_order_id == order.client_order_id
    assert desk.open_ids() == set()


def test_when_market_sell_then_fills_at_bid() -> None:
    """A market sell fills at the bid, up to the bid size."""
    desk = Desk()
    desk.quote(9_999, 10_001, bid_size=4, ask_size=3)
    order = desk.send(SELL, 4)
    assert desk.fills() == [(order.client_order_id, 4, 9_999, TAKER)]


def test_when_market_remainder_rests_then_it_fills_on_next_quote() -> None:
    """With market_remainder="rest" the unfilled part waits and takes the next quote's ask."""
    desk = Desk(market_remainder="rest")
    desk.quote(9_999, 10_001, ask_size=3)
    order = desk.send(BUY, 5)
    assert desk.fills() == [(order.client_order_id, 3, 10_001, TAKER)]
    assert desk.open_ids() == {order.client_order_id}
    desk.quote(10_000, 10_002, ask_size=10)
    assert desk.fills() == [(order.client_order_id, 2, 10_002, TAKER)]
    assert desk.open_ids() == set()


def test_when_liquidity_taken_on_a_quote_then_second_order_gets_only_the_rest() -> None:
    """Size taken by one order is gone for the next order on the same quote."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=4)
    first = desk.send(BUY, 3)
    second = desk.send(BUY, 3)
    events = desk.take()
    fills = [(e.client_order_id, e.last_qty) for e in events if isinstance(e, OrderFilled)]
    assert fills == [(first.client_order_id, 3), (second.client_order_id, 1)]
    canceled = [e for e in events if isinstance(e, OrderCanceled)]
    assert [e.client_order_id for e in canceled] == [second.client_order_id]


def test_when_liquidity_exhausted_then_next_quote_refreshes_it() -> None:
    """After the ask size is used up, the next quote offers its full size again."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=2)
    first = desk.send(BUY, 2)
    empty = desk.send(BUY, 1)
    events = desk.take()
    assert [e.client_order_id for e in events if isinstance(e, OrderFilled)] == [
        first.client_order_id
    ]
    assert [e.client_order_id for e in events if isinstance(e, OrderCanceled)] == [
        empty.client_order_id
    ]
    desk.quote(9_999, 10_001, ask_size=2)
    later = desk.send(BUY, 2)
    assert desk.fills() == [(later.client_order_id, 2, 10_001, TAKER)]


def test_when_liquidity_taken_by_resting_order_then_new_order_gets_less() -> None:
    """A resting order matched on a quote uses that quote's size before a new order does."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=5)
    resting = desk.send(BUY, 4, 10_000)
    desk.take()
    desk.quote(9_998, 10_000, ask_size=5)
    newcomer = desk.send(BUY, 4)
    assert desk.fills() == [
        (resting.client_order_id, 4, 10_000, MAKER),
        (newcomer.client_order_id, 1, 10_000, TAKER),
    ]


def test_when_limit_buy_below_ask_then_rests_without_fill() -> None:
    """A limit buy below the ask is accepted and rests."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5, 10_000)
    assert kinds(desk.take()) == ["OrderAccepted"]
    assert desk.open_ids() == {order.client_order_id}


@pytest.mark.parametrize("ask", [10_000, 9_998], ids=["ask-at-limit", "ask-below-limit"])
def test_when_ask_falls_to_resting_buy_then_fills_as_maker_at_limit(ask: int) -> None:
    """A resting buy fills as MAKER at its own limit once the ask is at or below it."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5, 10_000)
    desk.take()
    desk.quote(ask - 1, ask)
    assert desk.fills() == [(order.client_order_id, 5, 10_000, MAKER)]


def test_when_bid_rises_to_resting_sell_then_fills_as_maker_at_limit() -> None:
    """A resting sell fills as MAKER at its limit once the bid reaches it."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(SELL, 5, 10_003)
    desk.take()
    desk.quote(10_002, 10_004)
    assert desk.fills() == []
    desk.quote(10_003, 10_004)
    assert desk.fills() == [(order.client_order_id, 5, 10_003, MAKER)]


def test_when_limit_buy_crosses_ask_then_fills_as_taker_at_touch() -> None:
    """A marketable limit buy at 100.05 against a 100.01 ask fills at 100.01 (improvement kept)."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=10)
    order = desk.send(BUY, 5, 10_005)
    assert desk.fills() == [(order.client_order_id, 5, 10_001, TAKER)]


def test_when_marketable_limit_larger_than_touch_then_rest_rests_at_limit() -> None:
    """A marketable GTC limit takes the displayed size and rests the remainder."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=3)
    order = desk.send(BUY, 5, 10_002)
    assert desk.fills() == [(order.client_order_id, 3, 10_001, TAKER)]
    assert desk.open_ids() == {order.client_order_id}


def test_when_ioc_partially_fills_then_remainder_canceled() -> None:
    """An IOC limit takes what the touch offers and the rest is canceled."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=3)
    order = desk.send(BUY, 5, 10_001, IOC)
    events = desk.take()
    assert kinds(events) == ["OrderAccepted", "OrderFilled", "OrderCanceled"]
    assert events[1].last_qty == 3  # type: ignore[attr-defined]
    assert events[2].reason == "IOC remainder"  # type: ignore[attr-defined]
    assert order.client_order_id not in desk.open_ids()


def test_when_ioc_not_marketable_then_canceled_without_fill() -> None:
    """An IOC limit below the ask never rests: it is canceled at once."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    desk.send(BUY, 5, 10_000, IOC)
    assert kinds(desk.take()) == ["OrderAccepted", "OrderCanceled"]
    assert desk.open_ids() == set()


def test_when_resting_order_canceled_then_order_canceled_and_never_fills() -> None:
    """Canceling a resting order emits OrderCanceled and removes it from the book."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5, 10_000)
    desk.take()
    desk.venue.cancel(order)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderCanceled"]
    assert events[0].client_order_id == order.client_order_id
    desk.quote(9_990, 9_995)
    assert desk.take() == []
    assert desk.open_ids() == set()


def test_when_unknown_order_canceled_then_cancel_rejected() -> None:
    """Canceling an order the venue never saw is rejected."""
    desk = Desk()
    ghost = desk.order(BUY, 5, 10_000)
    desk.venue.cancel(ghost)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderCancelRejected"]
    assert events[0].client_order_id == ghost.client_order_id


def test_when_filled_order_canceled_then_cancel_rejected() -> None:
    """Canceling an order that already filled is rejected."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5)
    desk.take()
    desk.venue.cancel(order)
    desk.venue.flush()
    assert kinds(desk.take()) == ["OrderCancelRejected"]


def test_when_resting_order_modified_then_updated_with_new_quantity_and_price() -> None:
    """A replace emits OrderUpdated carrying the new quantity and price, and keeps resting."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5, 10_000)
    desk.take()
    desk.venue.modify(order, 8, 9_990)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderUpdated"]
    update = events[0]
    assert isinstance(update, OrderUpdated)
    assert (update.quantity, update.price) == (8, 9_990)
    desk.quote(9_980, 9_995)
    assert desk.fills() == []
    desk.quote(9_980, 9_990, ask_size=20)
    assert desk.fills() == [(order.client_order_id, 8, 9_990, MAKER)]


def test_when_modified_to_marketable_price_then_fills_as_taker() -> None:
    """A replace that crosses the ask fills at once, as taker, at the touch."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    order = desk.send(BUY, 5, 10_000)
    desk.take()
    desk.venue.modify(order, 5, 10_003)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderUpdated", "OrderFilled"]
    fill = events[1]
    assert isinstance(fill, OrderFilled)
    assert (fill.last_qty, fill.last_px, fill.liquidity) == (5, 10_001, TAKER)


def test_when_order_modified_then_it_loses_time_priority() -> None:
    """Of two buys at one price, the replaced one moves behind the other."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    first = desk.send(BUY, 5, 10_000)
    second = desk.send(BUY, 5, 10_000)
    desk.venue.modify(first, 6, None)
    desk.venue.flush()
    desk.take()
    desk.quote(9_999, 10_000, ask_size=5)
    assert desk.fills() == [(second.client_order_id, 5, 10_000, MAKER)]


@pytest.mark.parametrize("new_qty", [2, 3], ids=["below-filled", "equal-filled"])
def test_when_modified_to_not_above_filled_then_modify_rejected(new_qty: int) -> None:
    """A replace to a quantity not above what has filled is rejected; the order keeps resting."""
    desk = Desk()
    desk.quote(9_999, 10_001, ask_size=3)
    order = desk.send(BUY, 5, 10_001)
    desk.take()
    desk.venue.modify(order, new_qty, None)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderModifyRejected"]
    assert isinstance(events[0], OrderModifyRejected)
    assert desk.open_ids() == {order.client_order_id}


def test_when_unknown_order_modified_then_modify_rejected() -> None:
    """A replace for an order the venue does not hold is rejected."""
    desk = Desk()
    desk.venue.modify(desk.order(BUY, 5, 10_000), 6, None)
    desk.venue.flush()
    assert kinds(desk.take()) == ["OrderModifyRejected"]


def test_when_utc_midnight_passes_then_day_orders_expire_and_gtc_stays() -> None:
    """At the first quote at or after UTC midnight, resting DAY orders expire at midnight."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    day = desk.send(BUY, 5, 10_000, DAY)
    gtc = desk.send(BUY, 5, 9_999, GTC)
    desk.take()
    desk.quote(10_002, 10_004, ts_ns=MIDNIGHT - 1)
    assert desk.take() == []
    desk.quote(9_990, 10_000, ask_size=10, ts_ns=MIDNIGHT)
    events = desk.take()
    expired = [e for e in events if isinstance(e, OrderExpired)]
    assert [(e.client_order_id, e.ts_ns) for e in expired] == [(day.client_order_id, MIDNIGHT)]
    # the expired DAY order does not fill on the new day's quote; the GTC one does not cross
    assert not [e for e in events if isinstance(e, OrderFilled)]
    assert desk.open_ids() == {gtc.client_order_id}


def test_when_day_order_rests_before_any_quote_then_it_expires_at_that_midnight() -> None:
    """A DAY order sent before any market data still expires at its day's UTC midnight."""
    desk = Desk()
    day = desk.send(BUY, 5, 10_000, DAY)
    assert kinds(desk.take()) == ["OrderAccepted"]
    desk.quote(9_999, 10_001, ts_ns=MIDNIGHT + 3_600 * 10**9)
    events = desk.take()
    assert [(type(e), e.client_order_id) for e in events] == [(OrderExpired, day.client_order_id)]
    assert desk.open_ids() == set()


def test_when_clock_reaches_midnight_without_quotes_then_day_order_expires() -> None:
    """A resting DAY order expires at UTC midnight on the clock alone, no quote needed."""
    desk = Desk()
    day = desk.send(BUY, 5, 10_000, DAY)
    desk.take()
    desk.clock.advance_to(MIDNIGHT - 1)
    assert desk.take() == []
    desk.clock.advance_to(MIDNIGHT)
    assert [(type(e), e.ts_ns) for e in desk.take()] == [(OrderExpired, MIDNIGHT)]
    assert day.client_order_id not in desk.open_ids()


def test_when_day_order_arrives_after_midnight_then_expires_at_the_next_one() -> None:
    """A DAY order sent on day two lives until the end of day two."""
    desk = Desk()
    desk.clock.advance_to(MIDNIGHT + 3_600 * 10**9)
    day = desk.send(BUY, 5, 10_000, DAY)
    desk.take()
    desk.clock.advance_to(MIDNIGHT + NS_PER_DAY - 1)
    assert desk.open_ids() == {day.client_order_id}
    desk.clock.advance_to(MIDNIGHT + NS_PER_DAY)
    assert [type(e) for e in desk.take()] == [OrderExpired]


@pytest.mark.parametrize("ending", ["filled", "canceled"])
def test_when_day_order_closed_before_midnight_then_no_expiry(ending: str) -> None:
    """A DAY order that filled or was canceled during the day emits no OrderExpired later."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    day = desk.send(BUY, 5, 10_000, DAY)
    if ending == "filled":
        desk.quote(9_999, 10_000)
    else:
        desk.venue.cancel(day)
        desk.venue.flush()
    desk.take()
    desk.clock.advance_to(MIDNIGHT + 1)
    assert desk.take() == []


def test_when_day_order_partly_filled_and_modified_then_expires_exactly_once() -> None:
    """A partly filled, replaced DAY order expires once at midnight with its remainder."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    day = desk.send(BUY, 5, 10_000, DAY)
    desk.quote(9_999, 10_000, ask_size=2)
    desk.venue.modify(day, 6, 9_990)
    desk.venue.flush()
    assert kinds(desk.take()) == ["OrderAccepted", "OrderFilled", "OrderUpdated"]
    desk.clock.advance_to(MIDNIGHT + 1)
    expired = desk.take()
    assert [(type(e), e.client_order_id) for e in expired] == [(OrderExpired, day.client_order_id)]
    assert desk.open_ids() == set()


def test_when_taker_and_maker_fill_then_fees_are_exact_decimals() -> None:
    """Taker 2.5 bps and maker 1 bp are charged on notional exactly, as Decimal."""
    desk = Desk(taker_fee_bps=Decimal("2.5"), maker_fee_bps=Decimal(1))
    desk.quote(9_999, 10_001, ask_size=3)
    desk.send(BUY, 3)  # taker: 3 * 100.01 = 300.03
    desk.send(BUY, 5, 10_000)  # rests
    desk.quote(9_999, 10_000)  # maker: 5 * 100.00 = 500.00
    fees = [(e.liquidity, e.fee, e.fee_currency) for e in desk.take() if isinstance(e, OrderFilled)]
    assert fees == [
        (TAKER, Decimal("0.0750075"), "USD"),
        (MAKER, Decimal("0.0500"), "USD"),
    ]
    assert all(type(fee) is Decimal for _, fee, _ in fees)


def test_when_fees_configured_zero_then_fee_is_decimal_zero() -> None:
    """Without fees every fill carries Decimal zero."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    desk.send(BUY, 1)
    (fill,) = [e for e in desk.take() if isinstance(e, OrderFilled)]
    assert fill.fee == 0
    assert type(fill.fee) is Decimal


def test_when_latency_set_then_order_reaches_book_only_after_latency() -> None:
    """With 5 ms latency nothing happens before T0 + 5 ms; then the order meets that book."""
    desk = Desk(latency_ms=5)
    desk.quote(9_999, 10_001)
    desk.venue.submit(desk.order(BUY, 2))
    desk.venue.flush()
    desk.clock.advance_to(T0 + 4 * NS_PER_MS)
    assert desk.take() == []
    desk.quote(10_001, 10_003, ts_ns=T0 + 4 * NS_PER_MS)
    desk.clock.advance_to(T0 + 5 * NS_PER_MS)
    events = desk.take()
    assert kinds(events) == ["OrderAccepted", "OrderFilled"]
    assert all(e.ts_ns == T0 + 5 * NS_PER_MS for e in events)
    assert events[1].last_px == 10_003  # type: ignore[attr-defined]


def test_when_latency_set_then_cancel_takes_effect_after_latency() -> None:
    """A cancel sent with latency leaves the order resting until the latency has passed."""
    desk = Desk(latency_ms=3)
    desk.quote(9_999, 10_001)
    order = desk.order(BUY, 2, 10_000)
    desk.venue.submit(order)
    desk.clock.advance_to(T0 + 3 * NS_PER_MS)
    desk.take()
    desk.venue.cancel(order)
    desk.clock.advance_to(T0 + 5 * NS_PER_MS)
    assert desk.open_ids() == {order.client_order_id}
    desk.clock.advance_to(T0 + 6 * NS_PER_MS)
    assert kinds(desk.take()) == ["OrderCanceled"]
    assert desk.open_ids() == set()


def test_when_market_order_and_no_quote_then_rejected_no_market() -> None:
    """A market order before any quote is rejected with reason "no market"."""
    desk = Desk()
    desk.send(BUY, 1)
    events = desk.take()
    assert kinds(events) == ["OrderRejected"]
    assert events[0].reason == "no market"  # type: ignore[attr-defined]
    assert desk.venue.n_rejects == 1


def test_when_limit_order_and_no_quote_then_accepted_and_rests() -> None:
    """A limit order needs no market: it is accepted and rests."""
    desk = Desk()
    order = desk.send(BUY, 1, 10_000)
    assert kinds(desk.take()) == ["OrderAccepted"]
    assert desk.open_ids() == {order.client_order_id}


@pytest.mark.parametrize(("qty", "accepted"), [(100, True), (101, False)])
def test_when_quantity_vs_venue_maximum_then_accepted_at_and_rejected_above(
    qty: int, accepted: bool
) -> None:
    """The venue accepts its max_order_quantity and rejects one lot more."""
    desk = Desk(max_order_quantity=Decimal(100))
    desk.send(BUY, qty, 10_000)
    (event,) = desk.take()
    if accepted:
        assert isinstance(event, OrderAccepted)
    else:
        assert isinstance(event, OrderRejected)
        assert event.reason == "quantity above the venue's maximum"


def test_when_instrument_not_on_this_venue_then_rejected() -> None:
    """An order for an instrument of another venue is rejected."""
    desk = Desk()
    desk.send(BUY, 1, 10_000, instrument_id=OTHER.id)
    (event,) = desk.take()
    assert isinstance(event, OrderRejected)
    assert "not traded on SIM" in event.reason


def test_when_client_order_id_already_open_then_rejected_as_duplicate() -> None:
    """A second new order with an open order's client id is rejected."""
    desk = Desk()
    order = desk.send(BUY, 1, 10_000)
    desk.venue.submit(order)
    desk.venue.flush()
    events = desk.take()
    assert kinds(events) == ["OrderAccepted", "OrderRejected"]
    assert "duplicate" in events[1].reason  # type: ignore[attr-defined]


def _reject_pattern(seed: int) -> list[bool]:
    desk = Desk(reject_probability=Decimal("0.5"), seed=seed)
    for _ in range(100):
        desk.send(BUY, 1, 9_000)
    return [isinstance(e, OrderRejected) for e in desk.take()]


def test_when_reject_probability_with_seed_then_rejections_reproducible() -> None:
    """A seeded reject rule rejects the same orders every run, about the configured share."""
    first = _reject_pattern(seed=7)
    again = _reject_pattern(seed=7)
    other = _reject_pattern(seed=8)
    assert first == again
    assert len(first) == 100
    assert 25 <= sum(first) <= 75
    assert other != first


@pytest.mark.parametrize(("p", "expected"), [("0", 0), ("1", 10)])
def test_when_reject_probability_is_zero_or_one_then_none_or_all_rejected(
    p: str, expected: int
) -> None:
    """Probability 0 rejects nothing, probability 1 rejects every new order."""
    desk = Desk(reject_probability=Decimal(p), seed=3)
    for _ in range(10):
        desk.send(BUY, 1, 9_000)
    assert sum(isinstance(e, OrderRejected) for e in desk.take()) == expected
    assert desk.venue.n_rejects == expected


def test_when_resting_buys_cross_then_best_price_fills_first() -> None:
    """Resting buys fill highest price first, whatever their arrival order."""
    desk = Desk()
    desk.quote(9_990, 10_010)
    low = desk.send(BUY, 5, 9_998)
    high = desk.send(BUY, 5, 10_000)
    mid = desk.send(BUY, 5, 9_999)
    desk.take()
    desk.quote(9_990, 9_998, ask_size=10)
    assert desk.fills() == [
        (high.client_order_id, 5, 10_000, MAKER),
        (mid.client_order_id, 5, 9_999, MAKER),
    ]
    assert desk.open_ids() == {low.client_order_id}


def test_when_resting_sells_cross_then_lowest_price_first_then_earliest() -> None:
    """Resting sells fill lowest price first, and at one price the earliest first."""
    desk = Desk()
    desk.quote(9_990, 10_010)
    first_low = desk.send(SELL, 2, 10_003)
    high = desk.send(SELL, 2, 10_005)
    second_low = desk.send(SELL, 2, 10_003)
    desk.take()
    desk.quote(10_005, 10_010, bid_size=5)
    assert desk.fills() == [
        (first_low.client_order_id, 2, 10_003, MAKER),
        (second_low.client_order_id, 2, 10_003, MAKER),
        (high.client_order_id, 1, 10_005, MAKER),
    ]


def test_when_equal_prices_then_earlier_order_fills_first() -> None:
    """At one price, the order that arrived first fills first."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    first = desk.send(BUY, 5, 10_000)
    second = desk.send(BUY, 5, 10_000)
    desk.take()
    desk.quote(9_999, 10_000, ask_size=7)
    assert desk.fills() == [
        (first.client_order_id, 5, 10_000, MAKER),
        (second.client_order_id, 2, 10_000, MAKER),
    ]
    assert desk.open_ids() == {second.client_order_id}


def test_when_quote_crosses_nothing_then_resting_orders_untouched() -> None:
    """A quote inside the resting orders fills nothing and emits nothing."""
    desk = Desk()
    desk.quote(9_999, 10_001)
    buy = desk.send(BUY, 5, 9_995)
    sell = desk.send(SELL, 5, 10_010)
    desk.take()
    for bid, ask in [(9_996, 10_000), (9_998, 10_009), (10_000, 10_005)]:
        desk.quote(bid, ask)
    assert desk.take() == []
    assert desk.open_ids() == {buy.client_order_id, sell.client_order_id}

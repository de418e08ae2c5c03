"""The pre-trade risk gate: limits at and one step past, trading states, and denial plumbing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import (
    CommandDenied,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    TradingStateChanged,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.fills import FillPipeline
from bastion.risk.gate import RiskGate
from bastion.venues.base import VenueAdapter

BUY, SELL = OrderSide.BUY, OrderSide.SELL
T0 = 1_704_205_800_000_000_000
STOCK = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal(1),
    quote_currency="USD",
)
COARSE = Instrument(
    id="ABC.SIM",
    venue="SIM",
    tick_size=Decimal("0.05"),
    lot_size=Decimal(10),
    quote_currency="USD",
)
FRACTIONAL = Instrument(
    id="BTC.SIM",
    venue="SIM",
    tick_size=Decimal("0.5"),
    lot_size=Decimal("0.1"),
    quote_currency="USD",
)
FUTURE = Instrument(
    id="ES.SIM",
    venue="SIM",
    tick_size=Decimal("0.25"),
    lot_size=Decimal(1),
    quote_currency="USD",
    multiplier=Decimal(50),
)
GHOST = Instrument(
    id="GHOST.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal(1),
    quote_currency="USD",
)


class RecordingVenue(VenueAdapter):
    """A venue that only records what the node asked of it."""

    def __init__(self, name: str = "SIM") -> None:
        super().__init__(name)
        self.submitted: list[str] = []
        self.canceled: list[str] = []
        self.modified: list[tuple[str, int, int | None]] = []

    def submit(self, order: Order) -> None:
        self.submitted.append(order.client_order_id)

    def cancel(self, order: Order) -> None:
        self.canceled.append(order.client_order_id)

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        self.modified.append((order.client_order_id, quantity, price))

    async def open_order_ids(self) -> set[str]:
        return set(self.submitted)


class Node:
    """Bus, clock, execution engine, portfolio and risk gate around a recording venue."""

    def __init__(
        self,
        config: RiskConfig | None = None,
        extra_venues: tuple[str, ...] = (),
        **risk: object,
    ) -> None:
        self.bus = MessageBus()
        self.clock = SimClock(T0)
        self.venue = RecordingVenue()
        venues: dict[str, VenueAdapter] = {"SIM": self.venue}
        venues.update((name, RecordingVenue(name)) for name in extra_venues)
        self.quotes: dict[str, QuoteTick] = {}
        self.trades: dict[str, TradeTick] = {}
        instruments = {i.id: i for i in (STOCK, COARSE, FRACTIONAL, FUTURE)}
        self.portfolio = Portfolio(
            instruments=instruments,
            last_quotes=self.quotes,
            currency="USD",
            starting_cash=Decimal(100_000),
        )
        self.execution = ExecutionEngine(
            bus=self.bus,
            clock=self.clock,
            ids=ClientOrderIdGenerator("node", 1),
            venues=venues,
        )
        self.gate = RiskGate(
            config=config or RiskConfig(**risk),  # type: ignore[arg-type]
            bus=self.bus,
            clock=self.clock,
            execution=self.execution,
            portfolio=self.portfolio,
            instruments=instruments,
            last_quotes=self.quotes,
            venues=set(venues),
            last_trades=self.trades,
        )
        self.denied: list[OrderDenied] = []
        self.command_denied: list[CommandDenied] = []
        self.submitted: list[OrderSubmitted] = []
        self.state_changes: list[TradingStateChanged] = []
        # fills as ``Kernel`` hands them on: portfolio, then the gate (``risk.fills``)
        self.fills = FillPipeline(portfolio=self.portfolio, risk=self.gate)
        self.bus.subscribe(OrderFilled, self.fills.on_fill)
        self.bus.subscribe(OrderDenied, self.denied.append)
        self.bus.subscribe(CommandDenied, self.command_denied.append)
        self.bus.subscribe(OrderSubmitted, self.submitted.append)
        self.bus.subscribe(TradingStateChanged, self.state_changes.append)

    def order(
        self,
        side: OrderSide,
        qty: int,
        price: int | None = None,
        instrument: Instrument = STOCK,
        venue: str = "SIM",
        strategy: str = "s1",
    ) -> Order:
        return self.execution.create_order(
            strategy_id=strategy,
            instrument_id=instrument.id,
            venue=venue,
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=qty,
            price=price,
        )

    def submit(self, *args: object, **kwargs: object) -> Order:
        order = self.order(*args, **kwargs)  # type: ignore[arg-type]
        self.gate.submit_order(order)
        return order

    def hold(
        self, qty: int, px: int = 10_000, instrument: Instrument = STOCK, strategy: str = "s1"
    ) -> None:
        """Give the portfolio a signed position by feeding it a fill."""
        self.portfolio.on_fill(
            OrderFilled(
                ts_ns=T0,
                client_order_id="seed-1",
                strategy_id=strategy,
                instrument_id=instrument.id,
                venue_order_id="SIM-0",
                exec_id="SIM-E0",
                side=BUY if qty > 0 else SELL,
                last_qty=abs(qty),
                last_px=px,
                fee=Decimal(0),
                fee_currency="USD",
                liquidity=LiquiditySide.TAKER,
            )
        )

    def quote(self, bid: int, ask: int, instrument: Instrument = STOCK, ts_ns: int = T0) -> None:
        """A quote, stored and handed to the gate's quote hook as ``Kernel.on_quote`` does."""
        quote = QuoteTick(instrument.id, ts_ns, bid, ask, 100, 100)
        self.quotes[instrument.id] = quote
        if self.gate.quote_hook is not None:
            self.gate.quote_hook(quote)

    def trade(self, price: int, instrument: Instrument = STOCK, ts_ns: int = T0) -> None:
        """A trade print at ``price`` (raw), as the kernel keeps it."""
        self.trades[instrument.id] = TradeTick(instrument.id, ts_ns, price, 100)

    def fill(self, order: Order, qty: int | None = None, px: int | None = None) -> None:
        """The venue fills ``order`` (all of what is left, by default) at its price."""
        self.execution.process(
            OrderFilled(
                ts_ns=self.clock.timestamp_ns(),
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                venue_order_id="SIM-1",
                exec_id=f"E-{order.client_order_id}-{order.filled_qty}",
                side=order.side,
                last_qty=order.leaves_qty if qty is None else qty,
                last_px=(order.price or 10_000) if px is None else px,
                fee=Decimal(0),
                fee_currency="USD",
                liquidity=LiquiditySide.TAKER,
            )
        )

    def reasons(self) -> list[str]:
        return [e.reason for e in self.denied]


def assert_denied(node: Node, order: Order, reason: str) -> None:
    assert order.status is OrderStatus.DENIED
    assert node.denied[-1].client_order_id == order.client_order_id
    assert node.denied[-1].reason == reason
    assert order.client_order_id not in node.venue.submitted


def assert_sent(node: Node, order: Order) -> None:
    assert order.status is OrderStatus.SUBMITTED
    assert node.venue.submitted[-1] == order.client_order_id


@pytest.mark.parametrize(
    ("instrument", "limit", "at_raw"),
    [(STOCK, Decimal(100), 100), (FRACTIONAL, Decimal("2.5"), 25)],
    ids=["whole-lots", "fractional-lots"],
)
def test_when_quantity_at_max_then_allowed_and_one_lot_above_denied(
    instrument: Instrument, limit: Decimal, at_raw: int
) -> None:
    """max_order_quantity allows exactly the limit and denies one lot more."""
    node = Node(max_order_quantity=limit)
    price = instrument.tick_raw * 20
    at = node.submit(BUY, at_raw, price, instrument=instrument)
    assert_sent(node, at)
    above = node.submit(BUY, at_raw + instrument.lot_raw, price, instrument=instrument)
    assert_denied(node, above, "MAX_ORDER_QUANTITY")
    assert "max_order_quantity" in node.denied[-1].message


def test_when_limit_notional_at_max_then_allowed_and_one_tick_above_denied() -> None:
    """10 @ 100.00 against a 1000 notional limit passes; 10 @ 100.01 is denied."""
    node = Node(max_order_notional=Decimal(1000))
    assert_sent(node, node.submit(BUY, 10, 10_000))
    above = node.submit(BUY, 10, 10_001)
    assert_denied(node, above, "MAX_ORDER_NOTIONAL")


def test_when_notional_with_multiplier_then_limit_counts_multiplier() -> None:
    """2 ES @ 4000.00 x 50 = 400000 passes a 400000 limit; one tick higher is denied."""
    node = Node(max_order_notional=Decimal(400_000))
    assert_sent(node, node.submit(SELL, 2, 400_000, instrument=FUTURE))
    assert_denied(node, node.submit(SELL, 2, 400_025, instrument=FUTURE), "MAX_ORDER_NOTIONAL")


def test_when_market_order_then_notional_uses_touch_by_side() -> None:
    """A market buy is valued at the ask and a market sell at the bid."""
    node = Node(max_order_notional=Decimal(1000))
    node.quotes[STOCK.id] = QuoteTick(STOCK.id, T0, 10_000, 10_001, 50, 50)
    assert_denied(node, node.submit(BUY, 10), "MAX_ORDER_NOTIONAL")  # 10 * 100.01
    assert_sent(node, node.submit(SELL, 10))  # 10 * 100.00
    node.quotes[STOCK.id] = QuoteTick(STOCK.id, T0, 9_999, 10_000, 50, 50)
    assert_sent(node, node.submit(BUY, 10))


def test_when_market_order_without_quote_and_notional_limit_then_no_reference_price() -> None:
    """With a notional limit, a market order before any quote cannot be valued: denied."""
    node = Node(max_order_notional=Decimal(1000))
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")


def test_when_market_order_without_quote_and_no_notional_limit_then_sent() -> None:
    """Without a notional limit a market order needs no reference price."""
    node = Node()
    assert_sent(node, node.submit(BUY, 1))


def test_when_halted_then_new_orders_denied_but_cancels_allowed() -> None:
    """HALTED denies every new order and any modify, yet lets a cancel through."""
    node = Node()
    working = node.submit(BUY, 5, 10_000)
    node.gate.set_trading_state(TradingState.HALTED, "operator")
    assert_denied(node, node.submit(SELL, 1, 10_000), "TRADING_HALTED")
    assert_denied(node, node.submit(BUY, 1), "TRADING_HALTED")
    assert node.gate.modify_order(working, 4, 10_000) is False
    assert node.command_denied[-1].reason == "TRADING_HALTED"
    assert node.venue.modified == []
    assert node.gate.cancel_order(working) is True
    assert node.venue.canceled == [working.client_order_id]
    assert working.status is OrderStatus.PENDING_CANCEL


def test_when_halted_from_config_then_orders_denied_from_the_start() -> None:
    """trading_state=HALTED in config starts the gate halted."""
    node = Node(trading_state=TradingState.HALTED)
    assert node.gate.state is TradingState.HALTED
    assert_denied(node, node.submit(BUY, 1, 10_000), "TRADING_HALTED")


def test_when_trading_state_changes_then_event_published_once() -> None:
    """A state change publishes TradingStateChanged; setting the same state again does not."""
    node = Node()
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown")
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown again")
    node.gate.set_trading_state(TradingState.ACTIVE, "reset")
    assert [(e.state, e.reason) for e in node.state_changes] == [
        (TradingState.REDUCING, "drawdown"),
        (TradingState.ACTIVE, "reset"),
    ]


@pytest.mark.parametrize(
    ("held", "side", "qty", "allowed"),
    [
        (10, SELL, 4, True),
        (10, SELL, 10, True),
        (10, SELL, 11, False),
        (10, BUY, 1, False),
        (-10, BUY, 10, True),
        (-10, BUY, 11, False),
        (-10, SELL, 1, False),
        (0, BUY, 1, False),
        (0, SELL, 1, False),
    ],
    ids=[
        "long-partial-close",
        "long-full-close",
        "long-flip",
        "long-add",
        "short-full-close",
        "short-flip",
        "short-add",
        "flat-buy",
        "flat-sell",
    ],
)
def test_when_reducing_then_only_orders_shrinking_without_flipping_allowed(
    held: int, side: OrderSide, qty: int, allowed: bool
) -> None:
    """REDUCING lets through only orders that shrink the net position and do not flip it."""
    node = Node(trading_state=TradingState.REDUCING)
    if held:
        node.hold(held)
    order = node.submit(side, qty, 10_000)
    if allowed:
        assert_sent(node, order)
    else:
        assert_denied(node, order, "REDUCING_ONLY")


def test_when_reducing_and_working_orders_already_close_position_then_more_denied() -> None:
    """Long 10 with a sell 10 working: a second sell 10 would flip the position, so it is denied."""
    node = Node()
    node.hold(10)
    node.gate.set_trading_state(TradingState.REDUCING, "drawdown")
    first = node.submit(SELL, 10, 10_100)
    assert_sent(node, first)
    second = node.submit(SELL, 10, 10_100)
    assert_denied(node, second, "REDUCING_ONLY")


def test_when_quantity_off_lot_then_invalid_quantity() -> None:
    """A quantity that is not a multiple of the lot size (10) is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 15, 10_000, instrument=COARSE), "INVALID_QUANTITY")
    assert_sent(node, node.submit(BUY, 20, 10_000, instrument=COARSE))


def test_when_price_off_tick_then_invalid_price() -> None:
    """A price that is not a multiple of the tick (0.05) is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 10, 10_002, instrument=COARSE), "INVALID_PRICE")
    assert_sent(node, node.submit(BUY, 10, 10_005, instrument=COARSE))


def test_when_instrument_unknown_then_unknown_instrument() -> None:
    """An order for an instrument the gate does not know is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 1, 10_000, instrument=GHOST), "UNKNOWN_INSTRUMENT")


def test_when_venue_unknown_then_unknown_venue() -> None:
    """An order routed to a venue the node does not have is denied."""
    node = Node()
    assert_denied(node, node.submit(BUY, 1, 10_000, venue="NOWHERE"), "UNKNOWN_VENUE")


def test_when_order_denied_then_venue_saw_nothing() -> None:
    """A denied order never reaches the venue: no submit, no OrderSubmitted event."""
    node = Node(max_order_quantity=Decimal(5))
    order = node.order(BUY, 6, 10_000)
    assert node.gate.submit_order(order) is False
    assert node.venue.submitted == []
    assert node.submitted == []
    assert node.execution.open_orders() == []
    assert order.is_closed


def test_when_denials_happen_then_counted_per_reason() -> None:
    """gate.denials counts each denial under its reason code."""
    node = Node(max_order_quantity=Decimal(5))
    node.submit(BUY, 6, 10_000)
    node.submit(SELL, 7, 10_000)
    node.submit(BUY, 10, 10_002, instrument=COARSE)
    node.submit(BUY, 5, 10_000)
    assert node.gate.denials == {"MAX_ORDER_QUANTITY": 2, "INVALID_PRICE": 1}
    assert node.reasons() == ["MAX_ORDER_QUANTITY", "MAX_ORDER_QUANTITY", "INVALID_PRICE"]


def test_when_cancel_of_closed_order_then_command_denied_not_open() -> None:
    """Canceling a denied (closed) order produces CommandDenied ORDER_NOT_OPEN."""
    node = Node(max_order_quantity=Decimal(5))
    order = node.submit(BUY, 6, 10_000)
    assert node.gate.cancel_order(order) is False
    assert [(e.client_order_id, e.reason) for e in node.command_denied] == [
        (order.client_order_id, "ORDER_NOT_OPEN")
    ]
    assert node.venue.canceled == []
    assert node.gate.denials["ORDER_NOT_OPEN"] == 1


def test_when_modify_breaks_a_limit_then_command_denied_and_order_unchanged() -> None:
    """A modify above max_order_quantity is refused with CommandDenied; the order keeps its size."""
    node = Node(max_order_quantity=Decimal(10))
    order = node.submit(BUY, 5, 10_000)
    assert node.gate.modify_order(order, 11, None) is False
    assert node.command_denied[-1].reason == "MAX_ORDER_QUANTITY"
    assert (order.quantity, order.status) == (5, OrderStatus.SUBMITTED)
    assert node.venue.modified == []
    assert node.gate.modify_order(order, 10, 10_001) is True
    assert node.venue.modified == [(order.client_order_id, 10, 10_001)]

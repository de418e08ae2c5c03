"""A risk gate on a small node (bus, clock, OMS, portfolio) in front of a recording venue,
the instruments it knows, and the assertions on what reached the venue.

``Node`` has fills reach the portfolio, then the gate, through the kernel's
``FillPipeline``; ``Wired`` adds the kernel's quote wiring (quotes reach the gate's quote
hook) and records the gate's own events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    CommandDenied,
    InstrumentPaused,
    InstrumentResumed,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    StrategyDisabled,
    StrategyEnabled,
    TradingStateChanged,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.fills import FillPipeline
from bastion.risk.gate import RiskGate
from bastion.venues.base import VenueAdapter
from kit.venues import RecordingVenue

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


def stock_at(venue: str) -> Instrument:
    """``STOCK``'s twin traded at ``venue`` (``XYZ.<venue>``): a ``Node`` knows one for
    each of its extra venues, so an order can go there through the gate."""
    return Instrument(
        id=f"XYZ.{venue}",
        venue=venue,
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    )


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
        known = (STOCK, COARSE, FRACTIONAL, FUTURE, *(stock_at(v) for v in extra_venues))
        instruments = {i.id: i for i in known}
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
        venue: str | None = None,
        strategy: str = "s1",
    ) -> Order:
        """An order for ``instrument``, at its venue unless ``venue`` says otherwise."""
        return self.execution.create_order(
            strategy_id=strategy,
            instrument_id=instrument.id,
            venue=instrument.venue if venue is None else venue,
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

    def trade_print(self, price: int, instrument: Instrument = STOCK, ts_ns: int = T0) -> None:
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
    """``order`` was denied for ``reason`` and never reached the venue."""
    assert order.status is OrderStatus.DENIED
    assert node.denied[-1].client_order_id == order.client_order_id
    assert node.denied[-1].reason == reason
    assert order.client_order_id not in node.venue.submitted


def assert_sent(node: Node, order: Order) -> None:
    """``order`` passed the gate and was the last order the venue received."""
    assert order.status is OrderStatus.SUBMITTED
    assert node.venue.submitted[-1] == order.client_order_id


MS = 1_000_000
SECOND = 1_000 * MS


class Wired(Node):
    """``Node`` plus the kernel's quote and fill wiring, and the new events recorded."""

    def __init__(self, config: RiskConfig | None = None, **risk: Any) -> None:
        super().__init__(config, **risk)
        self.paused: list[InstrumentPaused] = []
        self.resumed: list[InstrumentResumed] = []
        self.disabled: list[StrategyDisabled] = []
        self.enabled: list[StrategyEnabled] = []
        self.bus.subscribe(InstrumentPaused, self.paused.append)
        self.bus.subscribe(InstrumentResumed, self.resumed.append)
        self.bus.subscribe(StrategyDisabled, self.disabled.append)
        self.bus.subscribe(StrategyEnabled, self.enabled.append)
        self._exec = 0

    def at(self, ts_ns: int) -> None:
        """Move the clock to ``ts_ns``, firing due timers (pause ends)."""
        self.clock.advance_to(ts_ns)

    def tick(
        self,
        bid: int,
        ask: int | None = None,
        ts_ns: int | None = None,
        instrument: Instrument = STOCK,
    ) -> None:
        """A quote at ``ts_ns`` (default: now), handed on as ``Kernel.on_quote`` does."""
        if ts_ns is not None:
            self.at(ts_ns)
        quote = QuoteTick(
            instrument.id,
            self.clock.timestamp_ns(),
            bid,
            bid if ask is None else ask,
            100,
            100,
        )
        self.quotes[instrument.id] = quote
        if self.gate.quote_hook is not None:
            self.gate.quote_hook(quote)

    def mid(self, mid: int, ts_ns: int | None = None, instrument: Instrument = STOCK) -> None:
        """A quote one tick either side of ``mid``."""
        tick = instrument.tick_raw
        self.tick(mid - tick, mid + tick, ts_ns, instrument)

    def execute(
        self, order: Order, qty: int | None = None, px: int | None = None, fee: str = "0"
    ) -> None:
        """The venue fills ``order`` (what is left, by default) at its price, with a fee."""
        self._exec += 1
        self.execution.process(
            OrderFilled(
                ts_ns=self.clock.timestamp_ns(),
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                venue_order_id="SIM-1",
                exec_id=f"X-{self._exec}",
                side=order.side,
                last_qty=order.leaves_qty if qty is None else qty,
                last_px=(order.price or 10_000) if px is None else px,
                fee=Decimal(fee),
                fee_currency="USD",
                liquidity=LiquiditySide.TAKER,
            )
        )

    def trade(self, side: Any, qty: int, px: int, strategy: str = "s1", fee: str = "0") -> Order:
        """A limit order sent and filled in full at ``px``."""
        order = self.submit(side, qty, px, strategy=strategy)
        self.execute(order, fee=fee)
        return order

"""A test ``Node`` wired like ``Kernel`` wires the gate: quotes reach its quote hook (and
fills the portfolio and the gate, as ``Node`` has them); the gate's own events are
recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from test_risk_gate import BUY, SELL, STOCK, T0, Node

from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide
from bastion.model.events import (
    InstrumentPaused,
    InstrumentResumed,
    OrderFilled,
    StrategyDisabled,
    StrategyEnabled,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.risk.config import RiskConfig

MS = 1_000_000
SECOND = 1_000 * MS

__all__ = ["BUY", "MS", "SECOND", "SELL", "STOCK", "T0", "Wired"]


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

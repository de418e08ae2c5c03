"""What a running strategy sees of its node: the ``StrategyContext`` protocol that
``Strategy`` (``strategy.base``) codes against. The runner (``strategy.runner``)
implements it, one context per strategy; the base class never imports the runner.

Nothing here reaches a venue except through the risk gate's order commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bastion.clock import Clock
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import OrderEvent
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio


class OrderAccess(Protocol):
    """The execution engine as a strategy sees it: create and read orders."""

    def create_order(
        self,
        *,
        strategy_id: str,
        instrument_id: str,
        venue: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: int,
        price: int | None = None,
        time_in_force: TimeInForce = ...,
        reduce_only: bool = False,
    ) -> Order: ...

    def open_orders(
        self, strategy_id: str | None = None, instrument_id: str | None = None
    ) -> list[Order]: ...

    def open_quantity(self, strategy_id: str, instrument_id: str) -> int: ...

    def order(self, client_order_id: str) -> Order | None: ...


class OrderGate(Protocol):
    """The risk gate as a strategy sees it: order commands only."""

    def submit_order(self, order: Order) -> bool: ...

    def cancel_order(self, order: Order) -> bool: ...

    def modify_order(self, order: Order, quantity: int, price: int | None) -> bool: ...


class StrategyContext(Protocol):
    """One strategy's view of its node: read-only state plus the gate's commands."""

    @property
    def clock(self) -> Clock: ...

    @property
    def portfolio(self) -> Portfolio: ...

    @property
    def execution(self) -> OrderAccess: ...

    @property
    def risk(self) -> OrderGate: ...

    @property
    def last_quotes(self) -> Mapping[str, QuoteTick]: ...

    @property
    def log(self) -> Any:
        """A structlog logger bound to the strategy's id."""

    def instrument(self, instrument_id: str) -> Instrument: ...

    def venue_of(self, instrument_id: str) -> str: ...

    def subscribe_quotes(self, instrument_id: str) -> None:
        """Deliver ``instrument_id``'s quotes to this context's strategy (``on_quote``)."""

    def subscribe_bars(self, instrument_id: str) -> None:
        """Deliver ``instrument_id``'s bars to this context's strategy (``on_bar``)."""


class StrategyHost(Protocol):
    """What runs a node's strategies, as the kernel, recovery and the backtest use it:
    ``strategy.runner.StrategyRunner`` (inline, in the node's process) or
    ``isolation.host.ProcessStrategyHost`` (each group in a process of its own)."""

    running: set[str]
    failures: list[str]
    restored_states: dict[str, bytes]
    """Each strategy's state saved at the last snapshot, handed to ``on_load`` at start."""
    quote_subscribers: dict[str, tuple[Callable[[Any], None], ...]]
    """Instrument id -> what takes its quotes (the kernel's hot path calls them)."""

    @property
    def strategies(self) -> Mapping[str, object]:
        """The configured strategies by name."""

    def on_order_event(self, event: OrderEvent) -> None: ...

    @property
    def hears_order_events(self) -> bool:
        """Whether ``on_order_event`` has anything to do now (the fill pipeline leaves it
        out when not: ``risk.fills``)."""

    def on_bar(self, bar: Bar) -> None: ...

    def fail(self, target: Any, error: BaseException) -> None:
        """A quote handler (``target``: its ``__self__``) raised ``error``."""

    def start_all(self) -> None: ...

    def stop_all(self) -> None: ...

    def stop_strategy(self, strategy_id: str) -> str | None:
        """Stop one running strategy (an operator's ``strategy_stop``): no more events
        for it, ``on_stop`` called. None when done, else why it cannot be."""

    def start_strategy(self, strategy_id: str) -> str | None:
        """Run a stopped strategy again (``on_start``). None when done, else why not."""

    def save_states(self) -> dict[str, bytes]: ...

    async def refresh_states(self, timeout_s: float) -> None:
        """Bring the states ``save_states`` returns up to date (isolated strategies
        answer asynchronously) before a snapshot."""

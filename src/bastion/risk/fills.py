"""The order in which the node's components see a fill, stated once.

``Kernel`` attaches a ``FillPipeline`` to the bus (``attach``): what the bus calls for
an ``OrderFilled`` is the pipeline's ``on_fill``, and no other component of the node
subscribes to fills. Each fill goes, in this order, to:

1. the portfolio: positions, cash, fees and PnL;
2. the risk gate's pre-trade state (``RiskGate.fill_pre_trade``): what is left of the
   filled order in the working book, the positions the position limits count, the
   credit limits' exposure and cash, the risk accounts'; all of them read the
   portfolio, which has the fill now;
3. the post-trade limits (``RiskGate.fill_post_trade``: repeated executions, daily loss,
   drawdown), which may disable the strategy before it hears of the fill;
4. the strategies (``on_order_event``, ``on_fill``): an order sent from there is checked
   against a state that counts the fill.

The risk gate forwards to the controls in force. A stage with nothing to do (no risk
control follows fills, no strategy listens to its orders' events) is left out by
``refresh``, which the kernel calls whenever that can change: strategies started, risk
limits applied (``Kernel.apply_risk_config``), so limits an operator turns on mid-run
see the next fill in their place. Observers that subscribe to the bus after the kernel
is built (logs, a backtest's fill list, tests) see a fill once all four have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bastion.bus import MessageBus
from bastion.model.events import OrderFilled

FillHandler = Callable[[OrderFilled], None]


class FillsPortfolio(Protocol):
    def on_fill(self, fill: OrderFilled) -> None: ...


class FillsRisk(Protocol):
    def fill_pre_trade(self, fill: OrderFilled) -> None: ...

    def fill_post_trade(self, fill: OrderFilled) -> None: ...

    @property
    def books_fills(self) -> bool:
        """Whether ``fill_pre_trade`` has anything to do."""

    @property
    def watches_fills(self) -> bool:
        """Whether ``fill_post_trade`` has anything to do."""


class FillPipeline:
    """Hands each fill to the node's consumers in the order above.

    ``on_fill`` is what the bus calls. It starts as ``each``: every stage, in turn.
    ``refresh`` leaves out the stages with nothing to do now; when one stage is left (the
    portfolio, under a default risk config with no strategy listening to fills), that
    stage's handler *is* ``on_fill`` and takes the pipeline's place on the bus it is
    attached to: a fill then costs no call in between (the pipeline's own call and its
    idle stages were ~3,000 instructions a fill in ``bench/tick_to_order.py``).
    """

    __slots__ = ("_bus", "_live", "_risk", "on_fill", "stages")

    def __init__(
        self,
        *,
        portfolio: FillsPortfolio,
        risk: FillsRisk,
        strategies: FillHandler | None = None,
    ) -> None:
        """``strategies``: the strategy runner's order-event hook (None: no strategies,
        as in a bare gate under test)."""
        stages: list[tuple[str, FillHandler]] = [
            ("portfolio", portfolio.on_fill),
            ("risk pre-trade", risk.fill_pre_trade),
            ("risk post-trade", risk.fill_post_trade),
        ]
        if strategies is not None:
            stages.append(("strategies", strategies))
        self.stages: tuple[tuple[str, FillHandler], ...] = tuple(stages)
        """``(name, handler)`` in the order each fill reaches them."""
        self._risk = risk
        self._live: tuple[FillHandler, ...] = tuple(handler for _, handler in stages)
        """The handlers of the stages with something to do, in order."""
        self._bus: MessageBus | None = None
        self.on_fill: FillHandler = self.each
        """What the bus calls for each fill (``refresh`` says which)."""

    def attach(self, bus: MessageBus) -> None:
        """Subscribe to the bus's fills; ``refresh`` keeps the subscription in place."""
        bus.subscribe(OrderFilled, self.on_fill)
        self._bus = bus

    def refresh(self, *, strategies_listen: bool = True) -> None:
        """Leave out the stages with nothing to do now: the risk gate's pre-trade and
        post-trade stages when no control of either follows fills
        (``books_fills``, ``watches_fills``), the strategies' unless
        ``strategies_listen`` (some strategy overrides ``on_order_event`` or
        ``on_fill``). Call it whenever one of those can change."""
        idle = {
            "risk pre-trade": not self._risk.books_fills,
            "risk post-trade": not self._risk.watches_fills,
            "strategies": not strategies_listen,
        }
        self._live = tuple(handler for name, handler in self.stages if not idle.get(name))
        on_fill = self._live[0] if len(self._live) == 1 else self.each
        if self._bus is not None and on_fill != self.on_fill:
            self._bus.replace(OrderFilled, self.on_fill, on_fill)
        self.on_fill = on_fill

    def each(self, fill: OrderFilled) -> None:
        """Every stage with something to do sees the fill, even after one failed (as the
        bus isolates its subscribers); the first error is raised at the end, for the bus
        to report."""
        error: Exception | None = None
        for handler in self._live:
            try:
                handler(fill)
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error

"""The order in which the node's components see a fill, stated once.

``Kernel`` subscribes ``FillPipeline.on_fill`` to ``OrderFilled``; no other component
of the node subscribes to fills. Each fill goes, in this order, to:

1. the portfolio: positions, cash, fees and PnL;
2. the risk gate's pre-trade state (``RiskGate.fill_pre_trade``): what is left of the
   filled order in the working book, the positions the position limits count, the
   credit limits' exposure and cash, the risk accounts'; all of them read the
   portfolio, which has the fill now;
3. the post-trade limits (``RiskGate.fill_post_trade``: repeated executions, daily loss,
   drawdown), which may disable the strategy before it hears of the fill;
4. the strategies (``on_order_event``, ``on_fill``): an order sent from there is checked
   against a state that counts the fill.

The risk gate forwards to the controls in force, so limits an operator turns on mid-run
(``Kernel.apply_risk_config``) see the next fill in the same place. Observers that
subscribe to the bus after the kernel is built (logs, a backtest's fill list, tests)
see a fill once all four have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bastion.model.events import OrderFilled

FillHandler = Callable[[OrderFilled], None]


class FillsPortfolio(Protocol):
    def on_fill(self, fill: OrderFilled) -> None: ...


class FillsRisk(Protocol):
    def fill_pre_trade(self, fill: OrderFilled) -> None: ...

    def fill_post_trade(self, fill: OrderFilled) -> None: ...


class FillPipeline:
    """Hands each fill to the node's consumers in the order above."""

    __slots__ = ("stages",)

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

    def on_fill(self, fill: OrderFilled) -> None:
        """Every stage sees the fill, even after one failed (as the bus isolates its
        subscribers); the first error is raised at the end, for the bus to report."""
        error: Exception | None = None
        for _, handler in self.stages:
            try:
                handler(fill)
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error

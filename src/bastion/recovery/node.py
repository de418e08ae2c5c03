"""What recovery reads and restores in a node: the components of the kernel
(``bastion.node.kernel.Kernel`` is one), named here so that recovery depends on the
components and not on the node package that composes them."""

from __future__ import annotations

from typing import Protocol

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.execution.engine import ExecutionEngine
from bastion.model.enums import TradingState
from bastion.model.instruments import Instrument
from bastion.monitor.alerts.book import AlertBook
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.gate import RiskGate
from bastion.risk.overrides import RiskOverrides
from bastion.strategy.context import StrategyHost
from bastion.venues.base import VenueAdapter


class RecoverableNode(Protocol):
    """A node's recoverable state and the venues it reconciles with."""

    clock: Clock
    bus: MessageBus
    execution: ExecutionEngine
    portfolio: Portfolio
    risk: RiskGate
    risk_overrides: RiskOverrides
    strategies: StrategyHost
    instruments: dict[str, Instrument]
    alerts: AlertBook
    venues: dict[str, VenueAdapter]

    @property
    def venue(self) -> VenueAdapter:
        """The node's venue, when it has exactly one."""
        ...

    def restore_trading_state(self, state: TradingState, reason: str) -> None:
        """Take over the trading state the journal last recorded."""
        ...

    def halt_venue(self, name: str, reason: str, *, who: str, why: str) -> None:
        """Halt one venue, journaled (``VenueHalted``): it refuses new orders until
        ``bastion resume --venue``, across restarts too."""
        ...

"""How much of each configured risk limit is in use now (``RiskGate.limit_usage``), for
monitoring: each limit reports what counts against it, in the limit's own units, beside
the limit. Read on the trading loop between orders, never on the order path.

What counts is what the pre-trade check compares, so 100 % is where the next increasing
order is denied: position limits count the position and the working orders on its side
(``risk.positions``), credit limits the positions and working orders
(``risk.credit``), throttles the messages in the last second (``risk.throttle``); the
daily loss and drawdown limits count the day's loss and the drop from its peak PnL
(``risk.post_trade``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import NamedTuple


class LimitUse(NamedTuple):
    """One configured limit and what counts against it now."""

    limit: str
    """The limit's config key: ``max_long_quantity``, ``max_total_exposure``, ..."""
    scope: str
    """What it limits: an instrument id, a strategy name, a risk account's or a venue's
    name (``risk.accounts``, ``risk.venues``), or ``node``."""
    used: Decimal
    cap: Decimal
    """The limit itself, in the same units as ``used``."""

    @property
    def ratio(self) -> float:
        """``used / cap`` (0.0 unused, 1.0 at the limit; infinite for a zero limit in use)."""
        if self.cap:
            return float(self.used / self.cap)
        return math.inf if self.used > 0 else 0.0

"""Recovery and reconciliation settings (``[recovery]`` in a node config)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from bastion.errors import ConfigError


class RecoveryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a node reconciles with its venue on start (and after each new logon).

    ``on_mismatch``: the trading state a node takes when its state and the venue's
    disagree beyond tolerance (``HALTED``: nothing new is sent; ``REDUCING``: only
    orders that reduce a position); with several venues, ``HALTED`` halts only the
    venue for a mismatch confined to its orders (``bastion.recovery.reconcile``).
    ``position_tolerance``: the largest position
    difference per instrument (in instrument units) that is not a mismatch.
    ``compare_positions``: ask the venue for positions (FIX RequestForPositions);
    turn off for a venue that does not answer it. ``timeout_s``: how long each
    venue query may take.
    """

    on_mismatch: Literal["HALTED", "REDUCING"] = "HALTED"
    position_tolerance: Decimal = Decimal(0)
    compare_positions: bool = True
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.position_tolerance < 0 or not self.position_tolerance.is_finite():
            raise ConfigError(
                f"key 'recovery.position_tolerance': must be >= 0, got {self.position_tolerance}"
            )
        if not self.timeout_s > 0:
            raise ConfigError(f"key 'recovery.timeout_s': must be positive, got {self.timeout_s}")

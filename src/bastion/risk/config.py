"""Risk gate configuration (first version: order size limits and trading state)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from bastion.model.enums import TradingState


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pre-trade limits applied to every order, whichever strategy sends it.

    Quantities are in instrument units (e.g. shares, contracts); notionals are in
    the instrument's quote currency. ``None`` means no limit.
    """

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    trading_state: TradingState = TradingState.ACTIVE

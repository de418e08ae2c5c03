"""Account configuration."""

from __future__ import annotations

from decimal import Decimal

import msgspec


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The trading account's base currency and starting cash."""

    currency: str = "USD"
    starting_cash: Decimal = Decimal(1_000_000)

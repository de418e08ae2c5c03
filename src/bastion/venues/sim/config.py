"""Configuration of the in-process simulated venue: a ``[[venues]]`` table with
``kind = "sim"`` (``SimVenueEntry``), or the single ``[venue]`` table of a node config."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

import msgspec


class SimVenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the built-in simulated venue matches, charges and rejects.

    - ``latency_ms``: delay between an order leaving the node and reaching the
      matching engine (and between a cancel/replace and its effect).
    - ``market_remainder``: what happens to the part of a market order beyond the
      displayed size at the touch: ``cancel`` it, or ``rest`` it to fill on later quotes.
    - ``taker_fee_bps`` / ``maker_fee_bps``: fees on notional, in basis points.
    - ``reject_when_no_market``: refuse a market order when the venue has no quote yet.
    - ``max_order_quantity``: the venue's own size limit (an exchange reject), in units.
    - ``reject_probability`` / ``seed``: reject a random share of new orders, reproducibly.
    """

    sends_market_data: ClassVar[bool] = False
    """It matches on the node's quotes; it has none of its own to feed."""

    name: str = "SIM"
    latency_ms: int = 0
    market_remainder: Literal["cancel", "rest"] = "cancel"
    taker_fee_bps: Decimal = Decimal(0)
    maker_fee_bps: Decimal = Decimal(0)
    reject_when_no_market: bool = True
    max_order_quantity: Decimal | None = None
    reject_probability: Decimal = Decimal(0)
    seed: int = 0


class SimVenueEntry(SimVenueConfig, frozen=True, tag="sim", tag_field="kind"):
    """A ``[[venues]]`` table with ``kind = "sim"``."""

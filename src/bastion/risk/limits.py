"""Risk limits converted once, at construction, into an instrument's raw integers
(``risk.units``). Reference prices are kept doubled (``bid + ask`` is twice the mid)
so a half-tick mid stays an integer.
"""

from __future__ import annotations

from decimal import Decimal

from bastion.model.instruments import Instrument
from bastion.risk.config import InstrumentRiskConfig, StrategyRiskConfig, ThrottleConfig
from bastion.risk.positions import PositionLimits
from bastion.risk.throttle import SlidingWindow
from bastion.risk.units import notional_raw, qty_raw
from bastion.risk.usage import LimitUse


class InstrumentLimits:
    """One instrument's effective limits (``[risk]`` overlaid with its override)."""

    __slots__ = (
        "band_high_raw",
        "band_low_raw",
        "collar_band",
        "collar_last",
        "collar_other",
        "collar_pct_den100",
        "collar_pct_num",
        "collar_ticks2",
        "collar_touch",
        "config",
        "has_collar",
        "has_position",
        "has_size",
        "instrument",
        "lot_raw",
        "max_age_ns",
        "max_notional_raw",
        "max_qty_raw",
        "needs_reference",
        "paused_or_stale",
        "positions",
        "stale_ns",
        "tick_raw",
        "venue",
    )

    def __init__(
        self, config: InstrumentRiskConfig, instrument: Instrument, *, pausable: bool = False
    ) -> None:
        """``pausable``: a market data validator may pause the instrument (then its orders
        ask ``risk.market`` whether it is paused)."""
        self.config = config
        self.instrument = instrument
        self.venue = instrument.venue  # where its orders go: the only venue the gate allows
        self.lot_raw = instrument.lot_raw
        self.tick_raw = instrument.tick_raw
        self.max_qty_raw = qty_raw(config.max_order_quantity, instrument)
        self.max_notional_raw = notional_raw(config.max_order_notional, instrument)
        # whether an order asks ``risk.size.check_size`` (order size limits)
        self.has_size = self.max_qty_raw is not None or self.max_notional_raw is not None
        self.collar_pct_num: int | None = None
        self.collar_pct_den100 = 0
        if config.collar_pct is not None:
            num, den = config.collar_pct.as_integer_ratio()
            self.collar_pct_num, self.collar_pct_den100 = num, den * 100
        self.collar_ticks2: int | None = (
            None if config.collar_ticks is None else 2 * config.collar_ticks * instrument.tick_raw
        )
        self.collar_touch = config.collar_reference == "touch"
        self.collar_last = config.collar_reference == "last"
        # the band's edges, raw (``RiskConfig.check_bands`` has put them on the tick)
        self.band_low_raw: int | None = None
        self.band_high_raw: int | None = None
        if config.collar_reference == "band":
            low, high = config.collar_band_low, config.collar_band_high
            assert low is not None and high is not None
            self.band_low_raw = instrument.price_raw(low)
            self.band_high_raw = instrument.price_raw(high)
        self.collar_band = self.band_low_raw is not None
        # a reference other than the quote's (``risk.collar``): one test on the order path
        self.collar_other = self.collar_last or self.collar_band
        self.has_collar = (
            self.collar_pct_num is not None or self.collar_ticks2 is not None or self.collar_band
        )
        self.max_age_ns: int | None = (
            None if config.reference_max_age_ms is None else config.reference_max_age_ms * 1_000_000
        )
        self.needs_reference = self.has_collar or self.max_age_ns is not None
        positions = PositionLimits(config, instrument)
        self.has_position = positions.is_set
        self.positions: PositionLimits | None = positions if positions.is_set else None
        self.stale_ns: int | None = (
            None if config.stale_data_ms is None else config.stale_data_ms * 1_000_000
        )
        # whether an order on this instrument asks ``risk.market`` (pause, stale data)
        self.paused_or_stale = (
            pausable or self.stale_ns is not None or config.collar_window_pct is not None
        )

    @property
    def is_extended(self) -> bool:
        """Whether any check beyond order size is configured."""
        return self.needs_reference or self.has_position or self.paused_or_stale


class Throttle:
    """The three message windows of a strategy or a venue session (None = no limit);
    ``scope`` ("strategy NAME", "venue NAME") names it in a denial."""

    __slots__ = ("amends", "is_set", "messages", "new_orders")

    def __init__(self, config: ThrottleConfig, scope: str = "") -> None:
        self.new_orders = _window(config.max_new_orders_per_s, scope, "max_new_orders_per_s")
        self.amends = _window(config.max_amends_per_s, scope, "max_amends_per_s")
        self.messages = _window(config.max_messages_per_s, scope, "max_messages_per_s")
        self.is_set = (
            self.new_orders is not None or self.amends is not None or self.messages is not None
        )

    def usage(self, now_ns: int, scope: str) -> list[LimitUse]:
        """Messages in each window now, against its limit."""
        return [
            LimitUse(window.key, scope, Decimal(window.count(now_ns)), Decimal(window.limit))
            for window in (self.new_orders, self.amends, self.messages)
            if window is not None
        ]


def _window(limit: int | None, scope: str, key: str) -> SlidingWindow | None:
    return None if limit is None else SlidingWindow(limit, scope=scope, key=key)


class StrategyRules:
    """A strategy's permissions, position limits per instrument and throttle."""

    __slots__ = ("config", "instruments", "positions", "throttle", "venues")

    def __init__(
        self,
        config: StrategyRiskConfig | None,
        throttle: ThrottleConfig,
        instruments: dict[str, Instrument],
        strategy_id: str = "",
    ) -> None:
        self.config = config
        self.instruments: frozenset[str] | None = None
        self.venues: frozenset[str] | None = None
        self.positions: dict[str, PositionLimits] | None = None
        if config is not None:
            if config.instruments is not None:
                self.instruments = frozenset(config.instruments)
            if config.venues is not None:
                self.venues = frozenset(config.venues)
            if (
                config.max_long_quantity is not None
                or config.max_short_quantity is not None
                or config.max_gross_notional is not None
            ):
                self.positions = {
                    iid: PositionLimits(config, inst, strategy_id)
                    for iid, inst in instruments.items()
                }
        self.throttle = Throttle(throttle, f"strategy {strategy_id}")

    def permits(self, instrument_id: str) -> bool:
        """The permission rule (``instruments``): whether it may trade the instrument."""
        return self.instruments is None or instrument_id in self.instruments

    def permits_venue(self, venue: str) -> bool:
        """The permission rule (``venues``): whether it may trade on the venue."""
        return self.venues is None or venue in self.venues

    @property
    def is_set(self) -> bool:
        return (
            self.instruments is not None
            or self.venues is not None
            or self.positions is not None
            or self.throttle.is_set
        )

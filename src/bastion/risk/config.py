"""Risk gate configuration: the ``[risk]`` TOML section and its override tables.

``[risk]`` holds node-wide values; ``[risk.instruments."ID"]`` overrides the
per-instrument limits for one instrument, ``[risk.strategies.NAME]`` sets a
strategy's own limits, throttle, permissions and post-trade limits, and
``[risk.venues.NAME]`` a venue session's message throttle. Quantities are in
instrument units, notionals in the instrument's quote currency (exposure, cash and
PnL in the account currency); an absent key means no limit (in an override table:
inherit the ``[risk]`` value).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

import msgspec

from bastion.errors import ConfigError
from bastion.model.enums import TradingState

CollarReference = Literal["mid", "touch"]
SelfTradeMode = Literal["off", "deny", "cancel_resting"]
PostTradeAction = Literal["REDUCING", "HALTED"]


class InstrumentRiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-instrument limits: in ``[risk]`` the default for every instrument, in
    ``[risk.instruments."ID"]`` an override for one (absent keys inherit ``[risk]``).

    Position limits count the node's net position in the instrument plus every
    working order that could fill (all strategies)."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    collar_pct: Decimal | None = None
    collar_ticks: int | None = None
    collar_reference: CollarReference | None = None
    reference_max_age_ms: int | None = None
    max_long_quantity: Decimal | None = None
    max_short_quantity: Decimal | None = None
    max_gross_notional: Decimal | None = None
    collar_window_pct: Decimal | None = None
    collar_window_ms: int | None = None
    collar_window_pause_ms: int | None = None
    stale_data_ms: int | None = None


class ThrottleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Message rates over a sliding one-second window. Cancels count toward
    ``max_messages_per_s`` but are never denied (they only reduce risk)."""

    max_new_orders_per_s: int | None = None
    max_amends_per_s: int | None = None
    max_messages_per_s: int | None = None


class StrategyRiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.strategies.NAME]``: one strategy's limits, throttle and permissions.

    Position limits count the strategy's own position in an instrument plus its own
    working orders in it. Throttle keys override the ``[risk]`` defaults.
    ``instruments`` / ``venues``: allow-lists (absent = everything allowed). The
    repeated-execution and post-trade keys (``STRATEGY_KEYS``) override ``[risk]``'s."""

    max_long_quantity: Decimal | None = None
    max_short_quantity: Decimal | None = None
    max_gross_notional: Decimal | None = None
    max_new_orders_per_s: int | None = None
    max_amends_per_s: int | None = None
    max_messages_per_s: int | None = None
    instruments: list[str] | None = None
    venues: list[str] | None = None
    max_fills: int | None = None
    fills_window_ms: int | None = None
    max_daily_loss: Decimal | None = None
    max_drawdown: Decimal | None = None


STRATEGY_KEYS = ("max_fills", "fills_window_ms", "max_daily_loss", "max_drawdown")
"""Per-strategy keys whose ``[risk]`` value is every strategy's default."""


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pre-trade limits applied to every order, whichever strategy sends it.

    The per-instrument keys (order size, collar, position) are defaults that
    ``instruments`` may override; the throttle keys are defaults for every strategy.
    """

    # per instrument (defaults; see InstrumentRiskConfig)
    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    collar_pct: Decimal | None = None
    collar_ticks: int | None = None
    collar_reference: CollarReference = "mid"
    reference_max_age_ms: int | None = None
    max_long_quantity: Decimal | None = None
    max_short_quantity: Decimal | None = None
    max_gross_notional: Decimal | None = None
    collar_window_pct: Decimal | None = None
    collar_window_ms: int | None = None
    collar_window_pause_ms: int | None = None
    stale_data_ms: int | None = None
    # node (= the account)
    max_total_exposure: Decimal | None = None
    max_cash_usage: Decimal | None = None
    duplicate_window_ms: int | None = None
    self_trade: SelfTradeMode = "off"
    max_daily_loss_node: Decimal | None = None
    max_drawdown_node: Decimal | None = None
    trading_day_start: str = "00:00"
    post_trade_action: PostTradeAction = "HALTED"
    # per strategy (defaults)
    max_new_orders_per_s: int | None = None
    max_amends_per_s: int | None = None
    max_messages_per_s: int | None = None
    max_fills: int | None = None
    fills_window_ms: int | None = None
    max_daily_loss: Decimal | None = None
    max_drawdown: Decimal | None = None
    trading_state: TradingState = TradingState.ACTIVE
    instruments: dict[str, InstrumentRiskConfig] = msgspec.field(default_factory=dict)
    strategies: dict[str, StrategyRiskConfig] = msgspec.field(default_factory=dict)
    venues: dict[str, ThrottleConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_limits(self, "risk.")
        for kind, table in (
            ("instruments", self.instruments),
            ("strategies", self.strategies),
            ("venues", self.venues),
        ):
            for name, sub in table.items():
                _check_limits(sub, f'risk.{kind}."{name}".')
        if _DAY_START.fullmatch(self.trading_day_start) is None:
            raise ConfigError(
                f"key 'risk.trading_day_start': must be \"HH:MM\" (UTC, 00:00 to 23:59), "
                f"got {self.trading_day_start!r}"
            )
        _check_pairs(self, "risk.")
        for iid in self.instruments:
            _check_pairs(self.for_instrument(iid), f'risk.instruments."{iid}".')
        for name in self.strategies:
            _check_pairs(self.for_strategy(name), f'risk.strategies."{name}".')

    @property
    def trading_day_start_ns(self) -> int:
        """``trading_day_start`` as nanoseconds after 00:00 UTC."""
        hours, minutes = self.trading_day_start.split(":")
        return (int(hours) * 60 + int(minutes)) * 60 * 1_000_000_000

    def for_instrument(self, instrument_id: str) -> InstrumentRiskConfig:
        """The effective per-instrument limits: the override's keys over ``[risk]``'s."""
        override = self.instruments.get(instrument_id)
        values = {f: getattr(self, f) for f in InstrumentRiskConfig.__struct_fields__}
        if override is not None:
            for f in InstrumentRiskConfig.__struct_fields__:
                value = getattr(override, f)
                if value is not None:
                    values[f] = value
        return InstrumentRiskConfig(**values)

    def for_strategy(self, name: str) -> StrategyRiskConfig:
        """A strategy's effective repeated-execution and post-trade keys (``STRATEGY_KEYS``:
        its own over ``[risk]``'s), with its other keys as configured."""
        override = self.strategies.get(name) or StrategyRiskConfig()
        values = {f: getattr(override, f) for f in StrategyRiskConfig.__struct_fields__}
        for f in STRATEGY_KEYS:
            if values[f] is None:
                values[f] = getattr(self, f)
        return StrategyRiskConfig(**values)

    def throttle_for_strategy(self, name: str) -> ThrottleConfig:
        override = self.strategies.get(name)
        values = {f: getattr(self, f) for f in ThrottleConfig.__struct_fields__}
        if override is not None:
            for f in ThrottleConfig.__struct_fields__:
                value = getattr(override, f)
                if value is not None:
                    values[f] = value
        return ThrottleConfig(**values)

    def check_names(
        self, instruments: set[str], strategies: set[str] | None, venues: set[str]
    ) -> None:
        """Every override table must name a defined instrument, strategy and venue."""
        for kind, table, defined in (
            ("instruments", self.instruments, instruments),
            ("strategies", self.strategies, strategies),
            ("venues", self.venues, venues),
        ):
            if defined is None:
                continue
            for name in table:
                if name not in defined:
                    known = ", ".join(sorted(defined)) or "none"
                    raise ConfigError(
                        f"key 'risk.{kind}.\"{name}\"': unknown {kind[:-1]} '{name}' "
                        f"(defined: {known})"
                    )
        for name, strategy in self.strategies.items():
            for n, iid in enumerate(strategy.instruments or ()):
                if iid not in instruments:
                    raise ConfigError(
                        f"key 'risk.strategies.\"{name}\".instruments[{n}]': unknown "
                        f"instrument '{iid}'"
                    )
            for n, venue in enumerate(strategy.venues or ()):
                if venue not in venues:
                    raise ConfigError(
                        f"key 'risk.strategies.\"{name}\".venues[{n}]': unknown venue '{venue}'"
                    )


_POSITIVE = (
    "max_order_quantity",
    "max_order_notional",
    "collar_pct",
    "collar_ticks",
    "max_new_orders_per_s",
    "max_amends_per_s",
    "max_messages_per_s",
    "duplicate_window_ms",
    "collar_window_pct",
    "collar_window_ms",
    "collar_window_pause_ms",
    "max_fills",
    "fills_window_ms",
)
_NON_NEGATIVE = (
    "reference_max_age_ms",
    "max_long_quantity",
    "max_short_quantity",
    "max_gross_notional",
    "max_total_exposure",
    "max_cash_usage",
    "stale_data_ms",
    "max_daily_loss",
    "max_drawdown",
    "max_daily_loss_node",
    "max_drawdown_node",
)
_DAY_START = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# a limit key that means nothing without its window (in its table or inherited)
_NEEDS = {
    "collar_window_pct": ("collar_window_ms", "collar_window_pause_ms"),
    "max_fills": ("fills_window_ms",),
}


def _check_limits(section: msgspec.Struct, prefix: str) -> None:
    """Limits must be finite numbers: > 0 for order sizes, rates and windows, >= 0 for
    positions and exposure (0 = none allowed)."""
    for name in _POSITIVE + _NON_NEGATIVE:
        value = getattr(section, name, None)
        if value is None:
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            raise ConfigError(f"key '{prefix}{name}': must be a finite number, got {value}")
        if name in _POSITIVE and not value > 0:
            raise ConfigError(f"key '{prefix}{name}': must be > 0, got {value}")
        if not value >= 0:
            raise ConfigError(f"key '{prefix}{name}': must be >= 0, got {value}")


def _check_pairs(section: msgspec.Struct, prefix: str) -> None:
    """A limit needs its window: ``collar_window_pct`` its ``collar_window_ms`` and
    ``collar_window_pause_ms``, ``max_fills`` its ``fills_window_ms``."""
    for key, needed in _NEEDS.items():
        if getattr(section, key, None) is None:
            continue
        missing = [n for n in needed if getattr(section, n, None) is None]
        if missing:
            raise ConfigError(
                f"key '{prefix}{key}': needs {' and '.join(missing)} "
                "(in the same table or in [risk])"
            )

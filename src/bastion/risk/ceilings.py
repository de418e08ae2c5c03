"""How far an operator's override may loosen a limit: its direction and its ceiling.

A numeric limit is looser in one direction. Most are maxima (``LOOSER_HIGHER``: a
larger order, position, loss, rate or collar allows more); a few are looser lower
(``LOOSER_LOWER``: the windows within which fills, jumps and duplicates are counted,
the pause after a jump, the lower edge of a price band). Every other key an override
may set (a mode, a flag, an allow-list, the start of the trading day) is *unordered*:
any value other than the config's counts as loosening, and it has no ceiling (no
magnitude to bound).

An override's value is compared with the *configured* value, the one the config file
gives the limit where it applies (an instrument's limit is its own table's, else
``[risk]``'s; a strategy's post-trade and throttle keys likewise): never with an
override in force, so overrides cannot ratchet a limit up step by step, and an
instrument's table cannot be used to escape the bound on ``[risk]``'s value. A limit
the config leaves unset has no bound: any value is tighter than none.

The ceiling of a limit is ``factor`` times its configured value (divided by ``factor``
for a limit looser lower), unless raised (``raised``: by an admin, under four-eyes).
``Ceilings`` holds a node's factor and raised ceilings (for as long as it runs: a
restart is back to the factor's) for ``RiskOverrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import msgspec

from bastion.errors import ConfigError
from bastion.risk.config import (
    STRATEGY_KEYS,
    AccountRiskConfig,
    InstrumentRiskConfig,
    RiskConfig,
    StrategyRiskConfig,
    ThrottleConfig,
)
from bastion.risk.overrides import apply_override, number, split_path

__all__ = [
    "LOOSER_HIGHER",
    "LOOSER_LOWER",
    "Ceilings",
    "Change",
    "assess",
    "configured_value",
    "raised_ceiling",
]

LOOSER_HIGHER: Final = frozenset(
    {
        "max_order_quantity",
        "max_order_notional",
        "collar_pct",
        "collar_ticks",
        "collar_band_high",
        "reference_max_age_ms",
        "max_long_quantity",
        "max_short_quantity",
        "max_gross_notional",
        "collar_window_pct",
        "stale_data_ms",
        "max_total_exposure",
        "max_cash_usage",
        "max_daily_loss_node",
        "max_drawdown_node",
        "max_new_orders_per_s",
        "max_amends_per_s",
        "max_messages_per_s",
        "max_fills",
        "max_daily_loss",
        "max_drawdown",
    }
)
"""Limits a larger value loosens."""

LOOSER_LOWER: Final = frozenset(
    {
        "collar_band_low",
        "collar_window_ms",
        "collar_window_pause_ms",
        "duplicate_window_ms",
        "fills_window_ms",
    }
)
"""Limits a smaller value loosens: a shorter window counts fewer fills, jumps or
duplicates; a shorter pause ends sooner; a lower band edge lets lower prices through."""

_TABLES: Final[dict[str, type[msgspec.Struct]]] = {
    "instruments": InstrumentRiskConfig,
    "strategies": StrategyRiskConfig,
    "venues": ThrottleConfig,
    "accounts": AccountRiskConfig,
}


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """What an override of ``path`` to ``value`` does to the configured limit.

    ``looser``: it allows more than the config does (a four-eyes action);
    ``ceiling``: the loosest value an override may have (None: no bound, the limit is
    unset in the config or unordered); ``raised``: the ceiling was raised by an admin."""

    path: str
    configured: Any
    value: Any
    looser: bool
    ceiling: Decimal | None
    raised: bool


def configured_value(config: RiskConfig, path: str) -> Any:
    """The value of the limit ``path`` where it applies: an instrument's or a
    strategy's own, else what it inherits from ``[risk]`` (None: no limit)."""
    table, name, key = split_path(path, config)
    if table is None:
        return getattr(config, key)
    assert name is not None
    if table == "instruments":
        return getattr(config.for_instrument(name), key)
    if table == "strategies":
        if key in STRATEGY_KEYS:
            return getattr(config.for_strategy(name), key)
        if key in ThrottleConfig.__struct_fields__:
            return getattr(config.throttle_for_strategy(name), key)
    entry = getattr(config, table).get(name)
    return None if entry is None else getattr(entry, key)


def _key(path: str, config: RiskConfig) -> str:
    return split_path(path, config)[2]


def _default_ceiling(key: str, configured: Any, factor: Decimal) -> Decimal | None:
    if configured is None or isinstance(configured, bool):
        return None
    if key in LOOSER_HIGHER:
        return Decimal(configured) * factor
    if key in LOOSER_LOWER:
        return Decimal(configured) / factor
    return None


def _looser(key: str, configured: Any, value: Any) -> bool:
    if configured is None:
        return False  # any limit is tighter than none
    if key in LOOSER_HIGHER:
        return bool(value > configured)
    if key in LOOSER_LOWER:
        return bool(value < configured)
    return bool(value != configured)


def _beyond(key: str, value: Any, ceiling: Decimal) -> bool:
    return bool(value > ceiling) if key in LOOSER_HIGHER else bool(value < ceiling)


def assess(
    base: RiskConfig,
    path: str,
    value: str,
    *,
    factor: Decimal,
    raised: Mapping[str, Decimal],
) -> Change:
    """What overriding ``path`` with ``value`` does against the config ``base``;
    ``ConfigError`` when the key or value is bad, or the value is beyond the limit's
    ceiling (naming the ceiling and how to raise it)."""
    key = _key(path, base)
    configured = configured_value(base, path)
    new = configured_value(apply_override(base, path, value), path)
    default = _default_ceiling(key, configured, factor)
    ceiling = raised.get(path, default) if default is not None else None
    change = Change(
        path=path,
        configured=configured,
        value=new,
        looser=_looser(key, configured, new),
        ceiling=ceiling,
        raised=path in raised and default is not None,
    )
    if ceiling is not None and _beyond(key, new, ceiling):
        side = "above" if key in LOOSER_HIGHER else "below"
        how = (
            "raised by an admin"
            if change.raised
            else f"{factor.normalize()} x the configured {configured}"
            if key in LOOSER_HIGHER
            else f"the configured {configured} / {factor.normalize()}"
        )
        raise ConfigError(
            f"risk key '{path}': {value} is {side} its ceiling {number(ceiling)} ({how}); "
            "an admin may raise the ceiling (bastion risk raise-ceiling), with a second "
            "operator's approval"
        )
    return change


def raised_ceiling(
    base: RiskConfig,
    path: str,
    value: str,
    *,
    factor: Decimal,
    raised: Mapping[str, Decimal],
) -> tuple[Decimal, Decimal]:
    """(the new ceiling, the one it replaces) for raising ``path``'s ceiling to
    ``value``; ``ConfigError`` if the key has no ceiling (unordered, or unset in the
    config) or ``value`` is not a valid value beyond the current ceiling."""
    key = _key(path, base)
    configured = configured_value(base, path)
    default = _default_ceiling(key, configured, factor)
    if default is None:
        why = (
            "the config sets no value for it, so every override is tighter"
            if configured is None and (key in LOOSER_HIGHER or key in LOOSER_LOWER)
            else "it is not a number, and any change to it needs a second operator"
        )
        raise ConfigError(f"risk key '{path}': has no ceiling to raise: {why}")
    new = configured_value(apply_override(base, path, value), path)
    current = raised.get(path, default)
    if not _beyond(key, new, current):
        side = "above" if key in LOOSER_HIGHER else "below"
        raise ConfigError(
            f"risk key '{path}': a raised ceiling must be {side} the current one "
            f"({number(current)}), got {value}"
        )
    return Decimal(new), current


class Ceilings:
    """A node's bounds on overrides: ``factor`` (``access.max_override_factor``) and the
    ceilings raised while it runs."""

    def __init__(self, factor: Decimal) -> None:
        if not factor.is_finite() or factor < 1:
            raise ValueError(f"an override factor is at least 1, got {factor}")
        self.factor = factor
        self.raised: dict[str, Decimal] = {}

    def assess(self, base: RiskConfig, path: str, value: str) -> Change:
        """``assess`` with this node's factor and raised ceilings."""
        return assess(base, path, value, factor=self.factor, raised=self.raised)

    def ceiling(self, base: RiskConfig, path: str) -> Decimal | None:
        """The loosest value an override of ``path`` may have now (None: no bound, the
        limit is unset in ``base`` or unordered); ``ConfigError`` for a bad path."""
        default = _default_ceiling(_key(path, base), configured_value(base, path), self.factor)
        return None if default is None else self.raised.get(path, default)

    def check_raise(self, base: RiskConfig, path: str, value: str) -> tuple[Decimal, Decimal]:
        """``raised_ceiling`` with this node's factor and raised ceilings; nothing changes."""
        return raised_ceiling(base, path, value, factor=self.factor, raised=self.raised)

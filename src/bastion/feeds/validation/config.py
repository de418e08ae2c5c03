"""``[validation]``: what the market data validators check, and what each does on a hit.

Thresholds in ``[validation]`` are every instrument's defaults; a table
``[validation.instruments."ID"]`` overrides keys for one (absent keys inherit). Each
validator's action (``drop``, ``flag``, ``pause`` or ``off``) is a key of
``[validation.actions]`` (or of the instrument's ``actions`` table), named by the
reason it counts under (``REASONS`` in ``bastion.feeds.validation.rules``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from bastion.errors import ConfigError

Action = Literal["drop", "flag", "pause", "off"]


class ActionsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One action per validator, keyed by its reason (None: inherit, or the default)."""

    non_positive_price: Action | None = None
    bad_size: Action | None = None
    off_tick: Action | None = None
    crossed: Action | None = None
    locked: Action | None = None
    clock_ahead: Action | None = None
    stale: Action | None = None
    duplicate: Action | None = None
    out_of_order: Action | None = None
    seq_gap: Action | None = None
    spike: Action | None = None


DEFAULT_ACTIONS: dict[str, Action] = {
    "non_positive_price": "drop",
    "bad_size": "drop",
    "off_tick": "drop",
    "crossed": "drop",
    "locked": "drop",
    "clock_ahead": "drop",
    "stale": "drop",
    "duplicate": "drop",
    "out_of_order": "drop",
    "seq_gap": "flag",
    "spike": "drop",
}
"""Each validator's action when the config does not set it."""


class InstrumentValidationConfig(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """``[validation.instruments."ID"]``: one instrument's thresholds (None: inherit)."""

    spike_ticks: int | None = None
    spike_pct: Decimal | None = None
    spike_z: Decimal | None = None
    spike_window: int | None = None
    spike_confirm: int | None = None
    max_ahead_ms: int | None = None
    max_age_ms: int | None = None
    pause_ms: int | None = None
    actions: ActionsConfig | None = None


class EffectiveValidation(msgspec.Struct, frozen=True, kw_only=True):
    """One instrument's thresholds and actions, overrides applied (``for_instrument``)."""

    spike_ticks: int | None
    spike_pct: Decimal | None
    spike_z: Decimal | None
    spike_window: int
    spike_confirm: int
    max_ahead_ms: int | None
    max_age_ms: int | None
    pause_ms: int
    actions: dict[str, Action]


class ValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[validation]`` of a node config.

    - ``spike_ticks`` / ``spike_pct``: a mid more than that many ticks, or that percent,
      away from the last accepted mid is a spike (None: that test off);
    - ``spike_z``: a mid change more than that many robust standard deviations (median
      and MAD of the last ``spike_window`` accepted changes) from the median change is a
      spike (None, the default: off);
    - ``spike_confirm``: that many spikes in a row at one new level (within the spike
      thresholds of each other) are a real move: the last of them is accepted;
    - ``max_ahead_ms``: a timestamp further ahead of the node's clock is ``clock_ahead``;
      ``max_age_ms``: one further behind is ``stale`` (None: not checked);
    - ``pause_ms``: how long the ``pause`` action pauses new orders on the instrument;
    - ``log_interval_ms``: each reason is logged at most once per instrument per interval
      (every hit is counted).
    """

    enabled: bool = True
    spike_ticks: int | None = None
    spike_pct: Decimal | None = Decimal(5)
    spike_z: Decimal | None = None
    spike_window: int = 64
    spike_confirm: int = 3
    max_ahead_ms: int | None = 1_000
    max_age_ms: int | None = 5_000
    pause_ms: int = 5_000
    log_interval_ms: int = 10_000
    actions: ActionsConfig = msgspec.field(default_factory=ActionsConfig)
    instruments: dict[str, InstrumentValidationConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(
                f"key 'validation.enabled': must be true or false, got {self.enabled!r}"
            )
        _check_thresholds(self, "validation.")
        _check_positive("validation.log_interval_ms", self.log_interval_ms)
        for iid, override in self.instruments.items():
            _check_thresholds(override, f'validation.instruments."{iid}".')

    def for_instrument(self, instrument_id: str) -> EffectiveValidation:
        """The thresholds and actions in force for one instrument."""
        override = self.instruments.get(instrument_id)
        values = {key: getattr(self, key) for key in _THRESHOLDS}
        actions = dict(DEFAULT_ACTIONS)
        tables = [self.actions]
        if override is not None:
            for key in _THRESHOLDS:
                value = getattr(override, key)
                if value is not None:
                    values[key] = value
            if override.actions is not None:
                tables.append(override.actions)
        for table in tables:
            for reason in DEFAULT_ACTIONS:
                action = getattr(table, reason)
                if action is not None:
                    actions[reason] = action
        return EffectiveValidation(**values, actions=actions)

    def check_instruments(self, known: set[str]) -> None:
        """Every ``[validation.instruments."ID"]`` names a configured instrument."""
        for iid in self.instruments:
            if iid not in known:
                raise ConfigError(
                    f"key 'validation.instruments.\"{iid}\"': unknown instrument {iid!r} "
                    f"(configured: {', '.join(sorted(known))})"
                )


_THRESHOLDS = (
    "spike_ticks",
    "spike_pct",
    "spike_z",
    "spike_window",
    "spike_confirm",
    "max_ahead_ms",
    "max_age_ms",
    "pause_ms",
)
_POSITIVE_INTS = (
    "spike_ticks",
    "spike_window",
    "spike_confirm",
    "max_ahead_ms",
    "max_age_ms",
    "pause_ms",
)


def _check_thresholds(section: ValidationConfig | InstrumentValidationConfig, prefix: str) -> None:
    for key in _POSITIVE_INTS:
        value = getattr(section, key)
        if value is not None:
            _check_positive(prefix + key, value)
    for key in ("spike_pct", "spike_z"):
        value = getattr(section, key)
        if value is not None and (not value.is_finite() or value <= 0):
            raise ConfigError(f"key '{prefix}{key}': must be a finite number > 0, got {value}")
    window = section.spike_window
    if window is not None and window < 8:
        raise ConfigError(f"key '{prefix}spike_window': must be >= 8 quotes, got {window}")


def _check_positive(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"key '{key}': must be an integer > 0, got {value!r}")

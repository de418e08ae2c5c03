"""Changing risk limits while a node runs, and auditing every change.

Two ways a limit changes, both journaled with who, when and why:

- the config file: on start the node compares its ``[risk]`` section with the one it
  last journaled (``config_changes``) and journals the differences;
- an operator override (``bastion risk set``): one key, in one table (``[risk]``, an
  instrument's, a strategy's, a venue's or a risk account's), for a limited time, and
  never beyond the limit's ceiling (``bastion.risk.ceilings``: a factor times the
  file's value unless an admin raised it, journaled as ``RiskCeilingRaised``).
  ``apply_overrides`` builds the effective config from the file's plus the active
  overrides; an expired override ends by itself (journaled) and the file's value
  applies again.

A key path names one value: ``max_order_quantity`` (``[risk]``),
``instruments.XYZ.SIM.collar_pct``, ``strategies.ema_cross.max_fills``,
``venues.SIM.max_messages_per_s``, ``accounts.desk_a.max_cash_usage`` (an account's
limits only, of an account the config defines: its strategies are file-only). Values
are given as text and converted (and checked) exactly as the TOML loader would.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec
import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.errors import ConfigError
from bastion.model.events import (
    RiskCeilingRaised,
    RiskLimitsChanged,
    RiskOverrideEnded,
    RiskOverrideSet,
)
from bastion.risk.config import (
    ACCOUNT_LIMIT_KEYS,
    AccountRiskConfig,
    InstrumentRiskConfig,
    RiskConfig,
    StrategyRiskConfig,
    ThrottleConfig,
)

log = structlog.get_logger("bastion.risk")

_TABLES: Final[dict[str, type[msgspec.Struct]]] = {
    "instruments": InstrumentRiskConfig,
    "strategies": StrategyRiskConfig,
    "venues": ThrottleConfig,
    "accounts": AccountRiskConfig,
}
# the keys an override may set, where not every field of the table
_KEYS: Final[dict[str, tuple[str, ...]]] = {"accounts": ACCOUNT_LIMIT_KEYS}
_NOT_OVERRIDABLE: Final = frozenset(
    {"trading_state", "instruments", "strategies", "venues", "accounts"}
)
_BOOL_KEYS: Final = frozenset(f.name for f in msgspec.structs.fields(RiskConfig) if f.type is bool)
MAX_OVERRIDE_S: Final = 7 * 24 * 3600
"""The longest an override may last: a week (then it must be set again, or the config changed)."""


class Assessed(Protocol):
    """What an override would do (``bastion.risk.ceilings.Change``)."""

    @property
    def looser(self) -> bool: ...


class Bounds(Protocol):
    """How far overrides may go (``bastion.risk.ceilings.Ceilings``)."""

    factor: Decimal
    raised: dict[str, Decimal]

    def assess(self, base: RiskConfig, path: str, value: str) -> Assessed: ...

    def check_raise(self, base: RiskConfig, path: str, value: str) -> tuple[Decimal, Decimal]: ...

    def ceiling(self, base: RiskConfig, path: str) -> Decimal | None: ...


class Override(msgspec.Struct, frozen=True, kw_only=True):
    """One active override: ``path`` set to ``value`` until ``expires_ns``."""

    id: str
    path: str
    value: str
    who: str
    why: str
    set_ns: int
    expires_ns: int


def split_path(path: str, config: RiskConfig) -> tuple[str | None, str | None, str]:
    """(table, name, key) of a key path; ``ConfigError`` naming what is wrong."""
    table, _, rest = path.partition(".")
    if table in _TABLES and rest:
        name, _, key = rest.rpartition(".")
        if not name:
            raise ConfigError(f"risk key '{path}': expected {table}.NAME.KEY")
        fields = _KEYS.get(table, _TABLES[table].__struct_fields__)
        if key not in fields:
            raise ConfigError(
                f"risk key '{path}': '{key}' is not a limit of [risk.{table}] "
                f"(valid: {', '.join(fields)})"
            )
        if table == "accounts" and name not in config.accounts:
            known = ", ".join(sorted(config.accounts)) or "none"
            raise ConfigError(
                f"risk key '{path}': unknown account '{name}' (defined in the config: {known})"
            )
        return table, name, key
    if path in _NOT_OVERRIDABLE or path not in RiskConfig.__struct_fields__:
        valid = ", ".join(f for f in RiskConfig.__struct_fields__ if f not in _NOT_OVERRIDABLE)
        raise ConfigError(
            f"risk key '{path}': not a limit that can be set (valid: {valid}, or "
            "instruments.ID.KEY, strategies.NAME.KEY, venues.NAME.KEY, accounts.NAME.KEY)"
        )
    return None, None, path


def apply_override(config: RiskConfig, path: str, value: str) -> RiskConfig:
    """``config`` with the value at ``path`` replaced; ``ConfigError`` if either is bad."""
    table, name, key = split_path(path, config)
    raw: Any = _parse(value)
    if table is None:
        if key in _BOOL_KEYS and not isinstance(raw, bool):
            # non-strict conversion would take "1" or "True"; TOML takes true/false only
            raise ConfigError(f"risk key '{path}': must be true or false, got {value!r}")
        data = msgspec.structs.asdict(config)
        data[key] = raw
        changed: RiskConfig = _convert(data, RiskConfig, path)
        return changed
    assert name is not None
    struct_type = _TABLES[table]
    entries = dict(getattr(config, table))
    entry = entries.get(name) or struct_type()
    entry_data = msgspec.structs.asdict(entry)
    entry_data[key] = raw
    entries[name] = _convert(entry_data, struct_type, path)
    data = msgspec.structs.asdict(config)
    data[table] = entries
    result: RiskConfig = _convert(data, RiskConfig, path)
    return result


def apply_overrides(base: RiskConfig, overrides: list[Override]) -> RiskConfig:
    """The effective config: ``base`` with every override applied, oldest first."""
    config = base
    for override in sorted(overrides, key=lambda o: o.set_ns):
        config = apply_override(config, override.path, override.value)
    return config


def value_at(config: RiskConfig, path: str) -> str:
    """The value at ``path`` as text (``"none"`` when unset)."""
    table, name, key = split_path(path, config)
    if table is None:
        value = getattr(config, key)
    else:
        entry = getattr(config, table).get(name)
        value = None if entry is None else getattr(entry, key)
    return _text(value)


def number(value: Decimal) -> str:
    """A bound as an operator reads it: ``20``, ``0.5``, ``333.33333333``."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(round(value, 8).normalize())


def config_changes(old: RiskConfig | None, new: RiskConfig) -> list[str]:
    """What differs between two risk configs, one ``path: old -> new`` line per value."""
    before = _flatten(msgspec.to_builtins(old) if old is not None else {})
    after = _flatten(msgspec.to_builtins(new))
    changes = []
    for path in sorted(set(before) | set(after)):
        was, now = before.get(path), after.get(path)
        if was != now:
            changes.append(f"{path}: {_text(was)} -> {_text(now)}")
    return changes


def encode_config(config: RiskConfig) -> str:
    """A risk config as canonical JSON (for the journal)."""
    return msgspec.json.encode(msgspec.to_builtins(config, order="sorted")).decode()


def decode_config(text: str) -> RiskConfig:
    return msgspec.json.decode(text.encode(), type=RiskConfig)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def _parse(value: str) -> Any:
    """Text as the TOML loader would see it: a list, a bool, or a string (numbers stay
    strings: the struct converts them exactly)."""
    text = value.strip()
    if text.startswith("["):
        try:
            return msgspec.json.decode(text.encode())
        except msgspec.DecodeError as error:
            raise ConfigError(f"value {value!r}: not a list: {error}") from None
    if text in ("true", "false"):
        return text == "true"
    return text


def _convert(data: dict[str, Any], struct_type: type[Any], path: str) -> Any:
    try:
        return msgspec.convert(data, struct_type, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"risk key '{path}': {error}") from None


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):  # as TOML writes it
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(getattr(value, "value", value))


class RiskOverrides:
    """The node's active overrides over its config file's ``[risk]``, applied through
    ``apply`` (the risk gate's ``reconfigure``), bounded by ``ceilings`` and journaled
    on the bus."""

    def __init__(
        self,
        *,
        base: RiskConfig,
        apply: Callable[[RiskConfig], None],
        bus: MessageBus,
        clock: Clock,
        id_prefix: str,
        ceilings: Bounds,
    ) -> None:
        self.base = base
        self.ceilings = ceilings
        self.active: dict[str, Override] = {}
        self.journaled_config: str | None = None
        """The ``[risk]`` the journal last recorded (``RiskLimitsChanged``)."""
        self._apply = apply
        self._bus = bus
        self._clock = clock
        self._id_prefix = id_prefix
        self._count = 0

    def effective(self) -> RiskConfig:
        return apply_overrides(self.base, list(self.active.values()))

    def restore(self, active: list[Override], journaled_config: str | None) -> None:
        """Recovery: the overrides active when the node stopped (an expired one ends,
        journaled, at the next ``expire``) and the last journaled ``[risk]``. One that no
        longer applies to this config (its strategy is gone, say) ends now, journaled.
        Called again (a standby following the journal), the overrides that ended since
        stop applying: the config file's limits are back once none is left."""
        self.journaled_config = journaled_config
        had_overrides = bool(self.active)
        self.active = {}
        config = self.base
        for override in sorted(active, key=lambda o: o.set_ns):
            try:
                config = apply_override(config, override.path, override.value)
            except ConfigError as error:
                self._publish_end(override, how="dropped", who="bastion", why=str(error))
                continue
            self.active[override.id] = override
        if self.active or had_overrides:
            self._apply(config)

    def audit_config(self, *, who: str, source: str) -> list[str]:
        """Journal ``RiskLimitsChanged`` if the config file's ``[risk]`` differs from
        the one last journaled (always on a journal's first start); return the changes."""
        encoded = encode_config(self.base)
        if encoded == self.journaled_config:
            return []
        old = None if self.journaled_config is None else decode_config(self.journaled_config)
        changes = config_changes(old, self.base)
        self.journaled_config = encoded
        self._bus.publish(
            RiskLimitsChanged(
                ts_ns=self._clock.timestamp_ns(),
                who=who,
                source=source,
                changes=changes,
                config=encoded,
            )
        )
        log.warning("risk_limits_changed", who=who, source=source, changes=changes)
        return changes

    def assess(self, path: str, value: str, for_s: float, *, why: str) -> Assessed:
        """What setting ``path`` to ``value`` would do (is it looser than the config?);
        ``ConfigError`` if the key, the value (beyond its ceiling too), the duration or
        the reason is not acceptable. Nothing changes."""
        if not 0 < for_s <= MAX_OVERRIDE_S:
            raise ConfigError(
                f"override duration {for_s:g} s: must be more than 0 and at most "
                f"{MAX_OVERRIDE_S} s (7 days)"
            )
        if not why.strip():
            raise ConfigError("an override needs a reason (why)")
        return self.ceilings.assess(self.base, path, value)

    def raise_ceiling(self, path: str, value: str, *, who: str, why: str) -> Decimal:
        """Let overrides of ``path`` reach ``value`` (until the node stops); journaled
        as ``RiskCeilingRaised``. ``ConfigError`` if the limit has no ceiling or
        ``value`` is not beyond the current one."""
        if not why.strip():
            raise ConfigError("raising a ceiling needs a reason (why)")
        ceiling, previous = self.ceilings.check_raise(self.base, path, value)
        self.ceilings.raised[path] = ceiling
        self._bus.publish(
            RiskCeilingRaised(
                ts_ns=self._clock.timestamp_ns(),
                path=path,
                ceiling=number(ceiling),
                previous=number(previous),
                who=who,
                why=why,
            )
        )
        log.warning(
            "risk_ceiling_raised",
            path=path,
            ceiling=str(ceiling),
            previous=str(previous),
            who=who,
            why=why,
        )
        return ceiling

    def set(self, path: str, value: str, for_s: float, *, who: str, why: str) -> Override:
        """Override one limit for ``for_s`` seconds; ``ConfigError`` if the key, the value
        (beyond the limit's ceiling too) or the duration is not acceptable (nothing
        changes then)."""
        self.assess(path, value, for_s, why=why)
        now = self._clock.timestamp_ns()
        self._count += 1
        override = Override(
            id=f"{self._id_prefix}{self._count}",
            path=path,
            value=value,
            who=who,
            why=why,
            set_ns=now,
            expires_ns=now + int(for_s * 1e9),
        )
        current = self.effective()
        config = apply_override(current, path, value)
        previous = value_at(current, path)
        self._apply(config)
        self.active[override.id] = override
        self._bus.publish(
            RiskOverrideSet(
                ts_ns=now,
                override_id=override.id,
                path=path,
                value=value_at(config, path),
                previous=previous,
                who=who,
                why=why,
                expires_ns=override.expires_ns,
            )
        )
        log.warning(
            "risk_override_set",
            id=override.id,
            path=path,
            value=value,
            previous=previous,
            who=who,
            why=why,
            for_s=for_s,
        )
        return override

    def clear(self, override_id: str, *, who: str, why: str) -> Override:
        """End an override now; ``ConfigError`` if there is no such active override."""
        override = self.active.get(override_id)
        if override is None:
            active = ", ".join(sorted(self.active)) or "none"
            raise ConfigError(f"no active override {override_id!r} (active: {active})")
        self._end(override, how="cleared", who=who, why=why)
        return override

    def expire(self) -> list[Override]:
        """End every override whose time has come; return them."""
        now = self._clock.timestamp_ns()
        due = [o for o in self.active.values() if o.expires_ns <= now]
        for override in due:
            self._end(override, how="expired", who="bastion", why="its time ran out")
        return due

    def _end(self, override: Override, *, how: str, who: str, why: str) -> None:
        del self.active[override.id]
        self._apply(self.effective())
        self._publish_end(override, how=how, who=who, why=why)

    def _publish_end(self, override: Override, *, how: str, who: str, why: str) -> None:
        self._bus.publish(
            RiskOverrideEnded(
                ts_ns=self._clock.timestamp_ns(),
                override_id=override.id,
                path=override.path,
                how=how,
                who=who,
                why=why,
            )
        )
        log.warning("risk_override_ended", id=override.id, path=override.path, how=how, who=who)

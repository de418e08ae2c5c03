"""Risk gate configuration: the ``[risk]`` TOML section and its override tables.

``[risk]`` holds node-wide values; ``[risk.instruments."ID"]`` overrides the
per-instrument limits for one instrument, ``[risk.strategies.NAME]`` sets a
strategy's own limits, throttle, permissions and post-trade limits, and
``[risk.venues.NAME]`` a venue session's message throttle, ``[risk.accounts.NAME]``
the credit limits of a group of strategies (a risk account). Quantities are in
instrument units, notionals in the instrument's quote currency (exposure, cash and
PnL in the account currency); an absent key means no limit (in an override table:
inherit the ``[risk]`` value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final, Literal

import msgspec

from bastion.errors import ConfigError
from bastion.model.enums import TradingState
from bastion.model.instruments import Instrument

CollarReference = Literal["mid", "touch", "last", "band"]
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
    collar_band_low: Decimal | None = None
    collar_band_high: Decimal | None = None
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


class AccountRiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.accounts.NAME]``: a risk account (a desk, a client allocation) inside the
    node's venue account, grouping ``strategies`` (each in at most one account), with
    credit limits on all of them together: the exposure of their positions (netted per
    instrument) and working orders, and the cash their fills spent plus their working
    buys. At least one limit; the node's own ``max_total_exposure`` / ``max_cash_usage``
    apply as well."""

    strategies: list[str] = msgspec.field(default_factory=list)
    max_total_exposure: Decimal | None = None
    max_cash_usage: Decimal | None = None


ACCOUNT_LIMIT_KEYS = ("max_total_exposure", "max_cash_usage")
"""The limits of a ``[risk.accounts.NAME]`` table (what an operator override may set)."""


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
    collar_band_low: Decimal | None = None
    collar_band_high: Decimal | None = None
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
    # a disabled strategy's open orders: canceled at every venue (False: they keep working)
    cancel_on_disable: bool = True
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
    accounts: dict[str, AccountRiskConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_limits(self, "risk.")
        for kind, table in (
            ("instruments", self.instruments),
            ("strategies", self.strategies),
            ("venues", self.venues),
            ("accounts", self.accounts),
        ):
            for name, sub in table.items():
                _check_limits(sub, f'risk.{kind}."{name}".')
        _check_accounts(self.accounts)
        if not isinstance(self.cancel_on_disable, bool):
            raise ConfigError(
                f"key 'risk.cancel_on_disable': must be true or false, "
                f"got {self.cancel_on_disable!r}"
            )
        if _DAY_START.fullmatch(self.trading_day_start) is None:
            raise ConfigError(
                f"key 'risk.trading_day_start': must be \"HH:MM\" (UTC, 00:00 to 23:59), "
                f"got {self.trading_day_start!r}"
            )
        _check_pairs(self, "risk.")
        _check_collar(self, self, None)
        for iid in self.instruments:
            _check_pairs(self.for_instrument(iid), f'risk.instruments."{iid}".')
            _check_collar(self.for_instrument(iid), self, iid)
        for name in self.strategies:
            _check_pairs(self.for_strategy(name), f'risk.strategies."{name}".')

    @property
    def trading_day_start_ns(self) -> int:
        """``trading_day_start`` as nanoseconds after 00:00 UTC."""
        hours, minutes = self.trading_day_start.split(":")
        return (int(hours) * 60 + int(minutes)) * 60 * 1_000_000_000

    def for_instrument(self, instrument_id: str) -> InstrumentRiskConfig:
        """The effective per-instrument limits: the override's keys over ``[risk]``'s.

        Collar keys that do not go with the instrument's ``collar_reference`` and come
        from ``[risk]`` are dropped (an override table cannot unset a key): the band
        keys unless the reference is ``"band"``, ``collar_pct`` / ``collar_ticks`` when
        it is."""
        override = self.instruments.get(instrument_id)
        values = {f: getattr(self, f) for f in InstrumentRiskConfig.__struct_fields__}
        if override is not None:
            for f in InstrumentRiskConfig.__struct_fields__:
                value = getattr(override, f)
                if value is not None:
                    values[f] = value
        for key in _BAND_KEYS if values["collar_reference"] != "band" else _OFFSET_KEYS:
            if override is None or getattr(override, key) is None:
                values[key] = None
        return InstrumentRiskConfig(**values)

    def collar_key(self, instrument_id: str, key: str) -> str:
        """Where an instrument's effective value of ``key`` is written: its own table
        when that sets the key, else ``[risk]``."""
        override = self.instruments.get(instrument_id)
        if override is not None and getattr(override, key) is not None:
            return f'risk.instruments."{instrument_id}".{key}'
        return f"risk.{key}"

    def check_bands(self, instruments: Mapping[str, Instrument]) -> None:
        """Every instrument whose collar reference is ``"band"`` has both edges, on its
        tick (``ConfigError`` naming the key and value)."""
        for iid, instrument in instruments.items():
            limits = self.for_instrument(iid)
            if limits.collar_reference != "band":
                continue
            for key in _BAND_KEYS:
                value = getattr(limits, key)
                if value is None:
                    where = self.collar_key(iid, "collar_reference")
                    raise ConfigError(
                        f"key 'risk.instruments.\"{iid}\".{key}': required for {iid}: its "
                        f'collar_reference is "band" ({where})'
                    )
                if value % instrument.tick_size:
                    raise ConfigError(
                        f"key '{self.collar_key(iid, key)}': {value} is not a multiple of "
                        f"the tick size {instrument.tick_size} of {iid}"
                    )

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

    def account_of(self) -> dict[str, str]:
        """The risk account of each strategy that is in one (``[risk.accounts]``)."""
        return {sid: name for name, acc in self.accounts.items() for sid in acc.strategies}

    def check_names(
        self, instruments: set[str], strategies: set[str] | None, venues: set[str]
    ) -> None:
        """Every override table must name a defined instrument, strategy and venue, and
        every account's strategies must be defined."""
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
        if strategies is not None:
            for name, account in self.accounts.items():
                for n, sid in enumerate(account.strategies):
                    if sid not in strategies:
                        known = ", ".join(sorted(strategies)) or "none"
                        raise ConfigError(
                            f"key 'risk.accounts.\"{name}\".strategies[{n}]': unknown "
                            f"strategy '{sid}' (defined: {known})"
                        )


_POSITIVE = (
    "max_order_quantity",
    "max_order_notional",
    "collar_pct",
    "collar_ticks",
    "collar_band_low",
    "collar_band_high",
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


_BAND_KEYS = ("collar_band_low", "collar_band_high")
_OFFSET_KEYS = ("collar_pct", "collar_ticks")


def _check_collar(
    section: RiskConfig | InstrumentRiskConfig, root: RiskConfig, iid: str | None
) -> None:
    """The band keys go with ``collar_reference = "band"`` only, both or neither (an
    instrument needs both: ``check_bands``), ``collar_band_low`` below
    ``collar_band_high``; ``collar_pct`` / ``collar_ticks`` do not go with a band.
    ``section``: ``[risk]`` (``iid`` None) or an instrument's effective limits, of which
    only the keys its own table sets can clash (inherited ones are dropped)."""
    own = root if iid is None else root.instruments[iid]
    reference = section.collar_reference
    where = "" if iid is None else f" (from {root.collar_key(iid, 'collar_reference')})"
    keys = _BAND_KEYS if reference != "band" else _OFFSET_KEYS
    for key in keys:
        if getattr(own, key) is not None:
            path = root.collar_key(iid, key) if iid is not None else f"risk.{key}"
            needs = (
                'only with collar_reference = "band"'
                if reference != "band"
                else 'not with collar_reference = "band" (the band is the collar)'
            )
            raise ConfigError(
                f"key '{path}': {needs}; collar_reference is {reference!r}{where}, "
                f"got {getattr(own, key)}"
            )
    if reference != "band":
        return
    low, high = section.collar_band_low, section.collar_band_high
    prefix = "risk." if iid is None else f'risk.instruments."{iid}".'
    if (low is None) != (high is None) or (iid is not None and low is None):
        missing = "collar_band_low" if low is None else "collar_band_high"
        raise ConfigError(
            f"key '{prefix}{missing}': required with collar_reference = \"band\"{where} "
            "(collar_band_low and collar_band_high together)"
        )
    if low is not None and high is not None and not low < high:
        path = "risk.collar_band_low" if iid is None else root.collar_key(iid, "collar_band_low")
        raise ConfigError(f"key '{path}': must be below collar_band_high {high}, got {low}")


def _check_accounts(accounts: dict[str, AccountRiskConfig]) -> None:
    """An account names at least one strategy, each once, none that another account
    has, and sets at least one limit."""
    owner: dict[str, str] = {}
    for name, account in accounts.items():
        prefix = f'risk.accounts."{name}"'
        if account.max_total_exposure is None and account.max_cash_usage is None:
            raise ConfigError(
                f"key '{prefix}': an account needs a limit: max_total_exposure or max_cash_usage"
            )
        if not account.strategies:
            raise ConfigError(
                f"key '{prefix}.strategies': must name at least one strategy of the account"
            )
        for n, sid in enumerate(account.strategies):
            other = owner.get(sid)
            if other == name:
                raise ConfigError(f"key '{prefix}.strategies[{n}]': strategy '{sid}' listed twice")
            if other is not None:
                raise ConfigError(
                    f"key '{prefix}.strategies[{n}]': strategy '{sid}' is in account "
                    f"'{other}' already, and in '{name}': a strategy belongs to at most "
                    "one account"
                )
            owner[sid] = name


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


# -- the limits a live node must set ---------------------------------------------------
# Every limit defaults to none, so a config without ``[risk]`` trades with no pre-trade
# limit at all: fine for a backtest, refused for real money (``node.mode = "live"``). A
# per-instrument limit is set when ``[risk]`` gives it (the default for every
# instrument) or every instrument's ``[risk.instruments.ID]`` table does.

# (what the limit is, keys that satisfy it: any one of them)
LIVE_PER_INSTRUMENT: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("max order quantity", ("max_order_quantity",)),
    ("max order notional", ("max_order_notional",)),
    ("max long position", ("max_long_quantity",)),
    ("max short position", ("max_short_quantity",)),
    ("stale data", ("stale_data_ms",)),
)
LIVE_NODE_WIDE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("daily loss", ("max_daily_loss_node", "max_daily_loss")),
    ("message throttle", ("max_messages_per_s",)),
)


def missing_live_limits(risk: RiskConfig, instrument_ids: Iterable[str]) -> list[str]:
    """The required limits ``risk`` leaves unset, each as ``what (risk.key)``, naming the
    instruments that lack a per-instrument one."""
    missing: list[str] = []
    ids = list(instrument_ids)
    for what, keys in LIVE_PER_INSTRUMENT:
        if any(getattr(risk, key) is not None for key in keys):
            continue
        lacking = [
            i
            for i in ids
            if not any(
                i in risk.instruments and getattr(risk.instruments[i], key) is not None
                for key in keys
            )
        ]
        if lacking:
            where = "" if len(lacking) == len(ids) else f" for {', '.join(lacking)}"
            missing.append(f"{what} (risk.{keys[0]}{where})")
    for what, keys in LIVE_NODE_WIDE:
        if not any(getattr(risk, key) is not None for key in keys):
            missing.append(f"{what} (risk.{' or risk.'.join(keys)})")
    return missing

"""Typed node configuration: the TOML schemas for ``bastion run`` and ``bastion backtest``.

This module owns the top-level config structs, loading them strictly from TOML, and
turning every problem (missing file, bad TOML, unknown key, wrong type, bad value,
inconsistent sections) into one ``ConfigError`` that names the file and the key.
Component configs (risk, venue, data, journal, ...) live with their components.

Paths inside a config (strategy files, data files, journal, output directory) are
relative to the directory of the config file; see ``resolve_path``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import msgspec
from msgspec import inspect as mi

from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.errors import ConfigError
from bastion.journal.config import JournalConfig
from bastion.model.instruments import Instrument
from bastion.portfolio.config import AccountConfig
from bastion.recovery.config import RecoveryConfig
from bastion.risk.config import RiskConfig
from bastion.strategy.config import StrategyConfig
from bastion.venues.fix.config import FixVenueConfig
from bastion.venues.sim.config import SimVenueConfig

__all__ = [
    "BacktestConfig",
    "InstrumentConfig",
    "NodeSection",
    "PaperConfig",
    "default_paper_config",
    "load_config",
    "resolve_path",
    "scaffold_dir",
]

T = TypeVar("T", bound=msgspec.Struct)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["console", "json"]

DEFAULT_JOURNAL_NAME: Final = "bastion-journal.sqlite"
_MAX_DECIMALS: Final = 12


class NodeSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Identity and logging of the node process."""

    id: str = "node-1"
    log_level: LogLevel = "info"
    log_format: LogFormat = "console"


class InstrumentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An instrument as written in config (``[[instruments]]``).

    ``tick_size`` is the price increment and ``lot_size`` the quantity increment, both
    exact decimals; ``multiplier`` scales notional (1 for cash equities).
    """

    id: str
    venue: str = "SIM"
    tick_size: Decimal
    lot_size: Decimal = Decimal(1)
    quote_currency: str = "USD"
    multiplier: Decimal = Decimal(1)

    def problem(self) -> tuple[str, str] | None:
        """The first invalid field as ``(key, message)``, or None if the fields are valid."""
        if not self.id:
            return "id", "must not be empty"
        for key in ("tick_size", "lot_size", "multiplier"):
            value: Decimal = getattr(self, key)
            if not value.is_finite() or value <= 0:
                return key, f"must be a positive number, got {value}"
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > _MAX_DECIMALS:
                return key, f"has more than {_MAX_DECIMALS} decimals: {value}"
        return None

    def to_instrument(self) -> Instrument:
        """Build the engine's ``Instrument``; raises ConfigError naming the bad key."""
        problem = self.problem()
        if problem is not None:
            key, message = problem
            raise ConfigError(f"instrument '{self.id}': key '{key}' {message}")
        try:
            return Instrument(
                id=self.id,
                venue=self.venue,
                tick_size=self.tick_size,
                lot_size=self.lot_size,
                quote_currency=self.quote_currency,
                multiplier=self.multiplier,
            )
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"instrument '{self.id}': {e}") from e


class PaperConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``bastion run``: a live node trading on the simulated venue, or over FIX.

    With ``fix_venue`` the node trades with that FIX 4.4 venue (every instrument
    must be on it) and takes its market data from it; otherwise it trades on the
    in-process simulated ``venue`` and needs exactly one market data source:
    ``feed`` (synthetic, real-time) or ``replay`` (recorded files, paced in real time).
    ``run_for_s``: stop by itself after that many seconds; ``None`` runs until SIGINT/SIGTERM.
    """

    node: NodeSection = msgspec.field(default_factory=NodeSection)
    instruments: list[InstrumentConfig]
    strategies: list[StrategyConfig]
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    venue: SimVenueConfig = msgspec.field(default_factory=SimVenueConfig)
    fix_venue: FixVenueConfig | None = None
    feed: SyntheticFeedConfig | None = None
    replay: list[ReplaySourceConfig] = []
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    recovery: RecoveryConfig = msgspec.field(default_factory=RecoveryConfig)
    account: AccountConfig = msgspec.field(default_factory=AccountConfig)
    run_for_s: float | None = None

    def __post_init__(self) -> None:
        _check_common(
            self.instruments,
            self.strategies,
            self.venue,
            venue_key="fix_venue.name" if self.fix_venue else "venue.name",
            venue_name=self.fix_venue.name if self.fix_venue else self.venue.name,
        )
        if self.feed is not None and self.replay:
            raise ConfigError(
                "keys 'feed' and 'replay': give exactly one market data source, not both"
            )
        if self.feed is None and not self.replay and self.fix_venue is None:
            raise ConfigError(
                "key 'feed': no market data source: add a [feed] table (synthetic quotes) "
                "or [[replay]] tables (recorded files)"
            )
        ids = {i.id for i in self.instruments}
        if self.feed is not None:
            _check_instrument_ref("feed.instrument", self.feed.instrument, ids)
            _check_positive("feed.interval_ms", self.feed.interval_ms)
        for n, source in enumerate(self.replay):
            _check_instrument_ref(f"replay[{n}].instrument", source.instrument, ids)
        _check_positive("journal.flush_interval_ms", self.journal.flush_interval_ms)
        if self.run_for_s is not None:
            _check_positive("run_for_s", self.run_for_s)

    def instrument_map(self) -> dict[str, Instrument]:
        """Engine instruments by id."""
        return {i.id: i.to_instrument() for i in self.instruments}


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``bastion backtest``: the same strategies replayed over recorded ``data`` files.

    ``output_dir`` receives fills.csv, equity.png and report.txt. ``journal`` is
    optional: without it nothing is journaled (faster). ``progress`` shows a
    progress bar on stderr.
    """

    node: NodeSection = msgspec.field(default_factory=NodeSection)
    instruments: list[InstrumentConfig]
    strategies: list[StrategyConfig]
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    venue: SimVenueConfig = msgspec.field(default_factory=SimVenueConfig)
    data: list[ReplaySourceConfig]
    account: AccountConfig = msgspec.field(default_factory=AccountConfig)
    output_dir: str = "backtest-out"
    journal: JournalConfig | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        _check_common(self.instruments, self.strategies, self.venue)
        if not self.data:
            raise ConfigError("key 'data': at least one [[data]] file is required")
        ids = {i.id for i in self.instruments}
        for n, source in enumerate(self.data):
            _check_instrument_ref(f"data[{n}].instrument", source.instrument, ids)
        if not self.output_dir:
            raise ConfigError("key 'output_dir': must not be empty")

    def instrument_map(self) -> dict[str, Instrument]:
        """Engine instruments by id."""
        return {i.id: i.to_instrument() for i in self.instruments}


# -- cross-section checks ----------------------------------------------------------


def _check_common(
    instruments: list[InstrumentConfig],
    strategies: list[StrategyConfig],
    venue: SimVenueConfig,
    *,
    venue_key: str = "venue.name",
    venue_name: str | None = None,
) -> None:
    venue_name = venue.name if venue_name is None else venue_name
    if not instruments:
        raise ConfigError("key 'instruments': at least one [[instruments]] table is required")
    seen: set[str] = set()
    for n, inst in enumerate(instruments):
        problem = inst.problem()
        if problem is not None:
            key, message = problem
            raise ConfigError(f"key 'instruments[{n}].{key}': {message}")
        if inst.id in seen:
            raise ConfigError(f"key 'instruments[{n}].id': duplicate instrument id '{inst.id}'")
        seen.add(inst.id)
        if inst.venue != venue_name:
            raise ConfigError(
                f"key 'instruments[{n}].venue': venue '{inst.venue}' is not configured "
                f"({venue_key} is '{venue_name}')"
            )
    names: set[str] = set()
    for n, strategy in enumerate(strategies):
        if not strategy.name:
            raise ConfigError(f"key 'strategies[{n}].name': must not be empty")
        if strategy.name in names:
            raise ConfigError(
                f"key 'strategies[{n}].name': duplicate strategy name '{strategy.name}'"
            )
        names.add(strategy.name)
    if venue.latency_ms < 0:
        raise ConfigError(f"key 'venue.latency_ms': must be >= 0, got {venue.latency_ms}")


def _check_instrument_ref(key: str, instrument_id: str, defined: set[str]) -> None:
    if instrument_id not in defined:
        known = ", ".join(sorted(defined))
        raise ConfigError(
            f"key '{key}': unknown instrument '{instrument_id}' (defined in [[instruments]]: "
            f"{known})"
        )


def _check_positive(key: str, value: float) -> None:
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"key '{key}': must be a positive number, got {value}")


def _check_files(config: msgspec.Struct, base_dir: Path) -> None:
    """Files the config refers to must exist (relative to the config's directory)."""
    checks: list[tuple[str, str]] = []
    if isinstance(config, PaperConfig | BacktestConfig):
        checks += [(f"strategies[{n}].path", s.path) for n, s in enumerate(config.strategies)]
    if isinstance(config, PaperConfig):
        checks += [(f"replay[{n}].path", s.path) for n, s in enumerate(config.replay)]
    if isinstance(config, BacktestConfig):
        checks += [(f"data[{n}].path", s.path) for n, s in enumerate(config.data)]
    for key, p in checks:
        resolved = resolve_path(base_dir, p)
        if not resolved.is_file():
            what = "is not a file" if resolved.exists() else "file not found"
            raise ConfigError(f"key '{key}': {what}: {resolved}")


def _check_finite(value: object, key: str) -> None:
    """Reject NaN/Infinity decimals anywhere in the typed sections (not in free params)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConfigError(f"key '{key}': must be a finite number, got {value}")
    elif isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            if field.name != "params":
                sub = f"{key}.{field.encode_name}" if key else field.encode_name
                _check_finite(getattr(value, field.name), sub)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_finite(item, f"{key}[{n}]")


# -- loading -------------------------------------------------------------------------


def resolve_path(config_path_dir: Path | str, p: Path | str) -> Path:
    """A path from a config file: ``~`` expanded; relative paths joined to the config's dir."""
    path = Path(p).expanduser()
    if path.is_absolute():
        return path
    return Path(config_path_dir) / path


def load_config(path: Path, schema: type[T]) -> T:
    """Load and validate a TOML config file into ``schema``.

    Raises ``ConfigError`` with one line naming the file and the offending key.
    Decimal fields accept TOML strings ("0.01"), integers and floats (a float is
    read through its shortest repr, so ``0.01`` is exactly 0.01); not booleans.
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, expected a TOML config file") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read config file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: not UTF-8 text (byte {e.start})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: invalid TOML: {e}") from None
    try:
        config = msgspec.convert(document, schema)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{name}: {_describe_validation_error(str(e), schema)}") from None
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    try:
        _check_finite(config, "")
        _check_files(config, path.resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    return config


_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`$")
_INVALID_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

# msgspec's names for types -> the names a TOML author knows.
_TYPE_NAMES: Final = {
    "object": "table",
    "decimal": 'decimal (a string like "0.01" or a number)',
}


def _describe_validation_error(text: str, schema: type[msgspec.Struct]) -> str:
    match = _MSGSPEC_ERROR.match(text)
    message, path = (match["message"], match["path"] or "") if match else (text, "")
    key = path.lstrip(".")
    if m := _UNKNOWN.match(message):
        full = f"{key}.{m['field']}" if key else m["field"]
        return f"unknown key '{full}'{_suggest(m['field'], _type_at(schema, path))}"
    if m := _MISSING.match(message):
        full = f"{key}.{m['field']}" if key else m["field"]
        return f"missing required key '{full}'"
    where = f"key '{key}'" if key else "top level"
    if m := _EXPECTED.match(message):
        return f"{where}: expected {_toml_type(m['expected'])}, got {_toml_type(m['got'])}"
    if m := _INVALID_ENUM.match(message):
        options = _options(_type_at(schema, path))
        return f"{where}: invalid value {m['value']}{options}"
    return f"{where}: {message[:1].lower()}{message[1:]}"


def _toml_type(msgspec_type: str) -> str:
    parts = [p.strip() for p in msgspec_type.split("|") if p.strip() != "null"]
    return " or ".join(_TYPE_NAMES.get(p, p) for p in parts)


def _type_at(schema: type[msgspec.Struct], path: str) -> mi.Type | None:
    """The msgspec type found at a validation path like ``.strategies[0].params``."""
    current: mi.Type | None = mi.type_info(schema)
    for name, index in _SEGMENT.findall(path):
        current = _unwrap(current)
        if index and isinstance(current, mi.ListType):
            current = current.item_type
        elif name and isinstance(current, mi.StructType):
            current = next((f.type for f in current.fields if f.encode_name == name), None)
        else:
            return None
    return _unwrap(current)


def _unwrap(t: mi.Type | None) -> mi.Type | None:
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return rest[0] if len(rest) == 1 else t
    return t


def _suggest(field: str, struct: mi.Type | None) -> str:
    if not isinstance(struct, mi.StructType):
        return ""
    valid = [f.encode_name for f in struct.fields]
    close = difflib.get_close_matches(field, valid, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid keys: {', '.join(valid)})"


def _options(t: mi.Type | None) -> str:
    values: list[Any] = []
    if isinstance(t, mi.LiteralType):
        values = list(t.values)
    elif isinstance(t, mi.EnumType):
        values = [member.value for member in t.cls]
    return f" (expected one of: {', '.join(str(v) for v in values)})" if values else ""


# -- embedded defaults ---------------------------------------------------------------


def scaffold_dir() -> Path:
    """The packaged scaffold directory (config templates and the example strategy)."""
    root = resources.files("bastion").joinpath("scaffold")
    path = Path(str(root))
    if not path.is_dir():
        raise ConfigError(f"packaged scaffold not found at {path} (is bastion installed?)")
    return path


def default_paper_config() -> tuple[PaperConfig, Path]:
    """The embedded defaults for ``bastion run`` with no config file.

    Returns the packaged ``paper.toml`` and its base directory (the packaged scaffold,
    so the example strategy resolves there); the journal goes to
    ``./bastion-journal.sqlite`` in the current working directory.
    """
    base_dir = scaffold_dir()
    config = load_config(base_dir / "paper.toml", PaperConfig)
    journal = msgspec.structs.replace(config.journal, path=str(Path.cwd() / DEFAULT_JOURNAL_NAME))
    return msgspec.structs.replace(config, journal=journal), base_dir

"""Typed node configuration: the TOML schemas for ``bastion run`` and ``bastion backtest``.

This module owns the top-level config structs, loading them strictly from TOML, and
turning every problem (missing file, bad TOML, unknown key, wrong type, bad value,
inconsistent sections) into one ``ConfigError`` that names the file and the key.
Component configs (risk, venue, data, journal, ...) live with their components.

Paths inside a config (strategy files, data files, journal, output directory) are
relative to the directory of the config file; see ``resolve_path``.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Final, Literal, TypeVar

import msgspec

from bastion._toml_errors import describe_validation_error
from bastion.backup.config import BackupConfig, DrConfig
from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.errors import ConfigError
from bastion.feeds.arbiter.config import ArbitrationConfig
from bastion.feeds.config import (
    FeedEntry,
    RecordingFeedEntry,
    ReplayFeedEntry,
    SyntheticFeedEntry,
    VenueFeedEntry,
)
from bastion.feeds.nats.config import NatsFeedEntry
from bastion.feeds.recorder.config import RecordingConfig, RecordingSourceConfig
from bastion.feeds.validation.config import ValidationConfig
from bastion.ha.config import HaConfig
from bastion.journal.config import JournalConfig
from bastion.logs import LogFile
from bastion.model.instruments import Instrument
from bastion.monitor.alerts.config import AlertRouteConfig, AlertRuleConfig, check_routes
from bastion.monitor.alerts.rules import AlertRule, alert_rules, daily_loss_limit
from bastion.monitor.config import MonitoringConfig
from bastion.portfolio.config import AccountConfig
from bastion.recovery.config import RecoveryConfig
from bastion.risk.config import RiskConfig, missing_live_limits
from bastion.security.config import AccessConfig
from bastion.storage.keys import resolve_key
from bastion.strategy.config import StrategyConfig
from bastion.vault.config import VaultConfig
from bastion.vault.refs import SecretSource
from bastion.venues.fix.config import FixVenueConfig, FixVenueEntry
from bastion.venues.registry import VenueConfig, VenueEntry
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
MAX_ARM_VALID_S: Final = 86_400.0
DEFAULT_LOG_MAX_BYTES: Final = 50 * 1024 * 1024
DEFAULT_LOG_BACKUPS: Final = 10


Isolation = Literal["process", "inline"]
Mode = Literal["backtest", "paper", "live"]


class NodeSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Identity and logging of the node process."""

    id: str = "node-1"
    log_level: LogLevel = "info"
    log_format: LogFormat = "console"
    log_file: str | None = None
    """Where the node also writes its log, in ``log_format`` (relative to the config's
    directory; created 0600, its directory 0700 if missing); None: stderr only."""
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    """Rotate ``log_file`` when a line would take it past this size (``PATH.1`` is the
    newest backup); 0: never rotate it here (an external logrotate moves it, and the
    node reopens it)."""
    log_backups: int = DEFAULT_LOG_BACKUPS
    """How many rotated files to keep besides ``log_file`` (at least 1 when it rotates)."""
    isolation: Isolation | None = None
    """Where strategies run: ``process`` (each in its own sandboxed process; the default
    of a live node) or ``inline`` (in the node's process: backtests, and paper nodes
    that ask for it, with a warning; ``bastion.isolation``)."""
    mode: Mode = "paper"
    """``paper`` (the simulated venue or a venue's test environment) or ``live`` (real
    money: isolated strategies, a minimum set of limits, an armed start, a clean git
    tree; ``bastion.live``). A backtest config is ``backtest`` whatever it says."""
    allow_dirty: bool = False
    """Live only: start even when the desk's git tree has changes not committed (the
    run manifest records it either way)."""
    arm_valid_s: float = 900.0
    """Live only: how long an arming (``bastion arm``) stays good if the node is not
    started, in seconds (at most a day); ``bastion arm --for-s`` may only shorten it."""

    def __post_init__(self) -> None:
        if self.log_file is not None and not self.log_file.strip():
            raise ConfigError(
                "key 'node.log_file': must not be empty (leave it out for stderr only)"
            )
        if self.log_max_bytes < 0:
            raise ConfigError(
                "key 'node.log_max_bytes': must be 0 (no rotation) or more, "
                f"got {self.log_max_bytes}"
            )
        if self.log_backups < 0:
            raise ConfigError(f"key 'node.log_backups': must be 0 or more, got {self.log_backups}")
        if self.log_backups == 0 and self.log_max_bytes > 0:
            raise ConfigError(
                "key 'node.log_backups': must be 1 or more when the log rotates "
                f"(log_max_bytes > 0), got {self.log_backups}"
            )

    def log_file_at(self, base_dir: Path) -> LogFile | None:
        """The log file the node writes besides stderr (``base_dir``: the config's
        directory), or None."""
        if self.log_file is None:
            return None
        return LogFile(
            path=resolve_path(base_dir, self.log_file),
            max_bytes=self.log_max_bytes,
            backups=self.log_backups,
        )


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
    """``bastion run``: a live node trading on one or more venues.

    Venues: ``[[venues]]`` tables, each with a ``kind`` (``sim``: the in-process
    simulated venue; ``fix``: a FIX 4.4 venue) and a ``name`` that instruments give in
    their ``venue`` key. A single-venue node may instead write ``[venue]`` (the
    simulated venue, the default) or ``[fix_venue]``; not both forms at once.

    Market data: ``[[feeds]]`` tables, each with a ``kind`` (``synthetic``, ``replay``,
    ``venue``) and the instruments it supplies; several feeds of one instrument each
    have their own ``priority`` and the feed arbiter follows the preferred healthy one
    (``[arbitration]``). The
    single-feed forms ``[feed]`` (synthetic) or ``[[replay]]`` (recorded files) still
    work; with ``[fix_venue]`` the FIX venue's own market data supplies its instruments
    that no other feed does.
    ``run_for_s``: stop by itself after that many seconds; ``None`` runs until SIGINT/SIGTERM.

    Secrets: a field that holds one (a FIX venue's ``password``) takes a reference,
    ``"secret:NAME"``, to the vault ``[vault] path`` names (``vault.bastion`` beside
    the config by default); ``secret_refs`` lists them for the node's start.
    """

    node: NodeSection = msgspec.field(default_factory=NodeSection)
    instruments: list[InstrumentConfig]
    strategies: list[StrategyConfig]
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    venues: list[VenueEntry] = []
    venue: SimVenueConfig | None = None  # None: not given (the default simulated venue)
    fix_venue: FixVenueConfig | None = None
    feeds: list[FeedEntry] = []
    feed: SyntheticFeedConfig | None = None
    replay: list[ReplaySourceConfig] = []
    validation: ValidationConfig = msgspec.field(default_factory=ValidationConfig)
    """``[validation]``: the checks every live quote and trade passes before the node
    sees it (``bastion.feeds.validation``)."""
    arbitration: ArbitrationConfig = msgspec.field(default_factory=ArbitrationConfig)
    """``[arbitration]``: when an instrument that several feeds supply leaves its feed
    for another, and when it goes back (``bastion.feeds.arbiter``)."""
    recording: RecordingConfig | None = None
    """``[recording]``: the node's market data written to Parquet
    (``bastion.feeds.recorder``); None: not given, nothing recorded."""
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    recovery: RecoveryConfig = msgspec.field(default_factory=RecoveryConfig)
    account: AccountConfig = msgspec.field(default_factory=AccountConfig)
    run_for_s: float | None = None
    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)
    monitoring: MonitoringConfig | None = None
    """Metrics, health and alerts (``bastion.monitor``); None: not given, monitoring off
    (a live node refuses to start without it)."""
    alerts: list[AlertRuleConfig] = []
    """``[[alerts]]``: rules beside and over the built-in ones (``bastion.monitor.alerts``)."""
    alert_routes: list[AlertRouteConfig] = []
    """``[[alert_routes]]``: where alerts are sent, by severity (the ``log`` route always
    exists)."""
    access: AccessConfig | None = None
    """Operators, four-eyes and override bounds (``bastion.security.config``); None: not
    given, only the node's own OS account commands it (a live node refuses to start
    without it)."""
    backup: BackupConfig | None = None
    """``[backup]``: where backups of this desk go, encrypted to whom, how often the
    journal ships and how long backups are kept (``bastion.backup``); None: not given."""
    dr: DrConfig | None = None
    """``[dr]``: the disaster-recovery drill's targets and where it reads the venue's
    positions (``bastion.backup.drill``); None: defaults, no reconciliation."""
    ha: HaConfig | None = None
    """``[ha]``: this node is one member of a logical node (``group``) whose members
    elect a leader through a lease in PostgreSQL (``bastion.ha``); None: it runs alone."""

    @property
    def isolation(self) -> Isolation:
        """Where the strategies run: ``process`` unless the config says ``inline``."""
        return self.node.isolation or "process"

    def __post_init__(self) -> None:
        self._check_mode()
        venue_keys = self._check_venues()
        _check_common(self.instruments, self.strategies, venue_keys)
        ids = {i.id for i in self.instruments}
        if self.feeds:
            if self.feed is not None or self.replay:
                legacy = "feed" if self.feed is not None else "replay"
                raise ConfigError(
                    f"keys 'feeds' and '{legacy}': give the market data in one form "
                    "([[feeds]] tables, or a single [feed] / [[replay]])"
                )
            _check_feeds(self.feeds, ids, self.instruments, venue_keys)
            sends = {v.name for v in self.venue_configs() if v.sends_market_data}
            fed_by: dict[str, int] = {}
            for n, feed in enumerate(self.feeds):
                if not isinstance(feed, VenueFeedEntry):
                    continue
                if feed.venue not in sends:
                    raise ConfigError(
                        f"key 'feeds[{n}].venue': venue '{feed.venue}' sends no market data "
                        "(a FIX venue needs market_data = true)"
                    )
                if feed.venue in fed_by:  # a venue's session has one quote sink
                    raise ConfigError(
                        f"key 'feeds[{n}].venue': venue '{feed.venue}' already has a feed "
                        f"(feeds[{fed_by[feed.venue]}]): list all its instruments in that one"
                    )
                fed_by[feed.venue] = n
        else:
            if self.feed is not None and self.replay:
                raise ConfigError(
                    "keys 'feed' and 'replay': give exactly one market data source, not both"
                )
            if self.feed is None and not self.replay and self.fix_venue is None:
                raise ConfigError(
                    "key 'feed': no market data source: add [[feeds]] tables, a [feed] "
                    "table (synthetic quotes) or [[replay]] tables (recorded files)"
                )
            if self.feed is not None:
                _check_instrument_ref("feed.instrument", self.feed.instrument, ids)
                _check_positive("feed.interval_ms", self.feed.interval_ms)
            replayed: dict[str, int] = {}
            for n, source in enumerate(self.replay):
                _check_instrument_ref(f"replay[{n}].instrument", source.instrument, ids)
                if source.instrument in replayed:
                    raise ConfigError(
                        f"key 'replay[{n}].instrument': instrument '{source.instrument}' "
                        f"already has a feed (replay[{replayed[source.instrument]}]); the "
                        "[[replay]] tables play at the same time, one file per instrument: "
                        "join its files into one, in time order"
                    )
                replayed[source.instrument] = n
        self.validation.check_instruments(ids)
        _check_positive("journal.flush_interval_ms", self.journal.flush_interval_ms)
        if self.run_for_s is not None:
            _check_positive("run_for_s", self.run_for_s)
        self._check_alerting()
        self._check_ha()

    def _check_ha(self) -> None:
        """An HA member journals to PostgreSQL (the journal is fenced by the same lease);
        its lease lives there too unless ``[ha] url`` names another server."""
        if self.ha is None:
            return
        if ha_database_from_journal(self.journal) is None and self.ha.url is None:
            raise ConfigError(
                "key 'ha': an HA member needs a PostgreSQL journal ([journal] backend = "
                '"postgres") or at least a lease database (ha.url)'
            )
        if self.journal.name is not None and self.journal.name != self.ha.group:
            raise ConfigError(
                f"key 'journal.name': an HA member's journal is its group's "
                f"('{self.ha.group}'), whose lease fences it; got '{self.journal.name}'"
            )

    def journal_name(self) -> str:
        """The journal's name in a PostgreSQL database: ``[journal] name``, else the HA
        group's (its lease fences it), else the node id."""
        return self.journal.name or (self.node.id if self.ha is None else self.ha.group)

    def ha_database(self, secrets: SecretSource | None) -> tuple[str, str | None]:
        """The lease's PostgreSQL ``(url, password)`` (``[ha]``'s, else the journal's)."""
        if self.ha is None:
            raise ConfigError("key 'ha': this node is not an HA member")
        return self.ha.database(secrets, fallback=ha_database_from_journal(self.journal))

    def _check_alerting(self) -> None:
        if self.monitoring is None and (self.alerts or self.alert_routes):
            key = "alerts" if self.alerts else "alert_routes"
            raise ConfigError(
                f"key '{key}': alerts run with the node's monitoring: add a [monitoring] section"
            )
        check_routes(self.alert_routes)
        self.alert_rules()

    def alert_rules(self) -> list[AlertRule]:
        """The alert rules this node runs: the built-in ones as ``[[alerts]]`` adjusts
        them, and its own."""
        monitoring = self.monitoring if self.monitoring is not None else MonitoringConfig()
        return alert_rules(
            self.alerts,
            quote_stale_s=monitoring.quote_stale_s,
            daily_loss=daily_loss_limit(self.risk.max_daily_loss_node, self.risk.max_daily_loss),
        )

    def _check_mode(self) -> None:
        """A live config: isolated strategies and the minimum set of limits."""
        mode = self.node.mode
        if mode == "backtest":
            raise ConfigError(
                "key 'node.mode': 'backtest' is a `bastion backtest` config; "
                "a node runs 'paper' or 'live'"
            )
        if self.node.allow_dirty and mode != "live":
            raise ConfigError("key 'node.allow_dirty': only a live node checks its git tree")
        if mode != "live":
            return
        valid_s = self.node.arm_valid_s
        if not 0 < valid_s <= MAX_ARM_VALID_S:
            raise ConfigError(
                f"key 'node.arm_valid_s': must be above 0 and at most {MAX_ARM_VALID_S:.0f} "
                f"(a day), got {valid_s}"
            )
        if self.node.isolation == "inline":
            raise ConfigError(
                "key 'node.isolation': a live node runs its strategies isolated "
                "('process'): inline, a strategy can reach the risk gate and the secrets"
            )
        missing = missing_live_limits(self.risk, (i.id for i in self.instruments))
        if missing:
            raise ConfigError(
                "key 'risk': a live node must set these limits: " + "; ".join(missing)
            )

    def _check_venues(self) -> dict[str, str]:
        """The configured venue names, each with the key that names it."""
        if not self.venues:
            if self.fix_venue is not None:
                if self.venue is not None:
                    raise ConfigError(
                        "keys 'venue' and 'fix_venue': list every venue as a [[venues]] table"
                    )
                return {self.fix_venue.name: "fix_venue.name"}
            sim = self.venue if self.venue is not None else SimVenueConfig()
            _check_sim_venue(sim, "venue")
            return {sim.name: "venue.name"}
        if self.fix_venue is not None:
            raise ConfigError(
                "keys 'venues' and 'fix_venue': list every venue as a [[venues]] table"
            )
        if self.venue is not None:
            raise ConfigError("keys 'venues' and 'venue': list every venue as a [[venues]] table")
        keys: dict[str, str] = {}
        for n, venue in enumerate(self.venues):
            key = f"venues[{n}]"
            if not venue.name:
                raise ConfigError(f"key '{key}.name': must not be empty")
            if venue.name in keys:
                raise ConfigError(
                    f"key '{key}.name': duplicate venue name '{venue.name}' "
                    f"(also {keys[venue.name].removesuffix('.name')})"
                )
            if isinstance(venue, FixVenueEntry):
                venue.check(key)
            else:
                _check_sim_venue(venue, key)
            keys[venue.name] = f"{key}.name"
        check_fix_stores(self, None)
        return keys

    def _fix_venues(self) -> list[tuple[str, FixVenueConfig]]:
        """Each FIX venue with its key in the config."""
        if self.fix_venue is not None:
            return [("fix_venue", self.fix_venue)]
        return [
            (f"venues[{n}]", venue)
            for n, venue in enumerate(self.venues)
            if isinstance(venue, FixVenueEntry)
        ]

    def secret_refs(self) -> list[tuple[str, str]]:
        """The vault secrets the node needs: ``(config key, secret name)`` pairs."""
        venues = [ref for key, venue in self._fix_venues() for ref in venue.secret_refs(key)]
        monitoring = self.monitoring.secret_refs() if self.monitoring is not None else []
        routes = [
            ref
            for n, route in enumerate(self.alert_routes)
            for ref in route.secret_refs(f"alert_routes[{n}]")
        ]
        feeds = [
            ref
            for n, feed in enumerate(self.feeds)
            if isinstance(feed, NatsFeedEntry)
            for ref in feed.nats.secret_refs(f"feeds[{n}].nats")
        ]
        ha = self.ha.secret_refs() if self.ha is not None else []
        return venues + feeds + self.journal.secret_refs() + monitoring + routes + ha

    def check_secrets(self, secrets: SecretSource | None = None) -> None:
        """Every FIX venue's password can be read now: its ``password_env`` variable is
        set, its ``secret:NAME`` is in ``secrets``; so can its session store's key (a
        32-byte key). ``ConfigError`` naming the key otherwise. Checked when a node is
        about to run, not by the operator commands that read the same file."""
        for key, venue in self._fix_venues():
            venue.resolve_password(key, secrets)
            resolve_key(venue.store_encryption_key, f"{key}.store_encryption_key", secrets)
        for n, feed in enumerate(self.feeds):
            if isinstance(feed, NatsFeedEntry):
                for field in ("password", "token"):
                    feed.nats.secret(field, f"feeds[{n}].nats", secrets)

    def venue_configs(self) -> list[VenueConfig]:
        """Every venue of the node, whichever form the config used."""
        if self.venues:
            return list(self.venues)
        if self.fix_venue is not None:
            return [self.fix_venue]
        return [self.venue if self.venue is not None else SimVenueConfig()]

    def feed_configs(self) -> list[FeedEntry]:
        """Every feed of the node with the instruments it supplies, whichever form the
        config used (a venue feed's instruments filled in)."""
        if self.feeds:
            return [_resolve_venue_feed(f, self.instruments) for f in self.feeds]
        feeds: list[FeedEntry] = []
        if self.feed is not None:
            walk = self.feed
            feeds.append(
                SyntheticFeedEntry(
                    name="synthetic",
                    instruments=[walk.instrument],
                    seed=walk.seed,
                    start_price=walk.start_price,
                    volatility_bps=walk.volatility_bps,
                    spread_ticks=walk.spread_ticks,
                    size=walk.size,
                    interval_ms=walk.interval_ms,
                )
            )
        for n, source in enumerate(self.replay):
            feeds.append(
                ReplayFeedEntry(
                    name=f"replay-{n}",
                    path=source.path,
                    instrument=source.instrument,
                    data=source.kind,
                    on_bad_row=source.on_bad_row,
                    bar_interval_s=source.bar_interval_s,
                )
            )
        fix = self.fix_venue
        if fix is not None and fix.market_data:
            covered = {iid for f in feeds for iid in f.instruments}
            rest = [i.id for i in self.instruments if i.venue == fix.name and i.id not in covered]
            if rest:
                feeds.append(VenueFeedEntry(name=fix.name, venue=fix.name, instruments=rest))
        return feeds

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
    data: list[ReplaySourceConfig] = []
    recordings: list[RecordingSourceConfig] = []
    """``[[recordings]]``: a node's recordings (``[recording]``) as data."""
    account: AccountConfig = msgspec.field(default_factory=AccountConfig)
    output_dir: str = "backtest-out"
    journal: JournalConfig | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.node.mode == "live" or self.node.allow_dirty:
            key = "mode" if self.node.mode == "live" else "allow_dirty"
            raise ConfigError(f"key 'node.{key}': a backtest replays data; it never runs live")
        _check_sim_venue(self.venue, "venue")
        _check_common(self.instruments, self.strategies, {self.venue.name: "venue.name"})
        if not self.data and not self.recordings:
            raise ConfigError(
                "key 'data': at least one [[data]] file (or [[recordings]] table) is required"
            )
        ids = {i.id for i in self.instruments}
        for n, source in enumerate(self.data):
            _check_instrument_ref(f"data[{n}].instrument", source.instrument, ids)
        for n, recording in enumerate(self.recordings):
            for iid in recording.instruments:
                _check_instrument_ref(f"recordings[{n}].instruments", iid, ids)
        if not self.output_dir:
            raise ConfigError("key 'output_dir': must not be empty")
        if self.node.isolation == "process":
            raise ConfigError(
                "key 'node.isolation': a backtest runs its strategies inline (in-process, "
                'for speed and determinism); remove the key or write "inline"'
            )

    def venue_configs(self) -> list[VenueConfig]:
        """The backtest's one venue: the in-process simulated venue."""
        return [self.venue]

    def feed_configs(self) -> list[FeedEntry]:
        """The ``[[data]]`` files as replay feeds (``data-0``, ``data-1``, ...), then the
        ``[[recordings]]`` as recording feeds (``recording-0``, ...)."""
        every = [i.id for i in self.instruments]
        recordings: list[FeedEntry] = [
            RecordingFeedEntry(
                name=f"recording-{n}",
                path=r.path,
                instruments=r.instruments or every,
                stream=r.stream,
                feed=r.feed,
            )
            for n, r in enumerate(self.recordings)
        ]
        replays: list[FeedEntry] = [
            ReplayFeedEntry(
                name=f"data-{n}",
                path=source.path,
                instrument=source.instrument,
                data=source.kind,
                on_bad_row=source.on_bad_row,
                bar_interval_s=source.bar_interval_s,
            )
            for n, source in enumerate(self.data)
        ]
        return replays + recordings

    def instrument_map(self) -> dict[str, Instrument]:
        """Engine instruments by id."""
        return {i.id: i.to_instrument() for i in self.instruments}


# -- cross-section checks ----------------------------------------------------------


def ha_database_from_journal(journal: JournalConfig) -> tuple[str, str | None] | None:
    """The journal's PostgreSQL ``(url, password reference)`` when it journals to
    PostgreSQL, else None: the hook between ``[ha]`` and the PostgreSQL journal's
    settings (``backend``, ``url``, ``password``), read by name so that either side
    can land first."""
    if getattr(journal, "backend", None) != "postgres":
        return None
    url = getattr(journal, "url", None)
    password = getattr(journal, "password", None)
    if not isinstance(url, str):
        return None
    return url, password if isinstance(password, str) else None


def _check_common(
    instruments: list[InstrumentConfig],
    strategies: list[StrategyConfig],
    venue_keys: dict[str, str],
) -> None:
    """Instruments and strategies; ``venue_keys``: each configured venue name and the key
    that names it."""
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
        if inst.venue not in venue_keys:
            configured = ", ".join(f"{k} is '{name}'" for name, k in venue_keys.items())
            raise ConfigError(
                f"key 'instruments[{n}].venue': venue '{inst.venue}' is not configured "
                f"({configured})"
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
        problem = strategy.problem()
        if problem is not None:
            raise ConfigError(f"key 'strategies[{n}].{problem[0]}': {problem[1]}")


def _check_sim_venue(venue: SimVenueConfig, key: str) -> None:
    if venue.latency_ms < 0:
        raise ConfigError(f"key '{key}.latency_ms': must be >= 0, got {venue.latency_ms}")


def _check_feeds(
    feeds: list[FeedEntry],
    ids: set[str],
    instruments: list[InstrumentConfig],
    venue_keys: dict[str, str],
) -> None:
    """Names unique, instruments known; an instrument's feeds each with a priority of
    their own."""
    names: dict[str, int] = {}
    supplier: dict[tuple[str, int], int] = {}
    for n, feed in enumerate(feeds):
        key = f"feeds[{n}]"
        if not feed.name:
            raise ConfigError(f"key '{key}.name': must not be empty")
        if feed.name in names:
            also = names[feed.name]
            raise ConfigError(
                f"key '{key}.name': duplicate feed name '{feed.name}' (also feeds[{also}])"
            )
        names[feed.name] = n
        if isinstance(feed, VenueFeedEntry) and feed.venue not in venue_keys:
            raise ConfigError(
                f"key '{key}.venue': venue '{feed.venue}' is not configured "
                f"(venues: {', '.join(venue_keys)})"
            )
        if isinstance(feed.priority, bool) or not isinstance(feed.priority, int):
            raise ConfigError(f"key '{key}.priority': must be an integer, got {feed.priority!r}")
        if isinstance(feed, SyntheticFeedEntry | RecordingFeedEntry) and not feed.instruments:
            raise ConfigError(f"key '{key}.instruments': name at least one instrument")
        if isinstance(feed, SyntheticFeedEntry):
            _check_positive(f"{key}.interval_ms", feed.interval_ms)
        field = "instrument" if isinstance(feed, ReplayFeedEntry) else "instruments"
        for iid in _resolve_venue_feed(feed, instruments).instruments:
            _check_instrument_ref(f"{key}.{field}", iid, ids)
            if isinstance(feed, VenueFeedEntry):
                venue = next(i.venue for i in instruments if i.id == iid)
                if venue != feed.venue:
                    raise ConfigError(
                        f"key '{key}.instruments': instrument '{iid}' is on venue '{venue}', "
                        f"not '{feed.venue}'"
                    )
            if (iid, feed.priority) in supplier:
                raise ConfigError(
                    f"key '{key}.{field}': instrument '{iid}' already has a feed "
                    f"(feeds[{supplier[iid, feed.priority]}]) of priority {feed.priority}; "
                    "give each feed of an instrument its own priority (lower is preferred)"
                )
            supplier[iid, feed.priority] = n


def _resolve_venue_feed(feed: FeedEntry, instruments: list[InstrumentConfig]) -> FeedEntry:
    """A venue feed with no instruments listed supplies every instrument of its venue."""
    if isinstance(feed, VenueFeedEntry) and not feed.instruments:
        on_venue = [i.id for i in instruments if i.venue == feed.venue]
        return msgspec.structs.replace(feed, instruments=on_venue)
    return feed


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


def check_fix_stores(config: PaperConfig, base_dir: Path | None) -> None:
    """No two FIX venues share a session: the same store file (resolved against
    ``base_dir`` when known) with the same SenderCompID and TargetCompID would be one
    row of sequence numbers and sent messages for two sessions."""
    seen: dict[tuple[str, str, str], int] = {}
    files: dict[str, int] = {}
    for n, venue in enumerate(config.venues):
        if not isinstance(venue, FixVenueEntry):
            continue
        path = (
            str(resolve_path(base_dir, venue.store_path).resolve())
            if base_dir is not None
            else os.path.normpath(os.path.expanduser(venue.store_path))
        )
        first = config.venues[files.setdefault(path, n)]
        assert isinstance(first, FixVenueEntry)
        if first.store_encryption_key != venue.store_encryption_key:
            raise ConfigError(
                f"key 'venues[{n}].store_encryption_key': venue '{venue.name}' shares the "
                f"FIX session store file '{venue.store_path}' with venues[{files[path]}] "
                f"('{first.name}'), which has another encryption key; one file has one key"
            )
        ident = (path, venue.sender_comp_id, venue.target_comp_id)
        if ident in seen:
            other = config.venues[seen[ident]]
            raise ConfigError(
                f"key 'venues[{n}].store_path': venue '{venue.name}' would share the FIX "
                f"session store of venues[{seen[ident]}] ('{other.name}'): same file "
                f"'{venue.store_path}' and {venue.sender_comp_id}->{venue.target_comp_id}; "
                "give each FIX venue its own store_path"
            )
        seen[ident] = n


def _check_files(config: msgspec.Struct, base_dir: Path) -> None:
    """Files the config refers to must exist (relative to the config's directory)."""
    checks: list[tuple[str, str]] = []
    if isinstance(config, PaperConfig | BacktestConfig):
        checks += [(f"strategies[{n}].path", s.path) for n, s in enumerate(config.strategies)]
    if isinstance(config, PaperConfig):
        check_fix_stores(config, base_dir)
        checks += [(f"replay[{n}].path", s.path) for n, s in enumerate(config.replay)]
        checks += [
            (f"feeds[{n}].path", f.path)
            for n, f in enumerate(config.feeds)
            if isinstance(f, ReplayFeedEntry)
        ]
    directories: list[tuple[str, str]] = []
    if isinstance(config, PaperConfig):
        directories += [
            (f"feeds[{n}].path", f.path)
            for n, f in enumerate(config.feeds)
            if isinstance(f, RecordingFeedEntry)
        ]
    if isinstance(config, BacktestConfig):
        checks += [(f"data[{n}].path", s.path) for n, s in enumerate(config.data)]
        directories += [(f"recordings[{n}].path", r.path) for n, r in enumerate(config.recordings)]
    if isinstance(config, PaperConfig | BacktestConfig) and config.node.log_file is not None:
        log_file = resolve_path(base_dir, config.node.log_file)
        if log_file.is_dir():
            raise ConfigError(f"key 'node.log_file': is a directory, expected a file: {log_file}")
    for key, p in checks:
        resolved = resolve_path(base_dir, p)
        if not resolved.is_file():
            what = "is not a file" if resolved.exists() else "file not found"
            raise ConfigError(f"key '{key}': {what}: {resolved}")
    for key, p in directories:
        resolved = resolve_path(base_dir, p)
        if not resolved.is_dir():
            what = "is not a directory" if resolved.exists() else "recording not found"
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
        described = describe_validation_error(str(e), schema, document)
        raise ConfigError(f"{name}: {described}") from None
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    try:
        _check_finite(config, "")
        _check_files(config, path.resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None
    return config


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

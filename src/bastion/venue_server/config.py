"""``bastion venue sim`` configuration: listener, accounts, instruments, matching, data."""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from bastion.config import InstrumentConfig
from bastion.data.config import ReplaySourceConfig, SyntheticFeedConfig
from bastion.errors import ConfigError
from bastion.fix.admission import AcceptorLimits, AccessRule
from bastion.fix.tls import TlsServerConfig
from bastion.fix.validation import ValidationConfig
from bastion.monitor.config import MonitoringConfig
from bastion.vault.config import VaultConfig
from bastion.vault.redact import register
from bastion.vault.refs import Secret, SecretNotFound, SecretSource, secret_name
from bastion.venues.sim.config import SimVenueConfig


class SessionLogonConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A FIX session the simulator accepts: its CompID, Logon credentials and access
    conditions (what an account and a read-only session share).

    ``comp_id`` is the initiator's SenderCompID. The Logon must carry ``username`` (553)
    and the password (554): ``password``, a reference to the vault (``"secret:NAME"``;
    a literal is refused), or ``password_env``, the environment variable a parent
    process (a test harness, a supervisor) hands it down in.
    ``allowed_ips``: the addresses or networks it may connect from (empty: any).
    ``client_cert_cn`` / ``client_cert_sha256``: with mutual TLS, the client
    certificate (its common name, or its SHA-256) it must log on with.
    """

    name: str
    comp_id: str
    username: str
    password: str | None = None
    password_env: str | None = None
    allowed_ips: list[str] = []
    client_cert_cn: str | None = None
    client_cert_sha256: str | None = None

    def access_rule(self, key: str) -> AccessRule:
        """Its conditions on a connection; ``ConfigError`` naming the key."""
        return AccessRule.parse(
            self.allowed_ips,
            key,
            cert_common_name=self.client_cert_cn,
            cert_sha256=self.client_cert_sha256,
        )

    def check(self, key: str, tls: TlsServerConfig | None) -> None:
        """``ConfigError`` naming the key (``key`` is its table, ``accounts[0]``) if a
        field is empty, the password is not given exactly once or is a literal, or a
        client certificate is asked for without mutual TLS."""
        for field in ("name", "comp_id", "username"):
            if not getattr(self, field):
                raise ConfigError(f"key '{key}.{field}': must not be empty")
        if (self.password is None) == (self.password_env is None):
            raise ConfigError(f"key '{key}': give exactly one of password_env or password")
        rule = self.access_rule(key)
        if rule.needs_certificate and (tls is None or tls.client_ca_file is None):
            field = "client_cert_cn" if self.client_cert_cn else "client_cert_sha256"
            raise ConfigError(
                f"key '{key}.{field}': a client certificate is checked only with "
                "mutual TLS: set tls.client_ca_file"
            )
        if self.password is not None:
            secret_name(self.password, f"{key}.password")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, comp_id={self.comp_id!r})"

    def resolve_password(self, key: str, secrets: SecretSource | None = None) -> Secret:
        """The session's password, from its environment variable or through ``secrets``;
        an error names the key and the variable or secret, never a value."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(
                    f"key '{key}.password_env': environment variable {self.password_env} is not set"
                )
            register(value)  # handed down by a parent: kept out of this process's logs
            return Secret(self.password_env, value)
        assert self.password is not None
        name = secret_name(self.password, f"{key}.password")
        if secrets is None:
            raise ConfigError(f"key '{key}.password': secret '{name}' needs a vault; none is open")
        try:
            return secrets.get(name)
        except SecretNotFound as e:
            raise SecretNotFound(f"key '{key}.password': {e}") from None


class AccountConfig(SessionLogonConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A trading account: the FIX session its node logs on with (``comp_id``, the node's
    SenderCompID), and its credentials and access conditions (``SessionLogonConfig``)."""


class ReadOnlySessionConfig(
    SessionLogonConfig, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """A read-only session on ``account`` (an ``[[accounts]]`` name): a FIX session of its
    own (``comp_id``, credentials and access conditions as an account's) that may ask for
    the account's orders and positions (OrderStatusRequest, OrderMassStatusRequest,
    RequestForPositions) and market data, and may not trade
    (``bastion.venue_server.read_only``).

    ``max_reports_per_s`` / ``max_reports_burst``: what its messages may make the
    simulator send it, a token bucket of messages (a mass status answers one report per
    open order): that many a second, up to that many at once. A message that comes when
    the bucket is empty gets a BusinessMessageReject and does no work, so a holder of
    its credentials cannot stall the account's session by asking fast."""

    account: str
    max_reports_per_s: float = 1_000.0
    max_reports_burst: int = 20_000

    def check(self, key: str, tls: TlsServerConfig | None) -> None:
        super().check(key, tls)
        if not 0 < self.max_reports_per_s < float("inf"):
            raise ConfigError(
                f"key '{key}.max_reports_per_s': must be a positive number, "
                f"got {self.max_reports_per_s}"
            )
        if self.max_reports_burst < 1:
            raise ConfigError(
                f"key '{key}.max_reports_burst': must be at least 1, got {self.max_reports_burst}"
            )

    def __repr__(self) -> str:
        return (
            f"ReadOnlySessionConfig(name={self.name!r}, comp_id={self.comp_id!r}, "
            f"account={self.account!r})"
        )


class VenueSimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The venue simulator process.

    - ``host``/``port``: where the FIX acceptor listens; ``comp_id`` is its CompID.
    - ``ledger_path``: orders, fills and positions per account (SQLite), kept across
      restarts of the simulator and of the nodes; ``session_store_path``: FIX
      sequence numbers and sent messages per account session. Relative to this file.
    - ``ledger_encryption_key`` / ``store_encryption_key``: references to the vault
      (``"secret:venue/ledger"``, 32 bytes as 64 hex characters) that encrypt the ledger
      and the session stores (SQLCipher); unset: plaintext.
    - ``cancel_on_disconnect``: when an account's session drops, cancel its open orders
      (every account). Without it a session still gets this by asking in its Logon
      (CancelOrdersOnDisconnect, 8013=Y).
    - ``fencing``: the fence against a deposed HA leader (``bastion.venue_server.fencing``,
      docs/ha.md "At the venue"): ``"tag"`` (default) fences a session whose Logon carries
      FencingEpoch (8014): a lower epoch than the session's highest is refused, a higher
      or equal one takes the session over, and an order, cancel or replace whose ClOrdID
      carries a lower epoch is rejected; a Logon without the tag is served as before.
      ``"strict"``: the same, and a Logon must carry the tag and an order's, cancel's or
      replace's ClOrdID its sender's epoch (an older node's ``{order}/{n}`` names only its
      order's). ``"off"``: the tag is ignored.
    - ``matching``: the matching engine's rules (the same as the in-process venue).
    - ``feeds`` (synthetic quotes) and ``replay`` (recorded files): the market the
      simulator matches against and publishes over FIX market data.
    - ``tls``: serve FIX over TLS only (``bastion.fix.tls.TlsServerConfig``).
    - ``limits``: connection caps, logon timeout and lockout
      (``bastion.fix.admission.AcceptorLimits``).
    - ``vault``: the vault the accounts' ``secret:NAME`` passwords are read from
      (``vault.bastion`` beside this file by default).
    - ``monitoring``: its own ``/metrics``, ``/healthz`` and ``/readyz``
      (``bastion_venuesim_*``); a dead-man's switch is not used here.
    - ``read_only_sessions``: ``[[read_only_sessions]]`` tables, each a FIX session of its
      own on one account, for disaster-recovery drills and reconciliation tools that must
      not touch the account's trading session (``bastion.venue_server.read_only``):
      ``name``, ``comp_id`` (its SenderCompID), ``username``, ``password``
      (``"secret:NAME"``) or ``password_env``, ``allowed_ips``, ``client_cert_cn`` /
      ``client_cert_sha256`` (as an account's), and ``account``, the ``[[accounts]]``
      name whose orders and positions it reads, and ``max_reports_per_s`` /
      ``max_reports_burst``, its budget of answers. It is answered OrderStatusRequest (H),
      OrderMassStatusRequest (AF), RequestForPositions (AN) and market data (V) as the
      account's own session would be, on its own session; an order, cancel or replace is
      refused; it is never fenced and never takes the account's session over. The
      account's own reports (fills, cancels) are not copied to it: it is a query session,
      not a drop copy. Names and CompIDs are unique across accounts and read-only
      sessions.
    - ``mode``: ``"venue"`` (orders are matched) or ``"echo"``: every application
      message is sent back as it came (a reflector for FIX certification tests).
    - ``reset_on_logon`` / ``reset_on_logout`` / ``reset_on_disconnect``: sequence
      numbers back to 1 at every Logon, after a Logout, at every disconnect.
    - ``validation``: how inbound messages are checked against the FIX 4.4 dictionary
      (``bastion.fix.validation.ValidationConfig``); on by default.
    """

    host: str = "127.0.0.1"
    port: int = 9878
    comp_id: str = "BASTION-SIM"
    ledger_path: str = "venue-ledger.sqlite"
    session_store_path: str = "venue-sessions.sqlite"
    ledger_encryption_key: str | None = None
    store_encryption_key: str | None = None
    cancel_on_disconnect: bool = False
    fencing: Literal["off", "tag", "strict"] = "tag"
    max_sending_time_skew_s: float = 120.0
    matching: SimVenueConfig = msgspec.field(default_factory=SimVenueConfig)
    accounts: list[AccountConfig]
    read_only_sessions: list[ReadOnlySessionConfig] = []
    instruments: list[InstrumentConfig]
    feeds: list[SyntheticFeedConfig] = []
    replay: list[ReplaySourceConfig] = []
    run_for_s: float | None = None
    tls: TlsServerConfig | None = None
    limits: AcceptorLimits = msgspec.field(default_factory=AcceptorLimits)
    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)
    monitoring: MonitoringConfig | None = None
    """Its metrics and health over HTTP (``bastion.venue_server.monitoring``); None: off."""
    mode: Literal["venue", "echo"] = "venue"
    reset_on_logon: bool = False
    reset_on_logout: bool = False
    reset_on_disconnect: bool = False
    validation: ValidationConfig = msgspec.field(default_factory=ValidationConfig)

    def secret_refs(self) -> list[tuple[str, str]]:
        """The vault secrets the simulator needs: ``(config key, secret name)`` pairs
        (the ledger's and stores' keys, the accounts' and read-only sessions' passwords,
        the TLS key)."""
        refs = [
            (field, secret_name(value, field))
            for field in ("ledger_encryption_key", "store_encryption_key")
            if (value := getattr(self, field)) is not None
        ]
        refs += [
            (f"{key}.password", secret_name(logon.password, f"{key}.password"))
            for key, logon in self.logons()
            if logon.password is not None
        ]
        if self.tls is not None:
            refs.extend(self.tls.secret_refs("tls"))
        return refs

    def logons(self) -> list[tuple[str, SessionLogonConfig]]:
        """Every session it accepts, with its config key: the accounts', then the
        read-only ones."""
        accounts = [(f"accounts[{n}]", a) for n, a in enumerate(self.accounts)]
        read_only = [(f"read_only_sessions[{n}]", r) for n, r in enumerate(self.read_only_sessions)]
        return [*accounts, *read_only]

    def _check_logons(self) -> None:
        """Each session's own fields; names and CompIDs unique across accounts and
        read-only sessions; a read-only session's account configured."""
        names: dict[str, str] = {}  # name -> the key of the table that has it
        comp_ids: dict[str, str] = {}
        for key, logon in self.logons():
            logon.check(key, self.tls)
            if logon.name in names:
                raise ConfigError(
                    f"key '{key}.name': duplicate name '{logon.name}' (also {names[logon.name]})"
                )
            if logon.comp_id in comp_ids:
                raise ConfigError(
                    f"key '{key}.comp_id': duplicate comp_id '{logon.comp_id}' "
                    f"(also {comp_ids[logon.comp_id]})"
                )
            names[logon.name] = key
            comp_ids[logon.comp_id] = key
        accounts = {a.name for a in self.accounts}
        for n, read_only in enumerate(self.read_only_sessions):
            if read_only.account not in accounts:
                raise ConfigError(
                    f"key 'read_only_sessions[{n}].account': '{read_only.account}' is not an "
                    f"[[accounts]] name (known: {sorted(accounts)})"
                )

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"key 'port': must be 0..65535, got {self.port}")
        if not self.comp_id:
            raise ConfigError("key 'comp_id': must not be empty")
        for field in ("ledger_encryption_key", "store_encryption_key"):
            if (value := getattr(self, field)) is not None:
                secret_name(value, field)
        if not self.accounts:
            raise ConfigError("key 'accounts': at least one [[accounts]] table is required")
        self._check_logons()
        if not self.instruments:
            raise ConfigError("key 'instruments': at least one [[instruments]] table is required")
        ids: set[str] = set()
        for n, inst in enumerate(self.instruments):
            problem = inst.problem()
            if problem is not None:
                raise ConfigError(f"key 'instruments[{n}].{problem[0]}': {problem[1]}")
            if inst.venue != self.matching.name:
                raise ConfigError(
                    f"key 'instruments[{n}].venue': '{inst.venue}' is not this venue "
                    f"(matching.name is '{self.matching.name}')"
                )
            ids.add(inst.id)
        for n, feed in enumerate(self.feeds):
            if feed.instrument not in ids:
                raise ConfigError(f"key 'feeds[{n}].instrument': unknown '{feed.instrument}'")
            if feed.interval_ms <= 0:
                raise ConfigError(f"key 'feeds[{n}].interval_ms': must be > 0")
        for n, source in enumerate(self.replay):
            if source.instrument not in ids:
                raise ConfigError(f"key 'replay[{n}].instrument': unknown '{source.instrument}'")
        if self.tls is not None:
            self.tls.check("tls")
        self.limits.check("limits")
        self.validation.check("validation")
        if self.run_for_s is not None and not self.run_for_s > 0:
            raise ConfigError(f"key 'run_for_s': must be > 0, got {self.run_for_s}")
        if self.monitoring is not None and self.monitoring.deadman is not None:
            raise ConfigError(
                "key 'monitoring.deadman': the venue simulator has no dead-man's switch "
                "(a node's [monitoring] has)"
            )

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


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A trading account: the FIX session its node logs on with, and its credentials.

    ``comp_id`` is the node's SenderCompID. The Logon must carry ``username`` (553)
    and the password (554): ``password``, a reference to the vault (``"secret:NAME"``;
    a literal is refused), or ``password_env``, the environment variable a parent
    process (a test harness, a supervisor) hands it down in.
    ``allowed_ips``: the addresses or networks it may connect from (empty: any).
    ``client_cert_cn`` / ``client_cert_sha256``: with mutual TLS, the client
    certificate (its common name, or its SHA-256) this account must log on with.
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

    def __repr__(self) -> str:
        return f"AccountConfig(name={self.name!r}, comp_id={self.comp_id!r})"

    def resolve_password(self, key: str, secrets: SecretSource | None = None) -> Secret:
        """The account's password, from its environment variable or through ``secrets``;
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
        (the ledger's and stores' keys, the accounts' passwords, the TLS key)."""
        refs = [
            (field, secret_name(value, field))
            for field in ("ledger_encryption_key", "store_encryption_key")
            if (value := getattr(self, field)) is not None
        ]
        refs += [
            (f"accounts[{n}].password", secret_name(a.password, f"accounts[{n}].password"))
            for n, a in enumerate(self.accounts)
            if a.password is not None
        ]
        if self.tls is not None:
            refs.extend(self.tls.secret_refs("tls"))
        return refs

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
        names: set[str] = set()
        comp_ids: set[str] = set()
        for n, account in enumerate(self.accounts):
            key = f"accounts[{n}]"
            for field in ("name", "comp_id", "username"):
                if not getattr(account, field):
                    raise ConfigError(f"key '{key}.{field}': must not be empty")
            if account.name in names:
                raise ConfigError(f"key '{key}.name': duplicate account '{account.name}'")
            if account.comp_id in comp_ids:
                raise ConfigError(f"key '{key}.comp_id': duplicate comp_id '{account.comp_id}'")
            if (account.password is None) == (account.password_env is None):
                raise ConfigError(f"key '{key}': give exactly one of password_env or password")
            rule = account.access_rule(key)
            if rule.needs_certificate and (self.tls is None or self.tls.client_ca_file is None):
                field = "client_cert_cn" if account.client_cert_cn else "client_cert_sha256"
                raise ConfigError(
                    f"key '{key}.{field}': a client certificate is checked only with "
                    "mutual TLS: set tls.client_ca_file"
                )
            if account.password is not None:
                secret_name(account.password, f"{key}.password")
            names.add(account.name)
            comp_ids.add(account.comp_id)
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

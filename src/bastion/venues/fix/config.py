"""Configuration of a venue reached over FIX 4.4: a ``[[venues]]`` table with
``kind = "fix"`` (``FixVenueEntry``), or the single ``[fix_venue]`` table of a node
config (``FixVenueConfig``)."""

from __future__ import annotations

import enum
import ipaddress
import os

import msgspec

from bastion.errors import ConfigError
from bastion.fix.outbound import (
    DEFAULT_MAX_OUTBOUND_BUFFER_BYTES,
    DEFAULT_SLOW_CONSUMER_TIMEOUT_MS,
    OutboundLimits,
)
from bastion.fix.schedule import SessionSchedule
from bastion.fix.session import SessionSettings
from bastion.fix.tls import TlsClientConfig
from bastion.fix.validation import ValidationConfig
from bastion.vault.redact import register
from bastion.vault.refs import Secret, SecretNotFound, SecretSource, secret_name

CANCEL_ORDERS_ON_DISCONNECT = 8013
"""Logon tag asking the venue to cancel this session's orders when it drops. FIX 4.4 has
no such field; 8013 (CancelOrdersOnDisconnect, Y) is the user-defined tag venues such as
Coinbase use, and ``bastion venue sim`` honours it."""


FENCING_EPOCH = 8014
"""Logon tag carrying an HA member's fencing epoch (``bastion.ha``), user-defined like
8013 (sent only by an HA member). A venue that honours it keeps the highest epoch that
logged on per session: a Logon with a lower one is refused, one with a higher or
equal one takes the session over (the older connection is dropped), and an order,
cancel or amend whose ClOrdID (``{node}-{epoch}-{seq}``) carries a lower epoch is
rejected. See docs/ha.md for what to ask of a broker without it."""


class CancelOnDisconnect(enum.Enum):
    """What happens to the venue's open orders when the session drops.

    ``OFF``: nothing, they keep working. ``VENUE``: the Logon asks the venue to cancel
    them (8013=Y). ``RECONNECT``: the node cancels them itself after the next logon,
    once the resend and the reconciliation have settled.
    """

    OFF = "off"
    VENUE = "venue"
    RECONNECT = "reconnect"


class FixScheduleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The daily session window, ``HH:MM[:SS]`` in ``timezone`` (an IANA name).

    ``start`` after ``end`` spans midnight; equal means a 24-hour session that
    rolls over at ``start``. Each new session starts with sequence numbers at 1.
    """

    start: str
    end: str
    timezone: str = "UTC"

    def to_schedule(self, key: str = "fix_venue") -> SessionSchedule:
        try:
            return SessionSchedule.parse(self.start, self.end, self.timezone)
        except (ValueError, KeyError) as error:
            raise ConfigError(f"key '{key}.schedule': {error}") from None


class FixVenueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A FIX 4.4 venue session: where, who, how often, and what to subscribe.

    - ``name``: the venue name instruments refer to (``instruments[].venue``).
    - ``password``: the Logon password (554) as a reference to the vault,
      ``"secret:NAME"`` (a literal is refused); or ``password_env``: the environment
      variable a parent process hands it down in. Neither is ever logged.
    - ``store_path``: sequence numbers and sent messages, so a restarted node
      resumes its session; relative to the config file.
    - ``store_encryption_key``: a reference to the vault (``"secret:fix/store"``, 32
      bytes as 64 hex characters) that encrypts the store (SQLCipher); unset: plaintext.
    - ``reset_on_logon``: ask for sequence numbers 1 at every logon (141=Y).
    - ``reconnect_initial_ms`` / ``reconnect_max_ms``: exponential backoff with
      jitter between reconnect attempts.
    - ``market_data``: subscribe to top of book for this venue's instruments.
    - ``cancel_on_disconnect``: see ``CancelOnDisconnect``.
    - ``tls``: connect over TLS (``bastion.fix.tls.TlsClientConfig``). A password is
      refused over plain TCP to a host that is not loopback, unless
      ``allow_plaintext_password`` says so.
    - ``validation``: how the venue's messages are checked against the FIX 4.4 data
      dictionary (``bastion.fix.validation.ValidationConfig``); on by default.
    - ``max_outbound_buffer_bytes`` / ``slow_consumer_timeout_ms``: a venue that stops
      reading what the node sends: once the connection's unsent bytes pass this mark and
      do not fall back to a quarter of it within the timeout (or grow by as much again
      meanwhile), the connection is dropped and the node reconnects
      (``bastion.fix.outbound.OutboundLimits``).
    """

    name: str = "FIX"
    host: str = "127.0.0.1"
    port: int
    sender_comp_id: str
    target_comp_id: str
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    account: str | None = None
    heartbeat_s: int = 30
    reset_on_logon: bool = False
    store_path: str = "fix-sessions.sqlite"
    store_encryption_key: str | None = None
    reconnect_initial_ms: int = 500
    reconnect_max_ms: int = 30_000
    logon_timeout_ms: int = 10_000
    max_sending_time_skew_s: float = 120.0
    schedule: FixScheduleConfig | None = None
    market_data: bool = True
    cancel_on_disconnect: CancelOnDisconnect = CancelOnDisconnect.OFF
    tls: TlsClientConfig | None = None
    allow_plaintext_password: bool = False
    validation: ValidationConfig = msgspec.field(default_factory=ValidationConfig)
    max_outbound_buffer_bytes: int = DEFAULT_MAX_OUTBOUND_BUFFER_BYTES
    slow_consumer_timeout_ms: int = DEFAULT_SLOW_CONSUMER_TIMEOUT_MS

    def __repr__(self) -> str:
        return (
            f"FixVenueConfig(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"sender_comp_id={self.sender_comp_id!r}, target_comp_id={self.target_comp_id!r})"
        )

    @property
    def sends_market_data(self) -> bool:
        """Its session carries top of book for a venue feed (``market_data``)."""
        return self.market_data

    def __post_init__(self) -> None:
        self.check("fix_venue")

    def check(self, key: str) -> None:
        """Raise ``ConfigError`` naming ``key.<field>`` for the first invalid value."""
        if not 0 < self.port < 65536:
            raise ConfigError(f"key '{key}.port': must be 1..65535, got {self.port}")
        for field in ("name", "host", "sender_comp_id", "target_comp_id"):
            if not getattr(self, field):
                raise ConfigError(f"key '{key}.{field}': must not be empty")
        if self.heartbeat_s <= 0:
            raise ConfigError(f"key '{key}.heartbeat_s': must be > 0, got {self.heartbeat_s}")
        if self.password is not None and self.password_env is not None:
            raise ConfigError(f"keys '{key}.password' and '{key}.password_env': give one")
        if self.password is not None:
            secret_name(self.password, f"{key}.password")
        if self.store_encryption_key is not None:
            secret_name(self.store_encryption_key, f"{key}.store_encryption_key")
        for field in ("reconnect_initial_ms", "reconnect_max_ms", "logon_timeout_ms"):
            if getattr(self, field) <= 0:
                raise ConfigError(f"key '{key}.{field}': must be > 0")
        if self.reconnect_max_ms < self.reconnect_initial_ms:
            raise ConfigError(f"key '{key}.reconnect_max_ms': must be >= reconnect_initial_ms")
        if not self.max_sending_time_skew_s > 0:
            raise ConfigError(f"key '{key}.max_sending_time_skew_s': must be > 0")
        if self.schedule is not None:
            self.schedule.to_schedule(key)
        if self.tls is not None:
            self.tls.check(f"{key}.tls")
        self.validation.check(f"{key}.validation")
        self.outbound().check(key)
        self._check_plaintext_password(key)

    def outbound(self) -> OutboundLimits:
        """How far behind the venue may fall in reading (``FixInitiator``'s ``outbound``)."""
        return OutboundLimits(
            max_outbound_buffer_bytes=self.max_outbound_buffer_bytes,
            slow_consumer_timeout_ms=self.slow_consumer_timeout_ms,
        )

    def _check_plaintext_password(self, key: str) -> None:
        """A password in clear text is readable by anyone on the path: only to loopback."""
        has_password = self.password is not None or self.password_env is not None
        if not has_password or self.tls is not None or self.allow_plaintext_password:
            return
        if _is_loopback(self.host):
            return
        raise ConfigError(
            f"key '{key}.host': '{self.host}' is not loopback and the Logon password would "
            f"cross the network in clear text; add a [{key}.tls] table (or, knowingly, "
            f"'{key}.allow_plaintext_password = true')"
        )

    def secret_refs(self, key: str) -> list[tuple[str, str]]:
        """The vault secrets this venue needs: ``(config key, secret name)`` pairs (the
        Logon password, the TLS client key, the session store's key)."""
        refs = []
        if self.store_encryption_key is not None:
            field = f"{key}.store_encryption_key"
            refs.append((field, secret_name(self.store_encryption_key, field)))
        if self.password is not None:
            refs.append((f"{key}.password", secret_name(self.password, f"{key}.password")))
        if self.tls is not None:
            refs.extend(self.tls.secret_refs(f"{key}.tls"))
        return refs

    def resolve_password(
        self, key: str | None = None, secrets: SecretSource | None = None
    ) -> Secret | None:
        """The Logon password: from the environment variable named, or the vault secret
        referred to, through ``secrets``. ``key``: this venue's table in the config
        (``venues[1]``), for the error; an error names the variable or the secret,
        never a value."""

        def where(field: str) -> str:
            return f"key '{key}.{field}'" if key else f"venue '{self.name}': {field}"

        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(
                    f"{where('password_env')}: environment variable {self.password_env} is not set"
                )
            register(value)  # handed down by a parent: kept out of this process's logs
            return Secret(self.password_env, value)
        if self.password is None:
            return None
        name = secret_name(self.password, f"{key or self.name}.password")
        if secrets is None:
            raise ConfigError(f"{where('password')}: secret '{name}' needs a vault; none is open")
        try:
            return secrets.get(name)
        except SecretNotFound as e:
            raise SecretNotFound(f"{where('password')}: {e}") from None

    def settings(
        self, secrets: SecretSource | None = None, *, fencing_epoch: int | None = None
    ) -> SessionSettings:
        """The session's settings, its password resolved through ``secrets``;
        ``fencing_epoch``: an HA member's, sent in every Logon (``FENCING_EPOCH``)."""
        password = self.resolve_password(secrets=secrets)
        logon_fields: tuple[tuple[int, str], ...] = ()
        if self.cancel_on_disconnect is CancelOnDisconnect.VENUE:
            logon_fields += ((CANCEL_ORDERS_ON_DISCONNECT, "Y"),)
        if fencing_epoch is not None:
            logon_fields += ((FENCING_EPOCH, str(fencing_epoch)),)
        return SessionSettings(
            sender_comp_id=self.sender_comp_id,
            target_comp_id=self.target_comp_id,
            heartbeat_s=self.heartbeat_s,
            reset_on_logon=self.reset_on_logon,
            username=self.username,
            password=None if password is None else password.reveal(),
            max_sending_time_skew_s=self.max_sending_time_skew_s,
            logon_timeout_s=self.logon_timeout_ms / 1000,
            schedule=None if self.schedule is None else self.schedule.to_schedule(),
            logon_fields=logon_fields,
            validation=self.validation,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: where it resolves is not known here


class FixVenueEntry(FixVenueConfig, frozen=True, tag="fix", tag_field="kind"):
    """A ``[[venues]]`` table with ``kind = "fix"``: checked by the node config, which
    knows its place in the list (``venues[n]``)."""

    def __post_init__(self) -> None:
        pass

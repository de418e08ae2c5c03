"""The NATS connection (``[nats]`` of a feed handler, the fields of a ``kind = "nats"``
feed) and the node's ``[[feeds]]`` entry for a handler's quotes.

Credentials are references to the vault (``"secret:NAME"``), never values: a user and
password (``user`` in clear, ``password`` a reference) or a ``token``. TLS reuses the
FIX client's ``[tls]`` table (``ca_file`` or a pin, optional client certificate).
"""

from __future__ import annotations

import msgspec

from bastion.errors import ConfigError
from bastion.feeds.nats.wire import DEFAULT_PREFIX, check_prefix, check_token
from bastion.fix.tls import TlsClientConfig
from bastion.vault import Secret, SecretSource, secret_name
from bastion.vault.refs import SecretNotFound


class NatsConnection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where NATS is and how to log in; how to come back after a drop."""

    servers: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    user: str | None = None
    password: str | None = None
    """``"secret:NAME"``: the password of ``user``, from the vault."""
    token: str | None = None
    """``"secret:NAME"``: a token, from the vault (instead of user and password)."""
    tls: TlsClientConfig | None = None
    connect_timeout_ms: int = 2000
    reconnect_wait_ms: int = 250
    """Between two attempts to reach a server after the connection dropped."""
    max_reconnect_attempts: int = -1
    """-1: try for ever (a feed never gives up; the arbiter has failed over meanwhile)."""
    ping_interval_ms: int = 2000
    max_outstanding_pings: int = 2
    """A server that answers none of this many pings is dropped: a silent dead
    connection is seen within ``ping_interval_ms * (max_outstanding_pings + 1)``."""

    def check(self, key: str) -> None:
        if not self.servers:
            raise ConfigError(f"key '{key}.servers': give at least one server")
        for server in self.servers:
            if not server.startswith(("nats://", "tls://")):
                raise ConfigError(f"key '{key}.servers': {server!r} is no nats:// or tls:// URL")
        if self.password is not None:
            if self.user is None:
                raise ConfigError(f"key '{key}.password': give user too")
            secret_name(self.password, f"{key}.password")
        if self.token is not None:
            if self.user is not None:
                raise ConfigError(f"keys '{key}.token' and '{key}.user': give one")
            secret_name(self.token, f"{key}.token")
        for field in ("connect_timeout_ms", "reconnect_wait_ms", "ping_interval_ms"):
            if getattr(self, field) <= 0:
                raise ConfigError(f"key '{key}.{field}': must be > 0")
        if self.max_outstanding_pings < 1:
            raise ConfigError(f"key '{key}.max_outstanding_pings': must be >= 1")
        if self.max_reconnect_attempts < -1:
            raise ConfigError(f"key '{key}.max_reconnect_attempts': -1 (for ever) or >= 0")
        if self.tls is not None:
            self.tls.check(f"{key}.tls")

    def secret_refs(self, key: str) -> list[tuple[str, str]]:
        refs = []
        if self.password is not None:
            refs.append((f"{key}.password", secret_name(self.password, f"{key}.password")))
        if self.token is not None:
            refs.append((f"{key}.token", secret_name(self.token, f"{key}.token")))
        if self.tls is not None:
            refs.extend(self.tls.secret_refs(f"{key}.tls"))
        return refs

    def secret(self, field: str, key: str, secrets: SecretSource | None) -> Secret | None:
        value = getattr(self, field)
        if value is None:
            return None
        name = secret_name(value, f"{key}.{field}")
        if secrets is None:
            raise ConfigError(f"key '{key}.{field}': secret '{name}' needs a vault; none is open")
        try:
            return secrets.get(name)
        except SecretNotFound as e:
            raise SecretNotFound(f"key '{key}.{field}': {e}") from None


class NatsFeedEntry(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="nats",
    tag_field="kind",
):
    """The quotes one feed handler (``handler``) publishes for ``source``, for
    ``instruments``, from NATS (``[feeds.nats]``). Give a primary and a backup handler
    each its own ``[[feeds]]`` with its own ``priority``: the arbiter fails over."""

    name: str
    source: str
    handler: str
    instruments: list[str]
    nats: NatsConnection = msgspec.field(default_factory=NatsConnection)
    subject_prefix: str = DEFAULT_PREFIX
    priority: int = 1
    log_interval_ms: int = 10_000
    """A dropped message is logged once per reason per interval (with the count since)."""

    def __post_init__(self) -> None:
        key = f"feeds.{self.name}"
        check_token(self.source, f"{key}.source")
        check_token(self.handler, f"{key}.handler")
        check_prefix(self.subject_prefix, f"{key}.subject_prefix")
        if not self.instruments:
            raise ConfigError(f"key '{key}.instruments': give at least one")
        for iid in self.instruments:
            check_token(iid, f"{key}.instruments")
        if self.log_interval_ms <= 0:
            raise ConfigError(f"key '{key}.log_interval_ms': must be > 0")
        self.nats.check(f"{key}.nats")

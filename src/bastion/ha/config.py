"""The ``[ha]`` table of a node: which logical node it is a member of, and the lease
timing that keeps two members from trading at once (``bastion.ha.lease``)."""

from __future__ import annotations

import math
import socket
from typing import Final
from urllib.parse import urlsplit

import msgspec

from bastion.errors import ConfigError
from bastion.vault.refs import SecretSource, secret_name

DEFAULT_LEASE_MS: Final = 1000
DEFAULT_MARGIN_MS: Final = 250
DEFAULT_HEARTBEAT_MS: Final = 1000
DEFAULT_STANDBY_LOST_S: Final = 10.0
DEFAULT_MAX_LAG_EVENTS: Final = 1000
DEFAULT_MAX_LAG_MS: Final = 5000
_MEMBER_MAX: Final = 64


class HaConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A member of a logical node: one of several machines of which only the holder of
    the group's lease (the leader, highest fencing epoch) trades.

    - ``group``: the logical node's name (also its journal's name); one lease row.
    - ``member``: this machine's name in the group (default: the host name).
    - ``lease_ms``: how long a renewal holds the lease (server clock).
    - ``margin_ms``: the leader stops sending ``margin_ms`` before its lease runs out
      on its own monotonic clock, and a standby takes over only ``margin_ms`` after it
      ran out on the server's clock: clock rates and the time between the guard and
      the socket fit in twice the margin.
    - ``renew_ms``: how often the leader renews (default a quarter of the lease); each
      renewal, connect aside, is abandoned after ``timeout_ms`` (default ``renew_ms``).
    - ``url`` / ``password``: the PostgreSQL of the lease, a libpq URL without a
      password and a vault reference (``"secret:ha/postgres"``); unset, the
      journal's PostgreSQL settings (``[journal]``).

    - ``heartbeat_ms``: how often each member writes its row of ``bastion_ha_members``
      (role, applied seq, lag) and the leader reads the group's rows
      (``bastion.ha.members``).
    - ``standby_lost_s``: a standby not heard from for this long is lost;
      ``max_lag_events`` / ``max_lag_ms``: a standby further behind than either is
      lagging (the leader's ``StandbyStatus`` events and the ``ha-*`` alerts).

    Failover (leader SIGKILLed to the standby's first order) takes at most
    ``lease_ms + margin_ms`` plus one acquire poll (``renew_ms``) plus the venue
    logon: 1.5 s and a logon with the defaults.
    """

    group: str
    member: str = msgspec.field(default_factory=socket.gethostname)
    lease_ms: int = DEFAULT_LEASE_MS
    margin_ms: int = DEFAULT_MARGIN_MS
    renew_ms: int | None = None
    timeout_ms: int | None = None
    url: str | None = None
    password: str | None = None
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    standby_lost_s: float = DEFAULT_STANDBY_LOST_S
    max_lag_events: int = DEFAULT_MAX_LAG_EVENTS
    max_lag_ms: int = DEFAULT_MAX_LAG_MS

    def __post_init__(self) -> None:
        self.check("ha")

    @property
    def renew_interval_ms(self) -> int:
        return self.renew_ms if self.renew_ms is not None else max(1, self.lease_ms // 4)

    @property
    def statement_timeout_ms(self) -> int:
        return self.timeout_ms if self.timeout_ms is not None else self.renew_interval_ms

    def check(self, key: str) -> None:
        """Raise ``ConfigError`` naming ``key.<field>`` for the first invalid value."""
        for field in ("group", "member"):
            value: str = getattr(self, field)
            if not value or len(value) > _MEMBER_MAX or not value.isprintable():
                raise ConfigError(
                    f"key '{key}.{field}': must be 1 to {_MEMBER_MAX} printable characters"
                )
        for field in (
            "lease_ms",
            "margin_ms",
            "renew_ms",
            "timeout_ms",
            "heartbeat_ms",
            "standby_lost_s",
            "max_lag_events",
            "max_lag_ms",
        ):
            number = getattr(self, field)
            if number is not None and not number > 0:  # not > 0: NaN too
                raise ConfigError(f"key '{key}.{field}': must be > 0, got {number}")
        if not math.isfinite(self.standby_lost_s):
            raise ConfigError(
                f"key '{key}.standby_lost_s': must be finite, got {self.standby_lost_s}"
            )
        if self.standby_lost_s * 1000 < 2 * self.heartbeat_ms:
            raise ConfigError(
                f"key '{key}.standby_lost_s': must be at least two heartbeats "
                f"(2 * heartbeat_ms = {2 * self.heartbeat_ms} ms), got {self.standby_lost_s}: "
                "one late heartbeat would count a live standby as lost"
            )
        if 2 * self.margin_ms >= self.lease_ms:
            raise ConfigError(
                f"key '{key}.margin_ms': must be under half of lease_ms ({self.lease_ms}), "
                f"got {self.margin_ms}: the leader would stop before it renewed"
            )
        if self.renew_interval_ms >= self.lease_ms - self.margin_ms:
            raise ConfigError(
                f"key '{key}.renew_ms': must be under lease_ms - margin_ms "
                f"({self.lease_ms - self.margin_ms}), got {self.renew_interval_ms}: the "
                "leader's own deadline would pass between two renewals"
            )
        if self.statement_timeout_ms >= self.lease_ms - self.margin_ms:
            raise ConfigError(
                f"key '{key}.timeout_ms': must be under lease_ms - margin_ms "
                f"({self.lease_ms - self.margin_ms}), got {self.statement_timeout_ms}"
            )
        if self.url is not None:
            check_url(self.url, f"{key}.url")
        if self.password is not None:
            if self.url is None:
                raise ConfigError(f"key '{key}.password': give it with '{key}.url'")
            secret_name(self.password, f"{key}.password")

    def secret_refs(self) -> list[tuple[str, str]]:
        """The vault secret the lease needs: ``(config key, secret name)`` pairs."""
        if self.password is None:
            return []
        return [("ha.password", secret_name(self.password, "ha.password"))]

    def database(
        self, secrets: SecretSource | None, *, fallback: tuple[str, str | None] | None = None
    ) -> tuple[str, str | None]:
        """The lease's ``(url, password)``: ``[ha]``'s, else ``fallback`` (the journal's
        PostgreSQL url and password reference); the password resolved through
        ``secrets``. ``ConfigError`` naming the key when there is none."""
        url, ref, key = self.url, self.password, "ha.password"
        if url is None:
            if fallback is None:
                raise ConfigError(
                    "key 'ha.url': a lease needs a PostgreSQL: give ha.url, or a "
                    'PostgreSQL journal ([journal] backend = "postgres")'
                )
            (url, ref), key = fallback, "journal.password"
        if ref is None:
            return url, None
        name = secret_name(ref, key)
        if secrets is None:
            raise ConfigError(f"key '{key}': secret '{name}' needs a vault; none is open")
        return url, secrets.get(name).reveal()


def check_url(url: str, key: str) -> None:
    """A libpq URL, without a password (which belongs in the vault)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise ConfigError(f"key '{key}': not a valid URL: {error}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"key '{key}': must be a postgresql:// URL")
    if parts.password is not None:
        raise ConfigError(
            f"key '{key}': must not hold a password; give it as a vault reference "
            '(password = "secret:NAME")'
        )

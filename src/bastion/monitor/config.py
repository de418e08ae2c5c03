"""The ``[monitoring]`` section: where the node's metrics and health are served, how
often it samples itself, and its dead-man's switch.

Alert rules (``[[alerts]]``) and their routes (``[[alert_routes]]``) have their own
config in ``bastion.monitor.alerts.config``.
"""

from __future__ import annotations

import ipaddress

import msgspec

from bastion.errors import ConfigError
from bastion.vault import secret_name


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9464"`` for IPv6) as (host, port); port 0 asks the OS
    for a free one. ``ConfigError`` naming ``key`` otherwise."""
    host, sep, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"key '{key}': expected HOST:PORT, got {value!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                f"key '{key}': the host must be an IP address or localhost, got {host!r}"
            ) from None
    return host, int(port_text)


class DeadmanConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A dead-man's switch: the node pings ``url`` (a vault reference, since such URLs
    carry a token: ``"secret:notify/deadman"``) every ``interval_s`` seconds while it
    is alive and its loop turns, so an outside monitor notices when it goes silent."""

    url: str
    interval_s: float = 30.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        secret_name(self.url, "monitoring.deadman.url")
        for key in ("interval_s", "timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(
                    f"key 'monitoring.deadman.{key}': must be a positive number, "
                    f"got {getattr(self, key)}"
                )


class MonitoringConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The node's metrics and health endpoints.

    ``listen``: where ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` are
    served, ``"127.0.0.1:9464"`` by default (loopback; put a reverse proxy with TLS in
    front to scrape from elsewhere); port 0 takes a free port (the node logs the one it
    got). ``sample_interval_ms``: how often the trading loop samples its own state for
    the metrics and the alert rules. ``quote_stale_s``: a feed whose instrument has had
    no quote for this long makes the node not ready. ``deadman``: the dead-man's
    switch, off unless given.
    """

    enabled: bool = True
    listen: str = "127.0.0.1:9464"
    sample_interval_ms: int = 250
    quote_stale_s: float = 5.0
    deadman: DeadmanConfig | None = None

    def __post_init__(self) -> None:
        parse_listen(self.listen, "monitoring.listen")
        if not 10 <= self.sample_interval_ms <= 60_000:
            raise ConfigError(
                "key 'monitoring.sample_interval_ms': must be between 10 and 60000, "
                f"got {self.sample_interval_ms}"
            )
        if self.quote_stale_s <= 0:
            raise ConfigError(
                f"key 'monitoring.quote_stale_s': must be a positive number, "
                f"got {self.quote_stale_s}"
            )

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen, "monitoring.listen")

    def secret_refs(self) -> list[tuple[str, str]]:
        """The vault secrets the monitoring needs: ``(config key, secret name)`` pairs."""
        if self.deadman is None:
            return []
        return [("monitoring.deadman.url", secret_name(self.deadman.url, "monitoring.deadman.url"))]

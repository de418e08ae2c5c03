"""Who the FIX acceptor lets in, before any session hears of a connection.

``AcceptorLimits`` caps connections (all, and those not yet logged on, in total and per
address), bounds how long a connection may take to log on, and locks an address out
after repeated failed logons. ``AddressGuard`` keeps that count per source address on
the acceptor's clock. ``AccessRule`` is one session's own conditions: the networks it
may connect from, and the client certificate it must show.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

import msgspec

from bastion.errors import ConfigError
from bastion.fix.tls import PeerCertificate

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AcceptorLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of a FIX acceptor (the simulator's ``[limits]``).

    - ``max_connections``: open connections in all; one more is closed at once.
    - ``max_unauthenticated`` / ``max_unauthenticated_per_address``: connections not
      yet logged on (TLS handshake and Logon still to come), in all and per address.
    - ``logon_timeout_ms``: a connection must have completed TLS and sent a good
      Logon within this, or it is closed.
    - ``max_logon_failures`` / ``lockout_s``: after this many failed logons in a row
      from one address (wrong credentials, malformed or missing Logon, a refused
      certificate or address), that address's connections are closed unread for
      ``lockout_s``. A good logon clears its count.
    """

    max_connections: int = 64
    max_unauthenticated: int = 16
    max_unauthenticated_per_address: int = 4
    logon_timeout_ms: int = 10_000
    max_logon_failures: int = 5
    lockout_s: float = 60.0

    def check(self, key: str) -> None:
        for field in (
            "max_connections",
            "max_unauthenticated",
            "max_unauthenticated_per_address",
            "logon_timeout_ms",
            "max_logon_failures",
        ):
            if getattr(self, field) <= 0:
                raise ConfigError(f"key '{key}.{field}': must be > 0, got {getattr(self, field)}")
        if not self.lockout_s > 0:
            raise ConfigError(f"key '{key}.lockout_s': must be > 0, got {self.lockout_s}")


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection: the address, and the client
    certificate if TLS verified one."""

    address: str
    certificate: PeerCertificate | None = None


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One session's conditions on its connections: allowed source networks (empty:
    any), and the client certificate's common name and/or SHA-256."""

    networks: tuple[Network, ...] = ()
    cert_common_name: str | None = None
    cert_sha256: str | None = None

    @classmethod
    def parse(
        cls,
        allowed_ips: list[str],
        key: str,
        *,
        cert_common_name: str | None = None,
        cert_sha256: str | None = None,
    ) -> AccessRule:
        """From config: ``allowed_ips`` are addresses or networks (``10.0.0.0/8``)."""
        networks: list[Network] = []
        for n, text in enumerate(allowed_ips):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as error:
                raise ConfigError(f"key '{key}.allowed_ips[{n}]': {error}") from None
        pin = None
        if cert_sha256 is not None:
            pin = cert_sha256.replace(":", "").lower()
            if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
                raise ConfigError(f"key '{key}.client_cert_sha256': not a SHA-256 in hex")
        return cls(tuple(networks), cert_common_name, pin)

    @property
    def needs_certificate(self) -> bool:
        return self.cert_common_name is not None or self.cert_sha256 is not None

    def refusal(self, peer: Peer) -> str | None:
        """Why ``peer`` may not use the session, or ``None``."""
        if self.networks:
            try:
                address = ipaddress.ip_address(peer.address)
            except ValueError:
                return "source address not allowed"
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if not any(address in network for network in self.networks):
                return "source address not allowed"
        if self.needs_certificate:
            cert = peer.certificate
            if cert is None:
                return "client certificate required"
            if self.cert_common_name is not None and cert.common_name != self.cert_common_name:
                return "client certificate not allowed for this account"
            if self.cert_sha256 is not None and cert.cert_sha256 != self.cert_sha256:
                return "client certificate not allowed for this account"
        return None


class AddressGuard:
    """Failed logons per source address, and the lockouts they cause.

    Time is the acceptor clock's monotonic seconds, given to each call."""

    def __init__(self, limits: AcceptorLimits) -> None:
        self.limits = limits
        self._failures: Counter[str] = Counter()
        self._locked_until: dict[str, float] = {}
        self.lockouts = 0

    def locked(self, address: str, now_s: float) -> bool:
        until = self._locked_until.get(address)
        if until is None:
            return False
        if now_s < until:
            return True
        del self._locked_until[address]  # served: a fresh count
        self._failures.pop(address, None)
        return False

    def failed(self, address: str, now_s: float) -> bool:
        """Count a failed logon; ``True`` when it locks the address out."""
        self._failures[address] += 1
        if self._failures[address] < self.limits.max_logon_failures:
            return False
        self._failures.pop(address, None)
        self._locked_until[address] = now_s + self.limits.lockout_s
        self.lockouts += 1
        return True

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def forget_expired(self, now_s: float) -> None:
        """Drop lockouts that have run out (bounds the table under many addresses)."""
        for address in [a for a, until in self._locked_until.items() if until <= now_s]:
            del self._locked_until[address]
            self._failures.pop(address, None)

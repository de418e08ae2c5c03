"""Who the FIX acceptor lets in, before any session hears of a connection.

``AcceptorLimits`` caps connections (all, and those not yet logged on, in total and per
address), bounds how long a connection may take to log on, locks an address out after
repeated failed logons, and says how far behind in reading a logged-on peer may fall
before its connection is dropped (``bastion.fix.outbound``). ``AddressGuard`` keeps the
count of failed logons per source address on the acceptor's clock, in a table of
bounded size. ``AccessRule`` is one session's own conditions: the networks it may
connect from, and the client certificate it must show.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from bastion.errors import ConfigError
from bastion.fix.outbound import (
    DEFAULT_MAX_OUTBOUND_BUFFER_BYTES,
    DEFAULT_SLOW_CONSUMER_TIMEOUT_MS,
    OutboundLimits,
)
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
      ``lockout_s``. A good logon clears its count; so do ``lockout_s`` without a
      failure.
    - ``max_tracked_addresses``: addresses whose failures are remembered at once; one
      more forgets the one whose last failure is oldest (bounds the memory a flood
      from many addresses can take).
    - ``max_outbound_buffer_bytes`` / ``slow_consumer_timeout_ms``: a logged-on
      connection whose unsent bytes pass this mark and do not fall back to a quarter of
      it within the timeout (or grow by as much again meanwhile) is dropped, a slow
      consumer (``bastion.fix.outbound.OutboundLimits``).
    """

    max_connections: int = 64
    max_unauthenticated: int = 16
    max_unauthenticated_per_address: int = 4
    logon_timeout_ms: int = 10_000
    max_logon_failures: int = 5
    lockout_s: float = 60.0
    max_tracked_addresses: int = 10_000
    max_outbound_buffer_bytes: int = DEFAULT_MAX_OUTBOUND_BUFFER_BYTES
    slow_consumer_timeout_ms: int = DEFAULT_SLOW_CONSUMER_TIMEOUT_MS

    def outbound(self) -> OutboundLimits:
        return OutboundLimits(
            max_outbound_buffer_bytes=self.max_outbound_buffer_bytes,
            slow_consumer_timeout_ms=self.slow_consumer_timeout_ms,
        )

    def check(self, key: str) -> None:
        for field in (
            "max_connections",
            "max_unauthenticated",
            "max_unauthenticated_per_address",
            "logon_timeout_ms",
            "max_logon_failures",
            "max_tracked_addresses",
        ):
            if getattr(self, field) <= 0:
                raise ConfigError(f"key '{key}.{field}': must be > 0, got {getattr(self, field)}")
        if not self.lockout_s > 0:
            raise ConfigError(f"key '{key}.lockout_s': must be > 0, got {self.lockout_s}")
        self.outbound().check(key)


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


@dataclass(slots=True)
class _Record:
    """One address's failed logons in a row, whether they locked it out, and when the
    record is forgotten."""

    failures: int
    locked: bool
    expires_s: float


class AddressGuard:
    """Failed logons per source address, and the lockouts they cause.

    Time is the acceptor clock's monotonic seconds, given to each call. An address's
    record (its failures in a row, or its lockout) is forgotten ``lockout_s`` after its
    last failure, and at most ``max_tracked_addresses`` records are kept: one more
    evicts the one whose last failure is oldest. Records are kept in the order they
    expire, so each call purges the expired ones from the front at no cost when there
    are none: a flood from many addresses cannot grow the table without bound."""

    def __init__(self, limits: AcceptorLimits) -> None:
        self.limits = limits
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self.lockouts = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, address: object) -> bool:
        return address in self._records

    def locked(self, address: str, now_s: float) -> bool:
        self._purge(now_s)
        record = self._records.get(address)
        return record is not None and record.locked

    def failed(self, address: str, now_s: float) -> bool:
        """Count a failed logon; ``True`` when it locks the address out."""
        self._purge(now_s)
        record = self._records.pop(address, None)  # re-inserted last: latest expiry
        failures = 1 if record is None else record.failures + 1
        was_locked = record is not None and record.locked
        locked = was_locked or failures >= self.limits.max_logon_failures
        self._records[address] = _Record(failures, locked, now_s + self.limits.lockout_s)
        while len(self._records) > self.limits.max_tracked_addresses:
            self._records.popitem(last=False)
            self.evicted += 1
        if locked and not was_locked:
            self.lockouts += 1
            return True
        return False

    def succeeded(self, address: str) -> None:
        """A good logon clears the address's count (not a lockout it is under)."""
        record = self._records.get(address)
        if record is not None and not record.locked:
            del self._records[address]

    def _purge(self, now_s: float) -> None:
        records = self._records
        while records:
            oldest = next(iter(records.values()))
            if oldest.expires_s > now_s:
                return
            records.popitem(last=False)

"""The HA group's lease in PostgreSQL: who leads, under which fencing epoch, until when.

One row of ``bastion_leases`` per group. Expiry is decided on the PostgreSQL server's
clock (``clock_timestamp()``), the only clock every member shares; each member's own
safety on its monotonic clock (``bastion.ha.fence``):

- ``acquire`` (a standby): takes the lease with the next epoch, only once it ran out
  ``margin_ms`` ago on the server's clock (or was released);
- ``renew`` (the leader): holds it ``lease_ms`` longer, only while its epoch is still
  the group's; its fence's deadline becomes the monotonic time read *before* the
  renewal was sent, plus ``lease_ms - margin_ms``;
- ``release``: hands it over at once (to anyone, or to a named member);
- ``status``: holder, epoch, time left, last renewal (``bastion ha status``).

Every statement runs under a statement timeout and a local watchdog that shuts the
connection's socket if no answer came in time (a partition fails in
``timeout_ms``, it never hangs the caller); connecting is bounded by libpq's
``connect_timeout`` (``bastion.ha.pg``). ``LeaseKeeper`` renews in a thread of its own
every ``renew_ms`` and revokes the fence, then calls ``on_lost``, as soon as the deadline passes
without a renewal or a renewal finds the member deposed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
import psycopg
import structlog

from bastion.errors import Deposed, LeaseUnavailable
from bastion.ha.config import HaConfig
from bastion.ha.fence import Fence, MonotonicNs, monotonic_ns
from bastion.ha.pg import BoundedConnection, Connect

log = structlog.get_logger("bastion.ha")

_MS: Final = "* interval '1 millisecond'"

TABLE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bastion_leases (name text PRIMARY KEY, epoch bigint NOT NULL, "
    "holder text NOT NULL, expires_at timestamptz NOT NULL, renewed_at timestamptz NOT NULL)"
)

# A released row expires before its renewal: it is free at once, for the member it
# names (holder) or anyone (holder ''); a handover nobody claims is free to all after
# one lease and margin. ``before`` says whether the row taken was released (the
# statement's snapshot: a takeover's reason, nothing decided on it).
_ACQUIRE: Final = f"""
WITH before AS (SELECT expires_at < renewed_at AS released FROM bastion_leases
                WHERE name = %(group)s)
INSERT INTO bastion_leases AS l (name, epoch, holder, expires_at, renewed_at)
VALUES (%(group)s, 1, %(member)s, clock_timestamp() + %(lease)s {_MS}, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
    epoch = l.epoch + 1,
    holder = EXCLUDED.holder,
    expires_at = clock_timestamp() + %(lease)s {_MS},
    renewed_at = clock_timestamp()
WHERE l.expires_at + %(margin)s {_MS} < clock_timestamp()
  AND (l.expires_at >= l.renewed_at
       OR l.holder IN (%(member)s, '')
       OR l.renewed_at + (%(lease)s + %(margin)s) {_MS} < clock_timestamp())
RETURNING l.epoch, (SELECT released FROM before)
"""
_RENEW: Final = f"""
UPDATE bastion_leases
SET expires_at = clock_timestamp() + %(lease)s {_MS}, renewed_at = clock_timestamp()
WHERE name = %(group)s AND epoch = %(epoch)s AND holder = %(member)s
RETURNING epoch
"""
_RELEASE: Final = f"""
UPDATE bastion_leases
SET holder = %(to)s, renewed_at = clock_timestamp(),
    expires_at = clock_timestamp() - (%(margin)s + 1) {_MS}
WHERE name = %(group)s AND epoch = %(epoch)s AND holder = %(member)s
RETURNING epoch
"""
_STATUS: Final = """
SELECT epoch, holder,
       (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint,
       (extract(epoch FROM clock_timestamp() - renewed_at) * 1000)::bigint,
       expires_at < renewed_at
FROM bastion_leases WHERE name = %(group)s
"""


class LeaseStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The group's lease as the server sees it now (``bastion ha status``)."""

    group: str
    epoch: int
    holder: str
    """The member that holds it (after a release: the member it was handed to, or
    empty for anyone)."""
    expires_in_ms: int
    """Until it runs out on the server's clock (negative: ran out that long ago)."""
    renewed_ms_ago: int
    released: bool
    """Released by its holder: a standby may take it at once."""
    free_in_ms: int
    """Until a standby may take it (0: now)."""


class Lease:
    """One member's handle on its group's lease (one connection, used by one thread at a
    time; the methods hold a lock)."""

    def __init__(
        self,
        config: HaConfig,
        *,
        url: str,
        password: str | None = None,
        now_ns: MonotonicNs = monotonic_ns,
        connect: Connect = psycopg.connect,
    ) -> None:
        self.config = config
        self._url = url
        self._now = now_ns
        self.took_released = False
        """The last ``acquire`` that won took a released lease (a switchover, or a
        leader's clean stop), not one that ran out."""
        self._db = BoundedConnection(
            group=config.group,
            member=config.member,
            what="the lease",
            url=url,
            password=password,
            timeout_ms=config.statement_timeout_ms,
            ddl=TABLE_DDL,
            connect=connect,
        )
        self._params: dict[str, object] = {
            "group": config.group,
            "member": config.member,
            "lease": config.lease_ms,
            "margin": config.margin_ms,
        }

    def __repr__(self) -> str:
        return f"Lease(group={self.config.group!r}, member={self.config.member!r})"

    # -- the lease ----------------------------------------------------------------------
    def acquire(self) -> Fence | None:
        """Take the lease if it is free (ran out ``margin_ms`` ago, or was released):
        the fence of the new epoch, or None. ``LeaseUnavailable`` if the server cannot
        be reached."""
        started = self._now()
        row = self._one(_ACQUIRE, self._params)
        if row is None:
            return None
        epoch = int(row[0])
        self.took_released = bool(row[1])
        config = self.config
        fence = Fence(
            epoch, started + (config.lease_ms - config.margin_ms) * 1_000_000, now_ns=self._now
        )
        log.warning("ha_lease_acquired", group=config.group, member=config.member, epoch=epoch)
        return fence

    def renew(self, fence: Fence) -> None:
        """Hold the lease ``lease_ms`` longer and move the fence's deadline. ``Deposed``
        (the fence revoked) if its epoch is no longer the group's; ``LeaseUnavailable``
        if the server did not answer (the deadline stays)."""
        if fence.revoked is not None:
            raise Deposed(f"epoch {fence.epoch} was given up: {fence.revoked}")
        started = self._now()
        row = self._one(_RENEW, {**self._params, "epoch": fence.epoch})
        if row is None:
            now = self._status_or_none()
            reason = f"epoch {fence.epoch} is no longer current" + (
                "" if now is None else f" (epoch {now.epoch}, holder '{now.holder}')"
            )
            fence.revoke(f"deposed: {reason}")
            raise Deposed(f"HA group '{self.config.group}' deposed this member: {reason}")
        config = self.config
        fence.extend(started + (config.lease_ms - config.margin_ms) * 1_000_000)

    def release(self, fence: Fence, *, to: str | None = None) -> bool:
        """Stop sending under ``fence`` for good, then free the lease at once: for
        member ``to`` only (for one lease and margin), or anyone. False if the epoch
        was no longer current (nothing to release)."""
        fence.revoke("released" + (f" to '{to}'" if to else ""))
        row = self._one(_RELEASE, {**self._params, "epoch": fence.epoch, "to": to or ""})
        log.warning(
            "ha_lease_released",
            group=self.config.group,
            member=self.config.member,
            epoch=fence.epoch,
            to=to,
            released=row is not None,
        )
        return row is not None

    def status(self) -> LeaseStatus | None:
        """The lease now, or None if the group never had a leader."""
        row = self._one(_STATUS, self._params)
        if row is None:
            return None
        epoch, holder, expires_in, renewed_ago, released = row
        margin = self.config.margin_ms
        free_in = 0 if released else max(0, int(expires_in) + margin + 1)
        return LeaseStatus(
            group=self.config.group,
            epoch=int(epoch),
            holder=str(holder),
            expires_in_ms=int(expires_in),
            renewed_ms_ago=int(renewed_ago),
            released=bool(released),
            free_in_ms=free_in,
        )

    def _status_or_none(self) -> LeaseStatus | None:
        try:
            return self.status()
        except LeaseUnavailable:
            return None

    def close(self) -> None:
        self._db.close()

    def _one(self, query: str, params: Mapping[str, object]) -> tuple[Any, ...] | None:
        """One statement, bounded by the statement timeout and the watchdog."""
        return self._db.one(query, params)


# -- leadership -------------------------------------------------------------------------


def wait_until_leader(
    lease: Lease,
    stop: threading.Event | None = None,
    *,
    seen: Callable[[LeaseStatus], None] | None = None,
) -> Fence | None:
    """A standby's acquire loop: try until the lease is ours (its fence) or ``stop`` is
    set (None). Between tries it waits until the lease may be free on the server's
    clock, at most ``renew_ms``; an unreachable server is retried as often. ``seen``
    is given each status read (who led before)."""
    stop = stop or threading.Event()
    poll_s = lease.config.renew_interval_ms / 1000
    while not stop.is_set():
        wait_s = poll_s
        try:
            fence = lease.acquire()
            if fence is not None:
                return fence
            status = lease.status()
            if status is not None:
                if seen is not None:
                    seen(status)
                wait_s = min(poll_s, max(0.001, status.free_in_ms / 1000))
        except LeaseUnavailable as error:
            log.warning("ha_lease_unreachable", group=lease.config.group, error=str(error))
        stop.wait(wait_s)
    return None


class LeaseKeeper:
    """Renews a leader's lease every ``renew_ms`` on a thread of its own, and watches
    its fence on another: the first of (its deadline passes without a renewal, a
    renewal finds it deposed) revokes the fence and calls ``on_lost(reason)`` once,
    from the keeper's thread (hand it to the trading loop with
    ``loop.call_soon_threadsafe``). The fence refuses on its own from the deadline on,
    whether or not ``on_lost`` has run yet."""

    def __init__(self, lease: Lease, fence: Fence, *, on_lost: Callable[[str], None]) -> None:
        self.lease = lease
        self.fence = fence
        self.on_lost = on_lost
        self.renewals = 0
        self.failures = 0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._once = threading.Lock()
        name = f"ha-{lease.config.group}-{fence.epoch}"
        self._threads = [
            threading.Thread(target=self._renew_loop, name=f"{name}-renew", daemon=True),
            threading.Thread(target=self._watch, name=f"{name}-watch", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop renewing (the fence keeps its deadline: release or let it run out)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)

    def _renew_loop(self) -> None:
        interval_s = self.lease.config.renew_interval_ms / 1000
        fence = self.fence
        while not self._stop.is_set() and fence.revoked is None:
            try:
                self.lease.renew(fence)
                self.renewals += 1
                wait_s = interval_s
            except Deposed as error:
                self._lose(str(error))
                return
            except LeaseUnavailable as error:
                self.failures += 1
                log.warning(
                    "ha_lease_renewal_failed",
                    group=self.lease.config.group,
                    epoch=fence.epoch,
                    remaining_ms=fence.remaining_ns() // 1_000_000,
                    error=str(error),
                )
                wait_s = interval_s / 2  # try again soon: the deadline is closer
            self._stop.wait(wait_s)

    def _watch(self) -> None:
        fence = self.fence
        while not self._stop.is_set():
            remaining = fence.remaining_ns()
            if remaining <= 0:
                self._lose(
                    fence.revoked
                    or f"epoch {fence.epoch}: the lease's local deadline passed without a renewal"
                )
                return
            self._stop.wait(remaining / 1e9 + 0.0005)

    def _lose(self, reason: str) -> None:
        with self._once:
            if self.lost is not None:
                return
            self.lost = reason
        self.fence.revoke(reason)
        self._stop.set()
        log.error(
            "ha_lease_lost", group=self.lease.config.group, epoch=self.fence.epoch, reason=reason
        )
        self.on_lost(reason)

"""HA leases for tests: a member's ``Lease`` on a test PostgreSQL, and a recorder of
lost leases."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from bastion.ha.config import HaConfig
from bastion.ha.lease import Lease

FAST = {"lease_ms": 600, "margin_ms": 150, "renew_ms": 100}
"""Short lease timings, so a takeover test waits well under a second."""


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """A libpq URL as ``(url without the password, password)``."""
    parts = urlsplit(dsn)
    password = parts.password
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


def member(dsn: str, name: str, *, group: str = "desk", **timing: int) -> Lease:
    """Member ``name`` of ``group`` on the database of ``dsn`` (FAST timings unless
    given)."""
    url, password = split_dsn(dsn)
    t = {**FAST, **timing}
    config = HaConfig(
        group=group,
        member=name,
        lease_ms=t["lease_ms"],
        margin_ms=t["margin_ms"],
        renew_ms=t["renew_ms"],
    )
    return Lease(config, url=url, password=password)


class Lost:
    """Records ``on_lost`` calls (from a keeper's thread)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


MakeMember = Callable[..., Lease]


@contextlib.contextmanager
def members(dsn: str) -> Iterator[MakeMember]:
    """``member`` bound to ``dsn``; every lease made is closed when the block ends."""
    made: list[Lease] = []

    def make(name: str, **timing: int) -> Lease:
        lease = member(dsn, name, group="desk", **timing)
        made.append(lease)
        return lease

    try:
        yield make
    finally:
        for lease in made:
            lease.close()

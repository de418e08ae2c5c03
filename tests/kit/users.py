"""Operator stores for tests: cheap Argon2 password hashes, enrolled TOTP seeds, codes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bastion.clock import SimClock
from bastion.security.config import UsersConfig
from bastion.security.passwords import Passwords
from bastion.security.store import UserStore
from bastion.security.totp import STEP_S, ConfirmedTotp, Enrolment, code_at, confirm, step_at
from bastion.vault.vault import KdfParams
from kit.vaults import T0

FAST_PASSWORD_PARAMS: Final = KdfParams(time_cost=1, memory_kib=64, parallelism=1)
"""Argon2id at its cheapest, for password hashes in tests (never for real operators)."""
FAST_USERS: Final = UsersConfig(password=FAST_PASSWORD_PARAMS, max_failures=3, lockout_s=300)
"""A store config with cheap hashes, 3 failures to lock out, 5 minutes locked."""
KEY: Final = bytes(range(32))
OTHER_KEY: Final = bytes(range(1, 33))
PASSWORD: Final = "tr0ub4dor&3-but-longer"
STEP_NS: Final = STEP_S * 1_000_000_000


def store(
    directory: Path,
    *,
    clock: SimClock | None = None,
    key: bytes = KEY,
    config: UsersConfig = FAST_USERS,
) -> UserStore:
    """A store at ``directory/users.bastion`` with cheap hashes."""
    return UserStore(
        directory / "users.bastion",
        key,
        clock=clock or SimClock(T0),
        config=config,
        passwords=Passwords(config.password),
    )


def enrolled(name: str, now_ns: int = T0) -> tuple[str, ConfirmedTotp]:
    """A new seed for ``name``, confirmed with its code at ``now_ns``: (seed, confirmed)."""
    enrolment = Enrolment.new(name)
    confirmed = confirm(enrolment, code(enrolment.seed, now_ns), now_ns)
    assert confirmed is not None
    return enrolment.seed, confirmed


def code(seed: str, now_ns: int, *, steps: int = 0) -> str:
    """The TOTP code at ``now_ns`` (``steps`` later or, negative, earlier)."""
    return code_at(seed, step_at(now_ns) + steps)


def add_operator(users: UserStore, name: str, *roles: str, strategies: tuple[str, ...] = ()) -> str:
    """Add ``name`` (password ``PASSWORD``, TOTP enrolled at ``T0``); return the seed."""
    seed, confirmed = enrolled(name)
    users.add(name, PASSWORD, roles=roles or ("viewer",), strategies=strategies, totp=confirmed)
    return seed


@dataclass
class FreshCodes:
    """TOTP codes by the wall clock that a store takes (a code is good once): each of
    a later step than the last one given for that operator, the current step or the
    next (the store accepts one step either side). Never waits: a third code for one
    operator within a step fails the test."""

    seeds: Mapping[str, str]
    _last: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str) -> str:
        now = step_at(time.time_ns())
        step = max(now, self._last.get(name, now - 1) + 1)
        if step > now + 1:
            raise AssertionError(f"{name}: no unused TOTP code until the next step")
        self._last[name] = step
        return code_at(self.seeds[name], step)

"""Operators: what the store keeps of each (``UserRecord``, secrets included), what
anyone else may see of them (``User``, never a secret), and the decision a login or a
step-up makes (``attempt``), free of I/O so that it is tested alone.

A login is refused, in this order, for an operator who is disabled, locked out, gave
the wrong password, has no confirmed TOTP, or gave a wrong, replayed or expired code.
Every refusal of a known operator counts as a failure; ``max_failures`` in a row lock
them out for ``lockout_s`` (a failure while locked out is counted but does not extend
the lockout; once it has passed, each further failure locks again until a success).
A success clears the count and remembers the code's step (so it cannot be replayed).

``LoginResult.reason`` says exactly why (for the journal and the operator's own
logs); ``LoginResult.message`` is what a remote client may be told, the same for every
refusal, so that it never says whether a name exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any, Final, Literal

import msgspec

from bastion.errors import UsageError
from bastion.security import totp
from bastion.security.config import OPERATOR_NAME_PATTERN
from bastion.security.roles import Command, Role, allowed_any

__all__ = [
    "PUBLIC_REFUSAL",
    "LoginReason",
    "LoginResult",
    "User",
    "UserRecord",
    "UsersBody",
    "attempt",
    "check_name",
    "check_strategy",
]

_NAME: Final = re.compile(OPERATOR_NAME_PATTERN)
_STRATEGY: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

PUBLIC_REFUSAL: Final = (
    "sign-in refused: wrong name, password or code, or the account is unavailable"
)


def check_name(name: str) -> None:
    """Refuse a name that is not a short lowercase word (letters, digits, '.', '_', '-')."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"not a valid operator name: {name!r}: a lowercase letter then up to 31 "
            "lowercase letters, digits, '.', '_' or '-' (e.g. alice, j.smith)"
        )


def check_strategy(name: str) -> None:
    if not _STRATEGY.fullmatch(name):
        raise UsageError(
            f"not a valid strategy name: {name!r}: letters, digits, '_', '.', '-' (up to 64)"
        )


class UserRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An operator as stored (encrypted): with the password hash and the TOTP seed.
    Held by the store only; ``repr`` shows no secret."""

    name: str
    roles: tuple[Role, ...]
    strategies: tuple[str, ...] = ()
    os_uid: int | None = None
    disabled: bool = False
    password_hash: str
    totp_seed: str | None = None
    totp_last_step: int = -1
    failed_logins: int = 0
    locked_until_ns: int = 0
    last_login_ns: int | None = None
    created_ns: int
    changed_ns: int

    def __repr__(self) -> str:
        return (
            f"UserRecord({self.name!r}, roles={[r.value for r in self.roles]}, "
            "password_hash='***', totp_seed='***')"
        )

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield "name", self.name
        yield "roles", [r.value for r in self.roles]

    def view(self) -> User:
        """What may be shown of this operator."""
        return User(
            name=self.name,
            roles=self.roles,
            strategies=self.strategies,
            os_uid=self.os_uid,
            disabled=self.disabled,
            mfa_enrolled=self.totp_seed is not None,
            failed_logins=self.failed_logins,
            locked_until_ns=self.locked_until_ns,
            last_login_ns=self.last_login_ns,
            created_ns=self.created_ns,
            changed_ns=self.changed_ns,
        )


class UsersBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The store's decrypted contents. ``generation`` counts the writes."""

    generation: int = 0
    users: dict[str, UserRecord] = {}


class User(msgspec.Struct, frozen=True, kw_only=True):
    """An operator as anyone may see them: no password hash, no seed.

    ``roles`` and ``strategies`` are sorted. ``locked_until_ns`` is 0 when never
    locked out (``locked(now_ns)`` says whether a lockout is in force); ``changed_ns``
    is the last administrative change (a login changes only the login fields)."""

    name: str
    roles: tuple[Role, ...]
    strategies: tuple[str, ...]
    os_uid: int | None
    disabled: bool
    mfa_enrolled: bool
    failed_logins: int
    locked_until_ns: int
    last_login_ns: int | None
    created_ns: int
    changed_ns: int

    def locked(self, now_ns: int) -> bool:
        return self.locked_until_ns > now_ns

    def may(self, command: Command | str, *, strategy: str | None = None) -> bool:
        """The role matrix for this operator (their roles and assigned strategies). A
        disabled operator may do nothing."""
        if self.disabled:
            return False
        return allowed_any(self.roles, command, strategy=strategy, assigned=self.strategies)


class LoginReason(StrEnum):
    """Why a login or step-up was refused (or ``OK``)."""

    OK = "ok"
    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    LOCKED = "locked"
    BAD_PASSWORD = "bad_password"
    MFA_NOT_ENROLLED = "mfa_not_enrolled"
    BAD_TOTP = "bad_totp"
    TOTP_REPLAYED = "totp_replayed"
    TOTP_EXPIRED = "totp_expired"


_TOTP_REASONS: Final = {
    totp.TotpCheck.WRONG: LoginReason.BAD_TOTP,
    totp.TotpCheck.REPLAYED: LoginReason.TOTP_REPLAYED,
    totp.TotpCheck.EXPIRED: LoginReason.TOTP_EXPIRED,
}


class LoginResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a login (``kind="login"``: password and code) or a step-up
    (``kind="step_up"``: a code alone), for the caller to act on and journal.

    ``user`` is the operator as stored after the attempt (None for an unknown name).
    ``failures`` counts the refusals in a row; ``locked_out`` is True when this attempt
    started a lockout (until ``locked_until_ns``); ``rehashed`` when the password hash
    was made again at the configured cost."""

    kind: Literal["login", "step_up"]
    reason: LoginReason
    name: str
    source: str
    at_ns: int
    user: User | None = None
    failures: int = 0
    locked_until_ns: int = 0
    locked_out: bool = False
    rehashed: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is LoginReason.OK

    @property
    def message(self) -> str:
        """What a remote client may be told: never why a refusal was refused."""
        return "signed in" if self.ok else PUBLIC_REFUSAL


def attempt(
    record: UserRecord,
    *,
    password_ok: bool | None,
    code: str,
    now_ns: int,
    max_failures: int,
    lockout_ns: int,
) -> tuple[LoginReason, UserRecord]:
    """Decide a login (``password_ok`` from the hash check) or a step-up
    (``password_ok=None``) of a known operator: the reason, and the record to store."""
    step: int | None = None
    if record.disabled:
        reason = LoginReason.DISABLED
    elif record.locked_until_ns > now_ns:
        reason = LoginReason.LOCKED
    elif password_ok is False:
        reason = LoginReason.BAD_PASSWORD
    elif record.totp_seed is None:
        reason = LoginReason.MFA_NOT_ENROLLED
    else:
        checked, step = totp.check(record.totp_seed, code, now_ns, last_step=record.totp_last_step)
        reason = _TOTP_REASONS.get(checked, LoginReason.OK)
    if reason is LoginReason.OK and step is not None:
        return reason, msgspec.structs.replace(
            record,
            failed_logins=0,
            locked_until_ns=0,
            totp_last_step=step,
            last_login_ns=now_ns if password_ok else record.last_login_ns,
        )
    failures = record.failed_logins + 1
    locked_until = record.locked_until_ns
    if failures >= max_failures and locked_until <= now_ns:
        locked_until = now_ns + lockout_ns
    return reason, msgspec.structs.replace(
        record, failed_logins=failures, locked_until_ns=locked_until
    )


def sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))

"""The ``[access]`` section of a node's config, and its ``[access.users]`` table.

``UsersConfig``: where the operator store lives, how logins lock out, and the cost of
password hashes (``bastion users`` runs on the defaults, or on a config's
``[access.users]`` with ``--config``). ``AccessConfig``: the node's operators come from
that store; the four-eyes windows per action; the bound on limit overrides. A node
without ``[access]`` has no operators but its own OS account (a one-person paper desk;
``bastion.node.identity``); a live node needs it.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

import msgspec

from bastion.errors import ConfigError
from bastion.security.passwords import PASSWORD_PARAMS
from bastion.vault.vault import KdfParams

__all__ = [
    "DEFAULT_FOUR_EYES_S",
    "DEFAULT_OVERRIDE_FACTOR",
    "DEFAULT_USERS_NAME",
    "OPERATOR_NAME_PATTERN",
    "USERS_KEY",
    "AccessConfig",
    "FourEyes",
    "FourEyesConfig",
    "UsersConfig",
]

DEFAULT_USERS_NAME: Final = "users.bastion"
USERS_KEY: Final = "users/key"
"""The vault entry holding the store's 256-bit key (a machine key, ``ensure_key``)."""
DEFAULT_FOUR_EYES_S: Final = 900.0
"""A live node's approval window for each four-eyes action, unless configured."""
MAX_FOUR_EYES_S: Final = 86_400.0
OPERATOR_NAME_PATTERN: Final = r"[a-z][a-z0-9._-]{0,31}"
"""An operator's name: a lowercase letter then up to 31 lowercase letters, digits, '.',
'_' or '-' (the store's rule, ``bastion.security.users.check_name``)."""
MAX_UID: Final = 2**32 - 2
DEFAULT_OVERRIDE_FACTOR: Final = Decimal(2)
MAX_OVERRIDE_FACTOR: Final = Decimal(1000)


class UsersConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``path``: the store, relative to the vault's directory (``users.bastion`` beside
    the vault by default). ``max_failures`` refused logins in a row lock an operator
    out for ``lockout_s`` seconds; once locked out, each further failure locks again
    until a login succeeds or an admin enables the operator. ``totp_issuer`` names the
    desk in the operator's authenticator app. ``password``: Argon2id cost of new hashes
    (a login rehashes one made at another cost)."""

    path: str = DEFAULT_USERS_NAME
    max_failures: int = 5
    lockout_s: int = 900
    totp_issuer: str = "bastion"
    password: KdfParams = PASSWORD_PARAMS

    def __post_init__(self) -> None:
        if not 1 <= self.max_failures <= 100:
            raise ConfigError(
                "key 'access.users.max_failures': must be between 1 and 100, "
                f"got {self.max_failures}"
            )
        if not 1 <= self.lockout_s <= 7 * 86_400:
            raise ConfigError(
                f"key 'access.users.lockout_s': must be between 1 and 604800 (a week), "
                f"got {self.lockout_s}"
            )
        if not self.totp_issuer or ":" in self.totp_issuer:
            raise ConfigError("key 'access.users.totp_issuer': must be non-empty, without ':'")
        problem = self.password.problem()
        if problem is not None:
            raise ConfigError(f"key 'access.users.password': {problem}")

    @property
    def lockout_ns(self) -> int:
        return self.lockout_s * 1_000_000_000

    def resolve(self, vault_path: Path) -> Path:
        """The store's path for the vault at ``vault_path``."""
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else vault_path.parent / path


class FourEyes(StrEnum):
    """The actions that need a second, different operator's approval."""

    RESUME = "resume"
    """The node back to ACTIVE from HALTED (after a kill)."""
    RAISE_LIMIT = "raise_limit"
    """A limit override looser than the config's value."""
    RAISE_CEILING = "raise_ceiling"
    """A higher bound for a limit's overrides."""
    ARM_LIVE = "arm_live"
    """A live node's start (``bastion arm``)."""


class FourEyesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[access.four_eyes]``: per action, how many seconds a second operator has to
    approve it; 0 turns the second operator off for that action. Not given: 900 s on a
    live node, off on a paper node."""

    resume_s: float | None = None
    raise_limit_s: float | None = None
    raise_ceiling_s: float | None = None
    arm_live_s: float | None = None

    def __post_init__(self) -> None:
        for action in FourEyes:
            value = getattr(self, f"{action.value}_s")
            if value is not None and not 0 <= value <= MAX_FOUR_EYES_S:
                raise ConfigError(
                    f"key 'access.four_eyes.{action.value}_s': must be between 0 (off) and "
                    f"{MAX_FOUR_EYES_S:.0f} (a day), got {value}"
                )

    def window_s(self, action: FourEyes, mode: str) -> float:
        """Seconds a second operator has to approve ``action`` on a ``mode`` node; 0:
        no second operator needed."""
        value: float | None = getattr(self, f"{action.value}_s")
        if value is not None:
            return value
        return DEFAULT_FOUR_EYES_S if mode == "live" else 0.0


class AccessConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[access]``: who may command the node and how.

    ``users``: the operator store (``[access.users]``; ``users.bastion`` beside the
    vault by default); a local account is an operator when the store maps its uid.
    ``four_eyes``: the approval windows. ``max_override_factor``: an override of a limit
    may loosen it at most this many times the config's value (divided by it for a limit
    that is looser lower, such as a window); an admin raises one limit's bound with
    ``raise_ceiling``. ``socket``: who may connect to the control socket at all:
    ``group`` (mode 0660: the node's group; the kernel's uid then decides), ``owner``
    (0600: only the node's account, as without ``[access]``). ``consoles``: the uids of
    the accounts a ``bastion console`` runs as: only a request from one of them may act
    on behalf of a store operator (``on_behalf``) or journal a console sign-in
    (``record_auth``)."""

    users: UsersConfig = msgspec.field(default_factory=UsersConfig)
    four_eyes: FourEyesConfig = msgspec.field(default_factory=FourEyesConfig)
    max_override_factor: Decimal = DEFAULT_OVERRIDE_FACTOR
    socket: Literal["group", "owner"] = "group"
    consoles: list[int] = []

    def __post_init__(self) -> None:
        for uid in self.consoles:
            if isinstance(uid, bool) or not 0 <= uid <= MAX_UID:
                raise ConfigError(
                    f"key 'access.consoles': each entry is a uid (0 to {MAX_UID}), got {uid!r}"
                )
        if len(set(self.consoles)) != len(self.consoles):
            raise ConfigError(f"key 'access.consoles': a uid is listed twice: {self.consoles}")
        factor = self.max_override_factor
        if not factor.is_finite() or not 1 <= factor <= MAX_OVERRIDE_FACTOR:
            raise ConfigError(
                f"key 'access.max_override_factor': must be between 1 (no loosening beyond "
                f"the config) and {MAX_OVERRIDE_FACTOR}, got {factor}"
            )

    @property
    def socket_mode(self) -> int:
        return 0o660 if self.socket == "group" else 0o600

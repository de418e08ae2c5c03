"""The ``[users]`` settings: where the operator store lives, how logins lock out, and
the cost of password hashes.

Not yet a section of the node's config (the console and the control socket that read
it come later); ``bastion users`` runs on the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec

from bastion.errors import ConfigError
from bastion.security.passwords import PASSWORD_PARAMS
from bastion.vault.vault import KdfParams

__all__ = ["DEFAULT_USERS_NAME", "USERS_KEY", "UsersConfig"]

DEFAULT_USERS_NAME: Final = "users.bastion"
USERS_KEY: Final = "users/key"
"""The vault entry holding the store's 256-bit key (a machine key, ``ensure_key``)."""


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
                f"key 'users.max_failures': must be between 1 and 100, got {self.max_failures}"
            )
        if not 1 <= self.lockout_s <= 7 * 86_400:
            raise ConfigError(
                f"key 'users.lockout_s': must be between 1 and 604800 (a week), "
                f"got {self.lockout_s}"
            )
        if not self.totp_issuer or ":" in self.totp_issuer:
            raise ConfigError("key 'users.totp_issuer': must be non-empty, without ':'")
        problem = self.password.problem()
        if problem is not None:
            raise ConfigError(f"key 'users.password': {problem}")

    @property
    def lockout_ns(self) -> int:
        return self.lockout_s * 1_000_000_000

    def resolve(self, vault_path: Path) -> Path:
        """The store's path for the vault at ``vault_path``."""
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else vault_path.parent / path

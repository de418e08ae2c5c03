"""Operators: who may use a node, how they prove it, and what each may do.

- ``roles``: the ``Role`` and ``Command`` enums and the one table (``MATRIX``) of who
  may give which command, read through ``allowed`` / ``allowed_any`` / ``may_approve``;
- ``store``: ``UserStore``, the encrypted file of operators (beside the vault, sealed
  with its ``users/key``), their administration and the login checks
  (``verify_login``, ``verify_totp``);
- ``users``: what is stored (``UserRecord``), what may be shown (``User``), and the
  outcome of a login (``LoginResult``, ``LoginReason``);
- ``passwords``: the password rule and Argon2id hashing; ``totp``: the second factor
  and its enrolment; ``config``: ``UsersConfig`` and the node's ``AccessConfig``.

docs/security.md ("Operators") says what each part protects against, and what not.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bastion.security.config import (
    USERS_KEY,
    AccessConfig,
    FourEyes,
    FourEyesConfig,
    UsersConfig,
)
from bastion.security.roles import (
    MATRIX,
    Command,
    Grant,
    Role,
    allowed,
    allowed_any,
    matrix_markdown,
    may_approve,
)

if TYPE_CHECKING:
    from bastion.security.passwords import PASSWORD_PARAMS, Passwords, password_problem
    from bastion.security.store import UserStore
    from bastion.security.totp import ConfirmedTotp, Enrolment, confirm
    from bastion.security.users import PUBLIC_REFUSAL, LoginReason, LoginResult, User

# loaded when first asked for: a node's config (``bastion.config``) reads ``config`` and
# ``roles`` only, without the TOTP and store libraries
_LAZY: dict[str, str] = {
    "PASSWORD_PARAMS": "passwords",
    "Passwords": "passwords",
    "password_problem": "passwords",
    "UserStore": "store",
    "ConfirmedTotp": "totp",
    "Enrolment": "totp",
    "confirm": "totp",
    "PUBLIC_REFUSAL": "users",
    "LoginReason": "users",
    "LoginResult": "users",
    "User": "users",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "MATRIX",
    "PASSWORD_PARAMS",
    "PUBLIC_REFUSAL",
    "USERS_KEY",
    "AccessConfig",
    "Command",
    "ConfirmedTotp",
    "Enrolment",
    "FourEyes",
    "FourEyesConfig",
    "Grant",
    "LoginReason",
    "LoginResult",
    "Passwords",
    "Role",
    "User",
    "UserStore",
    "UsersConfig",
    "allowed",
    "allowed_any",
    "confirm",
    "matrix_markdown",
    "may_approve",
    "password_problem",
]

"""Secrets: the vault, references to its entries from config, and values that mask
themselves.

A config field that holds a secret takes a reference, ``"secret:NAME"``, never the
value; ``secret_name`` parses it and refuses a literal. A ``SecretSource`` (the vault,
or ``MemorySecrets`` in tests) turns a name into a ``Secret``, whose ``repr``/``str``
never show the value: only ``reveal()`` does, in the component that uses it.
"""

from bastion.vault.refs import (
    SECRET_PREFIX,
    MemorySecrets,
    Secret,
    SecretNotFound,
    SecretSource,
    is_secret_ref,
    secret_name,
)

__all__ = [
    "SECRET_PREFIX",
    "MemorySecrets",
    "Secret",
    "SecretNotFound",
    "SecretSource",
    "is_secret_ref",
    "secret_name",
]

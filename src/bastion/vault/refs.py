"""References to secrets (``"secret:NAME"``), masked values, and the source seam."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Protocol

from bastion.errors import ConfigError

SECRET_PREFIX: Final = "secret:"
# names are paths of lowercase words: fix/acct1, journal/chain, notify/slack
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*")


class SecretNotFound(ConfigError):
    """A reference names a secret the source does not hold. The message names the
    secret (never a value) and, when known, the config key that referred to it."""


class Secret:
    """A secret value that masks itself: ``repr``/``str``/formatting show only its
    name. ``reveal()`` gives the value to the component that uses it."""

    __slots__ = ("_name", "_value")

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    @property
    def name(self) -> str:
        return self._name

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._name!r}, '***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret is not pickled")


class SecretSource(Protocol):
    """Where named secrets come from: the vault, or ``MemorySecrets``."""

    def get(self, name: str) -> Secret:
        """The secret called ``name``; ``SecretNotFound`` naming it otherwise."""
        ...


class MemorySecrets:
    """Secrets held in memory (tests, and values handed down to a child process)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, name: str) -> Secret:
        try:
            return Secret(name, self._values[name])
        except KeyError:
            raise SecretNotFound(f"secret '{name}' is not in the vault") from None


def is_secret_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def secret_name(value: str, key: str) -> str:
    """The name in a reference ``"secret:NAME"`` held by config key ``key``.

    A literal value in a secret field is refused, naming the key and never echoing
    the value: a config file is copied, mailed and committed, a vault is not."""
    if not value.startswith(SECRET_PREFIX):
        raise ConfigError(
            f"key '{key}': holds a secret and takes a reference to the vault "
            f"('secret:NAME', set with `bastion secrets set NAME`), not the value itself"
        )
    name = value[len(SECRET_PREFIX) :]
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"key '{key}': not a valid secret reference: names are "
            f"lowercase words separated by '/' (letters, digits, '_', '.', '-')"
        )
    return name

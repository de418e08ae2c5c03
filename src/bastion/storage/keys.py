"""Key bytes from the vault: a 32-byte key is stored as 64 hex characters.

``resolve_key`` is how a store's ``*_encryption_key = "secret:NAME"`` config field
becomes the key bytes its ``connect()`` takes."""

from __future__ import annotations

import re
from typing import Final

from bastion.errors import ConfigError
from bastion.vault import Secret, SecretNotFound, SecretSource, secret_name

KEY_BYTES: Final = 32
_HEX_KEY: Final = re.compile(rf"[0-9a-fA-F]{{{2 * KEY_BYTES}}}")


def key_from_secret(secret: Secret, config_key: str) -> bytes:
    """The 32 bytes a secret holds as 64 hex characters; ``ConfigError`` naming the secret
    and the config key otherwise (never the value)."""
    value = secret.reveal().strip()
    if not _HEX_KEY.fullmatch(value):
        raise ConfigError(
            f"key '{config_key}': secret '{secret.name}' is not a {KEY_BYTES}-byte key "
            f'({2 * KEY_BYTES} hex characters; make one with `python -c "import secrets; '
            f'print(secrets.token_hex({KEY_BYTES}))"`)'
        )
    return bytes.fromhex(value)


def resolve_key(ref: str | None, config_key: str, secrets: SecretSource | None) -> bytes | None:
    """The key a config field's ``"secret:NAME"`` reference holds, through ``secrets``;
    None when the field is unset (a plaintext file).

    ``ConfigError`` (``SecretNotFound``) naming ``config_key`` when no vault is open, the
    secret is missing, or it is not a 32-byte key; never the value."""
    if ref is None:
        return None
    name = secret_name(ref, config_key)
    if secrets is None:
        raise ConfigError(f"key '{config_key}': secret '{name}' needs a vault; none is open")
    try:
        secret = secrets.get(name)
    except SecretNotFound as error:
        raise SecretNotFound(f"key '{config_key}': {error}") from None
    return key_from_secret(secret, config_key)

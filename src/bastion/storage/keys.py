"""Key bytes from the vault: a 32-byte key is stored as 64 hex characters."""

from __future__ import annotations

import re
from typing import Final

from bastion.errors import ConfigError
from bastion.vault import Secret

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

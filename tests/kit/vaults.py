"""Vaults for tests: a cheap Argon2 cost, key files, the environment a CLI child gets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from bastion.clock import SimClock
from bastion.vault.keysource import CREDENTIALS_ENV, KEY_FILE_ENV
from bastion.vault.vault import KdfParams, Vault

FAST_KDF: Final = KdfParams(time_cost=1, memory_kib=64, parallelism=1)
"""Argon2id at its cheapest: a test unlocks in a millisecond (never for real vaults)."""
FAST_KDF_ARGS: Final = ("--kdf-time-cost", "1", "--kdf-memory-kib", "64", "--kdf-parallelism", "1")
PASSPHRASE: Final = "correct horse battery"
T0: Final = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


DESK_KEYS: Final = {
    name: bytes([n + 1]) * 32
    for n, name in enumerate(
        ("journal/encryption", "journal/chain", "fix/store", "venue/ledger", "venue/store")
    )
}
"""Machine keys of a desk's vault as `bastion init` makes them (fixed here, not random)."""


def desk_vault(path: Path, passphrase: str = PASSPHRASE, **values: str) -> Vault:
    """A desk's vault (cheap Argon2) holding ``DESK_KEYS`` and ``values``."""
    vault = new_vault(path, passphrase, **values)
    for name, key in DESK_KEYS.items():
        vault.set(name, key.hex())
    return vault


def key_file(directory: Path, passphrase: str = PASSPHRASE, *, name: str = "vault.key") -> Path:
    """A key file holding ``passphrase`` (and a newline, as an editor leaves it), 0600."""
    path = directory / name
    path.write_text(passphrase + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def new_vault(path: Path, passphrase: str = PASSPHRASE, **values: str) -> Vault:
    """A vault at ``path`` with cheap Argon2, holding ``values`` (keyword ``fix__acct``
    is the secret ``fix/acct``)."""
    vault = Vault.create(path, passphrase, clock=SimClock(T0), kdf=FAST_KDF)
    for name, value in values.items():
        vault.set(name.replace("__", "/"), value)
    return vault


def vault_env(key: Path | None, **extra: str) -> dict[str, str]:
    """A child's environment with only the vault passphrase source given here (none of
    the developer's own), unbuffered and without colours."""
    # nor the developer's sudo: `bastion arm` takes the arming admin from SUDO_UID
    dropped = (KEY_FILE_ENV, CREDENTIALS_ENV, "SUDO_UID", "SUDO_USER", "SUDO_GID")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", **extra)
    if key is not None:
        env[KEY_FILE_ENV] = str(key)
    return env

"""The ``[vault]`` config section, and the secrets a config refers to, resolved.

A node (or the venue simulator) calls ``load_secrets`` at start with its config's
references: with none, no vault is opened (a config without secrets needs no vault);
otherwise the vault is unlocked (``bastion.vault.keysource`` says with what), its
scope checked, and each reference resolved, an unknown name refused naming the key
that holds it. The result is a ``SecretSource`` of just those secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from bastion.clock import Clock
from bastion.errors import ConfigError
from bastion.vault import keysource
from bastion.vault.refs import MemorySecrets, SecretNotFound, SecretSource
from bastion.vault.vault import Scope, Vault, require_scope, stated_scope

DEFAULT_VAULT_NAME: Final = "vault.bastion"


class VaultConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[vault]``: the vault file, relative to the config file's directory (default
    ``vault.bastion`` beside it: the desk's vault, made by ``bastion init``)."""

    path: str = DEFAULT_VAULT_NAME

    def resolve(self, base_dir: Path) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else base_dir / path


def refuse_live_vault(vault: VaultConfig, base_dir: Path) -> None:
    """A paper node refuses a config whose vault is a live one, even before it needs a
    secret from it (read from the file's header, without the passphrase)."""
    path = vault.resolve(base_dir)
    if stated_scope(path) == "live":
        raise ConfigError(
            f"key 'vault.path': the vault {path} holds live secrets, and this is a paper "
            "config; point it at a paper vault (`bastion secrets init`)"
        )


def unlock(
    path: Path,
    *,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    prompt: keysource.Prompt | None = None,
) -> Vault:
    """The vault at ``path``, unlocked with the passphrase from the key file, the
    systemd credential or the terminal (``keysource.passphrase``)."""
    secret = keysource.passphrase(purpose=f"unlock {path}", environ=environ, prompt=prompt)
    return Vault.open(path, secret, clock=clock)


def load_secrets(
    refs: Sequence[tuple[str, str]],
    *,
    vault: VaultConfig,
    base_dir: Path,
    scope: Scope,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    prompt: keysource.Prompt | None = None,
    machine_keys: Sequence[str] = (),
) -> SecretSource:
    """The secrets named by ``refs`` (``(config key, secret name)`` pairs), read from the
    config's vault, and the ``machine_keys`` it holds (keys the node itself uses, such
    as a live vault's ``live/arm``; one it lacks is left out, not an error). No vault is
    opened when both are empty."""
    if not refs and not machine_keys:
        return MemorySecrets({})
    path = vault.resolve(base_dir)
    opened = unlock(path, clock=clock, environ=environ, prompt=prompt)
    require_scope(opened, scope, "vault.path")
    values: dict[str, str] = {}
    for key, name in refs:
        if name not in opened:
            raise SecretNotFound(
                f"key '{key}': secret '{name}' is not in the vault {path} "
                f"(add it: bastion secrets set {name} --vault {path})"
            )
        values[name] = opened.get(name).reveal()
    for name in machine_keys:
        if name in opened:
            values[name] = opened.get(name).reveal()
    return MemorySecrets(values)

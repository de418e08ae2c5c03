"""The journal's keys, resolved from its config and the vault.

``journal_keys(config, secrets)`` is the one place a ``[journal]`` table's secret
references (``encryption_key``, ``chain_key``) become key bytes; the node's composition
root calls it with the vault and hands the result to ``SqliteJournal`` and the read-only
tools. ``None`` for a key means plaintext / an unkeyed chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.errors import ConfigError
from bastion.journal.config import JournalConfig
from bastion.storage.keys import resolve_key
from bastion.vault import SecretSource


@dataclass(frozen=True, slots=True, repr=False)
class JournalKeys:
    """The key that encrypts the journal file and the key of its chain (32 bytes each)."""

    encryption: bytes | None = None
    chain: bytes | None = None

    def __repr__(self) -> str:  # never the keys
        enc = "set" if self.encryption is not None else None
        chain = "set" if self.chain is not None else None
        return f"JournalKeys(encryption={enc}, chain={chain})"


PLAINTEXT = JournalKeys()


def journal_keys(config: JournalConfig, secrets: SecretSource) -> JournalKeys:
    """The keys ``config`` refers to, fetched from ``secrets``.

    ``ConfigError`` (``SecretNotFound``) names a missing secret, or one that is not 64
    hex characters, and the config key that refers to it; never the value."""
    return JournalKeys(
        encryption=resolve_key(config.encryption_key, "journal.encryption_key", secrets),
        chain=resolve_key(config.chain_key, "journal.chain_key", secrets),
    )


def require_keys(config: JournalConfig, keys: JournalKeys | None) -> JournalKeys:
    """``keys``, or plaintext when none are given and the config refers to none.

    A config that refers to keys the caller did not resolve is refused: a journal that
    should be encrypted or keyed is never written plaintext instead."""
    if keys is not None:
        return keys
    for field in ("encryption_key", "chain_key"):
        if getattr(config, field) is not None:
            raise ConfigError(
                f"key 'journal.{field}': refers to the vault, but this command was given "
                "no vault to resolve it"
            )
    return PLAINTEXT

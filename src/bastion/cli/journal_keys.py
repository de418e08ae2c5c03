"""Which journal a read-only command reads, and with which keys.

``bastion journal verify|export|stats`` and ``bastion manifest show|diff`` read the
``JournalLocator`` that ``journal_locator_of`` makes, and take the journal's keys one of
two ways (a PostgreSQL journal only the first: its URL, name and password come from the
config and its vault):

- ``--config CONFIG`` (the primary way): the node's config. It names the journal (so
  the PATH argument may be left out), the vault (``[vault] path``) and the secrets the
  ``[journal]`` table refers to (``encryption_key``, ``chain_key``): exactly the keys
  the node writes with. A config that refers to none opens no vault.
- ``--vault VAULT``: a vault holding the keys under the names ``bastion init`` gives
  them, ``journal/encryption`` (used when the file is encrypted) and ``journal/chain``
  (used when the vault holds it, so a journal downgraded to an unkeyed chain is caught).

Neither: the journal is read as plaintext with an unkeyed chain; an encrypted file is
refused naming both options.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from bastion.clock import Clock
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError, UsageError
from bastion.journal.factory import journal_locator
from bastion.journal.keys import PLAINTEXT, JournalKeys, journal_keys
from bastion.journal.locator import JournalLocator
from bastion.storage.connect import is_encrypted
from bastion.storage.keys import key_from_secret
from bastion.vault.config import load_secrets, unlock
from bastion.vault.refs import SecretNotFound

ENCRYPTION_KEY_NAME: Final = "journal/encryption"
CHAIN_KEY_NAME: Final = "journal/chain"
KEY_OPTIONS_HINT: Final = (
    "give the node's config (--config CONFIG) or the vault holding the journal's keys "
    "(--vault VAULT)"
)


def add_key_options(parser: argparse.ArgumentParser, *, path_dest: str) -> None:
    """``--config`` / ``--vault``; ``path_dest`` names the parser's journal argument,
    which ``--config`` makes optional."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config",
        metavar="CONFIG",
        help="the node's config: its journal (when the journal is not named), its vault "
        "and the journal's key references ([journal] encryption_key, chain_key)",
    )
    group.add_argument(
        "--vault",
        metavar="VAULT",
        help=f"a vault holding the journal's keys as {ENCRYPTION_KEY_NAME} and {CHAIN_KEY_NAME}",
    )
    parser.set_defaults(journal_path_dest=path_dest)


def journal_locator_of(args: argparse.Namespace, *, clock: Clock) -> JournalLocator:
    """The journal a read-only command names (its argument, else ``--config``'s journal:
    SQLite, or PostgreSQL with ``[journal] backend = "postgres"``) and what reading it
    takes, from the vault the options name (none opened when none is needed)."""
    named: str | None = getattr(args, args.journal_path_dest)
    if args.config is not None:
        return _from_config(Path(args.config), named, clock)
    if named is None:
        raise UsageError("name the journal file, or give the node's config (--config CONFIG)")
    path = Path(named)
    if args.vault is not None:
        return JournalLocator.sqlite(path, _from_vault(Path(args.vault), path, clock))
    if is_encrypted(path):
        raise UsageError(
            f"{path}: not a bastion journal, or an encrypted one (its first bytes are not "
            f"SQLite's): to read an encrypted journal, {KEY_OPTIONS_HINT}"
        )
    return JournalLocator.sqlite(path, PLAINTEXT)


def _from_config(config_path: Path, named: str | None, clock: Clock) -> JournalLocator:
    config = load_config(config_path, PaperConfig)
    journal = config.journal
    if journal.backend == "postgres" and named is not None:
        raise UsageError(
            f"{config_path}: its journal is in PostgreSQL (journal.backend); "
            "leave out the journal file"
        )
    base_dir = config_path.resolve().parent
    refs = journal.secret_refs()
    try:
        secrets = (
            load_secrets(
                refs,
                vault=config.vault,
                base_dir=base_dir,
                scope="live" if config.node.mode == "live" else "paper",
                clock=clock,
            )
            if refs
            else None
        )
        keys = PLAINTEXT if secrets is None else journal_keys(journal, secrets)
        if named is not None:
            return JournalLocator.sqlite(Path(named), keys)
        return journal_locator(
            journal, base_dir=base_dir, keys=keys, secrets=secrets, name=config.journal_name()
        )
    except ConfigError as error:
        raise type(error)(f"{config_path}: {error}") from None


def _from_vault(vault_path: Path, path: Path, clock: Clock) -> JournalKeys:
    vault = unlock(vault_path, clock=clock)
    encryption = None
    if is_encrypted(path):
        if ENCRYPTION_KEY_NAME not in vault:
            raise SecretNotFound(
                f"{path} is encrypted and the vault {vault_path} holds no "
                f"'{ENCRYPTION_KEY_NAME}' (give the node's config, --config CONFIG, if its "
                "journal.encryption_key names another secret)"
            )
        encryption = key_from_secret(vault.get(ENCRYPTION_KEY_NAME), f"--vault {vault_path}")
    chain = None
    if CHAIN_KEY_NAME in vault:
        chain = key_from_secret(vault.get(CHAIN_KEY_NAME), f"--vault {vault_path}")
    return JournalKeys(encryption=encryption, chain=chain)

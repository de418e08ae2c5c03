"""The keys of ``bastion backup``: ``keygen`` makes an age identity (``--out``) or a
record signing key into the vault (``--signing``), and a restore's trusted public keys
are gathered from ``--signer`` and its config (``bastion.backup.signing``; docs/dr.md).
Imports are made when a command runs, as everywhere in the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bastion.cli.common import EXIT_OK, wall_clock
from bastion.errors import UsageError

if TYPE_CHECKING:
    from bastion.backup.signing import Signers

DEFAULT_SIGNING_NAME: Final = "backup/signing"


def cmd_keygen(args: argparse.Namespace) -> int:
    """``--out FILE``: an age identity (0600), its public key printed; ``--signing``: a
    signing key into the vault (``keygen_signing``)."""
    from bastion.backup.encryption import new_identity

    if args.signing:
        if args.out is not None:
            raise UsageError(
                "--out is for an age identity; a signing key goes into the vault "
                "(--vault PATH or --config CONFIG)"
            )
        return keygen_signing(args)
    if args.out is None:
        raise UsageError("give --out FILE (an age identity) or --signing (a signing key)")
    if args.vault or args.config or args.name:
        raise UsageError("--vault, --config and --name go with --signing")
    public = new_identity(Path(args.out))
    print(f"identity written to {args.out} (keep it offline); its public key:")
    print(public)
    return EXIT_OK


def keygen_signing(args: argparse.Namespace) -> int:
    """A new Ed25519 key written into the vault (never shown: the vault's value is read
    by ``create`` and ``ship`` only); prints the config lines that use it."""
    from bastion.backup.signing import new_signing_key
    from bastion.cli.vault import vault_path
    from bastion.vault.config import unlock
    from bastion.vault.vault import check_name

    name = args.name or _configured_name(args.config) or DEFAULT_SIGNING_NAME
    check_name(name)
    path = vault_path(args)
    vault = unlock(path, clock=wall_clock())
    if name in vault:
        raise UsageError(
            f"the vault {path} already holds '{name}'; a signing key is never replaced "
            f"(the backups it signed name it): make the next one under another name "
            f"(--name {name}-2) and add its public key to signing_public_keys"
        )
    seed, public = new_signing_key()
    vault.set(name, seed.reveal())
    print(f"signing key written to the vault {path} as '{name}' (never shown)")
    print("in the config's [backup] (signing_public_keys also where backups are verified):")
    print(f'signing_key = "secret:{name}"')
    print(f'signing_public_keys = ["{public}"]')
    return EXIT_OK


def _configured_name(config: str | None) -> str | None:
    """The vault entry the config's ``[backup] signing_key`` names, if it names one."""
    from bastion.config import PaperConfig, load_config
    from bastion.vault.refs import secret_name

    if config is None:
        return None
    node = load_config(Path(config), PaperConfig)
    if node.backup is None or node.backup.signing_key is None:
        return None
    return secret_name(node.backup.signing_key, "backup.signing_key")


def restore_signers(config: Path | None, given: list[str]) -> Signers:
    """The keys a restore requires: ``--signer`` and the config's
    ``signing_public_keys`` (none: records are not checked for a signature)."""
    from bastion.backup.signing import Signers
    from bastion.config import PaperConfig, load_config

    keys = [(text, "--signer") for text in given]
    if config is not None:
        node = load_config(config, PaperConfig)
        if node.backup is not None:
            keys += [
                (text, f"key 'backup.signing_public_keys[{n}]'")
                for n, text in enumerate(node.backup.signing_public_keys)
            ]
    return Signers(keys)

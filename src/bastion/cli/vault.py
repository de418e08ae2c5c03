"""``bastion secrets init|set|list|rm|rotate-key``: manage a vault file.

Which vault: ``--vault PATH``; else ``--config FILE``'s ``[vault] path`` (relative to
that file; ``vault.bastion`` beside it when the section is absent); else
``vault.bastion`` in the current directory (the desk you are in). The passphrase
comes from ``BASTION_VAULT_KEY_FILE``, systemd's credential ``bastion-vault``, or the
terminal (``bastion.vault.keysource``). A value is never taken from the command line.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from bastion.cli.common import EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.errors import ConfigError, UsageError
from bastion.vault import keysource
from bastion.vault.config import DEFAULT_VAULT_NAME, VaultConfig, unlock
from bastion.vault.vault import KdfParams, Scope, Vault, check_name

_EPILOG: Final = """\
examples:
  bastion secrets init --vault mydesk/vault.bastion     # asks for a passphrase twice
  bastion secrets set fix/acct1 --vault mydesk/vault.bastion     # asks for the value
  printf %s "$PW" | bastion secrets set fix/acct1 --config mydesk/paper-fix.toml
  bastion secrets list --config mydesk/paper-fix.toml   # names and dates, no values
  bastion secrets rm fix/acct1
  bastion secrets rotate-key --new-key-file new.key     # new passphrase and data key

unattended: BASTION_VAULT_KEY_FILE=/etc/bastion/vault.key (mode 0600) holds the
passphrase; under systemd, LoadCredentialEncrypted=bastion-vault:... does.
docs: docs/cli.md ("bastion secrets") and docs/security.md ("Vault").
"""


class _VaultSection(msgspec.Struct, frozen=True, kw_only=True):
    """The ``[vault]`` table of any config file (its other tables are not read here)."""

    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)


def add_secrets_commands(commands: Commands, formatter: Formatter) -> None:
    group = commands.add_parser(
        "secrets",
        help="the vault: create it, set, list and remove secrets, change its passphrase",
        description=wrap(
            "bastion secrets: the vault, one encrypted file (AES-256-GCM, its key "
            "derived from a passphrase with Argon2id) holding the secrets configs refer "
            "to as 'secret:NAME'."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    group.set_defaults(handler=lambda _args: usage(group))
    where = vault_options()
    cost = argparse.ArgumentParser(add_help=False)
    defaults = KdfParams()
    kdf = cost.add_argument_group(
        "Argon2id cost",
        f"default: time cost {defaults.time_cost}, {defaults.memory_kib} KiB, parallelism "
        f"{defaults.parallelism} (about 0.3 s to unlock); rotate-key keeps the vault's",
    )
    kdf.add_argument("--kdf-time-cost", type=int, metavar="N")
    kdf.add_argument("--kdf-memory-kib", type=int, metavar="KIB")
    kdf.add_argument("--kdf-parallelism", type=int, metavar="N")

    sub = group.add_subparsers(dest="secrets_command", metavar="COMMAND", title="commands")
    init = sub.add_parser(
        "init",
        help="create an empty vault",
        description="Create an empty vault; refused if the file exists.",
        parents=[where, cost],
        formatter_class=formatter,
    )
    init.add_argument("--live", action="store_true", help="a vault for live trading (scope 'live')")
    init.set_defaults(handler=cmd_init)

    put = sub.add_parser(
        "set",
        help="add or replace a secret (the value from a prompt or stdin)",
        description=wrap(
            "Add or replace the secret NAME. The value is asked on the terminal (twice), "
            "or read from stdin when it is not a terminal (one trailing newline "
            "dropped); never from the command line, where other users see it."
        ),
        parents=[where],
        formatter_class=formatter,
    )
    put.add_argument("name", metavar="NAME", help="e.g. fix/acct1 (lowercase, '/'-separated)")
    put.set_defaults(handler=cmd_set)

    show = sub.add_parser(
        "list",
        help="names and dates of the secrets (never a value)",
        description="List the vault's secrets: names, created and updated dates (UTC).",
        parents=[where],
        formatter_class=formatter,
    )
    show.set_defaults(handler=cmd_list)

    remove = sub.add_parser(
        "rm",
        help="remove a secret",
        description="Remove the secret NAME.",
        parents=[where],
        formatter_class=formatter,
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=cmd_rm)

    rotate = sub.add_parser(
        "rotate-key",
        help="a new passphrase and data key, every secret re-encrypted",
        description=wrap(
            "Re-key the vault: a new passphrase (asked twice, or read from "
            "--new-key-file), a new salt and a new data key; every secret is "
            "re-encrypted. The Argon2 cost options change the cost at the same time. "
            "Afterwards, put the new passphrase where the node reads it."
        ),
        parents=[where, cost],
        formatter_class=formatter,
    )
    rotate.add_argument(
        "--new-key-file",
        metavar="PATH",
        help="read the new passphrase from this file (mode 0600) instead of a prompt",
    )
    rotate.set_defaults(handler=cmd_rotate)


def vault_options() -> argparse.ArgumentParser:
    """``--vault PATH`` or ``--config FILE``: a parent parser for commands on a vault."""
    where = argparse.ArgumentParser(add_help=False)
    options = where.add_argument_group("which vault")
    choice = options.add_mutually_exclusive_group()
    choice.add_argument("--vault", metavar="PATH", help="the vault file")
    choice.add_argument(
        "--config",
        metavar="FILE",
        help=f"a config file: its [vault] path (default: {DEFAULT_VAULT_NAME} beside it)",
    )
    return where


def vault_path(args: argparse.Namespace) -> Path:
    """The vault the command works on (module docstring)."""
    if args.vault:
        return Path(args.vault)
    if args.config:
        config_path = Path(args.config)
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8"))
            section = msgspec.convert(document, _VaultSection)
        except OSError as e:
            raise ConfigError(f"{config_path}: cannot read config file: {e.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.ValidationError) as e:
            raise ConfigError(f"{config_path}: {e}") from None
        return section.vault.resolve(config_path.resolve().parent)
    return Path(DEFAULT_VAULT_NAME)


def _kdf(args: argparse.Namespace, base: KdfParams) -> KdfParams:
    """``base`` with the cost options given on the command line."""
    return KdfParams(
        time_cost=args.kdf_time_cost or base.time_cost,
        memory_kib=args.kdf_memory_kib or base.memory_kib,
        parallelism=args.kdf_parallelism or base.parallelism,
    )


def cmd_init(args: argparse.Namespace) -> int:
    """Create an empty vault."""
    path = vault_path(args)
    if path.exists():
        raise UsageError(f"{path} already exists; a vault is never overwritten")
    clock = wall_clock()
    secret = keysource.passphrase(purpose=f"create {path}", confirm=True)
    started = clock.monotonic_s()
    scope: Scope = "live" if args.live else "paper"
    vault = Vault.create(path, secret, clock=clock, scope=scope, kdf=_kdf(args, KdfParams()))
    took = clock.monotonic_s() - started  # one key derivation: what each unlock costs
    print(f"created {path} (scope {vault.scope}; unlocking it takes about {took:.2f} s)")
    return EXIT_OK


def cmd_set(args: argparse.Namespace) -> int:
    """Add or replace one secret, its value from the terminal or stdin."""
    check_name(args.name)
    vault = unlock(vault_path(args), clock=wall_clock())
    value = _read_value(args.name)
    created = vault.set(args.name, value)
    print(f"{'added' if created else 'replaced'} {args.name} in {vault.path}")
    return EXIT_OK


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return keysource.ask(getpass.getpass, f"value of {name}: ", confirm=True)
    value = sys.stdin.read()
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"secret '{name}': no value on stdin; nothing changed")
    return value


def cmd_list(args: argparse.Namespace) -> int:
    """Names and dates; never a value."""
    vault = unlock(vault_path(args), clock=wall_clock())
    entries = vault.entries()
    print(f"{vault.path}: scope {vault.scope}, {len(entries)} secret(s)")
    if entries:
        width = max(len("NAME"), *(len(e.name) for e in entries))
        print(f"{'NAME':<{width}}  {'CREATED (UTC)':<19}  UPDATED (UTC)")
        for e in entries:
            print(f"{e.name:<{width}}  {_date(e.created_ns)}  {_date(e.updated_ns)}")
    return EXIT_OK


def _date(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_rm(args: argparse.Namespace) -> int:
    """Remove one secret."""
    vault = unlock(vault_path(args), clock=wall_clock())
    vault.remove(args.name)
    print(f"removed {args.name} from {vault.path}")
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace) -> int:
    """A new passphrase and data key; every secret re-encrypted."""
    path = vault_path(args)
    vault = unlock(path, clock=wall_clock())
    if args.new_key_file:
        new = keysource.read_key_file(Path(args.new_key_file), "new key file")
    elif keysource.can_prompt():
        import getpass

        new = keysource.ask(getpass.getpass, "new vault passphrase: ", confirm=True)
    else:
        raise UsageError("not on a terminal: give the new passphrase with --new-key-file PATH")
    vault.rotate(new, kdf=_kdf(args, vault.kdf))
    print(
        f"re-keyed {path}: {len(vault)} secret(s) re-encrypted under a new data key; "
        "the old passphrase no longer opens it: put the new one where the node reads it"
    )
    return EXIT_OK

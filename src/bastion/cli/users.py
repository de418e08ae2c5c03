"""``bastion users add|list|disable|enable|reset-mfa|passwd|set-role``: the operators.

The store is ``users.bastion`` beside the vault (``--vault PATH`` or ``--config
FILE``, as for ``bastion secrets``), sealed with the vault's ``users/key``; the vault
is unlocked as there (key file, systemd credential or prompt). A password is asked on
the terminal (twice) or read as the first line of stdin with ``--password-stdin``;
never from the command line, and an extra argument is refused without being echoed.
``add`` and ``reset-mfa`` show the new TOTP seed once, as a QR code and an
``otpauth://`` URI, and store it only after a code from the app matches (asked on the
terminal, or the next line of stdin).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import segno

from bastion.cli.common import EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.cli.vault import vault_options, vault_path
from bastion.clock import Clock
from bastion.errors import ConfigError, PasswordRejected, UsageError
from bastion.security.config import USERS_KEY, UsersConfig
from bastion.security.passwords import MIN_PASSWORD, password_problem
from bastion.security.roles import Role
from bastion.security.store import UserStore
from bastion.security.totp import ConfirmedTotp, Enrolment, confirm
from bastion.security.users import User, check_name, check_strategy
from bastion.vault import redact
from bastion.vault.config import unlock

_EPILOG: Final = """\
examples:
  bastion users add alice --role risk_officer --vault mydesk/vault.bastion
  bastion users add bob --role trader --strategy ema_cross --uid 1001
  printf '%s\\n' "$PW" | bastion users passwd bob --password-stdin
  bastion users list                      # never a password hash or a seed
  bastion users set-role bob --role trader --role viewer --strategy ema_cross
  bastion users disable bob ; bastion users enable bob   # enable also ends a lockout
  bastion users reset-mfa bob             # a lost phone: a new QR code

roles: viewer, trader, risk_officer, admin (docs/security.md, "Roles").
docs: docs/cli.md ("bastion users") and docs/security.md ("Operators").
"""

_ARGV_REFUSED: Final = (
    "unexpected argument(s) ({count}), not shown: a password is never taken from the "
    "command line (other users see it in ps); type it at the prompt or pipe it with "
    "--password-stdin"
)
_CODE_TRIES: Final = 3
_CLEAR_SCREEN: Final = "\x1b[2J\x1b[3J\x1b[H"  # the screen and its scrollback


class _NoEchoParser(argparse.ArgumentParser):
    """A subcommand parser that refuses extra arguments itself, without repeating them
    (one could be a password typed on the command line by mistake)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(_ARGV_REFUSED.format(count=len(extras)))
        return parsed, extras


def add_users_commands(commands: Commands, formatter: Formatter) -> None:
    group = commands.add_parser(
        "users",
        help="operators: add, list, disable, enable, reset MFA, set password or roles",
        description=wrap(
            "bastion users: the operators of a desk (roles, assigned strategies, local "
            "account, password hash, TOTP second factor), kept encrypted beside the vault."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    group.set_defaults(handler=lambda _args: usage(group))
    where = vault_options()
    secret_input = argparse.ArgumentParser(add_help=False)
    secret_input.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password as the first line of stdin (never from an argument)",
    )
    roles = ", ".join(r.value for r in Role)
    sub = group.add_subparsers(
        dest="users_command", metavar="COMMAND", title="commands", parser_class=_NoEchoParser
    )

    def command(name: str, help_text: str, description: str, *parents: Any) -> Any:
        chosen: list[Any] = [where, *parents]
        return sub.add_parser(
            name,
            help=help_text,
            description=wrap(description),
            parents=chosen,
            formatter_class=formatter,
            allow_abbrev=False,
        )

    add = command(
        "add",
        "a new operator: password, roles, TOTP enrolment",
        "Add the operator NAME with a password (the rule: at least "
        f"{MIN_PASSWORD} characters, not a common one, not their name) and a TOTP second "
        "factor: a QR code is shown once, and the operator is stored only when a code "
        "from the app matches.",
        secret_input,
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[r.value for r in Role],
        metavar="ROLE",
        help=f"one of {roles}; repeat for several",
    )
    add.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="NAME",
        help="a strategy a trader may enable, disable, start and stop; repeat for several",
    )
    add.add_argument("--uid", type=int, metavar="UID", help="the local account of this operator")
    add.set_defaults(handler=cmd_add)

    show = command("list", "the operators (never a secret)", "List the operators.")
    show.set_defaults(handler=cmd_list)

    for name, verb, handler in (
        ("disable", "may no longer log in nor give a command", cmd_disable),
        ("enable", "allowed again; also ends a lockout", cmd_enable),
    ):
        one = command(name, verb, f"The operator NAME {verb}.")
        one.add_argument("name", metavar="NAME")
        one.set_defaults(handler=handler)

    reset = command(
        "reset-mfa",
        "a new TOTP seed (a lost phone), confirmed by a code",
        "Enrol a new TOTP second factor for NAME: a QR code is shown once, and the old "
        "seed is replaced only when a code from the app matches.",
    )
    reset.add_argument("name", metavar="NAME")
    reset.set_defaults(handler=cmd_reset_mfa)

    passwd = command(
        "passwd",
        "a new password",
        f"Set a new password for NAME (at least {MIN_PASSWORD} characters, not a common "
        "one, not their name).",
        secret_input,
    )
    passwd.add_argument("name", metavar="NAME")
    passwd.set_defaults(handler=cmd_passwd)

    roles_cmd = command(
        "set-role",
        "replace roles, assigned strategies or local account",
        "Replace what is given: the roles (--role, repeated), the assigned strategies "
        "(--strategy, repeated, or --no-strategies), the local account (--uid or "
        "--no-uid).",
    )
    roles_cmd.add_argument("name", metavar="NAME")
    roles_cmd.add_argument(
        "--role",
        action="append",
        choices=[r.value for r in Role],
        metavar="ROLE",
        help=f"one of {roles}; repeat for several",
    )
    strategies = roles_cmd.add_mutually_exclusive_group()
    strategies.add_argument("--strategy", action="append", metavar="NAME")
    strategies.add_argument("--no-strategies", action="store_true")
    uid = roles_cmd.add_mutually_exclusive_group()
    uid.add_argument("--uid", type=int, metavar="UID")
    uid.add_argument("--no-uid", action="store_true")
    roles_cmd.set_defaults(handler=cmd_set_role)


# -- the commands ----------------------------------------------------------------------


def _store(args: argparse.Namespace, clock: Clock, *, create_key: bool = False) -> UserStore:
    vault = unlock(vault_path(args), clock=clock)
    return UserStore.for_vault(
        vault, clock=clock, config=_users_config(args), create_key=create_key
    )


class _UsersTable(msgspec.Struct, frozen=True, kw_only=True):
    users: UsersConfig = msgspec.field(default_factory=UsersConfig)


class _AccessSection(msgspec.Struct, frozen=True, kw_only=True):
    """The ``[access.users]`` table of a node's config (its other tables not read here)."""

    access: _UsersTable | None = None


def _users_config(args: argparse.Namespace) -> UsersConfig:
    """``--config FILE``'s ``[access.users]`` (where the node looks for its operators),
    else the defaults (``users.bastion`` beside the vault)."""
    if not getattr(args, "config", None):
        return UsersConfig()
    path = Path(args.config)
    try:
        section = msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), _AccessSection)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.ValidationError) as e:
        raise ConfigError(f"{path}: {e}") from None
    return UsersConfig() if section.access is None else section.access.users


def cmd_add(args: argparse.Namespace) -> int:
    """A new operator, stored once their TOTP code matched."""
    check_name(args.name)
    for strategy in args.strategy:
        check_strategy(strategy)
    clock = wall_clock()
    store = _store(args, clock, create_key=True)
    # refused before a password is asked or a seed shown
    if store.find(args.name) is not None:
        raise UsageError(f"operator {args.name!r} already exists in {store.path}")
    holder = None if args.uid is None else store.by_uid(args.uid)
    if holder is not None:
        raise UsageError(f"uid {args.uid} is already mapped to operator {holder.name!r}")
    password = _new_password(args.name, from_stdin=args.password_stdin)
    confirmed = _enrol(args.name, store.config, clock, from_stdin=args.password_stdin)
    user = store.add(
        args.name,
        password,
        roles=args.role,
        strategies=args.strategy,
        os_uid=args.uid,
        totp=confirmed,
    )
    print(f"added {_describe(user)} to {store.path}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """Names, roles, strategies, uid, disabled, locked, MFA; never a secret."""
    clock = wall_clock()
    vault = unlock(vault_path(args), clock=clock)
    if USERS_KEY not in vault:
        print(f"no operators for {vault.path} (add one: bastion users add NAME --role admin)")
        return EXIT_OK
    store = UserStore.for_vault(vault, clock=clock, config=_users_config(args))
    now = clock.timestamp_ns()
    rows = [
        (
            u.name,
            ",".join(r.value for r in u.roles),
            ",".join(u.strategies) or "-",
            "-" if u.os_uid is None else str(u.os_uid),
            "yes" if u.disabled else "no",
            f"until {_time(u.locked_until_ns)}" if u.locked(now) else "no",
            "yes" if u.mfa_enrolled else "no",
        )
        for u in store.users()
    ]
    print(f"{store.path}: {len(rows)} operator(s)")
    header = ("NAME", "ROLES", "STRATEGIES", "UID", "DISABLED", "LOCKED", "MFA")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    user = _store(args, wall_clock()).disable(args.name)
    print(f"disabled {user.name}")
    return EXIT_OK


def cmd_enable(args: argparse.Namespace) -> int:
    user = _store(args, wall_clock()).enable(args.name)
    print(f"enabled {user.name} (failure count cleared, no lockout)")
    return EXIT_OK


def cmd_reset_mfa(args: argparse.Namespace) -> int:
    clock = wall_clock()
    store = _store(args, clock)
    store.get(args.name)  # an unknown name is refused before a seed is shown
    confirmed = _enrol(args.name, store.config, clock, from_stdin=False)
    store.reset_mfa(args.name, confirmed)
    print(f"new TOTP second factor stored for {args.name}; the old one no longer works")
    return EXIT_OK


def cmd_passwd(args: argparse.Namespace) -> int:
    store = _store(args, wall_clock())
    store.get(args.name)
    password = _new_password(args.name, from_stdin=args.password_stdin)
    store.set_password(args.name, password)
    print(f"new password stored for {args.name}")
    return EXIT_OK


def cmd_set_role(args: argparse.Namespace) -> int:
    changes = (args.role, args.strategy, args.no_strategies, args.uid is not None, args.no_uid)
    if not any(changes):
        raise UsageError(
            "nothing to change: give --role, --strategy, --no-strategies, --uid or --no-uid"
        )
    store = _store(args, wall_clock())
    user = store.get(args.name)
    strategies = [] if args.no_strategies else args.strategy
    if args.role or strategies is not None:
        user = store.set_roles(args.name, args.role or user.roles, strategies=strategies)
    if args.uid is not None or args.no_uid:
        user = store.set_os_uid(args.name, None if args.no_uid else args.uid)
    print(f"changed {_describe(user)}")
    return EXIT_OK


# -- terminal --------------------------------------------------------------------------


def _describe(user: User) -> str:
    roles = ",".join(r.value for r in user.roles)
    strategies = ",".join(user.strategies) or "none"
    uid = "none" if user.os_uid is None else str(user.os_uid)
    mfa = "enrolled" if user.mfa_enrolled else "not enrolled"
    return f"{user.name} (roles {roles}; strategies {strategies}; uid {uid}; MFA {mfa})"


def _time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline()
    value = line.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"no {what} on stdin; nothing changed")
    return value


def _new_password(name: str, *, from_stdin: bool) -> str:
    """A new password from stdin's first line or the terminal (twice), checked against
    the rule before anything else is asked."""
    if from_stdin:
        password = _stdin_line("password")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"new password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two entries differ; nothing changed")
    else:
        raise UsageError(
            "not on a terminal: pipe the password with --password-stdin (never as an argument)"
        )
    problem = password_problem(password, name=name)
    if problem is not None:
        raise PasswordRejected(f"{problem}; nothing changed")
    redact.register(password)
    return password


def _enrol(name: str, config: UsersConfig, clock: Clock, *, from_stdin: bool) -> ConfirmedTotp:
    """Show a new seed once (QR code and URI), then ask for a code until one matches."""
    enrolment = Enrolment.new(name, issuer=config.totp_issuer)
    interactive = sys.stdin.isatty() and not from_stdin
    print(
        f"Scan this QR code with an authenticator app for {name}; it is shown once and "
        "holds the second factor's seed (keep it from other eyes):"
    )
    segno.make(enrolment.uri, error="m").terminal(out=sys.stdout, compact=True)
    print(f"or enter it by hand: {enrolment.uri}", flush=True)
    for _ in range(_CODE_TRIES if interactive else 1):
        if interactive:
            code = input("the 6-digit code the app shows now: ")
        else:
            print("the 6-digit code the app shows now:", file=sys.stderr, flush=True)
            code = _stdin_line("TOTP code")
        confirmed = confirm(enrolment, code, clock.timestamp_ns())
        if confirmed is not None:
            if sys.stdout.isatty():
                print(_CLEAR_SCREEN, end="", flush=True)  # the seed off the screen
            return confirmed
        print("that code does not match", file=sys.stderr)
    raise UsageError(
        "no matching code from the authenticator app: nothing stored (check the phone's "
        "clock, then run the command again for a new QR code)"
    )

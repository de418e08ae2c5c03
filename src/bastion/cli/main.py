"""The ``bastion`` command line: assemble the command groups' parsers, run one command,
map the errors it raises to exit codes.

One module per command group: ``desk`` (init), ``backtest``, ``node`` (run, recover), ``arm``,
``control`` (kill, resume, status, enable, risk), ``alerts``, ``journal``, ``ha``, ``manifest``,
``incident``, ``backup``, ``venue``, ``feed``, ``secrets``, ``users``, ``console``.

Exit codes: 0 success; 2 usage or configuration error; 3 bad market data;
1 any other bastion error. Expected errors print ``error: <message>`` to stderr,
never a traceback. Logs go to stderr; reports go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Final

from bastion import __version__
from bastion.cli.alerts import add_alerts_commands
from bastion.cli.arm import add_arm_commands
from bastion.cli.backtest import add_backtest_commands
from bastion.cli.backup import add_backup_commands
from bastion.cli.certs import add_certs_commands
from bastion.cli.common import (
    EXIT_DATA,
    EXIT_DEPOSED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    usage,
    wrap,
)
from bastion.cli.console import add_console_commands
from bastion.cli.control import add_operator_commands
from bastion.cli.desk import add_desk_commands
from bastion.cli.dr import add_dr_commands
from bastion.cli.feed import add_feed_commands
from bastion.cli.ha import add_ha_commands
from bastion.cli.incident import add_incident_commands
from bastion.cli.journal import add_journal_commands
from bastion.cli.manifest import add_manifest_commands
from bastion.cli.node import add_node_commands
from bastion.cli.users import add_users_commands
from bastion.cli.vault import add_secrets_commands
from bastion.cli.venue import add_venue_commands
from bastion.errors import (
    BastionError,
    CommandRefused,
    ConfigError,
    DataError,
    Deposed,
    FencedError,
    OperationalError,
    StrategyError,
    TemporaryError,
    UsageError,
    VaultError,
    VaultLocked,
)
from bastion.logs import configure_logging

__all__ = [
    "EXIT_DATA",
    "EXIT_DEPOSED",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "exit_code",
    "main",
]

_EXIT_CODES: Final[tuple[tuple[type[BastionError], int], ...]] = (
    (ConfigError, EXIT_USAGE),  # the user fixes the input
    (UsageError, EXIT_USAGE),
    (DataError, EXIT_DATA),  # bad market data
    (TemporaryError, EXIT_ERROR),  # the venue was not reachable: try again later
    (Deposed, EXIT_DEPOSED),  # another HA member leads: restart this one as a standby
    (FencedError, EXIT_DEPOSED),
    (OperationalError, EXIT_ERROR),  # the node had to halt
    (StrategyError, EXIT_ERROR),
    (CommandRefused, EXIT_ERROR),  # the node refused an operator command
    (VaultLocked, EXIT_USAGE),  # a wrong passphrase: the user gives the right one
    (VaultError, EXIT_ERROR),  # a damaged or unwritable vault
)


def exit_code(error: BastionError) -> int:
    """The process exit code for an error that reached the command line (README, "Exit
    codes"): chosen by the error's handling group, 1 for any other bastion error."""
    for error_type, code in _EXIT_CODES:
        if isinstance(error, error_type):
            return code
    return EXIT_ERROR


_MAIN_EPILOG: Final = """\
examples:
  bastion init mydesk                      # configs, example strategy, sample data
  bastion backtest mydesk/backtest.toml    # replay the sample data, print a report
  bastion run mydesk/paper.toml            # paper trading node; Ctrl-C stops it
  bastion run                              # paper node on the embedded defaults
  bastion kill mydesk/paper.toml --flatten # halt, cancel all, close positions
  bastion resume mydesk/paper.toml         # back to ACTIVE
  bastion journal verify --config mydesk/paper.toml   # check the journal's hash chain
  bastion secrets set fix/acct1 --vault mydesk/vault.bastion   # a secret into the vault
  bastion arm live/node.toml --why "..."   # allow one start of a live node
  bastion incident bundle mydesk/paper.toml   # status, journal, metrics, log for a post-mortem
  bastion users add alice --role risk_officer   # an operator: password + TOTP
  bastion backup create mydesk/paper.toml  # an encrypted backup to [backup] destination
  bastion console mydesk/console/console.toml   # the web console (HTTPS)

exit codes: 0 ok, 1 error, 2 usage or config error, 3 bad market data, 4 deposed
(an HA leader another member replaced: restart it, as a standby).
docs: docs/cli.md and docs/configuration.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``bastion`` argument parser with all subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="bastion",
        description=wrap(
            "bastion: run automated trading strategies (backtest, paper, live) "
            "with pre-trade risk controls and a durable journal."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"bastion {__version__}")
    logging_options = _logging_options()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    add_desk_commands(commands, formatter)
    add_backtest_commands(commands, formatter, logging_options)
    add_node_commands(commands, formatter, logging_options)
    add_arm_commands(commands, formatter)
    add_operator_commands(commands, formatter)
    add_alerts_commands(commands, formatter)
    add_journal_commands(commands, formatter)
    add_ha_commands(commands, formatter)
    add_backup_commands(commands, formatter)
    add_dr_commands(commands, formatter)
    add_manifest_commands(commands, formatter)
    add_incident_commands(commands, formatter)
    add_venue_commands(commands, formatter, logging_options)
    add_feed_commands(commands, formatter, logging_options)
    add_certs_commands(commands, formatter)
    add_secrets_commands(commands, formatter)
    add_users_commands(commands, formatter)
    add_console_commands(commands, formatter, logging_options)
    return parser


def _logging_options() -> argparse.ArgumentParser:
    """The logging options the commands that run something share (a parent parser)."""
    logging_options = argparse.ArgumentParser(add_help=False)
    group = logging_options.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level on stderr (default: node.log_level from the config)",
    )
    group.add_argument(
        "--log-format",
        choices=("console", "json"),
        help="log format on stderr (default: node.log_format from the config)",
    )
    return logging_options


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bastion`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        return usage(parser)
    configure_logging(
        getattr(args, "log_level", None) or "info", getattr(args, "log_format", None) or "console"
    )
    try:
        return handler(args)
    except BastionError as e:
        return _fail(str(e), exit_code(e))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)

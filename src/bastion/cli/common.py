"""What the command groups share: exit codes, help text wrapping, usage, logging set-up."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Final, TypeAlias

from bastion.clock import Clock, LiveClock
from bastion.errors import ConfigError
from bastion.logs import LogFile, configure_logging

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_DATA: Final = 3
EXIT_DEPOSED: Final = 4
"""An HA leader was deposed (``bastion.ha.node.EXIT_DEPOSED``): restart it, as a standby."""
EXIT_INTERRUPTED: Final = 130

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The ``bastion`` parser's subcommands, which each group adds its commands to."""
Formatter: TypeAlias = type[argparse.HelpFormatter]


def wrap(text: str) -> str:
    return textwrap.fill(text, width=80)


def usage(parser: argparse.ArgumentParser) -> int:
    """Print ``parser``'s help on stderr: a command group named without a command."""
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def configure_command_logging(
    args: argparse.Namespace, level: str, fmt: str, file: LogFile | None = None
) -> None:
    """Logging as the command line asks, else as the config says; ``file``: the
    config's ``[node] log_file``, which must be writable now."""
    try:
        configure_logging(args.log_level or level, args.log_format or fmt, file)
    except OSError as error:
        path = error.filename or (file.path if file is not None else "")
        raise ConfigError(
            f"key 'node.log_file': cannot write the log to {path}: {error.strerror or error}"
        ) from None


def positive_seconds(text: str) -> float:
    """An argument that is a duration: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def wall_clock() -> Clock:
    """The clock of a command that runs no node (it stamps vault entries, times an
    unlock)."""
    return LiveClock()

"""Errors reaching the command line map to the exit codes the README states, by the
error's handling group: 2 the user fixes the input, 3 bad market data, 4 a deposed HA
leader, 1 the rest."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from bastion.errors import (
    BackupError,
    BackupKeyError,
    BastionError,
    CommandRefused,
    ConfigError,
    DataError,
    Deposed,
    FencedError,
    InsecureFile,
    IntegrityError,
    LeaseUnavailable,
    NotArmed,
    OperationalError,
    PasswordRejected,
    StandbyTailBroken,
    StorageKeyError,
    StrategyError,
    TemporaryError,
    UnknownUser,
    UsageError,
    UserStoreCorrupt,
    VaultCorrupt,
    VaultError,
    VaultLocked,
    VenueRequestFailed,
    VenueUnavailable,
)
from bastion.ha.node import EXIT_DEPOSED

# the module, not the ``main`` function that ``bastion.cli`` exports under its name
cli_main = importlib.import_module("bastion.cli.main")

README_EXIT_CODES: list[tuple[type[BastionError], int]] = [
    (ConfigError, 2),
    (StorageKeyError, 2),
    (BackupKeyError, 2),
    (UsageError, 2),
    (UnknownUser, 2),  # an administration names no operator
    (PasswordRejected, 2),  # the new password breaks the rule
    (DataError, 3),
    (TemporaryError, 1),
    (VenueUnavailable, 1),
    (VenueRequestFailed, 1),
    (LeaseUnavailable, 1),  # the HA lease's database: a standby tries again
    (OperationalError, 1),
    (IntegrityError, 1),
    (BackupError, 1),
    (StandbyTailBroken, 1),  # the standby stopped at a bad record
    (Deposed, 4),  # another HA member leads: the supervisor restarts it as a standby
    (FencedError, 4),  # the journal refused the epoch: deposed
    (StrategyError, 1),
    (CommandRefused, 1),
    (InsecureFile, 2),  # the user fixes the file's permissions
    (NotArmed, 2),  # the operator arms the live node (`bastion arm`)
    (VaultLocked, 2),  # the user gives the right passphrase
    (VaultError, 1),
    (VaultCorrupt, 1),  # restore the vault from a backup
    (UserStoreCorrupt, 1),  # restore the operator store from a backup
    (BastionError, 1),
]


@pytest.mark.parametrize(("error_type", "code"), README_EXIT_CODES)
def test_when_an_error_reaches_the_cli_then_its_group_exit_code(
    error_type: type[BastionError], code: int
) -> None:
    """Each error class maps to the exit code of its handling group."""
    assert cli_main.exit_code(error_type("boom")) == code


@pytest.mark.parametrize(("error_type", "code"), README_EXIT_CODES)
def test_when_a_command_raises_then_main_prints_one_line_and_returns_the_code(
    error_type: type[BastionError],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``main`` turns the error into ``error: <message>`` on stderr and its exit code."""

    def failing(_args: argparse.Namespace) -> int:
        raise error_type("the venue is gone")

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=failing)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    # structlog would keep writing to this test's captured stderr after it is closed
    monkeypatch.setattr(cli_main, "configure_logging", lambda *_args: None)
    assert cli_main.main([]) == code
    assert capsys.readouterr().err.splitlines()[-1] == "error: the venue is gone"


def test_when_an_error_group_is_added_then_it_has_an_exit_code() -> None:
    """Every bastion error class has a stated exit code in this table."""
    import bastion.errors as errors

    classes = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BastionError)
    }
    assert classes == {error_type for error_type, _ in README_EXIT_CODES}


def test_when_a_leader_is_deposed_then_run_and_an_error_exit_alike() -> None:
    """The runner's deposed exit and the CLI's for a Deposed error are one code, and the
    README and docs/cli.md state it."""
    assert cli_main.EXIT_DEPOSED == EXIT_DEPOSED == 4
    root = Path(__file__).resolve().parents[3]
    for doc in ("README.md", "docs/cli.md"):
        assert "| 4 | deposed" in (root / doc).read_text(encoding="utf-8"), doc

"""All bastion exceptions, grouped by what the caller must do about them.

- ``ConfigError``: the user's input is wrong; report it and exit with code 2.
- ``DataError``: a market data file or message is malformed; report or skip it.
- ``TemporaryError``: transient trouble (a venue connection); back off and retry.
- ``OperationalError``: the node cannot go on safely; halt and notify.
"""

from __future__ import annotations


class BastionError(Exception):
    """Base of every error bastion raises on purpose."""


class ConfigError(BastionError):
    """A configuration file or value is invalid. The message names the file and key."""


class DataError(BastionError):
    """Market data is malformed. The message names the source and the line or row."""


class TemporaryError(BastionError):
    """A transient failure: the caller may back off and retry."""


class OperationalError(BastionError):
    """The node cannot continue safely: halt trading and notify an operator."""


class StrategyError(BastionError):
    """A user strategy could not be loaded or raised while running."""


class UsageError(BastionError):
    """The command line asks for something that cannot be done as asked (exit 2)."""

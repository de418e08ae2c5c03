"""All bastion exceptions, grouped by what the caller must do about them.

Errors that cross a component boundary are these classes; code at an edge (a venue
adapter, a socket, a file) translates what it catches with ``raise Ours(...) from e``.

- the user fixes the input (exit code 2): ``ConfigError`` (``InsecureFile``,
  ``StorageKeyError``, ``NotArmed``, ``BackupKeyError``), ``UsageError`` (``UnknownUser``,
  ``PasswordRejected``), ``VaultLocked`` (a wrong passphrase);
- bad market data (exit code 3): ``DataError``, report or skip it;
- transient trouble (exit code 1 if it reaches the command line): ``TemporaryError``
  (``VenueUnavailable``, ``VenueRequestFailed``): back off and retry;
- the node cannot go on safely (exit code 1): ``OperationalError``: halt and notify
  (``IntegrityError``: a stored file was tampered with; ``BackupError``: a backup
  could not be made or restored; ``FencedError``: a deposed
  leader's journal write was refused);
  ``StrategyError``: a user strategy failed to load or run;
- an operator command refused (exit code 1): ``CommandRefused``: nothing changed, the
  reason goes back to the operator;
- the vault cannot be opened or changed (exit code 1; 2 for a wrong passphrase):
  ``VaultError`` (``VaultLocked``, ``VaultCorrupt``, ``UserStoreCorrupt``): nothing in
  it changed.

``bastion.cli.main.exit_code`` maps each group to the process exit code.
"""

from __future__ import annotations


class BastionError(Exception):
    """Base of every error bastion raises on purpose."""


# -- the user fixes the input ----------------------------------------------------------


class ConfigError(BastionError):
    """A configuration file or value is invalid. The message names the file and key."""


class InsecureFile(ConfigError):
    """A file holding a secret (or its directory) is open to other users, or owned by
    another user. The message names the path and the ``chmod`` that fixes it."""


class StorageKeyError(ConfigError):
    """A stored file and the key given for it do not go together: an encrypted file
    opened without a key, a plaintext one with a key, a wrong encryption key, or a wrong
    chain key for a keyed journal. The message names the file; the file is unchanged."""


class NotArmed(ConfigError):
    """A live node may not start: it was not armed (``bastion arm``), or its arming is
    expired, used, forged, or for another config or node; or ``bastion arm`` refused
    the person (not an enabled admin, or their TOTP step-up refused). The message says
    which, naming the operator, never a code."""


class BackupKeyError(ConfigError):
    """A backup's identity (private key) file is missing, unreadable, open to other
    users, or not the key the backup was encrypted to. Never echoes the key."""


class UsageError(BastionError):
    """The command line asks for something that cannot be done as asked (exit 2)."""


class UnknownUser(UsageError):
    """An operator administration names no operator in the user store (never raised by a
    login, whose answer must not tell whether a name exists)."""


class PasswordRejected(UsageError):
    """A new operator password breaks the password rule; the message names the rule."""


# -- bad data --------------------------------------------------------------------------


class DataError(BastionError):
    """Market data is malformed. The message names the source and the line or row."""


# -- back off and retry ----------------------------------------------------------------


class TemporaryError(BastionError):
    """A transient failure: the caller may back off and retry."""


class VenueUnavailable(TemporaryError):
    """A venue cannot be reached now: not connected, or its session is not logged on
    (or closed while a request waited). Retry once it is logged on again."""


class VenueRequestFailed(TemporaryError):
    """A venue did not answer a request (it refused it, or no answer came in time): what
    it would have told is unknown. Ask again later."""


class LeaseUnavailable(TemporaryError):
    """The PostgreSQL of an HA group's lease cannot be reached or did not answer in
    time. A standby tries again; a leader keeps trading only until its own deadline."""


# -- halt and notify -------------------------------------------------------------------


class OperationalError(BastionError):
    """The node cannot continue safely: halt trading and notify an operator."""


class BackupError(OperationalError):
    """A backup could not be made, stored, fetched, verified or restored: a destination
    that fails, a blob that is damaged, truncated or incomplete, a piece missing. The
    message names the backup; a failed restore leaves nothing behind."""


class IntegrityError(OperationalError):
    """A journal, snapshot or anchor fails its check: a record was edited, deleted or
    forged, the journal was cut short of an anchor, or its chain was downgraded. The
    message names the first bad record; the node refuses to start from the file."""


class StandbyTailBroken(IntegrityError):
    """A standby following the journal met a record it must not apply (a gap in seq, a
    broken chain link or hash, a record that does not decode): it stops there, its state
    as of the last good record, rather than apply events out of order. The message names
    the seq."""


class Deposed(OperationalError):
    """This member's fencing epoch is no longer its HA group's current one: another
    member leads. It must never send or journal again under that epoch."""


class FencedError(OperationalError):
    """A journal write found that its writer's fencing epoch is no longer the current
    one: another node took the lease over. The write was rolled back, the journal
    accepts no more events, and the node must halt trading at once. The message names
    the journal, the writer's epoch and the current one."""


class StrategyError(BastionError):
    """A user strategy could not be loaded or raised while running."""


# -- an operator command refused -------------------------------------------------------


class CommandRefused(BastionError):
    """An operator command cannot be done as asked (an unknown strategy or instrument, a
    bad risk key or value); nothing changed. The message says why."""


# -- the vault refused -----------------------------------------------------------------


class VaultError(BastionError):
    """The vault cannot be opened or changed as asked; nothing in it changed. The message
    names the file."""


class VaultLocked(VaultError):
    """The passphrase does not open the vault (or the file's header was altered, which
    the passphrase check cannot tell apart). Give the right passphrase (exit 2)."""


class VaultCorrupt(VaultError):
    """The vault file is damaged: truncated, altered, or not a vault at all. Restore it
    from a backup; bastion never repairs a vault."""


class UserStoreCorrupt(VaultCorrupt):
    """The operator user store is damaged, truncated, or sealed with another vault's key
    (a file from another desk). Restore it from a backup; it is never repaired."""

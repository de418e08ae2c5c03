"""Paper and live never share a journal, nor a journal directory.

Two marks say which mode a journal belongs to, and a node of the other mode is refused
on either:

- the journal's own run manifests (``RunManifest.mode``, journaled at every start):
  a paper node refuses a journal a live node wrote, and the other way round;
- a marker file, ``.bastion-mode``, in the journal's directory (mode 0600, written at
  the first start of a node there, holding ``paper`` or ``live``): a live node refuses a
  directory a paper node's journal lives in, even in another journal file, since what
  sits beside a journal (the control socket, the arming, FIX stores a desk keeps there)
  is then shared as well.

The journal's manifests are read through ``bastion.journal.readable``, so a PostgreSQL
journal (``journal.name`` in its database) is checked as a SQLite file is; its marker
sits in the directory of its local path (``journal.path``), beside the node's socket
and arming.

A backtest with a journal only reads the marker: it refuses a live directory and
writes none. The checks guard against mistakes (a paper config pointed at the live
journal, a desk switched to live in place); a user who can write the directory can
delete the marker, and the manifests still speak.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Final, Literal

from bastion.errors import ConfigError
from bastion.journal.locator import JournalLocator
from bastion.journal.reader import NotAJournalError
from bastion.manifest import read_manifests
from bastion.vault.files import write_private

MARKER_NAME: Final = ".bastion-mode"

JournalMode = Literal["paper", "live"]
_MODES: Final[tuple[JournalMode, ...]] = ("paper", "live")


def marker_path(journal: Path) -> Path:
    """The mode marker of ``journal``'s directory."""
    return journal.parent / MARKER_NAME


def directory_mode(journal: Path) -> JournalMode | None:
    """The mode ``journal``'s directory is marked with (None: not marked yet)."""
    path = marker_path(journal)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"journal directory marker {path}: cannot read it: {error}") from None
    for mode in _MODES:
        if text == mode:
            return mode
    raise ConfigError(
        f"journal directory marker {path}: says {text[:40]!r}, expected 'paper' or 'live'"
    )


def journal_modes(journal: JournalLocator) -> set[str]:
    """The modes of the nodes that started on ``journal`` (empty: a new journal)."""
    if journal.unreadable_without_key():
        # the journal's own open says so (StorageKeyError); the directory's marker
        # still tells the modes apart
        return set()
    try:
        reader = journal.open_existing()
        if reader is None:
            return set()
        with closing(reader):
            return {m.mode for m in read_manifests(reader)}
    except NotAJournalError as error:
        raise ConfigError(f"key '{journal.config_key}': {error}") from None


def check_journal_mode(journal: JournalLocator, mode: JournalMode) -> None:
    """Refuse a ``mode`` node on a journal, or in a journal directory, of the other
    mode. Reads only: ``mark_journal_dir`` writes the marker once the start is
    admitted."""
    check_journal_dir(journal.path, mode)
    check_journal_runs(journal, mode)


def check_journal_dir(path: Path, mode: JournalMode) -> None:
    """Refuse a ``mode`` node in a journal directory marked with the other mode (local:
    reads the marker beside ``path`` only)."""
    other = "live" if mode == "paper" else "paper"
    marked = directory_mode(path)
    if marked is not None and marked != mode:
        raise ConfigError(
            f"key 'journal.path': {path.parent} holds a {marked} node's journal "
            f"({marker_path(path)} says {marked}); a {mode} node keeps its journal "
            f"in a directory of its own, never one a {other} node uses"
        )


def check_journal_runs(journal: JournalLocator, mode: JournalMode) -> None:
    """Refuse a ``mode`` node on a journal the other mode's runs wrote (reads the
    journal's run manifests: SQLite read only, PostgreSQL selects)."""
    other = "live" if mode == "paper" else "paper"
    if other in journal_modes(journal):
        raise ConfigError(
            f"key '{journal.config_key}': {journal.where} was written by a {other} node; "
            f"a {mode} node needs a journal of its own"
        )


def mark_journal_dir(journal: Path, mode: JournalMode) -> None:
    """Write the directory's marker if it has none (``check_journal_mode`` first)."""
    if directory_mode(journal) is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        write_private(marker_path(journal), f"{mode}\n".encode())


def check_backtest_journal(journal: Path) -> None:
    """A backtest (whose journal is a SQLite file) never journals into a live node's
    directory or journal."""
    if directory_mode(journal) == "live" or "live" in journal_modes(JournalLocator.sqlite(journal)):
        raise ConfigError(
            f"key 'journal.path': {journal} is a live node's journal (or in its "
            "directory); a backtest journals elsewhere"
        )

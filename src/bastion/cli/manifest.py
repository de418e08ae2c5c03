"""``bastion manifest show|diff [JOURNAL] [--config CONFIG | --vault VAULT]``: what a node
ran at each start, and what changed between two starts (read-only, from the journal's
``RunManifest`` events; an encrypted journal with its key from the vault; a PostgreSQL
journal with ``--config``, its password from the vault)."""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from pathlib import Path
from typing import Final

import msgspec

from bastion.cli.common import EXIT_ERROR, EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.cli.journal_keys import add_key_options, journal_locator_of
from bastion.errors import UsageError
from bastion.model.events import RunManifest

_EPILOG: Final = """\
A start is named by its epoch (the journal's run number); by default `show` prints
the latest start and `diff` compares the last two. An encrypted journal (a `bastion
init` desk's) is read with its key from the vault: --config CONFIG (the node's config;
JOURNAL may then be left out) or --vault VAULT (the key named journal/encryption).
A PostgreSQL journal ([journal] backend = "postgres") is read with --config only:
its URL, name, password and keys come from the node's config and vault.

examples:
  bastion manifest show --config mydesk/paper.toml
  bastion manifest show --config mydesk/paper.toml --epoch 3 --json
  bastion manifest diff --config mydesk/paper.toml     # last start vs the one before
  bastion manifest diff mydesk/journal.sqlite 2 5 --vault mydesk/vault.bastion
"""


def add_manifest_commands(commands: Commands, formatter: Formatter) -> None:
    manifest = commands.add_parser(
        "manifest",
        help="what a node ran at each start (version, file hashes, git commit) and diffs",
        description=wrap(
            "bastion manifest: every start of a node journals a run manifest: bastion's "
            "version, the SHA-256 of the config and of every strategy file, and the desk's "
            "git commit and whether its tree was dirty."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    manifest.set_defaults(handler=lambda _args: usage(manifest))
    sub = manifest.add_subparsers(dest="manifest_command", metavar="COMMAND", title="commands")
    show = sub.add_parser("show", help="print one start's manifest (default: the latest)")
    show.add_argument("journal", metavar="JOURNAL", nargs="?", help=_JOURNAL_HELP)
    add_key_options(show, path_dest="journal")
    show.add_argument("--epoch", type=int, metavar="N", help="the start with epoch N")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(handler=cmd_manifest_show)
    diff = sub.add_parser(
        "diff",
        help="what changed between two starts; exit 1 if anything did",
        description=wrap(
            "Compare two starts' manifests (default: the last two). Prints one line per "
            "difference; exit 0 when the same code and config ran, 1 otherwise."
        ),
    )
    diff.add_argument("journal", metavar="JOURNAL", nargs="?", help=_JOURNAL_HELP)
    add_key_options(diff, path_dest="journal")
    diff.add_argument("epochs", type=int, nargs="*", metavar="EPOCH", help="two epochs")
    diff.set_defaults(handler=cmd_manifest_diff)


_JOURNAL_HELP: Final = (
    "journal file (SQLite); default with --config: the config's journal (SQLite or PostgreSQL)"
)


def _manifests(args: argparse.Namespace) -> tuple[str, list[RunManifest]]:
    from bastion.journal import NotAJournalError
    from bastion.manifest import read_manifests

    journal = journal_locator_of(args, clock=wall_clock())
    try:
        with closing(journal.open()) as reader:
            found = read_manifests(reader)
    except NotAJournalError as error:
        raise UsageError(str(error)) from None
    if not found:
        raise UsageError(f"{journal.where}: no run manifest (no node started on this journal yet)")
    return journal.where, found


def _by_epoch(found: list[RunManifest], epoch: int, where: str) -> RunManifest:
    for manifest in reversed(found):
        if manifest.epoch == epoch:
            return manifest
    epochs = ", ".join(str(m.epoch) for m in found)
    raise UsageError(f"{where}: no start with epoch {epoch} (epochs: {epochs})")


def cmd_manifest_show(args: argparse.Namespace) -> int:
    """Print one start's manifest."""
    path, found = _manifests(args)
    manifest = found[-1] if args.epoch is None else _by_epoch(found, args.epoch, path)
    if args.json:
        print(json.dumps(msgspec.to_builtins(manifest), sort_keys=True))
        return EXIT_OK
    git = (
        "not a git repository"
        if manifest.git_commit is None
        else f"{manifest.git_commit}{' (dirty)' if manifest.git_dirty else ''}"
    )
    print(f"epoch:    {manifest.epoch} ({manifest.mode}, node {manifest.node_id})")
    print(f"started:  by {manifest.who} on {manifest.host}")
    print(f"bastion:  {manifest.version} (Python {manifest.python})")
    print(f"config:   {manifest.config_path or '(embedded defaults)'}")
    print(f"          sha256 {manifest.config_sha256}")
    print(f"git:      {git}")
    for name in manifest.untracked:
        print(f"          not tracked: {name}")
    for name, digest in sorted(manifest.files.items()):
        print(f"file:     {name}\n          sha256 {digest}")
    return EXIT_OK


def cmd_manifest_diff(args: argparse.Namespace) -> int:
    """Print what changed between two starts."""
    from bastion.manifest import diff_manifests

    # `diff --config CONFIG 2 5`: two epochs and no journal (unless a file is named "2")
    journal = args.journal
    if args.config and journal and journal.isdigit() and not Path(journal).exists():
        args.epochs, args.journal = [int(journal), *args.epochs], None
    path, found = _manifests(args)
    if len(args.epochs) == 2:
        old, new = (_by_epoch(found, e, path) for e in args.epochs)
    elif not args.epochs:
        if len(found) < 2:
            raise UsageError(f"{path}: only one start (epoch {found[0].epoch}): nothing to diff")
        old, new = found[-2], found[-1]
    else:
        raise UsageError("give two epochs, or none for the last two starts")
    changes = diff_manifests(old, new)
    print(f"epoch {old.epoch} -> {new.epoch}: {len(changes) or 'no'} change(s)")
    for line in changes:
        print(f"  {line}")
    return EXIT_ERROR if changes else EXIT_OK

"""``bastion journal verify|export|stats [PATH] [--config CONFIG | --vault VAULT]``:
inspect an event journal, read-only; an encrypted or keyed journal with the keys from
the vault (``bastion.cli.journal_keys``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from bastion.cli.common import EXIT_ERROR, EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.cli.journal_keys import KEY_OPTIONS_HINT, add_key_options, journal_locator_of
from bastion.errors import BastionError, UsageError

if TYPE_CHECKING:
    from bastion.journal import VerifyResult

T = TypeVar("T")

_JOURNAL_EPILOG: Final = """\
Read-only: the journal file is opened with SQLite's mode=ro, so a running node
may keep writing it. A missing file or a file that is not a journal exits 2.

An encrypted or keyed journal (a `bastion init` desk's) is read with its keys from
the vault: --config CONFIG takes the journal, the vault and the key references from
the node's config (PATH may then be left out); --vault VAULT takes the keys named
journal/encryption and journal/chain. The vault's passphrase comes from
BASTION_VAULT_KEY_FILE, systemd's credential bastion-vault, or a prompt.

examples:
  bastion journal verify --config mydesk/paper.toml
  bastion journal export --config mydesk/paper.toml --out events.jsonl
  bastion journal export --config mydesk/paper.toml --from-seq 1000 | jq .type
  bastion journal stats mydesk/journal.sqlite --vault mydesk/vault.bastion
  bastion journal verify backtest-journal.sqlite      # plaintext: no keys needed

A PostgreSQL journal ([journal] backend = "postgres") is read with --config: the
URL, journal name, password and keys all come from the node's config and vault
(the password is never given on the command line).
"""


def add_journal_commands(commands: Commands, formatter: Formatter) -> None:
    journal = commands.add_parser(
        "journal",
        help="inspect an event journal: verify its hash chain, export, stats",
        description=wrap(
            "bastion journal: inspect a node's SQLite event journal without changing it."
        ),
        epilog=_JOURNAL_EPILOG,
        formatter_class=formatter,
    )
    journal.set_defaults(handler=lambda _args: usage(journal))
    sub = journal.add_subparsers(dest="journal_command", metavar="COMMAND", title="commands")
    verify = sub.add_parser(
        "verify",
        help="check the whole hash chain; exit 1 naming the first broken record",
        description=wrap(
            "Check every record: gapless seq from 1, each prev_hash equal to the previous "
            "record's hash, each hash recomputed, each payload decodable. Exit 0 if intact; "
            "exit 1 naming the first broken record and what is wrong."
        ),
    )
    verify.add_argument("path", metavar="PATH", nargs="?", help=_PATH_HELP)
    add_key_options(verify, path_dest="path")
    verify.set_defaults(handler=cmd_journal_verify)
    export = sub.add_parser(
        "export",
        help="write events as JSON lines",
        description=wrap(
            'One JSON object per event: {"seq", "ts_ns", "type", "client_order_id", '
            '"event": {...}}, with exact decimals as strings.'
        ),
    )
    export.add_argument("path", metavar="PATH", nargs="?", help=_PATH_HELP)
    add_key_options(export, path_dest="path")
    export.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    export.add_argument(
        "--from-seq",
        metavar="N",
        type=_positive_int,
        default=1,
        help="start at seq N (default: 1)",
    )
    export.set_defaults(handler=cmd_journal_export)
    stats = sub.add_parser(
        "stats",
        help="event counts by type, runs, first/last time, file size, schema version",
        description=wrap("Print a summary of a journal."),
    )
    stats.add_argument("path", metavar="PATH", nargs="?", help=_PATH_HELP)
    add_key_options(stats, path_dest="path")
    stats.set_defaults(handler=cmd_journal_stats)


_PATH_HELP: Final = "journal file (SQLite); default with --config: the config's journal"


def _journal_call(fn: Callable[[], T]) -> T:
    """Run a read-only journal tool; a missing file, a non-journal or a database that
    holds no journals is a usage error (found on opening, before ``--out`` is created)."""
    from bastion.journal import NotAJournalError

    try:
        return fn()
    except NotAJournalError as e:
        raise UsageError(str(e)) from None


def _iso_ns(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns:09d}Z"


def cmd_journal_verify(args: argparse.Namespace) -> int:
    """Check a journal's whole hash chain; exit 1 naming the first broken record."""
    journal = journal_locator_of(args, clock=wall_clock())
    result = _journal_call(journal.verify)
    path = result.path
    if result.ok:
        seqs = f"seq {result.first_seq}..{result.last_seq}" if result.events else "empty"
        print(
            f"ok: {path}: {result.events:,} events ({seqs}), hash chain intact, "
            f"{result.snapshots} snapshot(s) intact"
        )
        print(f"chain: {_chain_summary(result)}")
        if result.last_hash is not None:
            print(f"last hash: {result.last_hash}")
        return EXIT_OK
    if result.broken_seq is None:
        print(f"broken: {path}: {result.problem}")
    else:
        tail = " (torn tail: the last record)" if result.torn_tail else ""
        print(f"broken: {path}: first bad record seq {result.broken_seq}{tail}: {result.problem}")
    print(f"records: {result.events:,} (seq {result.first_seq}..{result.last_seq})")
    print(f"chain: {_chain_summary(result)}")
    if result.keyed and journal.keys.chain is None:
        print(f"to check it: {KEY_OPTIONS_HINT}")
    return EXIT_ERROR


def _chain_summary(result: VerifyResult) -> str:
    if result.keyed:
        return f"keyed (HMAC-SHA256), {result.anchors} anchor(s) checked"
    return (
        "unkeyed (plain SHA-256): detects damage, not an edit by someone who re-chains "
        "the file; configure journal.chain_key"
    )


def cmd_journal_export(args: argparse.Namespace) -> int:
    """Write a journal's events as JSON lines, to --out or stdout."""
    journal = journal_locator_of(args, clock=wall_clock())
    with closing(_journal_call(journal.open)) as reader:
        if args.out is None:
            _journal_call(lambda: reader.export_jsonl(sys.stdout.buffer, from_seq=args.from_seq))
            sys.stdout.buffer.flush()
            return EXIT_OK
        out = Path(args.out)
        try:
            with out.open("wb") as f:
                n = _journal_call(lambda: reader.export_jsonl(f, from_seq=args.from_seq))
        except OSError as e:
            raise BastionError(f"cannot write {out}: {e.strerror or e}") from e
    print(f"exported {n:,} events to {out}")
    return EXIT_OK


def cmd_journal_stats(args: argparse.Namespace) -> int:
    """Print a journal's counts, runs, time extent, size and schema version."""
    journal = journal_locator_of(args, clock=wall_clock())
    with closing(_journal_call(journal.open)) as reader:
        stats = _journal_call(reader.stats)
    path = stats.path
    print(f"journal:        {path}")
    print(f"schema version: {stats.schema_version}")
    print(f"file size:      {stats.file_bytes:,} bytes")
    print(f"runs:           {stats.runs}")
    print(f"events:         {stats.events:,}")
    if stats.events:
        print(f"seq:            {stats.first_seq}..{stats.last_seq}")
    print(f"first event:    {_iso_ns(stats.first_ts_ns)}")
    print(f"last event:     {_iso_ns(stats.last_ts_ns)}")
    last = f" (newest at seq {stats.last_snapshot_seq})" if stats.snapshots else ""
    print(f"snapshots:      {stats.snapshots}{last}")
    if stats.torn_records:
        print(f"torn records:   {stats.torn_records} (set aside; see docs/journal.md)")
    if stats.by_type:
        print("by type:")
        width = max(len(name) for name in stats.by_type)
        for name, count in sorted(stats.by_type.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {name:<{width}}  {count:,}")
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value

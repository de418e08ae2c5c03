"""The ``bastion`` command line: parse arguments, load config, call one component, map errors.

Exit codes: 0 success; 2 usage or configuration error; 3 bad market data;
1 any other bastion error. Expected errors print ``error: <message>`` to stderr,
never a traceback. Logs go to stderr; reports go to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final, TypeVar

import msgspec
import structlog

from bastion import __version__
from bastion.cli.control import add_operator_commands
from bastion.cli.venue import add_venue_commands
from bastion.config import (
    BacktestConfig,
    InstrumentConfig,
    PaperConfig,
    default_paper_config,
    load_config,
    resolve_path,
    scaffold_dir,
)
from bastion.data.config import SyntheticFeedConfig
from bastion.errors import (
    BastionError,
    CommandRefused,
    ConfigError,
    DataError,
    OperationalError,
    StrategyError,
    TemporaryError,
    UsageError,
)
from bastion.logs import configure_logging

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_DATA: Final = 3
EXIT_INTERRUPTED: Final = 130

_EXIT_CODES: Final[tuple[tuple[type[BastionError], int], ...]] = (
    (ConfigError, EXIT_USAGE),  # the user fixes the input
    (UsageError, EXIT_USAGE),
    (DataError, EXIT_DATA),  # bad market data
    (TemporaryError, EXIT_ERROR),  # the venue was not reachable: try again later
    (OperationalError, EXIT_ERROR),  # the node had to halt
    (StrategyError, EXIT_ERROR),
    (CommandRefused, EXIT_ERROR),  # the node refused an operator command
)


def exit_code(error: BastionError) -> int:
    """The process exit code for an error that reached the command line (README, "Exit
    codes"): chosen by the error's handling group, 1 for any other bastion error."""
    for error_type, code in _EXIT_CODES:
        if isinstance(error, error_type):
            return code
    return EXIT_ERROR


SCAFFOLD_FILES: Final = (
    "paper.toml",
    "backtest.toml",
    "strategies/ema_cross.py",
    "venue-sim.toml",
    "paper-fix.toml",
)
SAMPLE_QUOTES_PATH: Final = "data/quotes.csv"
SAMPLE_QUOTES_N: Final = 20_000
SAMPLE_START_NS: Final = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
SAMPLE_INTERVAL_MS: Final = 100

log = structlog.get_logger("bastion.cli")
T = TypeVar("T")


# -- commands ------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a desk directory: configs, the example strategy and sample data."""
    target = Path(args.dir)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not args.force:
        raise UsageError(
            f"{target} exists and is not empty; choose a new directory or pass --force "
            "to overwrite the scaffold files in it"
        )
    source = scaffold_dir()
    missing = [rel for rel in SCAFFOLD_FILES if not (source / rel).is_file()]
    if missing:
        raise BastionError(f"the installed bastion package lacks scaffold files: {missing}")
    created = not target.exists()
    try:
        for rel in SCAFFOLD_FILES:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, dest)
        n = write_sample_quotes(target / SAMPLE_QUOTES_PATH)
    except BaseException as e:
        if created:  # leave nothing half-made behind, so a retry is not refused
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(e, OSError):
            raise BastionError(f"cannot write into {target}: {e}") from e
        raise

    shown = str(target)
    print(f"created {shown}/")
    print("  paper.toml               paper trading node config (bastion run)")
    print("  backtest.toml            backtest config (bastion backtest)")
    print("  strategies/ema_cross.py  example strategy: EMA(10)/EMA(50) crossover")
    print("  venue-sim.toml           FIX venue simulator config (bastion venue sim)")
    print("  paper-fix.toml           paper node trading with it over FIX 4.4")
    print(f"  {SAMPLE_QUOTES_PATH:<24} {n:,} synthetic quotes for XYZ.SIM, 100 ms apart")
    print()
    print("next:")
    print(f"  bastion backtest {shown}/backtest.toml   # replay the sample data, print a report")
    print(f"  bastion run {shown}/paper.toml           # paper trade live; Ctrl-C stops cleanly")
    return EXIT_OK


def write_sample_quotes(path: Path, n: int = SAMPLE_QUOTES_N) -> int:
    """Write ``n`` synthetic quotes for XYZ.SIM (the scaffold's instrument) as CSV."""
    from bastion.data.synthetic import SyntheticQuoteFeed

    instrument = InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01")).to_instrument()
    feed_config = SyntheticFeedConfig(
        instrument=instrument.id,
        seed=42,
        start_price=Decimal(100),
        interval_ms=SAMPLE_INTERVAL_MS,
    )
    feed = SyntheticQuoteFeed(instrument, feed_config, SAMPLE_START_NS)
    step_ns = SAMPLE_INTERVAL_MS * 1_000_000
    price, size = instrument.price, instrument.size
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("ts_ns,bid,ask,bid_size,ask_size\n")
        for i in range(n):
            q = feed.next_quote(SAMPLE_START_NS + i * step_ns)
            f.write(
                f"{q.ts_ns},{price(q.bid)},{price(q.ask)},{size(q.bid_size)},{size(q.ask_size)}\n"
            )
    return n


def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay recorded data through the strategies; print the report; write outputs."""
    config_path = Path(args.config)
    config = load_config(config_path, BacktestConfig)

    from bastion.backtest.engine import run_backtest
    from bastion.backtest.report import format_report, write_outputs

    _configure_logging(args, config.node.log_level, config.node.log_format)
    base_dir = config_path.resolve().parent
    progress = config.progress and not args.no_progress
    log.info("backtest.start", config=str(config_path), node=config.node.id)
    result = run_backtest(config, base_dir=base_dir, progress=progress)
    print(format_report(result), flush=True)
    out_dir = Path(args.out) if args.out else resolve_path(base_dir, config.output_dir)
    for written in write_outputs(result, out_dir):
        print(f"wrote {written}")
    return EXIT_OK


def _node_config(args: argparse.Namespace) -> tuple[PaperConfig, Path, str]:
    """The node config named on the command line (or the embedded defaults), logged."""
    if args.config is not None:
        config_path = Path(args.config)
        config = load_config(config_path, PaperConfig)
        base_dir = config_path.resolve().parent
        source = str(config_path)
    else:
        config, base_dir = default_paper_config()
        source = "embedded defaults"
    if getattr(args, "duration_s", None) is not None:
        config = msgspec.structs.replace(config, run_for_s=args.duration_s)
    _configure_logging(args, config.node.log_level, config.node.log_format)
    log.info(
        "node.config",
        config=source,
        node=config.node.id,
        journal=str(resolve_path(base_dir, config.journal.path)),
        run_for_s=config.run_for_s,
    )
    return config, base_dir, source


def cmd_run(args: argparse.Namespace) -> int:
    """Run a paper trading node until a signal (or ``--duration-s``)."""
    config, base_dir, source = _node_config(args)
    from bastion.node.runner import run_node

    return run_node(config, base_dir=base_dir, source=source)


def cmd_recover(args: argparse.Namespace) -> int:
    """Recover a node's state and reconcile it with the venue, without trading."""
    config, base_dir, source = _node_config(args)
    from bastion.node.runner import recover_node

    code, report = recover_node(config, base_dir=base_dir, source=source)
    sys.stdout.write(json.dumps(report, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    return code


# -- journal -------------------------------------------------------------------------


def _journal_call(fn: Callable[[], T]) -> T:
    """Run a read-only journal tool; a missing file or a non-journal is a usage error."""
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
    from bastion.journal import verify_journal

    path = Path(args.path)
    result = _journal_call(lambda: verify_journal(path))
    if result.ok:
        seqs = f"seq {result.first_seq}..{result.last_seq}" if result.events else "empty"
        print(
            f"ok: {path}: {result.events:,} events ({seqs}), hash chain intact, "
            f"{result.snapshots} snapshot(s) intact"
        )
        if result.last_hash is not None:
            print(f"last hash: {result.last_hash}")
        return EXIT_OK
    if result.broken_seq is None:
        print(f"broken: {path}: {result.problem}")
    else:
        tail = " (torn tail: the last record)" if result.torn_tail else ""
        print(f"broken: {path}: first bad record seq {result.broken_seq}{tail}: {result.problem}")
    print(f"records: {result.events:,} (seq {result.first_seq}..{result.last_seq})")
    return EXIT_ERROR


def cmd_journal_export(args: argparse.Namespace) -> int:
    """Write a journal's events as JSON lines, to --out or stdout."""
    from bastion.journal import export_jsonl

    path = Path(args.path)
    if args.out is None:
        _journal_call(lambda: export_jsonl(path, sys.stdout.buffer, from_seq=args.from_seq))
        sys.stdout.buffer.flush()
        return EXIT_OK
    _journal_call(lambda: verify_readable(path))
    out = Path(args.out)
    try:
        with out.open("wb") as f:
            n = _journal_call(lambda: export_jsonl(path, f, from_seq=args.from_seq))
    except OSError as e:
        raise BastionError(f"cannot write {out}: {e.strerror or e}") from e
    print(f"exported {n:,} events to {out}")
    return EXIT_OK


def verify_readable(path: Path) -> None:
    """Fail before creating an output file if ``path`` is not a journal."""
    from bastion.journal.reader import open_readonly

    with open_readonly(path):
        pass


def cmd_journal_stats(args: argparse.Namespace) -> int:
    """Print a journal's counts, runs, time extent, size and schema version."""
    from bastion.journal import journal_stats

    path = Path(args.path)
    stats = _journal_call(lambda: journal_stats(path))
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


# -- parser --------------------------------------------------------------------------

_MAIN_EPILOG: Final = """\
examples:
  bastion init mydesk                      # configs, example strategy, sample data
  bastion backtest mydesk/backtest.toml    # replay the sample data, print a report
  bastion run mydesk/paper.toml            # paper trading node; Ctrl-C stops it
  bastion run                              # paper node on the embedded defaults
  bastion kill mydesk/paper.toml --flatten # halt, cancel all, close positions
  bastion resume mydesk/paper.toml         # back to ACTIVE
  bastion journal verify mydesk/journal.sqlite   # check the journal's hash chain

exit codes: 0 ok, 1 error, 2 usage or config error, 3 bad market data.
docs: docs/cli.md and docs/configuration.md.
"""

_INIT_EPILOG: Final = """\
creates:
  DIR/paper.toml               config for `bastion run`
  DIR/backtest.toml            config for `bastion backtest`
  DIR/strategies/ema_cross.py  the example strategy (EMA crossover)
  DIR/data/quotes.csv          20,000 synthetic quotes (ts_ns,bid,ask,bid_size,ask_size)

examples:
  bastion init mydesk
  bastion init --force mydesk   # rewrite the scaffold files, keep everything else
"""

_BACKTEST_EPILOG: Final = """\
The report goes to stdout; fills.csv, equity.png and report.txt go to the output
directory (--out, else output_dir from the config, relative to the config file).

examples:
  bastion backtest mydesk/backtest.toml
  bastion backtest mydesk/backtest.toml --out /tmp/bt --no-progress
"""

_RUN_EPILOG: Final = """\
Without CONFIG the node runs on the embedded defaults: the example EMA crossover
strategy on a synthetic real-time feed against the simulated venue, journaling to
./bastion-journal.sqlite. SIGINT (Ctrl-C) or SIGTERM stops it cleanly: open
orders are canceled and the journal is flushed before it exits.

examples:
  bastion run
  bastion run mydesk/paper.toml
  bastion run mydesk/paper.toml --duration-s 60 --log-format json
"""


_JOURNAL_EPILOG: Final = """\
Read-only: the journal file is opened with SQLite's mode=ro, so a running node
may keep writing it. A missing file or a file that is not a journal exits 2.

examples:
  bastion journal verify mydesk/journal.sqlite
  bastion journal export mydesk/journal.sqlite --out events.jsonl
  bastion journal export mydesk/journal.sqlite --from-seq 1000 | jq .type
  bastion journal stats mydesk/journal.sqlite
"""


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=80)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``bastion`` argument parser with all subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="bastion",
        description=_wrap(
            "bastion: run automated trading strategies (backtest, paper, live) "
            "with pre-trade risk controls and a durable journal."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"bastion {__version__}")

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

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    init = commands.add_parser(
        "init",
        help="create a desk directory with configs, an example strategy and sample data",
        description=_wrap(
            "bastion init: create a desk directory with paper and backtest configs, "
            "the example strategy and 20,000 synthetic sample quotes."
        ),
        epilog=_INIT_EPILOG,
        formatter_class=formatter,
    )
    init.add_argument("dir", metavar="DIR", help="directory to create (must be new or empty)")
    init.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIR, overwriting the scaffold files",
    )
    init.set_defaults(handler=cmd_init)

    backtest = commands.add_parser(
        "backtest",
        help="replay recorded market data through the strategies and report",
        description=_wrap(
            "bastion backtest: replay recorded quotes or bars through the same strategy, "
            "risk, matching and portfolio code as the live node, on a simulated clock."
        ),
        epilog=_BACKTEST_EPILOG,
        formatter_class=formatter,
        parents=[logging_options],
    )
    backtest.add_argument("config", metavar="CONFIG", help="backtest config file (TOML)")
    backtest.add_argument(
        "--out", metavar="DIR", help="output directory (default: output_dir from the config)"
    )
    backtest.add_argument(
        "--no-progress", action="store_true", help="do not show the progress bar on stderr"
    )
    backtest.set_defaults(handler=cmd_backtest)

    run = commands.add_parser(
        "run",
        help="run a paper trading node (embedded defaults when no CONFIG)",
        description=_wrap(
            "bastion run: run a trading node live against the simulated venue "
            "(paper trading) until SIGINT/SIGTERM or --duration-s."
        ),
        epilog=_RUN_EPILOG,
        formatter_class=formatter,
        parents=[logging_options],
    )
    run.add_argument(
        "config", metavar="CONFIG", nargs="?", help="paper config file (TOML); optional"
    )
    run.add_argument(
        "--duration-s",
        metavar="SECONDS",
        type=_positive_float,
        help="stop by itself after SECONDS (overrides run_for_s in the config)",
    )
    run.set_defaults(handler=cmd_run)
    recover = commands.add_parser(
        "recover",
        help="recover a node's state and reconcile it with its venue, without trading",
        description=_wrap(
            "bastion recover: what a node does on start, and nothing more: load the last "
            "snapshot, replay the journal tail, reconcile with the venue (open orders, "
            "order status, missed executions, positions), store a snapshot and exit. No "
            "strategy runs and no order is sent or canceled. Prints one JSON report on "
            "stdout; exit code 0 when reconciled, 1 on a mismatch (the node's trading "
            "state is then set per recovery.on_mismatch) or an unreachable venue."
        ),
        formatter_class=formatter,
        parents=[logging_options],
    )
    recover.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    recover.set_defaults(handler=cmd_recover)
    add_operator_commands(commands, formatter)
    _add_journal_commands(commands, formatter)
    add_venue_commands(commands, formatter, logging_options)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _add_journal_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    journal = commands.add_parser(
        "journal",
        help="inspect an event journal: verify its hash chain, export, stats",
        description=_wrap(
            "bastion journal: inspect a node's SQLite event journal without changing it."
        ),
        epilog=_JOURNAL_EPILOG,
        formatter_class=formatter,
    )
    journal.set_defaults(handler=lambda _args: _usage(journal))
    sub = journal.add_subparsers(dest="journal_command", metavar="COMMAND", title="commands")
    verify = sub.add_parser(
        "verify",
        help="check the whole hash chain; exit 1 naming the first broken record",
        description=_wrap(
            "Check every record: gapless seq from 1, each prev_hash equal to the previous "
            "record's hash, each hash recomputed, each payload decodable. Exit 0 if intact; "
            "exit 1 naming the first broken record and what is wrong."
        ),
    )
    verify.add_argument("path", metavar="PATH", help="journal file (SQLite)")
    verify.set_defaults(handler=cmd_journal_verify)
    export = sub.add_parser(
        "export",
        help="write events as JSON lines",
        description=_wrap(
            'One JSON object per event: {"seq", "ts_ns", "type", "client_order_id", '
            '"event": {...}}, with exact decimals as strings.'
        ),
    )
    export.add_argument("path", metavar="PATH", help="journal file (SQLite)")
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
        description=_wrap("Print a summary of a journal."),
    )
    stats.add_argument("path", metavar="PATH", help="journal file (SQLite)")
    stats.set_defaults(handler=cmd_journal_stats)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _configure_logging(args: argparse.Namespace, level: str, fmt: str) -> None:
    configure_logging(args.log_level or level, args.log_format or fmt)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bastion`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    configure_logging(
        getattr(args, "log_level", None) or "info", getattr(args, "log_format", None) or "console"
    )
    try:
        return handler(args)
    except BastionError as e:
        return _fail(str(e), exit_code(e))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)

"""``bastion backtest CONFIG``: replay recorded data through the strategies and report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

import structlog

from bastion.cli.common import EXIT_OK, Commands, Formatter, configure_command_logging, wrap
from bastion.config import BacktestConfig, load_config, resolve_path

log = structlog.get_logger("bastion.cli")

_BACKTEST_EPILOG: Final = """\
The report goes to stdout; fills.csv, equity.png and report.txt go to the output
directory (--out, else output_dir from the config, relative to the config file).

examples:
  bastion backtest mydesk/backtest.toml
  bastion backtest mydesk/backtest.toml --out /tmp/bt --no-progress
"""


def add_backtest_commands(
    commands: Commands, formatter: Formatter, logging_options: argparse.ArgumentParser
) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="replay recorded market data through the strategies and report",
        description=wrap(
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


def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay recorded data through the strategies; print the report; write outputs."""
    config_path = Path(args.config)
    config = load_config(config_path, BacktestConfig)

    from bastion.backtest.engine import run_backtest
    from bastion.backtest.report import format_report, write_outputs

    base_dir = config_path.resolve().parent
    configure_command_logging(
        args, config.node.log_level, config.node.log_format, config.node.log_file_at(base_dir)
    )
    progress = config.progress and not args.no_progress
    log.info("backtest.start", config=str(config_path), node=config.node.id)
    result = run_backtest(config, base_dir=base_dir, progress=progress)
    print(format_report(result), flush=True)
    out_dir = Path(args.out) if args.out else resolve_path(base_dir, config.output_dir)
    for written in write_outputs(result, out_dir):
        print(f"wrote {written}")
    return EXIT_OK

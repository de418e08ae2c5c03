"""``bastion feed CONFIG``: run a feed handler (a source, the validators, NATS)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Final

import msgspec
import structlog

from bastion.cli.common import (
    Commands,
    Formatter,
    configure_command_logging,
    positive_seconds,
    wall_clock,
    wrap,
)
from bastion.config import load_config
from bastion.errors import ConfigError

log = structlog.get_logger("bastion.cli")

_EPILOG: Final = """\
examples:
  bastion secrets set nats/md --vault mydesk/vault.bastion   # the NATS password
  bastion feed mydesk/feed-a.toml      # the primary handler ([handler] id = "md-a")
  bastion feed mydesk/feed-b.toml      # its backup, on another machine ("md-b")
  bastion run mydesk/paper-nats.toml   # a node with a kind = "nats" feed per handler
"""


def add_feed_commands(
    commands: Commands, formatter: Formatter, logging_options: argparse.ArgumentParser
) -> None:
    feed = commands.add_parser(
        "feed",
        help="run a feed handler: a source, validated, published on NATS",
        description=wrap(
            "bastion feed: read one market data source (synthetic, a recorded file in "
            "real time, a FIX venue's market data), validate every quote, stamp it with "
            "a sequence number and this handler's id, and publish it on NATS for the "
            'nodes\' kind = "nats" feeds. Runs until SIGINT/SIGTERM or --duration-s.'
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
        parents=[logging_options],
    )
    feed.add_argument("config", metavar="CONFIG", help="feed handler config file (TOML)")
    feed.add_argument(
        "--duration-s", type=positive_seconds, metavar="SECONDS", help="stop after SECONDS"
    )
    feed.set_defaults(handler=cmd_feed)


def cmd_feed(args: argparse.Namespace) -> int:
    from bastion.feeds.nats.handler import FeedHandlerConfig, run_handler
    from bastion.vault.config import load_secrets

    config_path = Path(args.config)
    config = load_config(config_path, FeedHandlerConfig)
    if args.duration_s is not None:
        config = msgspec.structs.replace(config, run_for_s=args.duration_s)
    configure_command_logging(args, config.handler.log_level, config.handler.log_format)
    base_dir = config_path.resolve().parent
    try:
        secrets = load_secrets(
            config.secret_refs(),
            vault=config.vault,
            base_dir=base_dir,
            scope="paper",  # a handler holds no trading credentials
            clock=wall_clock(),
        )
    except ConfigError as error:
        raise type(error)(f"{config_path}: {error}") from None
    log.info("feed_handler.config", config=str(config_path), handler=config.handler.id)
    return asyncio.run(run_handler(config, base_dir=base_dir, secrets=secrets))

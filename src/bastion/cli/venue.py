"""``bastion venue sim CONFIG``: run the venue simulator process."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import structlog

from bastion.cli.common import configure_command_logging, positive_seconds, usage, wall_clock
from bastion.config import load_config
from bastion.errors import ConfigError

log = structlog.get_logger("bastion.cli")

_EPILOG = """\
example:
  bastion secrets set fix/trader --vault mydesk/vault.bastion   # the account's password
  bastion venue sim mydesk/venue-sim.toml
  bastion run mydesk/paper-fix.toml    # a paper node trading with it over FIX
"""


def add_venue_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
    logging_options: argparse.ArgumentParser,
) -> None:
    venue = commands.add_parser(
        "venue",
        help="venue tools: run the FIX venue simulator",
        description="bastion venue: venue tools.",
        formatter_class=formatter,
    )
    venue.set_defaults(handler=lambda _args: usage(venue))
    sub = venue.add_subparsers(dest="venue_command", metavar="COMMAND", title="commands")
    sim = sub.add_parser(
        "sim",
        help="run the venue simulator: a FIX 4.4 acceptor in front of the matching engine",
        description=(
            "Run a standalone venue: FIX 4.4 acceptor, bastion's matching engine, "
            "market data published over FIX, and a persistent ledger of orders, fills "
            "and positions per account. Runs until SIGINT/SIGTERM or --duration-s."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
        parents=[logging_options],
    )
    sim.add_argument("config", metavar="CONFIG", help="venue simulator config file (TOML)")
    sim.add_argument(
        "--port", type=_port, help="listen on this TCP port (overrides port in the config)"
    )
    sim.add_argument(
        "--duration-s", type=positive_seconds, metavar="SECONDS", help="stop after SECONDS"
    )
    sim.set_defaults(handler=cmd_venue_sim)


def cmd_venue_sim(args: argparse.Namespace) -> int:
    from bastion.vault.config import load_secrets
    from bastion.venue_server.config import VenueSimConfig
    from bastion.venue_server.server import run_venue_sim

    config_path = Path(args.config)
    config = load_config(config_path, VenueSimConfig)
    if args.port is not None:
        config = msgspec.structs.replace(config, port=args.port)
    if args.duration_s is not None:
        config = msgspec.structs.replace(config, run_for_s=args.duration_s)
    configure_command_logging(args, "info", "console")
    base_dir = config_path.resolve().parent
    try:
        secrets = load_secrets(
            config.secret_refs(),
            vault=config.vault,
            base_dir=base_dir,
            scope="paper",  # a simulator's accounts are paper accounts
            clock=wall_clock(),
        )
    except ConfigError as error:
        raise type(error)(f"{config_path}: {error}") from None
    log.info("venue_sim.config", config=str(config_path))
    return run_venue_sim(config, base_dir=base_dir, secrets=secrets)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port must be 0..65535: {text!r}")
    return value

"""``bastion run [CONFIG]`` and ``bastion recover CONFIG``: a trading node, and its
recovery without trading."""

from __future__ import annotations

import argparse
import json
import sys
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
from bastion.config import PaperConfig, default_paper_config, load_config, resolve_path
from bastion.errors import ConfigError
from bastion.live.arming import ARM_KEY_NAME
from bastion.security.config import USERS_KEY
from bastion.vault.config import load_secrets, refuse_live_vault
from bastion.vault.refs import MemorySecrets, SecretSource

log = structlog.get_logger("bastion.cli")

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


def add_node_commands(
    commands: Commands, formatter: Formatter, logging_options: argparse.ArgumentParser
) -> None:
    run = commands.add_parser(
        "run",
        help="run a trading node, paper or live (embedded defaults when no CONFIG)",
        description=wrap(
            "bastion run: run a trading node (paper, or live once armed with `bastion "
            "arm`) until SIGINT/SIGTERM or --duration-s."
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
        type=positive_seconds,
        help="stop by itself after SECONDS (overrides run_for_s in the config)",
    )
    run.set_defaults(handler=cmd_run)
    recover = commands.add_parser(
        "recover",
        help="recover a node's state and reconcile it with its venue, without trading",
        description=wrap(
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run a paper trading node until a signal (or ``--duration-s``)."""
    config, base_dir, source, secrets = _node_config(args)
    from bastion.node.runner import run_node

    return run_node(config, base_dir=base_dir, source=source, secrets=secrets)


def cmd_recover(args: argparse.Namespace) -> int:
    """Recover a node's state and reconcile it with the venue, without trading."""
    config, base_dir, source, secrets = _node_config(args)
    from bastion.node.runner import recover_node

    code, report = recover_node(config, base_dir=base_dir, source=source, secrets=secrets)
    sys.stdout.write(json.dumps(report, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    return code


def _machine_keys(config: PaperConfig) -> tuple[str, ...]:
    """The vault's keys the node itself uses: the arming's (live), the operators' store's
    (``[access]``)."""
    keys: list[str] = []
    if config.node.mode == "live":
        keys.append(ARM_KEY_NAME)
    if config.access is not None:
        keys.append(USERS_KEY)
    return tuple(keys)


def _node_config(
    args: argparse.Namespace,
) -> tuple[PaperConfig, Path, str, SecretSource]:
    """The node config named on the command line (or the embedded defaults), logged,
    and the secrets it refers to, read from its vault (none opened if it needs none)."""
    if args.config is not None:
        config_path = Path(args.config)
        config = load_config(config_path, PaperConfig)
        base_dir = config_path.resolve().parent
        live = config.node.mode == "live"
        try:  # a node about to run needs them now
            if not live:
                refuse_live_vault(config.vault, base_dir)
            secrets = load_secrets(
                config.secret_refs(),
                vault=config.vault,
                base_dir=base_dir,
                scope="live" if live else "paper",
                clock=wall_clock(),
                # a live node opens its vault even without secret references: the
                # arming is checked with its key; the operators' store is read with
                # users/key
                machine_keys=_machine_keys(config),
            )
            config.check_secrets(secrets)
        except ConfigError as error:
            raise type(error)(f"{config_path}: {error}") from None
        source = str(config_path)
    else:
        config, base_dir = default_paper_config()
        secrets = MemorySecrets({})
        source = "embedded defaults"
    if getattr(args, "duration_s", None) is not None:
        config = msgspec.structs.replace(config, run_for_s=args.duration_s)
    configure_command_logging(
        args, config.node.log_level, config.node.log_format, config.node.log_file_at(base_dir)
    )
    log.info(
        "node.config",
        config=source,
        node=config.node.id,
        journal=str(resolve_path(base_dir, config.journal.path)),
        run_for_s=config.run_for_s,
    )
    return config, base_dir, source, secrets

"""``bastion incident bundle CONFIG``: one tar.gz for a post-mortem (``bastion.incident``):
the running node's status, the last journal events, a metrics snapshot, the log's tail,
the run manifest and the config with its secrets masked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final

from bastion.cli.common import EXIT_OK, Commands, Formatter, usage, wall_clock, wrap
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.incident import (
    DEFAULT_EVENTS,
    DEFAULT_LOG_LINES,
    BundleSource,
    NodeNotRunning,
    check_destination,
    check_log,
    default_name,
    make_bundle,
    register_env_secrets,
)
from bastion.journal.factory import journal_locator
from bastion.journal.keys import PLAINTEXT, journal_keys
from bastion.journal.locator import JournalLocator
from bastion.node.control import NoNodeListening, operator_name, request, socket_path
from bastion.vault.config import load_secrets, refuse_live_vault

STATUS_TIMEOUT_S: Final = 10.0

_EPILOG: Final = """\
The bundle (a tar.gz, mode 0600) holds:
  status.json           the running node's status over its control socket
                        (or, when no node runs on the config's journal, that it does not)
  journal-events.jsonl  the last N journal events (--events, default 1000)
  journal-stats.json    the journal's counts, seq range and size
  metrics.txt           GET /metrics of the node's [monitoring] listen address
  readyz.json           GET /readyz (why the node is not ready, if it is not)
  log-tail.txt          the last lines of --log FILE, else of the config's [node]
                        log_file and its rotated backups (FILE.1, FILE.2, ...)
  manifest.json         the latest run manifest and what changed since the start before
  config.toml           the config, secret references kept, secret literals masked
  bundle.json           the index: who, when, where, and each part's state

The journal is read with its keys from the vault, as `bastion journal export
--config` does; the vault's passphrase comes from BASTION_VAULT_KEY_FILE, systemd's
credential bastion-vault, or a prompt. A PostgreSQL journal ([journal] backend =
"postgres") is read with selects only, its password from the vault. Every member is
scanned for the values of the vault (and a password the environment hands down),
which are masked. A part that cannot be had is recorded as unavailable; an unreadable
config or journal is an error, and then nothing is written.

exit codes: 0 written, 1 error (a journal database that does not answer), 2 bad
arguments, config or journal.

examples:
  bastion incident bundle mydesk/paper.toml
  bastion incident bundle mydesk/paper.toml --log /var/log/bastion/node.log --events 5000
  bastion incident bundle mydesk/paper-fix.toml --out /tmp/inc-0412.tar.gz
"""


def add_incident_commands(commands: Commands, formatter: Formatter) -> None:
    incident = commands.add_parser(
        "incident",
        help="incident response: bundle what a post-mortem needs into one file",
        description=wrap(
            "bastion incident: tools for an incident. `bundle` packs the node's status, "
            "recent journal events, metrics, log tail, run manifest and masked config."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    incident.set_defaults(handler=lambda _args: usage(incident))
    sub = incident.add_subparsers(dest="incident_command", metavar="COMMAND", title="commands")
    bundle = sub.add_parser(
        "bundle",
        help="write a tar.gz for a post-mortem",
        description=wrap(
            "Write a tar.gz (mode 0600) with the running node's status, the last journal "
            "events, a metrics snapshot, the log tail, the run manifest and the config with "
            "its secrets masked."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    bundle.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
    bundle.add_argument(
        "--out",
        metavar="FILE",
        help="the archive to write (default: incident-NODE-TIME.tar.gz here); never overwritten",
    )
    bundle.add_argument(
        "--events",
        metavar="N",
        type=_positive_int,
        default=DEFAULT_EVENTS,
        help=f"how many of the journal's last events (default: {DEFAULT_EVENTS})",
    )
    bundle.add_argument(
        "--log",
        metavar="FILE",
        help="the node's log file, for its tail (default: the config's [node] log_file)",
    )
    bundle.add_argument(
        "--log-lines",
        metavar="N",
        type=_positive_int,
        default=DEFAULT_LOG_LINES,
        help=f"how many of the log's last lines (default: {DEFAULT_LOG_LINES})",
    )
    bundle.set_defaults(handler=cmd_incident_bundle)


def cmd_incident_bundle(args: argparse.Namespace) -> int:
    """Write the incident bundle of the node that runs (or ran) with CONFIG."""
    clock = wall_clock()
    now_ns = clock.timestamp_ns()
    config_path = Path(args.config)
    config = load_config(config_path, PaperConfig)
    text = config_path.read_text(encoding="utf-8")
    base_dir = config_path.resolve().parent
    out = Path(args.out) if args.out else Path.cwd() / default_name(config.node.id, now_ns)
    log = Path(args.log) if args.log else None
    check_destination(out)  # before a passphrase is asked for
    if log is not None:
        check_log(log)
    journal = _journal(config, config_path, base_dir)
    source = BundleSource(
        config_path=config_path,
        config_text=text,
        node_id=config.node.id,
        journal=journal,
        control_socket=socket_path(journal.path),
        monitoring=config.monitoring,
        log=log,
        config_log=None if log is not None else _config_log(config, base_dir),
    )
    register_env_secrets(text)
    report = make_bundle(
        source,
        out,
        now_ns=now_ns,
        who=operator_name(),
        events=args.events,
        log_lines=args.log_lines,
        node_status=_node_status,
    )
    print(f"wrote {report.path} ({report.size:,} bytes, mode 0600)")
    width = max(len(name) for name in report.parts)
    for name, (available, detail) in report.parts.items():
        state = "ok" if available else "unavailable"
        print(f"  {name:<{width}}  {state}: {detail}")
    if report.secrets_masked:
        masked = ", ".join(f"{name} {n}" for name, n in sorted(report.secrets_masked.items()))
        print(f"secrets masked: {masked}")
    return EXIT_OK


def _journal(config: PaperConfig, config_path: Path, base_dir: Path) -> JournalLocator:
    """The config's journal (SQLite or PostgreSQL) with its keys and password, and every
    secret the config refers to loaded (so the scan of the bundle knows them); no vault
    is opened for a config that refers to none."""
    refs = config.secret_refs()
    secrets = None
    live = config.node.mode == "live"
    try:
        if refs:
            if not live:
                refuse_live_vault(config.vault, base_dir)
            secrets = load_secrets(
                refs,
                vault=config.vault,
                base_dir=base_dir,
                scope="live" if live else "paper",
                clock=wall_clock(),
            )
        return journal_locator(
            config.journal,
            base_dir=base_dir,
            keys=PLAINTEXT if secrets is None else journal_keys(config.journal, secrets),
            secrets=secrets,
            name=config.journal_name(),
        )
    except ConfigError as error:
        raise type(error)(f"{config_path}: {error}") from None


def _config_log(config: PaperConfig, base_dir: Path) -> Path | None:
    log_file = config.node.log_file_at(base_dir)
    return None if log_file is None else log_file.path


def _node_status(path: Path) -> dict[str, Any]:
    try:
        return request(path, {"cmd": "status"}, timeout_s=STATUS_TIMEOUT_S)
    except NoNodeListening as error:
        raise NodeNotRunning(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value

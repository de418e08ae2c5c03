"""``bastion backup keygen|create|ship|list|verify|prune|restore``: backups of a desk
(``bastion.backup``; docs/dr.md).

A command that fails logs ``backup_failed`` (an error line the alert rules and log
shipping match), raises the ``backup-failed`` alert through the config's routes when it
has a config (a restore: ``--config``, or ``--from`` a config), and exits non-zero; a
systemd timer that runs it then marks the unit failed too (deploy/systemd)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from bastion.cli.backup_keys import cmd_keygen
from bastion.cli.common import (
    EXIT_OK,
    Commands,
    Formatter,
    positive_seconds,
    usage,
    wall_clock,
    wrap,
)
from bastion.cli.vault import vault_options
from bastion.errors import BastionError, IntegrityError, UsageError

if TYPE_CHECKING:
    from bastion.backup.config import BackupConfig
    from bastion.backup.destinations import Destination
    from bastion.backup.manifest import Manifest, Record
    from bastion.backup.restore import PgTarget
    from bastion.errors import BackupError
    from bastion.journal.keys import JournalKeys

log = structlog.get_logger("bastion.backup")

DEFAULT_SHIP_INTERVAL_S: Final = 5.0

_EPILOG: Final = """\
Backups are encrypted with age to the public keys in [backup] recipients; only the
private key (an identity file made by `bastion backup keygen`, kept offline) reads
them. --identity takes that file's path, never the key itself.

With [backup] signing_key, create and ship sign every record (Ed25519, the key in the
vault: `bastion backup keygen --signing`); with [backup] signing_public_keys (or
restore --signer), a record not signed by one of them is refused.

A failed create, ship, prune, verify or restore logs backup_failed, raises the
backup-failed alert through the config's routes (restore: with --config, or --from a
config) and exits 1 (2 for a wrong key or config).

examples:
  bastion backup keygen --out /media/offline/desk-backup.key
  bastion backup keygen --signing --config mydesk/paper.toml   # into the desk's vault
  bastion backup create mydesk/paper.toml
  bastion backup ship mydesk/paper.toml --every 5
  bastion backup list mydesk/paper.toml
  bastion backup verify mydesk/paper.toml                       # integrity, no key
  bastion backup verify mydesk/paper.toml latest --identity KEY # contents and journal
  bastion backup prune mydesk/paper.toml
  bastion backup restore latest --from /mnt/offsite/bastion/node-1 --to /srv/desk --identity KEY
  bastion backup restore latest --from /mnt/offsite/bastion/node-1 --to /srv/desk \\
      --identity KEY --to-url postgresql://bastion@dr-db:5432/desk   # a PostgreSQL journal
  bastion backup restore latest --from s3://desk-backups/node-1 --endpoint https://s3.example.net \\
      --to /srv/desk --identity KEY --config dr/paper.toml   # credentials: AWS_ACCESS_KEY_ID/...
"""


def add_backup_commands(commands: Commands, formatter: Formatter) -> None:
    backup = commands.add_parser(
        "backup",
        help="backups of a desk: create, ship the journal, verify, prune, restore",
        description=wrap(
            "bastion backup: encrypted, online backups of a desk's journal, stores, "
            "vault, configs and strategy code, and their restore."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    backup.set_defaults(handler=lambda _args: usage(backup))
    sub = backup.add_subparsers(dest="backup_command", metavar="COMMAND", title="commands")

    keygen = sub.add_parser(
        "keygen",
        help="make an age identity (--out), or a record signing key (--signing); print "
        "its public key",
        parents=[vault_options()],
    )
    keygen.add_argument("--out", metavar="FILE", help="the age identity file to write (0600)")
    keygen.add_argument(
        "--signing",
        action="store_true",
        help="an Ed25519 key that signs the backups' records, written into the vault "
        "(--vault or --config; never shown)",
    )
    keygen.add_argument(
        "--name",
        metavar="NAME",
        help="--signing: the vault entry (default: the config's [backup] signing_key, "
        "else backup/signing)",
    )
    keygen.set_defaults(handler=cmd_keygen)  # bastion.cli.backup_keys

    create = sub.add_parser("create", help="one full backup now, then prune")
    create.add_argument("config", metavar="CONFIG")
    create.add_argument("--no-prune", action="store_true", help="keep every older backup")
    create.set_defaults(handler=_alerting("create", cmd_create))

    ship = sub.add_parser("ship", help="ship the journal's new events as segments")
    ship.add_argument("config", metavar="CONFIG")
    ship.add_argument(
        "--every",
        type=positive_seconds,
        metavar="SECONDS",
        help="ship every SECONDS until stopped (default: backup.ship_interval_s)",
    )
    ship.add_argument("--once", action="store_true", help="ship once and exit")
    ship.add_argument(
        "--report-rounds",
        action="store_true",
        help="print one JSON line per round and raise no alert (the node's shipping "
        "runs it so, and counts the failures itself)",
    )
    ship.set_defaults(handler=_alerting("ship", cmd_ship))

    listing = sub.add_parser("list", help="the backups at the destination")
    listing.add_argument("config", metavar="CONFIG")
    listing.set_defaults(handler=cmd_list)

    verify = sub.add_parser(
        "verify", help="check backups: integrity without the key, contents with it"
    )
    verify.add_argument("config", metavar="CONFIG")
    verify.add_argument(
        "backup_id", metavar="BACKUP", nargs="?", help="an id, or latest (default: all)"
    )
    verify.add_argument("--identity", metavar="FILE", help="the age identity file")
    verify.set_defaults(handler=_alerting("verify", cmd_verify))

    prune = sub.add_parser("prune", help="delete backups the retention policy does not keep")
    prune.add_argument("config", metavar="CONFIG")
    prune.set_defaults(handler=_alerting("prune", cmd_prune))

    restore = sub.add_parser(
        "restore",
        help="rebuild a desk in a new directory from a backup and the segments after it",
    )
    restore.add_argument("backup_id", metavar="BACKUP", help="an id, or latest")
    restore.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DEST",
        help="the node's backups: a directory, s3://BUCKET/PREFIX/NODE, or the node's config",
    )
    restore.add_argument("--to", required=True, metavar="DIR", help="a new or empty directory")
    restore.add_argument("--identity", required=True, metavar="FILE", help="the age identity file")
    restore.add_argument("--endpoint", metavar="URL", help="the S3 endpoint (with s3://)")
    restore.add_argument("--region", default="us-east-1", help="the S3 region (with s3://)")
    restore.add_argument(
        "--allow-http", action="store_true", help="plain HTTP to an S3 endpoint on loopback"
    )
    restore.add_argument(
        "--no-segments", action="store_true", help="the full backup only, no shipped journal"
    )
    restore.add_argument(
        "--config",
        metavar="CONFIG",
        help="the desk's config (a copy at the DR site): a failed restore raises "
        "backup-failed through its alert routes, and its [backup] signing_public_keys "
        "are required (default: --from, when it is a config)",
    )
    restore.add_argument(
        "--signer",
        action="append",
        default=[],
        metavar="KEY",
        help="a trusted public signing key (ed25519:...; repeat for more): every record "
        "must be signed by one of these or the config's signing_public_keys",
    )
    restore.add_argument(
        "--to-url",
        metavar="URL",
        help="a PostgreSQL journal's backup: the database to write it into (a libpq URL "
        "without a password: PGPASSWORD, else the restored vault's journal.password)",
    )
    restore.set_defaults(handler=_alerting("restore", cmd_restore, config_of=restore_config))


def _config_arg(args: argparse.Namespace) -> Path | None:
    return Path(args.config)


def _alerting(
    command: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    config_of: Callable[[argparse.Namespace], Path | None] = _config_arg,
) -> Callable[[argparse.Namespace], int]:
    """Log ``backup_failed`` for an error (the alert rules match it) and raise the
    ``backup-failed`` alert through the routes of the config ``config_of`` names (none:
    logged only), then let it exit."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except BastionError as error:
            log.error("backup_failed", command=command, error=str(error))
            if getattr(args, "report_rounds", False):
                raise  # the node counts the child's failures and alerts itself
            config = config_of(args)
            if config is None:
                log.warning(
                    "backup_alert_not_sent",
                    command=command,
                    reason="no config to take alert routes from (restore --config CONFIG)",
                )
            else:
                from bastion.monitor.alerts.oneshot import raise_backup_failed

                raise_backup_failed(config, command, clock=wall_clock(), error=str(error))
            raise

    return run


def restore_config(args: argparse.Namespace) -> Path | None:
    """The desk's config a restore has: ``--config``, else ``--from`` when it is one."""
    if args.config is not None:
        return Path(args.config)
    source = Path(args.source)
    return source if source.is_file() else None


def restore_node(config: Path | None) -> str | None:
    """The node whose backups a restore takes: the config's (None without one)."""
    from bastion.config import PaperConfig, load_config

    return None if config is None else load_config(config, PaperConfig).node.id


def _low_priority() -> None:
    """A backup competes with the node for CPU and disk as little as the OS allows."""
    import psutil

    os.nice(10)
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    except (AttributeError, OSError, psutil.Error):
        log.debug("backup_ionice_unavailable")


def _desk_and_destination(config: str) -> tuple[Any, Destination]:
    from bastion.backup.desk import open_desk
    from bastion.backup.destinations import open_destination

    desk = open_desk(Path(config), clock=wall_clock())
    destination = open_destination(
        desk.backup, base_dir=desk.base_dir, node_id=desk.node_id, secrets=desk.secrets
    )
    return desk, destination


def _destination_only(config: str) -> tuple[BackupConfig, Destination, str]:
    """The config's ``[backup]``, destination and node id, opening the vault only for
    the store's credentials."""
    from bastion.backup.desk import load_backup_config
    from bastion.backup.destinations import open_destination
    from bastion.vault.config import load_secrets

    path = Path(config)
    node, backup = load_backup_config(path)
    base_dir = path.resolve().parent
    secrets = None
    if backup.secret_refs():
        secrets = load_secrets(
            backup.secret_refs(),
            vault=node.vault,
            base_dir=base_dir,
            scope="live" if node.node.mode == "live" else "paper",
            clock=wall_clock(),
        )
    destination = open_destination(backup, base_dir=base_dir, node_id=node.node.id, secrets=secrets)
    return backup, destination, node.node.id


def cmd_create(args: argparse.Namespace) -> int:
    from bastion.backup.create import create_backup
    from bastion.backup.retention import prune

    _low_priority()
    desk, destination = _desk_and_destination(args.config)
    created = create_backup(desk, destination, clock=wall_clock())
    record = created.record
    print(
        f"backup {record.id}: {len(created.manifest.pieces)} pieces, journal through seq "
        f"{record.last_seq}, {record.blob_size:,} bytes encrypted, {created.seconds:.2f} s, "
        f"at {destination.where}"
    )
    if not args.no_prune:
        plan = prune(
            destination,
            desk.backup.retention,
            signers=desk.backup.signers(),
            node_id=desk.node_id,
        )
        print(f"retention: {len(plan.keep)} kept, {len(plan.delete)} deleted")
    return EXIT_OK


def cmd_ship(args: argparse.Namespace) -> int:
    from bastion.backup.shipping import ship_forever

    _low_priority()
    desk, destination = _desk_and_destination(args.config)
    interval = args.every or desk.backup.ship_interval_s or DEFAULT_SHIP_INTERVAL_S
    alerts = None
    if not args.once and not args.report_rounds:  # one engine for the process's rounds
        from bastion.monitor.alerts.oneshot import command_alerts

        alerts = command_alerts(Path(args.config), clock=wall_clock())
    failures = 0

    def on_round(record: Record | None, error: BackupError | None, last_seq: int) -> None:
        nonlocal failures
        failures += error is not None
        if args.report_rounds:
            round_ = {
                "ok": error is None,
                "segment": None if record is None else record.id,
                "last_seq": last_seq,
                "error": None if error is None else str(error),
            }
            print(json.dumps(round_), flush=True)
        if alerts is not None:
            alerts.observe("bastion_backup_failures_total", failures, command="ship")

    if alerts is not None:
        alerts.observe("bastion_backup_failures_total", 0, command="ship")
    try:
        shipped = ship_forever(
            desk,
            destination,
            interval_s=interval,
            clock=wall_clock(),
            rounds=1 if args.once else None,
            on_round=on_round,
        )
    finally:
        if alerts is not None:
            alerts.close()
    if not args.report_rounds:
        print(f"shipped {shipped} segment(s) to {destination.where}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """The backups by name; with signing keys configured, each record is read and
    checked too, and one refused is shown and makes the command fail."""
    from bastion.backup.catalog import entries, fetch_record

    backup, destination, node_id = _destination_only(args.config)
    signers = backup.signers()
    refused = []
    for entry in entries(destination):
        line = f"{entry.id}  {entry.kind:<7}  seq {entry.first_seq}..{entry.last_seq}"
        if signers.required:
            try:
                fetch_record(destination, entry.id, signers, node_id=node_id)
            except BastionError as error:
                refused.append(entry.id)
                line += f"  REFUSED: {error}"
            else:
                line += "  signed"
        print(line)
    if refused:
        raise IntegrityError(
            f"backup destination {destination.where}: {len(refused)} record(s) refused "
            f"(first: {refused[0]}); nothing there can be trusted until they are explained"
        )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from bastion.backup.encryption import load_identities
    from bastion.backup.verify import verify

    backup, destination, node_id = _destination_only(args.config)
    signers = backup.signers()
    identities = load_identities(Path(args.identity)) if args.identity else None
    checked = verify(
        destination,
        args.backup_id,
        identities=identities,
        signers=signers,
        keys_for=desk_journal_keys,
        node_id=node_id,
    )
    for item in checked:
        what = "contents, pieces and journal" if item.contents else "integrity (no key)"
        signed = ", signed by a trusted key" if signers.required else ""
        print(f"ok: {item.id} ({item.kind}, seq ..{item.last_seq}): {what}{signed}")
    if not checked:
        print(f"no backups at {destination.where}")
    elif not signers.required:
        unsigned = sum(not item.signed for item in checked)
        print(
            f"unsigned: {unsigned} of {len(checked)} record(s) carry no signature and no "
            "signature is checked ([backup] signing_public_keys is not set): anyone who "
            "can write to the store can forge a backup that decrypts (docs/dr.md)"
        )
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from bastion.backup.retention import prune

    backup, destination, node_id = _destination_only(args.config)
    plan = prune(destination, backup.retention, signers=backup.signers(), node_id=node_id)
    print(f"retention: {len(plan.keep)} kept, {len(plan.delete)} deleted")
    for entry in plan.delete:
        print(f"deleted {entry.id}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from bastion.backup.encryption import load_identities
    from bastion.backup.restore import restore
    from bastion.cli.backup_keys import restore_signers

    config = restore_config(args)
    if config is not None and not config.is_file():
        raise UsageError(f"--config {config}: no such config")
    signers = restore_signers(config, args.signer)
    node_id = restore_node(config)
    if not signers.required:
        log.warning(
            "backup_signatures_unchecked",
            reason="no signing public key (--signer, or [backup] signing_public_keys "
            "in --config): the records' signatures are not checked",
        )
    identities = load_identities(Path(args.identity))
    destination = source_destination(args)
    restored = restore(
        destination,
        args.backup_id,
        Path(args.to),
        identities=identities,
        signers=signers,
        keys_for=desk_journal_keys,
        with_segments=not args.no_segments,
        store_keys_for=desk_store_keys,
        to_pg=_pg_target(args.to_url),
        node_id=node_id,
    )
    print(
        json.dumps(
            {
                "restored": str(restored.target),
                **({"journal": restored.journal_where} if restored.journal_where else {}),
                "backup": restored.backup_id,
                "segments": len(restored.segments),
                "fix_sessions": restored.fix_sessions,
                "last_seq": restored.last_seq,
                "head_hash": restored.head_hash,
                "config": str(restored.config),
                "seconds": round(restored.seconds, 3),
            }
        )
    )
    return EXIT_OK


def _pg_target(url: str | None) -> PgTarget | None:
    """``--to-url``: checked to hold no password (it would be on a command line)."""
    from bastion.backup.restore import PgTarget
    from bastion.journal.config import check_url

    if url is None:
        return None
    try:
        check_url(url)
    except BastionError as error:
        raise UsageError(str(error).replace("key 'journal.url'", "--to-url")) from None
    return PgTarget(url=url, password_for=restore_password)


def restore_password(config: Path) -> str | None:
    """The restored database's password: ``PGPASSWORD``, else the restored desk's vault
    (``journal.password``), else none (libpq's ``~/.pgpass``)."""
    from bastion.config import PaperConfig, load_config
    from bastion.journal.factory import journal_password
    from bastion.vault.config import load_secrets

    if os.environ.get("PGPASSWORD"):
        return os.environ["PGPASSWORD"]
    node = load_config(config, PaperConfig) if config.is_file() else None
    if node is None or node.journal.password is None:
        return None
    refs = [r for r in node.journal.secret_refs() if r[0] == "journal.password"]
    secrets = load_secrets(
        refs,
        vault=node.vault,
        base_dir=config.parent,
        scope="live" if node.node.mode == "live" else "paper",
        clock=wall_clock(),
    )
    return journal_password(node.journal, secrets)


def source_destination(args: argparse.Namespace) -> Destination:
    """``--from``: a directory, ``s3://BUCKET/PREFIX``, or a node config (its [backup])."""
    from bastion.backup.config import S3DestinationConfig
    from bastion.backup.destinations import DirDestination, S3Destination

    source: str = args.source
    if source.startswith("s3://"):
        bucket, _, prefix = source[len("s3://") :].partition("/")
        config = S3DestinationConfig(
            bucket=bucket,
            endpoint=args.endpoint,
            region=args.region,
            allow_http=args.allow_http,
        )
        return S3Destination(
            config,
            node_prefix=prefix.strip("/"),
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        )
    path = Path(source)
    if path.is_file():
        return _destination_only(source)[1]
    if not path.is_dir():
        raise UsageError(f"--from {source}: no such directory or config")
    return DirDestination(path)


def desk_journal_keys(config: Path, manifest: Manifest) -> JournalKeys:
    """The restored journal's keys, from the restored desk's config and vault (opened
    only when the journal is encrypted or keyed)."""
    from bastion.config import PaperConfig, load_config
    from bastion.journal.keys import PLAINTEXT, journal_keys
    from bastion.vault.config import load_secrets

    del manifest
    node = load_config(config, PaperConfig) if config.is_file() else None
    if node is None or not node.journal.secret_refs():
        return PLAINTEXT
    refs = [r for r in node.journal.secret_refs() if r[0] != "journal.password"]
    if not refs:
        return PLAINTEXT
    secrets = load_secrets(
        refs,
        vault=node.vault,
        base_dir=config.parent,
        scope="live" if node.node.mode == "live" else "paper",
        clock=wall_clock(),
    )
    return journal_keys(node.journal, secrets)


def desk_store_keys(config: Path) -> dict[str, bytes | None]:
    """The restored FIX session stores' keys by their path in the backup (``desk/REL``),
    from the restored config and vault (opened only when a store is encrypted)."""
    from bastion.config import PaperConfig, load_config, resolve_path
    from bastion.storage.keys import resolve_key
    from bastion.vault.config import load_secrets
    from bastion.venues.fix.config import FixVenueConfig

    if not config.is_file():
        return {}
    node = load_config(config, PaperConfig)
    unpacked = config.parent.parent  # the config is at desk/NAME in the backup
    venues = [v for v in node.venue_configs() if isinstance(v, FixVenueConfig)]
    refs = [
        r
        for n, v in enumerate(venues)
        for r in v.secret_refs(f"venues[{n}]")
        if r[0].endswith("store_encryption_key")
    ]
    secrets = None
    if refs:
        secrets = load_secrets(
            refs,
            vault=node.vault,
            base_dir=config.parent,
            scope="live" if node.node.mode == "live" else "paper",
            clock=wall_clock(),
        )
    keys: dict[str, bytes | None] = {}
    for n, venue in enumerate(venues):
        store = resolve_path(config.parent, venue.store_path).resolve()
        try:
            name = store.relative_to(unpacked.resolve()).as_posix()
        except ValueError:
            continue
        keys[name] = resolve_key(
            venue.store_encryption_key, f"venues[{n}].store_encryption_key", secrets
        )
    return keys

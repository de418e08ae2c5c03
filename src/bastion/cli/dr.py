"""``bastion dr drill``: the disaster-recovery drill on a scratch location, measured
(``bastion.backup.drill``; docs/dr.md).

Exit 0: the drill passed (recovered within the RTO target, and reconciled with the
venue through ``[dr.venue_sessions]``, or its positions from ``[dr.venue_positions]``,
when given); 1: it failed (logged as ``dr_drill_failed``; a timer that runs it marks
its unit failed)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
import structlog

from bastion.cli.common import (
    EXIT_OK,
    Commands,
    Formatter,
    positive_seconds,
    usage,
    wall_clock,
    wrap,
)
from bastion.errors import BastionError, UsageError

if TYPE_CHECKING:
    from bastion.backup.config import DrConfig
    from bastion.backup.drill import DrillReport, SourceJournal
    from bastion.backup.pg_scratch import ScratchServer
    from bastion.config import PaperConfig
    from bastion.model.events import DrDrillCompleted

log = structlog.get_logger("bastion.backup")

EXIT_DRILL_FAILED: Final = 1

_EPILOG: Final = """\
The drill restores the latest backup (and the journal shipped after it) into
SCRATCH/desk and starts the restored node recover-only, logged on to each FIX venue
through the read-only session [dr.venue_sessions.NAME] names: its orders, fills and
positions are reconciled with the venue's. A venue without such a session: give
[dr.venue_positions] instead (positions from a statement). It never writes the source
desk's files nor uses its venue session.

Every record restored must be signed by one of the config's [backup]
signing_public_keys when it names any (docs/dr.md, "Signed records").

A desk journaling to PostgreSQL: the journal is restored into a database the drill
creates on [dr] scratch_url's server (password: PGPASSWORD, else the vault's
[dr] scratch_password) and drops afterwards unless --keep.

examples:
  bastion dr drill mydesk/paper.toml --identity /media/offline/desk-backup.key \\
      --scratch /srv/drill-2026-12-07 --report drill.json
"""


def add_dr_commands(commands: Commands, formatter: Formatter) -> None:
    dr = commands.add_parser(
        "dr",
        help="disaster recovery: the measured drill",
        description=wrap("bastion dr: disaster-recovery drills (RTO, RPO, reconciliation)."),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    dr.set_defaults(handler=lambda _args: usage(dr))
    sub = dr.add_subparsers(dest="dr_command", metavar="COMMAND", title="commands")
    drill = sub.add_parser("drill", help="restore, recover and reconcile on a scratch location")
    drill.add_argument("config", metavar="CONFIG", help="the node's config (a copy will do)")
    drill.add_argument(
        "--from",
        dest="source",
        metavar="DEST",
        help="the node's backups (default: the config's [backup] destination)",
    )
    drill.add_argument("--identity", required=True, metavar="FILE", help="the age identity file")
    drill.add_argument("--scratch", required=True, metavar="DIR", help="a new or empty directory")
    drill.add_argument(
        "--rto-target-s",
        type=positive_seconds,
        metavar="SECONDS",
        help="fail a drill slower than this (default: dr.rto_target_s, 60)",
    )
    drill.add_argument("--report", metavar="FILE", help="also write the report as JSON here")
    drill.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch database a PostgreSQL journal was restored into",
    )
    drill.add_argument("--endpoint", metavar="URL", help="the S3 endpoint (with s3://)")
    drill.add_argument("--region", default="us-east-1", help="the S3 region (with s3://)")
    drill.add_argument(
        "--allow-http", action="store_true", help="plain HTTP to an S3 endpoint on loopback"
    )
    drill.set_defaults(handler=cmd_drill)


def cmd_drill(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        return _drill(args)
    except BastionError as error:
        log.error("dr_drill_failed", error=str(error))
        config_path = Path(args.config)
        if config_path.is_file():  # the drill could not even restore: journal and alert it
            from bastion.backup.config import DrConfig
            from bastion.model.events import DrDrillCompleted

            failed = DrDrillCompleted(
                ts_ns=0,
                ok=False,
                backup_id="",
                rto_s=round(time.monotonic() - started, 4),
                rto_target_s=args.rto_target_s or DrConfig().rto_target_s,
                rpo_events=None,
                rpo_s=None,
                reconciled=None,
                mismatches=[_printable(f"the drill failed: {error}")],
                report=args.report or "",
            )
            _record_or_alert(config_path, failed)
            _journal_failed(config_path, failed)
        raise


def _drill(args: argparse.Namespace) -> int:
    from bastion.backup.config import DrConfig
    from bastion.backup.drill import run_drill
    from bastion.backup.encryption import load_identities
    from bastion.backup.signing import UNCHECKED
    from bastion.cli.backup import (
        desk_journal_keys,
        desk_store_keys,
        source_destination,
    )
    from bastion.config import PaperConfig, load_config

    config_path = Path(args.config)
    if not config_path.is_file():
        raise UsageError(f"{config_path}: no such config")
    config = load_config(config_path, PaperConfig)
    identities = load_identities(Path(args.identity))
    if args.source is None:
        args.source = str(config_path)
    destination = source_destination(args)
    dr = config.dr or DrConfig()
    signers = config.backup.signers() if config.backup is not None else UNCHECKED
    if not signers.required:
        log.warning(
            "backup_signatures_unchecked",
            reason="no [backup] signing_public_keys: the records' signatures are not checked",
        )
    report = run_drill(
        destination,
        identities=identities,
        signers=signers,
        scratch=Path(args.scratch),
        dr=dr,
        clock=wall_clock(),
        source=_source_journal(config_path),
        keys_for=desk_journal_keys,
        store_keys_for=desk_store_keys,
        positions_base=config_path.resolve().parent,
        rto_target_s=args.rto_target_s,
        scratch_server=_scratch_server(config_path, config, dr),
        keep=args.keep,
        node_id=config.node.id,
    )
    event = drill_event(report, args.report or "")
    report.journaled = _record_or_alert(config_path, event)
    report.drill_journal = _journal_locally(config_path, dr, report.node_id, event)
    if args.report:
        Path(args.report).write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    print(report.text(), end="")
    if report.journaled:
        print("  journaled:      on the running node (DrDrillCompleted)")
    else:
        print("  journaled:      not on the node (it is not running here)")
    if report.drill_journal is not None:
        print(f"  drill journal:  {report.drill_journal}")
    return EXIT_OK if report.ok else EXIT_DRILL_FAILED


def drill_event(report: DrillReport, report_path: str) -> DrDrillCompleted:
    from bastion.model.events import DrDrillCompleted

    return DrDrillCompleted(
        ts_ns=0,
        ok=report.ok,
        backup_id=report.backup_id,
        rto_s=report.rto_s,
        rto_target_s=report.rto_target_s,
        rpo_events=report.rpo_events,
        rpo_s=report.rpo_s,
        reconciled=report.reconciled,
        mismatches=[_printable(m) for m in report.mismatches[:100]],
        report=str(Path(report_path).resolve()) if report_path else "",
    )


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:256]


def _record_or_alert(config_path: Path, event: DrDrillCompleted) -> bool:
    """Journal the drill's result on the node running with ``config_path`` (its alert
    rules then see it); True if it did. Not running (or refusing): False, and a failed
    drill's alert is sent from here through the config's routes."""
    from bastion.cli.control import control_socket
    from bastion.monitor.alerts.oneshot import raise_for_event
    from bastion.node.control import request

    fields = msgspec.structs.asdict(event)
    del fields["ts_ns"]
    try:
        response = request(control_socket(str(config_path)), {"cmd": "record_drill", **fields})
    except (BastionError, OSError) as error:
        log.info("dr_drill_not_journaled", reason=str(error))
        response = {"ok": False}
    if response.get("ok") is True:
        return True
    if response.get("error"):
        log.warning("dr_drill_not_journaled", reason=response["error"])
    if not event.ok:
        clock = wall_clock()
        raise_for_event(
            config_path, msgspec.structs.replace(event, ts_ns=clock.timestamp_ns()), clock=clock
        )
    return False


def _journal_locally(
    config_path: Path, dr: DrConfig, node_id: str, event: DrDrillCompleted
) -> str | None:
    """Append the drill's result to the drills' journal on this host (``[dr]
    journal_path``); where it went (``PATH#SEQ``), or None if it could not be written
    (logged: the report and the alert still stand)."""
    from bastion.backup.drill_log import drill_journal_path, journal_drill

    path = drill_journal_path(config_path, dr.journal_path)
    stamped = msgspec.structs.replace(event, ts_ns=wall_clock().timestamp_ns())
    try:
        seq = journal_drill(path, node_id, stamped)
    except (BastionError, OSError) as error:
        log.error("dr_drill_not_journaled", journal=str(path), error=str(error))
        return None
    log.info("dr_drill_journaled", journal=str(path), seq=seq, ok=event.ok)
    return f"{path}#{seq}"


def _journal_failed(config_path: Path, event: DrDrillCompleted) -> None:
    """A drill that could not restore: journaled on this host too, when its config reads."""
    from bastion.backup.config import DrConfig
    from bastion.config import PaperConfig, load_config

    try:
        config = load_config(config_path, PaperConfig)
    except BastionError as error:
        log.error("dr_drill_not_journaled", config=str(config_path), error=str(error))
        return
    _journal_locally(config_path, config.dr or DrConfig(), config.node.id, event)


def _source_journal(config_path: Path) -> SourceJournal | None:
    """The source desk's journal (and what opens it), read only, when this host can
    read it: a SQLite file and its key, or a PostgreSQL journal's URL, name, password."""
    from bastion.backup.desk import open_desk

    try:
        desk = open_desk(config_path, clock=wall_clock(), sign=False)
    except (BastionError, OSError) as error:
        log.info("dr_drill_source_not_reachable", config=str(config_path), error=str(error))
        return None
    if desk.pg is not None:
        return desk.pg
    return (desk.journal, desk.journal_key) if desk.journal.is_file() else None


def _scratch_server(config_path: Path, config: PaperConfig, dr: DrConfig) -> ScratchServer | None:
    """Where a PostgreSQL desk's drill restores its journal (``[dr] scratch_url``), with
    its password: ``PGPASSWORD``, else the vault's ``[dr] scratch_password``, else none
    (libpq's ``~/.pgpass``). Never on the command line."""
    from bastion.backup.pg_scratch import ScratchServer
    from bastion.vault.config import load_secrets
    from bastion.vault.refs import secret_name

    if config.journal.backend != "postgres":
        return None
    if dr.scratch_url is None:
        raise UsageError(
            f"{config_path}: the journal is in PostgreSQL; the drill restores it into a "
            "database it creates on [dr] scratch_url's server (a libpq URL without a "
            "password; docs/dr.md)"
        )
    password = os.environ.get("PGPASSWORD") or None
    if password is None and dr.scratch_password is not None:
        name = secret_name(dr.scratch_password, "dr.scratch_password")
        secrets = load_secrets(
            [("dr.scratch_password", name)],
            vault=config.vault,
            base_dir=config_path.resolve().parent,
            scope="live" if config.node.mode == "live" else "paper",
            clock=wall_clock(),
        )
        password = secrets.get(name).reveal()
    return ScratchServer(url=dr.scratch_url, password=password)

"""``bastion dr drill``: the whole disaster-recovery exercise on a scratch location,
measured.

1. **restore**: fetch the latest full backup and the segments after it from the
   destination, check, decrypt, unpack, apply, verify the journal's chain (everything
   ``bastion.backup.restore`` does), into ``SCRATCH/desk``;
2. **recover and reconcile**, with ``[dr.venue_sessions]``: start the restored node
   recover-only, as ``bastion recover`` does, logged on to each FIX venue through a
   read-only session of its own (``bastion.backup.drill_node``): its state recovered
   from the restored journal (snapshot + replay), then its orders, fills and positions
   reconciled with the venue's;
   or, for a venue that offers no such session, ``[dr.venue_positions]``: recover the
   state in a kernel that connects to nothing, and compare its positions with the
   venue's from a positions file (a broker's statement) or the venue simulator's
   ledger, read only.

Never with the desk's own session: a second logon with its CompIDs would take the live
node's session over (or be refused, or fence it), and a drill must never disturb the
desk it tests.

A PostgreSQL journal's backup is restored into a database the drill creates on
``[dr] scratch_url``'s server (``pg_scratch``) and drops afterwards (unless kept); the
recovery is the same code, on a journal opened there. The RTO counts creating that
database and loading the rows.

The RTO is the time from the drill's start to a recovered, reconciled node (ready to
trade); the RPO, when the source desk's journal is readable (read only: a SQLite file
opened ``mode=ro``, a PostgreSQL journal through ``PostgresJournalReader``): the events
it holds after the restored last seq, and the seconds between its last event and the
restored last event. Nothing of the source desk is written.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec
import structlog

from bastion.backup.config import DrConfig, VenuePositionsConfig
from bastion.backup.destinations import Destination
from bastion.backup.drill_node import offline_config, recover_against_venues
from bastion.backup.pg_journal import PgJournalSource
from bastion.backup.pg_scratch import ScratchDatabase, ScratchServer
from bastion.backup.restore import (
    KeysFor,
    PgTarget,
    Restored,
    StoreKeysFor,
    no_store_keys,
    plaintext_keys,
    restore,
)
from bastion.backup.signing import Signers
from bastion.clock import Clock
from bastion.errors import BackupError, BastionError
from bastion.journal.keys import JournalKeys
from bastion.storage.connect import DB_ERRORS, connect

log = structlog.get_logger("bastion.backup")

_SOURCE_ERRORS: Final[tuple[type[Exception], ...]] = (*DB_ERRORS, BastionError, OSError)

SourceJournal = tuple[Path, bytes | None] | PgJournalSource
"""The source desk's journal, read only, when reachable: a SQLite file and its
encryption key, or a PostgreSQL journal (its URL, name and password)."""


class DrillReport(msgspec.Struct, kw_only=True):
    """One drill's measured result (``ok``: reconciled and within the RTO target)."""

    node_id: str
    started_ns: int
    backup_id: str
    segments: int
    restored_last_seq: int
    phases_s: dict[str, float]
    rto_s: float
    rto_target_s: float
    rto_ok: bool
    rpo_events: int | None
    rpo_s: float | None
    reconciled: bool | None
    mismatches: list[str]
    node_positions: dict[str, str]
    venue_positions: dict[str, str] | None
    reconciled_by: str | None = None
    """How: ``venue sessions (NAMES)`` (logged on, orders, fills and positions),
    ``positions file`` or ``venue simulator ledger`` (positions only); None: not checked."""
    reconciliation: dict[str, Any] | None = None
    """With venue sessions: the recover-only node's reconciliation report (orders
    checked, adopted, resolved, positions compared, mismatches)."""
    rpo_target_s: float | None = None
    rpo_ok: bool | None = None
    """The measured RPO within ``[dr] rpo_target_s`` (None: not measured). Reported, not
    part of ``ok``: it depends on when the drill ran against the shipping interval."""
    scratch: str
    ok: bool
    journaled: bool | None = None
    """Recorded on the running source node as ``DrDrillCompleted`` (None: not tried)."""
    drill_journal: str | None = None
    """Where the drills' own journal on this host recorded it (``PATH#SEQ``; None: not)."""
    scratch_journal: str | None = None
    """A PostgreSQL journal: the scratch database and name it was restored into."""
    scratch_kept: bool = False
    """That database was kept (``--keep``); otherwise it was dropped after the drill."""

    def text(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        rpo = (
            "unknown (source journal not readable)"
            if self.rpo_events is None
            else f"{self.rpo_events} events, {self.rpo_s:.3f} s"
            + (
                ""
                if self.rpo_ok is None
                else f" ({'within' if self.rpo_ok else 'OVER'} target {self.rpo_target_s:g} s)"
            )
        )
        reconciled = {
            None: "not checked (no [dr.venue_sessions] nor [dr.venue_positions])",
            True: "agreed",
        }.get(self.reconciled, "DISAGREED: " + "; ".join(self.mismatches))
        if self.reconciled is not None:
            reconciled += f" ({self.reconciled_by}"
            if self.reconciliation is not None:
                r = self.reconciliation
                reconciled += (
                    f": {r.get('orders_checked', 0)} orders checked, "
                    f"{r.get('adopted', 0)} adopted, {r.get('resolved', 0)} resolved, "
                    f"positions {'compared' if r.get('positions_compared') else 'not compared'}"
                )
            reconciled += ")"
        phases = ", ".join(f"{k} {v:.3f} s" for k, v in self.phases_s.items())
        return (
            f"DR drill {verdict} for node {self.node_id}\n"
            f"  backup:         {self.backup_id} + {self.segments} segment(s), "
            f"journal through seq {self.restored_last_seq}\n"
            f"  RTO:            {self.rto_s:.3f} s (target {self.rto_target_s:g} s)\n"
            f"  phases:         {phases}\n"
            f"  RPO:            {rpo}\n"
            f"  reconciliation: {reconciled}\n"
            + (
                f"  scratch:        {self.scratch_journal}"
                f"{' (kept)' if self.scratch_kept else ' (dropped)'}\n"
                if self.scratch_journal
                else ""
            )
        )


def run_drill(
    destination: Destination,
    *,
    identities: list[Any],
    signers: Signers,
    scratch: Path,
    dr: DrConfig,
    clock: Clock,
    source: SourceJournal | None = None,
    keys_for: KeysFor = plaintext_keys,
    store_keys_for: StoreKeysFor = no_store_keys,
    positions_base: Path | None = None,
    rto_target_s: float | None = None,
    scratch_server: ScratchServer | None = None,
    keep: bool = False,
    node_id: str | None = None,
) -> DrillReport:
    """Restore the latest backup into ``scratch/desk``, recover, reconcile; measured.
    ``positions_base``: the directory ``[dr.venue_positions] path`` is relative to.
    ``scratch_server``: where a PostgreSQL journal is restored (a database made for
    this drill, dropped after it unless ``keep``). ``signers``: the public keys every
    record restored must be signed by (none: not checked); ``node_id``: the node whose
    backups these must be (None: the newest full backup's, whichever)."""
    started = time.monotonic()
    started_ns = clock.timestamp_ns()
    phases: dict[str, float] = {}
    database: ScratchDatabase | None = None
    try:
        to_pg = None
        if scratch_server is not None:
            made = database = scratch_server.create(started_ns)
            phases["scratch_db"] = time.monotonic() - started
            to_pg = PgTarget(url=made.url, password_for=lambda _config: made.password)
        restored = restore(
            destination,
            "latest",
            scratch / "desk",
            identities=identities,
            signers=signers,
            keys_for=keys_for,
            store_keys_for=store_keys_for,
            to_pg=to_pg,
            node_id=node_id,
        )
        phases.update(restored.phases_s)
        keys = keys_for(restored.config, _manifest_of(restored.target))
        found = _recover_and_reconcile(
            restored.config,
            keys,
            dr,
            clock=clock,
            scratch=database if restored.journal_where else None,
            positions_base=positions_base or restored.config.parent,
            phases=phases,
        )
        rto_s = time.monotonic() - started
        rpo_events, rpo_s = rpo(source, restored, keys)
    finally:
        if database is not None and not keep:
            database.drop()
    target = rto_target_s if rto_target_s is not None else dr.rto_target_s
    reconciled = None if found.reconciled_by is None else not found.mismatches
    venue = found.venue
    report = DrillReport(
        node_id=found.node_id,
        started_ns=started_ns,
        backup_id=restored.backup_id,
        segments=len(restored.segments),
        restored_last_seq=restored.last_seq,
        phases_s={k: round(v, 4) for k, v in phases.items()},
        rto_s=round(rto_s, 4),
        rto_target_s=target,
        rto_ok=rto_s <= target,
        rpo_events=rpo_events,
        rpo_s=None if rpo_s is None else round(rpo_s, 4),
        reconciled=reconciled,
        mismatches=found.mismatches,
        node_positions={k: str(v) for k, v in sorted(found.positions.items())},
        venue_positions=None if venue is None else {k: str(v) for k, v in sorted(venue.items())},
        reconciled_by=found.reconciled_by,
        reconciliation=found.reconciliation,
        rpo_target_s=dr.rpo_target_s,
        rpo_ok=None if rpo_s is None else rpo_s <= dr.rpo_target_s,
        scratch=str(scratch),
        ok=rto_s <= target and reconciled is not False,
        scratch_journal=restored.journal_where,
        scratch_kept=keep and restored.journal_where is not None,
    )
    log.info(
        "dr_drill_completed" if report.ok else "dr_drill_failed",
        node=found.node_id,
        rto_s=report.rto_s,
        rto_target_s=target,
        rpo_events=rpo_events,
        rpo_s=report.rpo_s,
        reconciled=reconciled,
        mismatches=found.mismatches,
    )
    return report


class _Found(NamedTuple):
    """What recovering and reconciling the restored node found."""

    node_id: str
    positions: dict[str, Decimal]
    mismatches: list[str]
    reconciled_by: str | None
    venue: dict[str, Decimal] | None = None
    reconciliation: dict[str, Any] | None = None


def _recover_and_reconcile(
    config: Path,
    keys: JournalKeys,
    dr: DrConfig,
    *,
    clock: Clock,
    scratch: ScratchDatabase | None,
    positions_base: Path,
    phases: dict[str, float],
) -> _Found:
    """The restored node recovered and reconciled: recover-only against the venues
    through their read-only sessions (``[dr.venue_sessions]``), or recovered offline and
    its positions compared with ``[dr.venue_positions]`` (or neither: not reconciled).
    Each step's seconds go into ``phases``."""
    mark = time.monotonic()
    if dr.venue_sessions:
        recovery = recover_against_venues(
            config, keys, dr.venue_sessions, clock=clock, scratch=scratch
        )
        phases["recover_and_reconcile"] = time.monotonic() - mark
        return _Found(
            node_id=recovery.node_id,
            positions=recovery.positions,
            mismatches=recovery.mismatches,
            reconciled_by=f"venue sessions ({', '.join(sorted(dr.venue_sessions))})",
            reconciliation=recovery.reconciliation,
        )
    node_id, positions = recover_positions(config, keys, scratch=scratch)
    phases["recover"] = time.monotonic() - mark
    mark = time.monotonic()
    if dr.venue_positions is None:
        phases["reconcile"] = time.monotonic() - mark
        return _Found(node_id=node_id, positions=positions, mismatches=[], reconciled_by=None)
    venue = venue_positions(dr.venue_positions, positions_base)
    mismatches = compare_positions(positions, venue)
    phases["reconcile"] = time.monotonic() - mark
    kind = dr.venue_positions.kind
    return _Found(
        node_id=node_id,
        positions=positions,
        mismatches=mismatches,
        reconciled_by="positions file" if kind == "positions_file" else "venue simulator ledger",
        venue=venue,
    )


def _manifest_of(target: Path) -> Any:
    from bastion.backup.manifest import decode_manifest
    from bastion.backup.restore import RESTORE_MANIFEST

    return decode_manifest((target / RESTORE_MANIFEST).read_bytes())


def recover_positions(
    config_path: Path, keys: JournalKeys, *, scratch: ScratchDatabase | None = None
) -> tuple[str, dict[str, Decimal]]:
    """The restored node's positions, recovered from its journal (snapshot + replay) in
    a kernel that connects to nothing: what ``bastion recover`` starts from. A
    PostgreSQL journal is opened in the ``scratch`` database it was restored into, never
    at the config's ``[journal] url`` (the source); every local file the kernel opens is
    the scratch desk's (``drill_node.offline_config``)."""
    from bastion.clock import LiveClock
    from bastion.config import PaperConfig, load_config
    from bastion.journal.factory import open_journal
    from bastion.node.kernel import Kernel
    from bastion.recovery.replay import recover_state

    base_dir = config_path.parent
    config = offline_config(load_config(config_path, PaperConfig), desk=base_dir, scratch=scratch)
    journal = open_journal(
        config.journal,
        base_dir=base_dir,
        keys=keys,
        secrets=None,
        name=config.node.id,
        password=None if scratch is None else scratch.password,
    )
    try:
        kernel = Kernel(config=config, base_dir=base_dir, clock=LiveClock(), epoch=0)
        recovered = recover_state(kernel, journal)
        positions = {
            iid: kernel.instruments[iid].size(raw)
            for iid, raw in recovered.positions.items()
            if iid in kernel.instruments
        }
    finally:
        journal.close()
    return config.node.id, positions


def venue_positions(config: VenuePositionsConfig, base_dir: Path) -> dict[str, Decimal]:
    """The venue's net position per instrument, read where the live session is not."""
    path = Path(config.path).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if config.kind == "positions_file":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BackupError(f"dr.venue_positions {path}: cannot read: {error}") from None
        if not isinstance(data, dict):
            raise BackupError(f"dr.venue_positions {path}: not a JSON object")
        return {str(k): Decimal(str(v)) for k, v in data.items()}
    try:
        db = connect(path, key=None, readonly=True, what="venue ledger")
        try:
            rows = db.execute(
                "SELECT symbol, net_qty FROM positions WHERE account = ?", (config.account,)
            ).fetchall()
        finally:
            db.close()
    except DB_ERRORS as error:
        raise BackupError(f"dr.venue_positions {path}: cannot read: {error}") from None
    return {symbol: Decimal(qty) for symbol, qty in rows}


def compare_positions(node: dict[str, Decimal], venue: dict[str, Decimal]) -> list[str]:
    return [
        f"{iid}: {node.get(iid, Decimal(0))} in the restored node, "
        f"{venue.get(iid, Decimal(0))} at the venue"
        for iid in sorted(node.keys() | venue.keys())
        if node.get(iid, Decimal(0)) != venue.get(iid, Decimal(0))
    ]


def rpo(
    source: SourceJournal | None, restored: Restored, keys: JournalKeys
) -> tuple[int | None, float | None]:
    """Events in the source journal after the restored last seq, and the seconds between
    its last event and the restored last event; (None, None) when the source is not
    readable (or holds another history than the restored one)."""
    if source is None:
        return None, None
    if isinstance(source, PgJournalSource):
        return _pg_rpo(source, restored, keys)
    path, key = source
    last_seq = restored.last_seq
    try:
        db = connect(path, key=key, readonly=True, what="source journal")
        try:
            count, last_ts = db.execute(
                "SELECT count(*), max(ts_ns) FROM events WHERE seq > ?", (last_seq,)
            ).fetchone()
        finally:
            db.close()
        mine = connect(
            restored.journal, key=keys.encryption, readonly=True, what="restored journal"
        )
        try:
            row = mine.execute("SELECT ts_ns FROM events WHERE seq = ?", (last_seq,)).fetchone()
        finally:
            mine.close()
    except _SOURCE_ERRORS as error:
        log.warning("dr_drill_source_unreadable", journal=str(path), error=str(error))
        return None, None
    if not count:
        return 0, 0.0
    restored_ts = row[0] if row is not None else 0
    return int(count), max(0.0, (int(last_ts) - int(restored_ts)) / 1e9)


def _pg_rpo(
    source: PgJournalSource, restored: Restored, keys: JournalKeys
) -> tuple[int | None, float | None]:
    """The RPO from a PostgreSQL source, read only (``PostgresJournalReader`` selects,
    nothing else): its records from the restored last one on, whose hash must be the
    restored head (the same history)."""
    from bastion.journal.pg_reader import PostgresJournalReader

    last_seq = restored.last_seq
    count, restored_ts, last_ts = 0, 0, 0
    try:
        with PostgresJournalReader(
            source.url, name=source.name, password=source.password, keys=keys
        ) as reader:
            for seq, ts_ns, *_rest, digest in reader.records_after(max(0, last_seq - 1)):
                if seq == last_seq:
                    if bytes(digest).hex() != restored.head_hash:
                        log.warning(
                            "dr_drill_source_unreadable",
                            journal=reader.where,
                            error=f"seq {seq} is not the restored record (another history)",
                        )
                        return None, None
                    restored_ts = int(ts_ns)
                elif seq > last_seq:
                    count, last_ts = count + 1, int(ts_ns)
    except _SOURCE_ERRORS as error:
        log.warning("dr_drill_source_unreadable", journal=source.name, error=str(error))
        return None, None
    if not count:
        return 0, 0.0
    return count, max(0.0, (last_ts - restored_ts) / 1e9)

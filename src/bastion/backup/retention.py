"""Retention, grandfather-father-son: keep the newest full backup of each of the last
``hourly`` hours, ``daily`` days and ``monthly`` months that have one, and always the
newest full backup; delete the other full backups, and the journal segments that end
at or before the oldest full backup kept (no kept backup needs them to roll forward).
A segment after the newest full backup is never deleted, nor the full backup it
continues.

With public signing keys, every full backup's record is checked before anything is
deleted: a forged one (dated ahead, say) would otherwise count as the newest of its
hour, day or month and push real backups out, and so would another desk's genuine one
copied in (signed by a key both desks share: it must be of this desk's node); one
refused stops the prune. Segments
are not read: a segment is deleted by its own seq range, so a forged one changes the
fate of no other."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from bastion.backup.catalog import Entry, fetch_record, fulls, segments
from bastion.backup.config import RetentionConfig
from bastion.backup.destinations import Destination
from bastion.backup.manifest import BLOB_SUFFIX, RECORD_SUFFIX
from bastion.backup.signing import Signers

log = structlog.get_logger("bastion.backup")


@dataclass(frozen=True)
class Plan:
    keep: list[Entry]
    delete: list[Entry]


def plan(full: list[Entry], segs: list[Entry], policy: RetentionConfig) -> Plan:
    """Which backups to keep and delete (``full`` oldest first, as ``catalog.fulls``)."""
    if not full:
        return Plan(keep=list(segs), delete=[])
    newest_first = sorted(full, key=lambda e: e.stamp, reverse=True)
    kept: dict[str, Entry] = {newest_first[0].id: newest_first[0]}
    for width, count in ((11, policy.hourly), (8, policy.daily), (6, policy.monthly)):
        # the stamp's prefix: YYYYMMDDTHH (hour), YYYYMMDD (day), YYYYMM (month)
        periods: set[str] = set()
        for entry in newest_first:
            period = entry.stamp[:width]
            if period in periods:
                continue
            if len(periods) == count:
                break
            periods.add(period)
            kept[entry.id] = entry
    floor = min(e.last_seq for e in kept.values())
    keep_full = [e for e in full if e.id in kept]
    keep_segs = [s for s in segs if s.last_seq > floor]
    delete = [e for e in full if e.id not in kept] + [s for s in segs if s.last_seq <= floor]
    return Plan(keep=keep_full + keep_segs, delete=delete)


def prune(
    destination: Destination,
    policy: RetentionConfig,
    *,
    signers: Signers,
    node_id: str | None = None,
) -> Plan:
    """Apply the policy: each deleted backup's record goes first, then its blob (a blob
    without its record is no longer listed, so a prune cut short leaves no half backup).
    With ``signers``, ``IntegrityError`` naming the first full backup whose record is
    not validly signed (or, with ``node_id``, is another node's), before anything is
    deleted."""
    full = fulls(destination)
    if signers.required:
        for entry in full:
            fetch_record(destination, entry.id, signers, node_id=node_id)
    chosen = plan(full, segments(destination), policy)
    for entry in chosen.delete:
        destination.delete(entry.id + RECORD_SUFFIX)
        destination.delete(entry.id + BLOB_SUFFIX)
        log.info("backup_pruned", id=entry.id, kind=entry.kind)
    return chosen

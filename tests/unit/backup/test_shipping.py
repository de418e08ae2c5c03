"""Journal shipping: segments after a full backup restore to the journal's newest head."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.backup import encryption
from bastion.backup.catalog import segments
from bastion.backup.create import create_backup
from bastion.backup.desk import open_desk
from bastion.backup.destinations import DirDestination, open_destination
from bastion.backup.restore import restore
from bastion.backup.shipping import ship_once, shipped_through
from bastion.backup.signing import UNCHECKED
from bastion.clock import LiveClock
from bastion.errors import BackupError
from bastion.journal import verify_journal
from kit.backup_desk import BackupDesk, dir_destination, make_desk
from kit.journal_samples import fills

CLOCK = LiveClock()


@pytest.fixture
def desk(tmp_path: Path) -> BackupDesk:
    return make_desk(tmp_path / "desk", dir_destination(tmp_path / "offsite"), events=20)


def opened(desk: BackupDesk) -> tuple[object, DirDestination]:
    d = open_desk(desk.config, clock=CLOCK)
    destination = open_destination(d.backup, base_dir=d.base_dir, node_id=d.node_id, secrets=None)
    assert isinstance(destination, DirDestination)
    return d, destination


def ship(desk: BackupDesk) -> None:
    d, destination = opened(desk)
    ship_once(d, destination, after_seq=shipped_through(destination, UNCHECKED), clock=CLOCK)  # type: ignore[arg-type]


def test_when_segments_follow_a_full_backup_then_restore_reaches_the_last_shipped_event(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """Full backup at seq 20, segments 21..30 and 31..45: the restore ends at 45, chained."""
    d, destination = opened(desk)
    create_backup(d, destination, clock=CLOCK)  # type: ignore[arg-type]
    desk.append(fills(10, ts_ns=2))
    ship(desk)
    desk.append(fills(15, ts_ns=3))
    ship(desk)
    ship(desk)  # nothing new: no segment
    assert [(s.first_seq, s.last_seq) for s in segments(destination)] == [(21, 30), (31, 45)]
    restored = restore(
        destination,
        "latest",
        tmp_path / "restored",
        identities=encryption.load_identities(desk.identity),
        signers=UNCHECKED,
    )
    assert restored.last_seq == 45 and len(restored.segments) == 2
    result = verify_journal(tmp_path / "restored" / "state" / "journal.sqlite")
    assert result.ok and result.last_seq == 45
    source = verify_journal(desk.journal)
    assert result.last_hash == source.last_hash


def test_when_a_full_backup_falls_inside_a_segment_then_only_its_newer_rows_apply(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A segment overlapping the full backup adds only the events after it, once each."""
    d, destination = opened(desk)
    desk.append(fills(5, ts_ns=2))
    ship(desk)  # segment 1..25
    desk.append(fills(5, ts_ns=3))
    create_backup(d, destination, clock=CLOCK)  # type: ignore[arg-type]  # full at 30
    # a segment from before the full backup's head still shipped after: 26..30, then 31..33
    ship(desk)
    desk.append(fills(3, ts_ns=4))
    ship(desk)
    restored = restore(
        destination,
        "latest",
        tmp_path / "restored",
        identities=encryption.load_identities(desk.identity),
        signers=UNCHECKED,
    )
    assert restored.last_seq == 33
    assert verify_journal(tmp_path / "restored" / "state" / "journal.sqlite").ok


def test_when_a_segment_is_missing_then_the_restore_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A gap in the shipped journal is an error, not a silently shorter journal."""
    d, destination = opened(desk)
    create_backup(d, destination, clock=CLOCK)  # type: ignore[arg-type]
    desk.append(fills(4, ts_ns=2))
    ship(desk)
    desk.append(fills(4, ts_ns=3))
    ship(desk)
    first = segments(destination)[0]
    destination.delete(first.id + ".json")
    with pytest.raises(BackupError, match="a segment is missing"):
        restore(
            destination,
            "latest",
            tmp_path / "restored",
            identities=encryption.load_identities(desk.identity),
            signers=UNCHECKED,
        )
    assert not (tmp_path / "restored").exists()


def test_when_a_segment_does_not_continue_the_chain_then_the_restore_is_refused(
    desk: BackupDesk, tmp_path: Path
) -> None:
    """A segment from another journal (its first prev_hash is not our head) is refused."""
    d, destination = opened(desk)
    create_backup(d, destination, clock=CLOCK)  # type: ignore[arg-type]
    # rewrite the source journal's history, then ship from it: the chain no longer joins
    import sqlite3

    desk.append(fills(3, ts_ns=5))
    db = sqlite3.connect(desk.journal)
    db.execute("UPDATE events SET prev_hash = ? WHERE seq = 21", (b"\x01" * 32,))
    db.commit()
    db.close()
    ship(desk)
    with pytest.raises(BackupError, match="does not continue the journal's chain"):
        restore(
            destination,
            "latest",
            tmp_path / "restored",
            identities=encryption.load_identities(desk.identity),
            signers=UNCHECKED,
        )
    assert not (tmp_path / "restored").exists()


def test_when_shipping_resumes_then_it_starts_after_what_the_destination_holds(
    desk: BackupDesk,
) -> None:
    """A restarted shipper reads where it left off from the destination, not from memory."""
    d, destination = opened(desk)
    create_backup(d, destination, clock=CLOCK)  # type: ignore[arg-type]
    assert shipped_through(destination, UNCHECKED) == 20
    desk.append(fills(2, ts_ns=2))
    ship(desk)
    assert shipped_through(destination, UNCHECKED) == 22
    (segment,) = segments(destination)
    assert (segment.first_seq, segment.last_seq) == (21, 22)

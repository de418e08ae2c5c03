"""The journal's hash chain: verified across reopen, tampering and damage found at their seq."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bastion.errors import OperationalError
from bastion.journal import SqliteJournal, verify_journal
from bastion.journal._codec import GENESIS_HASH, chain_hash
from bastion.journal.sqlite import WRITER_THREAD_NAME
from bastion.model.events import JournalTailSetAside
from kit.journal_samples import execute, fills, one_of_each, rows


def write(path: Path, events: list[Any], **options: Any) -> None:
    journal = SqliteJournal(path, **options)
    try:
        for event in events:
            journal.append(event)
    finally:
        journal.close()


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WRITER_THREAD_NAME]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal of 10 fills (seq 1..10), closed."""
    path = tmp_path / "j.sqlite"
    write(path, fills(10))
    return path


def test_when_events_appended_across_reopens_then_chain_verifies(tmp_path: Path) -> None:
    """Three sessions on one file: seq continues gapless and the whole chain verifies."""
    path = tmp_path / "j.sqlite"
    events = fills(30)
    for part in (events[:10], events[10:25], events[25:]):
        write(path, part)
    result = verify_journal(path)
    assert result.ok, result.problem
    assert (result.events, result.first_seq, result.last_seq) == (30, 1, 30)
    stored = rows(path)
    assert [r[0] for r in stored] == list(range(1, 31))
    assert stored[0][5] == GENESIS_HASH
    assert all(stored[i][5] == stored[i - 1][6] for i in range(1, 30))
    assert result.last_hash == stored[-1][6].hex()


def test_when_hash_recomputed_by_hand_then_it_matches_the_documented_formula(
    journal_path: Path,
) -> None:
    """hash = sha256(prev_hash, seq u64be, ts_ns i64be, len(type) u16be, type, payload)."""
    import hashlib
    import struct

    seq, ts_ns, type_name, _, payload, prev, digest = rows(journal_path)[0]
    name = type_name.encode()
    by_hand = hashlib.sha256(
        prev + struct.pack(">QqH", seq, ts_ns, len(name)) + name + payload
    ).digest()
    assert digest == by_hand == chain_hash(prev, seq, ts_ns, type_name, payload)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("ts_ns", 42),
        ("type", "OrderCanceled"),
        ("client_order_id", "O-forged"),
        ("payload", b"\x81\xa4type\xa3bad"),
        ("prev_hash", bytes(32)),
        ("hash", b"\x01" * 32),
    ],
)
def test_when_a_middle_record_is_tampered_then_verify_names_its_seq(
    journal_path: Path, column: str, value: object
) -> None:
    """Changing any column of record 5 of 10 is reported at seq 5, not as a torn tail."""
    execute(journal_path, f"UPDATE events SET {column} = ? WHERE seq = 5", value)
    result = verify_journal(journal_path)
    assert not result.ok
    assert result.broken_seq == 5, result.problem
    assert not result.torn_tail


def test_when_a_payload_is_reencoded_with_a_changed_field_then_hash_mismatch(
    journal_path: Path,
) -> None:
    """A decodable forged payload (price changed) is caught by the hash."""
    import msgspec

    stored = rows(journal_path)[3]
    event = msgspec.msgpack.decode(stored[4], type=type(fills(1)[0]))
    forged = msgspec.msgpack.encode(msgspec.structs.replace(event, last_px=1))
    execute(journal_path, "UPDATE events SET payload = ? WHERE seq = 4", forged)
    result = verify_journal(journal_path)
    assert (result.broken_seq, result.problem) == (4, "hash mismatch")


def test_when_a_record_is_deleted_then_verify_reports_a_seq_gap(journal_path: Path) -> None:
    """Deleting seq 6 is reported at the record after the hole."""
    execute(journal_path, "DELETE FROM events WHERE seq = 6")
    result = verify_journal(journal_path)
    assert result.broken_seq == 7
    assert result.problem is not None and result.problem.startswith("gap in seq")


def test_when_last_record_is_truncated_then_verify_names_it_and_open_sets_it_aside(
    journal_path: Path,
) -> None:
    """A cut last payload: verify names seq 10 as a torn tail; opening for writing moves it
    to torn_records, journals a JournalTailSetAside as the new seq 10 and logs an error
    (never silent); the chain continues from seq 9 and verifies again."""
    execute(journal_path, "UPDATE events SET payload = substr(payload, 1, 9) WHERE seq = 10")
    result = verify_journal(journal_path)
    assert (result.broken_seq, result.torn_tail) == (10, True)
    assert result.problem is not None and "undecodable payload" in result.problem
    with capture_logs() as logs:
        journal = SqliteJournal(journal_path)
    try:
        assert journal.torn_tail == 10
        assert journal.last_seq == 10  # the JournalTailSetAside event
        journal.append(fills(1)[0])
        journal.flush()
        journaled = [event for seq, event in journal.read(9)]
    finally:
        journal.close()
    assert isinstance(journaled[0], JournalTailSetAside)
    assert (journaled[0].first_seq, journaled[0].last_seq) == (10, 10)
    assert journaled[0].byte_count > 9 and "undecodable payload" in journaled[0].problem
    errors = [e for e in logs if e["event"] == "journal_tail_set_aside"]
    assert len(errors) == 1
    assert errors[0]["first_seq"] == errors[0]["last_seq"] == 10
    assert errors[0]["byte_count"] == journaled[0].byte_count
    assert errors[0]["log_level"] == "error"
    assert verify_journal(journal_path).ok
    assert [r[0] for r in rows(journal_path)] == list(range(1, 12))  # new seqs 10 and 11
    db = sqlite3.connect(journal_path)
    try:
        kept = db.execute("SELECT seq, problem, length(payload) FROM torn_records").fetchall()
    finally:
        db.close()
    assert kept == [(10, kept[0][1], 9)] and "undecodable payload" in kept[0][1]


def test_when_last_hash_is_corrupt_then_torn_tail_is_reported(journal_path: Path) -> None:
    """A half-written hash on the last record is a torn tail too."""
    execute(journal_path, "UPDATE events SET hash = substr(hash, 1, 7) WHERE seq = 10")
    assert verify_journal(journal_path).torn_tail
    journal = SqliteJournal(journal_path)
    journal.close()
    assert journal.torn_tail == 10
    assert verify_journal(journal_path).ok


def test_when_journal_is_intact_then_torn_tail_is_none(journal_path: Path) -> None:
    """A clean file opens without a torn tail."""
    journal = SqliteJournal(journal_path)
    journal.close()
    assert journal.torn_tail is None


def test_when_same_events_in_both_durability_modes_then_chains_are_identical(
    tmp_path: Path,
) -> None:
    """group and fsync_each store byte-identical records, hashes included."""
    events = one_of_each() + fills(50)
    write(tmp_path / "group.sqlite", events, durability="group", max_batch=7)
    write(tmp_path / "each.sqlite", events, durability="fsync_each")
    assert rows(tmp_path / "group.sqlite") == rows(tmp_path / "each.sqlite")
    assert verify_journal(tmp_path / "each.sqlite").ok


def test_when_closed_then_writer_thread_stops_and_every_event_is_committed(
    tmp_path: Path,
) -> None:
    """close() drains the queue and joins the writer: rows == appended, no thread left."""
    before = len(writer_threads())
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=10_000, max_batch=10**9)
    assert len(writer_threads()) == before + 1
    for event in fills(5_000):
        journal.append(event)
    assert journal.last_seq == 5_000
    journal.close()
    assert len(writer_threads()) == before
    assert journal.committed_seq == 5_000
    assert len(rows(tmp_path / "j.sqlite")) == 5_000


def test_when_max_batch_reached_then_writer_commits_without_waiting_for_interval(
    tmp_path: Path,
) -> None:
    """With a 10 s interval, reaching max_batch wakes the writer; flush() returns committed."""
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=10_000, max_batch=100)
    try:
        for event in fills(100):
            journal.append(event)
        assert journal.flush() == 100
        assert len(rows(tmp_path / "j.sqlite")) == 100
    finally:
        journal.close()


def test_when_appending_after_close_then_operational_error(tmp_path: Path) -> None:
    """A closed journal refuses events loudly rather than dropping them."""
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(OperationalError, match="closed"):
        journal.append(fills(1)[0])


def test_when_writer_cannot_encode_then_append_and_close_raise(tmp_path: Path) -> None:
    """A failed batch stops the writer and surfaces as OperationalError, never silently."""
    before = len(writer_threads())
    journal = SqliteJournal(tmp_path / "j.sqlite")
    journal.append(object())  # not an event: the writer cannot encode it
    with pytest.raises(OperationalError, match="write failed"):
        journal.flush()
    with pytest.raises(OperationalError):
        journal.append(fills(1)[0])
    with pytest.raises(OperationalError):
        journal.close()
    assert len(writer_threads()) == before


def test_when_v1_file_opened_then_migrated_to_v2_with_a_verifiable_chain(tmp_path: Path) -> None:
    """A version-1 journal gains prev_hash/hash over its rows, in one step, and verifies."""
    import msgspec

    path = tmp_path / "v1.sqlite"
    events = one_of_each()
    db = sqlite3.connect(path)
    with db:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE runs (epoch INTEGER PRIMARY KEY, node_id TEXT NOT NULL,
                               started_ns INTEGER NOT NULL);
            CREATE TABLE events (seq INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL,
                                 type TEXT NOT NULL, client_order_id TEXT,
                                 payload BLOB NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            """
        )
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            [
                (
                    n,
                    e.ts_ns,
                    type(e).__name__,
                    getattr(e, "client_order_id", None),
                    msgspec.msgpack.encode(e),
                )
                for n, e in enumerate(events, 1)
            ],
        )
    db.close()
    assert not verify_journal(path).ok  # no chain yet
    journal = SqliteJournal(path)
    try:
        assert journal.migrated_from == 1
        journal.append(fills(1)[0])
    finally:
        journal.close()
    result = verify_journal(path)
    assert result.ok, result.problem
    assert (result.schema_version, result.events) == (3, len(events) + 1)
    reopened = SqliteJournal(path)
    try:
        assert [e for _, e in reopened.read()] == [*events, fills(1)[0]]
    finally:
        reopened.close()


def test_when_schema_is_newer_than_this_bastion_then_open_is_refused(journal_path: Path) -> None:
    """A journal from a future bastion is not written to."""
    execute(journal_path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(OperationalError, match="newer"):
        SqliteJournal(journal_path)

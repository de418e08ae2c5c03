"""The PostgreSQL journal against SQLite's: the same scenarios, the same records byte
for byte (hashes included), the same snapshots; its keys, its single writer, its
connection errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.errors import IntegrityError, OperationalError, StorageKeyError
from bastion.journal.base import Journal
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.sqlite import SqliteJournal
from kit.journal_samples import fills, one_of_each, rows
from kit.pg_journal import as_superuser, open_pg, split_password, stored_rows
from kit.postgres import PostgresServer

KEYED = JournalKeys(encryption=bytes(range(32)), chain=bytes(range(32, 64)))


def _scenario(journal: Journal) -> int:
    """Every event type, a snapshot, more fills, another snapshot; the run epoch."""
    epoch = journal.begin_run("node-1", 1)
    for event in one_of_each():
        journal.append(event)
    journal.snapshot(b"state-1", 11)
    for event in fills(50):
        journal.append(event)
    journal.snapshot(b"state-2", 22)
    journal.append(fills(1)[0])
    journal.flush()
    return epoch


@pytest.mark.parametrize("durability", ["group", "fsync_each"])
@pytest.mark.parametrize("keys", [PLAINTEXT, KEYED], ids=["plain", "keyed"])
def test_when_same_events_then_records_are_byte_identical_to_sqlite(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path, durability: str, keys: JournalKeys
) -> None:
    """Both backends store the same plain records, hashes included, and read back the
    same events and snapshot."""
    sqlite_keys = JournalKeys(chain=keys.chain)  # SQLCipher aside: the records compare
    lite = SqliteJournal(tmp_path / "j.sqlite", durability=durability, keys=sqlite_keys)  # type: ignore[arg-type]
    pg = open_pg(pg_dsn, tmp_path, durability=durability, keys=keys)
    try:
        assert _scenario(lite) == _scenario(pg) == 1
        assert pg.last_seq == pg.committed_seq == lite.last_seq
        assert list(pg.read()) == list(lite.read())
        assert pg.latest_snapshot() == lite.latest_snapshot()
    finally:
        lite.close()
        pg.close()
    expected = rows(tmp_path / "j.sqlite")
    stored = stored_rows(postgres, pg_dsn)
    if keys.encryption is None:
        assert stored == expected
    else:  # sealed: the chain columns match, payloads and order ids are not readable
        assert [r[:3] + r[5:] for r in stored] == [r[:3] + r[5:] for r in expected]
        assert all(r[3] is None for r in stored)
        assert all(s[4] != e[4] and e[4] not in s[4] for s, e in zip(stored, expected, strict=True))
    again = open_pg(pg_dsn, tmp_path, keys=keys)
    try:
        assert again.last_seq == len(expected)
        assert again.begin_run("node-1", 2) == 2
        again.append(fills(1)[0])
        assert again.flush() == len(expected) + 1
    finally:
        again.close()


def test_when_group_durability_then_a_batch_is_one_commit(pg_dsn: str, tmp_path: Path) -> None:
    journal = open_pg(pg_dsn, tmp_path, commit_interval_ms=60_000, max_batch=100_000)
    try:
        for event in fills(500):
            journal.append(event)
        assert journal.committed_seq == 0
        assert journal.stats().queue_depth == 500
        assert journal.flush() == 500
        assert journal.commits == 1
        assert journal.stats().writable
    finally:
        journal.close()


@pytest.mark.parametrize("durability", ["group", "fsync_each"])
def test_when_encrypted_then_stats_bytes_count_the_rows_as_stored(
    pg_dsn: str, tmp_path: Path, durability: str
) -> None:
    """``stats().bytes`` counts sealed payloads as stored, in either durability: the
    figure a journal keeps up while writing is the one it reads when opened again."""
    journal = open_pg(pg_dsn, tmp_path, keys=KEYED, durability=durability)
    for event in fills(20):
        journal.append(event)
    journal.flush()
    written = journal.stats().bytes
    journal.close()
    again = open_pg(pg_dsn, tmp_path, keys=KEYED)
    try:
        assert written == again.stats().bytes > 0
    finally:
        again.close()


def test_when_many_snapshots_then_only_the_newest_three_are_kept(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    journal = open_pg(pg_dsn, tmp_path)
    try:
        for n, event in enumerate(fills(6), start=1):
            journal.append(event)
            journal.snapshot(f"s{n}".encode(), n)
        journal.flush()
        snap = journal.latest_snapshot()
        assert snap is not None and (snap.seq, snap.payload) == (6, b"s6")
    finally:
        journal.close()
    with postgres.superuser(pg_dsn.rsplit("/", 1)[1]) as conn:
        seqs = conn.execute("SELECT seq FROM bastion_snapshots ORDER BY seq").fetchall()
    assert [s for (s,) in seqs] == [4, 5, 6]


def test_when_snapshot_edited_then_the_older_one_is_used(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    journal = open_pg(pg_dsn, tmp_path)
    try:
        for n, event in enumerate(fills(2), start=1):
            journal.append(event)
            journal.snapshot(f"s{n}".encode(), n)
        journal.flush()
        as_superuser(
            postgres, pg_dsn, "UPDATE bastion_snapshots SET payload = 'forged' WHERE seq = 2"
        )
        snap = journal.latest_snapshot()
        assert snap is not None and snap.seq == 1
    finally:
        journal.close()


def test_when_two_writers_then_the_second_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    """An unfenced journal holds an advisory lock for its name while open."""
    first = open_pg(pg_dsn, tmp_path)
    try:
        with pytest.raises(OperationalError, match="in use by another bastion process"):
            open_pg(pg_dsn, tmp_path)
        other = open_pg(pg_dsn, tmp_path, name="node-2")  # another journal: fine
        other.close()
    finally:
        first.close()
    open_pg(pg_dsn, tmp_path).close()  # released on close


def test_when_wrong_password_then_clear_error_without_it(pg_dsn: str, tmp_path: Path) -> None:
    url, password = split_password(pg_dsn)
    from bastion.journal.postgres import PostgresJournal

    wrong = "Wr0ng-" + password[::-1]
    with pytest.raises(OperationalError) as caught:
        PostgresJournal(url, name="n", path=tmp_path / "n.pg", password=wrong)
    text = str(caught.value) + repr(caught.value.__cause__) + repr(caught.value.__context__)
    assert "password authentication failed" in text
    assert wrong not in text and password not in text


def test_when_wrong_keys_then_refused_naming_the_key(pg_dsn: str, tmp_path: Path) -> None:
    journal = open_pg(pg_dsn, tmp_path, keys=KEYED)
    journal.append(fills(1)[0])
    journal.close()
    with pytest.raises(StorageKeyError, match="encryption key is needed"):
        open_pg(pg_dsn, tmp_path, keys=JournalKeys(chain=KEYED.chain))
    other = JournalKeys(encryption=bytes(32), chain=KEYED.chain)
    with pytest.raises(StorageKeyError, match="wrong encryption key"):
        open_pg(pg_dsn, tmp_path, keys=other)
    with pytest.raises(StorageKeyError, match="wrong chain key"):
        open_pg(pg_dsn, tmp_path, keys=JournalKeys(encryption=KEYED.encryption, chain=bytes(32)))


def test_when_keyed_record_forged_then_opening_refuses_it(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    """A sealed payload moved to another seq does not open: the insider cannot swap records."""
    journal = open_pg(pg_dsn, tmp_path, keys=KEYED)
    for event in fills(5):
        journal.append(event)
    journal.close()
    as_superuser(
        postgres,
        pg_dsn,
        "UPDATE bastion_events SET payload = (SELECT payload FROM bastion_events WHERE seq = 3) "
        "WHERE seq = 2",
    )
    with pytest.raises(IntegrityError, match="first bad record seq 2: sealed payload"):
        open_pg(pg_dsn, tmp_path, keys=KEYED)


def test_when_last_record_does_not_decode_then_it_is_set_aside(
    postgres: PostgresServer, pg_dsn: str, tmp_path: Path
) -> None:
    journal = open_pg(pg_dsn, tmp_path)
    for event in fills(3):
        journal.append(event)
    journal.close()
    as_superuser(postgres, pg_dsn, "UPDATE bastion_events SET payload = '\\xc1' WHERE seq = 3")
    journal = open_pg(pg_dsn, tmp_path)
    try:
        assert journal.torn_tail == 3
        assert journal.flush() == 3  # the JournalTailSetAside event took seq 3
        events: list[Any] = [event for _, event in journal.read()]
        assert type(events[-1]).__name__ == "JournalTailSetAside"
    finally:
        journal.close()
    with postgres.superuser(pg_dsn.rsplit("/", 1)[1]) as conn:
        torn = conn.execute("SELECT seq, problem FROM bastion_torn_records").fetchall()
    assert [seq for seq, _ in torn] == [3]

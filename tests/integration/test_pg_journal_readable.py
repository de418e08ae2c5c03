"""``PostgresJournalReader`` as a ``ReadableJournal``: the same events written to a
SQLite file and to PostgreSQL (both encrypted and keyed) read back alike, however they
are asked for; a database with nothing journaled yet is no journal yet; a payload
edited in the database is named, not skipped; the password is in no error."""

from __future__ import annotations

import io
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from bastion.errors import OperationalError
from bastion.journal import pg_reader
from bastion.journal.locator import JournalLocator
from bastion.journal.readable import EventRecord, ReadableJournal, events_of_type
from bastion.journal.reader import NoJournalYet
from kit.journal_samples import fills, one_of_each
from kit.pg_journal import SEALED_KEYS, as_superuser, pg_locator, split_password, twin_journals
from kit.postgres import PostgresServer

KEYS = SEALED_KEYS
EVENTS = [*one_of_each(), *fills(12)]
ASKED = ("OrderFilled", "RunManifest", "LiveArmed", "OperatorCommand", "NoSuchType")


def answers(journal: ReadableJournal) -> list[list[EventRecord]]:
    """What the features ask of a journal: every event of some types, oldest and newest
    first, and a window of them."""
    return [
        list(journal.events_of(ASKED)),
        list(journal.events_of(ASKED, newest_first=True)),
        list(journal.events_of(ASKED, after=5, before=40, newest_first=True)),
        list(journal.events_of(("OrderFilled",), after=len(EVENTS) - 3)),
    ]


def test_when_the_same_events_are_in_both_then_both_readers_answer_alike(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events of some types, either way round, windows, the last seq, the stats and the
    export: PostgreSQL answers as SQLite does (read in chunks of 5 to cross chunks)."""
    monkeypatch.setattr(pg_reader, "READ_CHUNK", 5)
    sqlite, postgres = twin_journals(tmp_path, pg_dsn, EVENTS, keys=KEYS)
    with closing(sqlite.open()) as lite, closing(postgres.open()) as pg:
        assert pg.committed_seq() == lite.committed_seq() == len(EVENTS)
        expected = answers(lite)
        assert len(expected[0]) == sum(type(e).__name__ in ASKED for e in EVENTS) > 12
        assert answers(pg) == expected
        lite_stats, pg_stats = lite.stats(), pg.stats()
        ignored = {"path", "file_bytes", "schema_version"}  # where, and how each stores it
        assert {k: v for k, v in msgspec.to_builtins(pg_stats).items() if k not in ignored} == {
            k: v for k, v in msgspec.to_builtins(lite_stats).items() if k not in ignored
        }
        for to_seq in (None, 40):
            lite_out, pg_out = io.BytesIO(), io.BytesIO()
            written = lite.export_jsonl(lite_out, from_seq=30, to_seq=to_seq)
            assert pg.export_jsonl(pg_out, from_seq=30, to_seq=to_seq) == written
            assert pg_out.getvalue() == lite_out.getvalue()
        assert written == 11  # 30..40


def test_when_nothing_is_journaled_yet_then_it_is_no_journal_yet(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A database without bastion's tables is no journal yet (a first start); a journal
    name nothing was written to reads as empty."""
    locator = pg_locator(pg_dsn, tmp_path)
    assert locator.open_existing() is None
    with pytest.raises(NoJournalYet, match="holds no bastion journals"):
        locator.open()
    twin_journals(tmp_path, pg_dsn, fills(3))
    other = pg_locator(pg_dsn, tmp_path, name="never-written")
    journal = other.open_existing()
    assert journal is not None
    with closing(journal):
        assert journal.committed_seq() == 0
        assert list(journal.events_of(("OrderFilled",))) == []


def test_when_a_sealed_payload_is_edited_then_its_record_has_no_event(
    tmp_path: Path, pg_dsn: str, postgres: PostgresServer
) -> None:
    """A payload changed by someone with database access does not open: the record is
    there without its event, and a check needing every event of its type names it."""
    _, locator = twin_journals(tmp_path, pg_dsn, fills(4), keys=KEYS)
    as_superuser(
        postgres,
        pg_dsn,
        "UPDATE bastion_events SET payload = set_byte(payload, 20, get_byte(payload, 20) # 1) "
        "WHERE name = %s AND seq = 2",
        locator.name,
    )
    with closing(locator.open()) as journal:
        records = list(journal.events_of(("OrderFilled",)))
        assert [(r.seq, r.event is None) for r in records] == [
            (1, False),
            (2, True),
            (3, False),
            (4, False),
        ]
        with pytest.raises(OperationalError, match="seq 2: undecodable payload"):
            events_of_type(journal, "OrderFilled")


def test_when_the_password_is_wrong_then_the_error_does_not_hold_it(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A refused connection is an ``OperationalError`` naming the journal's database,
    never the password given."""
    url, _ = split_password(pg_dsn)
    wrong = "not-the-password-7f3a9c"
    locator = JournalLocator.postgres(url, name="node-1", path=tmp_path / "n.pg", password=wrong)
    with pytest.raises(OperationalError) as caught:
        locator.open()
    assert "cannot connect" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(locator)

"""Reading a SQLite journal through ``ReadableJournal`` (what the audit trail, the start
checks, the incident bundle and ``bastion manifest`` read), and ``JournalLocator``:
events of some types between two seqs, either way round; a payload that does not
decode; a journal not created yet; a locator that never shows its secrets."""

from __future__ import annotations

import io
import json
from contextlib import closing
from pathlib import Path

import pytest

from bastion.errors import OperationalError
from bastion.journal.keys import JournalKeys
from bastion.journal.locator import JournalLocator
from bastion.journal.readable import events_of_type
from bastion.journal.reader import NoJournalYet, NotAJournalError
from bastion.journal.sqlite import SqliteJournal
from kit.journal_samples import execute, one_of_each

EVENTS = one_of_each()
TAGS = [type(e).__name__ for e in EVENTS]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """One of every journaled type, in seq 1.. order."""
    path = tmp_path / "j.sqlite"
    writer = SqliteJournal(path)
    try:
        for event in EVENTS:
            writer.append(event)
    finally:
        writer.close()
    return path


def test_when_types_and_bounds_are_asked_then_only_those_come_in_order(journal: Path) -> None:
    """Only the types asked, strictly between the bounds, oldest or newest first."""
    wanted = ("OrderFilled", "RunManifest", "LiveArmed")
    seqs = [TAGS.index(t) + 1 for t in wanted]
    with closing(JournalLocator.sqlite(journal).open()) as reader:
        assert reader.committed_seq() == len(EVENTS)
        found = list(reader.events_of(wanted))
        assert [r.seq for r in found] == sorted(seqs)
        assert [r.type for r in found] == [type(r.event).__name__ for r in found]
        assert [r.event for r in found] == [EVENTS[s - 1] for s in sorted(seqs)]
        newest = list(reader.events_of(wanted, newest_first=True))
        assert newest == found[::-1]
        low, high = sorted(seqs)[0], sorted(seqs)[-1]
        between = list(reader.events_of(wanted, after=low, before=high))
        assert [r.seq for r in between] == sorted(seqs)[1:-1]
        assert list(reader.events_of(())) == []


def test_when_exported_up_to_a_seq_then_nothing_after_it_is(journal: Path) -> None:
    """An export bounded at both ends (the incident bundle's last events, up to the
    seq its stats saw) holds exactly those."""
    with closing(JournalLocator.sqlite(journal).open()) as reader:
        out = io.BytesIO()
        assert reader.export_jsonl(out, from_seq=3, to_seq=5) == 3
        assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [3, 4, 5]


def test_when_a_payload_does_not_decode_then_it_is_named_not_skipped(journal: Path) -> None:
    """The record is there with no event (the audit trail shows it as undecodable); a
    check that needs every event of a type refuses it, naming its seq."""
    seq = TAGS.index("LiveArmed") + 1
    execute(journal, "UPDATE events SET payload = x'c1' WHERE seq = ?", seq)
    with closing(JournalLocator.sqlite(journal).open()) as reader:
        (record,) = reader.events_of(("LiveArmed",))
        assert (record.seq, record.type, record.event) == (seq, "LiveArmed", None)
        with pytest.raises(OperationalError, match=f"seq {seq}: undecodable payload"):
            events_of_type(reader, "LiveArmed")


def test_when_nothing_is_journaled_yet_then_open_existing_is_none(tmp_path: Path) -> None:
    """A missing file is no journal yet (a first start), not an error; ``open`` says so."""
    locator = JournalLocator.sqlite(tmp_path / "new.sqlite")
    assert locator.open_existing() is None
    with pytest.raises(NoJournalYet, match="journal file not found"):
        locator.open()
    (tmp_path / "garbage.sqlite").write_bytes(b"not a journal at all, clearly")
    with pytest.raises(NotAJournalError, match="garbage"):
        JournalLocator.sqlite(tmp_path / "garbage.sqlite").open_existing()


def test_when_a_locator_is_shown_then_no_password_or_key_is(tmp_path: Path) -> None:
    """``repr`` names where the journal is, never the password or a key."""
    keys = JournalKeys(encryption=b"\x11" * 32, chain=b"\x22" * 32)
    locator = JournalLocator.postgres(
        "postgresql://bastion@db:5432/desk",
        name="desk-1",
        path=tmp_path / "desk-1.pg",
        password="hunter2-not-shown",
        keys=keys,
    )
    shown = repr(locator) + str(locator)
    assert "desk-1" in shown and "hunter2" not in shown
    assert "11" * 32 not in shown and "22" * 32 not in shown
    assert locator.where == "postgresql journal 'desk-1'"
    assert locator.config_key == "journal.name"

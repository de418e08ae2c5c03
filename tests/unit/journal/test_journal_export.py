"""Export (JSON lines) and stats of a journal, read-only."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec

from bastion.journal import ExportedRecord, SqliteJournal, export_jsonl, journal_stats
from bastion.journal._schema import SCHEMA_VERSION
from kit.journal_samples import EVENT_TYPES, T0, fills, one_of_each


def make_journal(path: Path, runs: int = 2) -> list[object]:
    events = one_of_each() + fills(3, ts_ns=T0 + 100)
    journal = SqliteJournal(path)
    try:
        for n in range(runs):
            journal.begin_run(f"node-{n}", T0)
        for event in events:
            journal.append(event)
    finally:
        journal.close()
    return events


def test_when_exported_then_every_event_type_decodes_back_equal(tmp_path: Path) -> None:
    """One line per event; each line's ``event`` decodes to the very event appended."""
    path = tmp_path / "j.sqlite"
    events = make_journal(path)
    assert {type(e) for e in events} == set(EVENT_TYPES)
    out = io.BytesIO()
    assert export_jsonl(path, out) == len(events)
    lines = out.getvalue().splitlines()
    records = [msgspec.json.decode(line, type=ExportedRecord) for line in lines]
    assert [r.event for r in records] == events
    assert [r.seq for r in records] == list(range(1, len(events) + 1))
    first = json.loads(lines[0])
    assert set(first) == {"seq", "ts_ns", "type", "client_order_id", "event"}
    fill = next(json.loads(line) for line in lines if b'"OrderFilled"' in line)
    assert fill["event"]["fee"] == "0.012345"  # exact decimal, as a string


def test_when_exported_from_seq_then_earlier_events_are_skipped(tmp_path: Path) -> None:
    """--from-seq N starts at seq N."""
    path = tmp_path / "j.sqlite"
    events = make_journal(path)
    out = io.BytesIO()
    assert export_jsonl(path, out, from_seq=18) == len(events) - 17
    assert json.loads(out.getvalue().splitlines()[0])["seq"] == 18


def test_when_stats_then_counts_runs_extent_and_version_are_reported(tmp_path: Path) -> None:
    """Stats count events by type and runs, and give the seq and time extent."""
    path = tmp_path / "j.sqlite"
    events = make_journal(path, runs=3)
    stats = journal_stats(path)
    assert stats.events == len(events) == 52  # one of each of the 49 event types, 3 more fills
    assert stats.by_type["OrderFilled"] == 4
    assert sum(stats.by_type.values()) == 52
    assert stats.runs == 3
    assert (stats.first_seq, stats.last_seq) == (1, 52)
    assert (stats.first_ts_ns, stats.last_ts_ns) == (T0, T0 + 102)
    assert stats.schema_version == SCHEMA_VERSION == 3
    assert stats.file_bytes >= path.stat().st_size > 0


def test_when_journal_is_inspected_then_the_file_is_not_modified(tmp_path: Path) -> None:
    """verify/stats/export open mode=ro: the file's bytes are unchanged."""
    from bastion.journal import verify_journal

    path = tmp_path / "j.sqlite"
    make_journal(path)
    before = path.read_bytes()
    verify_journal(path)
    journal_stats(path)
    export_jsonl(path, io.BytesIO())
    assert path.read_bytes() == before

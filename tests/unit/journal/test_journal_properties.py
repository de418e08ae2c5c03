"""Property: whatever events are appended come back equal, in order, on a verified chain."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.journal import SqliteJournal, verify_journal
from kit.journal_samples import any_event


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    events=st.lists(any_event, max_size=40),
    durability=st.sampled_from(["group", "fsync_each"]),
    max_batch=st.integers(min_value=1, max_value=16),
)
def test_when_any_events_appended_then_read_back_equal_and_verified(
    events: list[Any], durability: Any, max_batch: int
) -> None:
    """Any event sequence, either durability mode, any batch size: read == input, chain ok."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.sqlite"
        journal = SqliteJournal(path, durability=durability, max_batch=max_batch)
        try:
            for event in events:
                journal.append(event)
        finally:
            journal.close()
        reader = SqliteJournal(path)
        try:
            read = list(reader.read())
        finally:
            reader.close()
        assert [e for _, e in read] == events
        assert [seq for seq, _ in read] == list(range(1, len(events) + 1))
        result = verify_journal(path)
        assert result.ok, result.problem

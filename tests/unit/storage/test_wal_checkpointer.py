"""The WAL checkpointer opens its second connection without reading the file's bytes: a
plain descriptor closed in the process would drop SQLite's POSIX locks on the file, and
another process could then delete the WAL under the writer (commits lost to readers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.storage import connect as storage_connect
from bastion.venue_server.ledger import VenueLedger
from kit.journal_attacks import ENCRYPTION_KEY


@pytest.mark.parametrize("key", [None, ENCRYPTION_KEY], ids=["plaintext", "encrypted"])
def test_when_checkpointer_connects_then_file_header_read_only_by_first_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: bytes | None
) -> None:
    """The ledger's own open reads the header once; its checkpointer's open never does."""
    reads: list[Path] = []
    real = storage_connect.is_encrypted

    def counting(path: Path) -> bool | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(storage_connect, "is_encrypted", counting)
    ledger = VenueLedger(tmp_path / "ledger.sqlite", encryption_key=key)
    ledger.close()  # joins the checkpointer thread, which has connected by then
    assert reads == [tmp_path / "ledger.sqlite"]

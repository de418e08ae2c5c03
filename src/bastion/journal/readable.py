"""Reading the node's journal whichever backend holds it: ``ReadableJournal``.

The features that read a journal beside its writer (the audit trail, the paper/live and
arming checks at start, the incident bundle, ``bastion manifest``, ``bastion journal
export|stats``) read through ``ReadableJournal``. ``SqliteJournalReader`` (the file
opened ``mode=ro`` for each read) and ``bastion.journal.pg_reader.PostgresJournalReader``
(one autocommit connection, selects only) implement it and give the same answers for the
same events; neither writes. Such a feature keeps a ``bastion.journal.locator.JournalLocator``
and opens the journal when it reads (``JournalLocator.verify`` is the full check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, NamedTuple, Protocol

import msgspec

from bastion.errors import OperationalError
from bastion.journal._codec import JournalEvent, new_decoder
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.reader import (
    MAX_SEQ,
    JournalStats,
    export_jsonl,
    journal_stats,
    open_readonly,
)

__all__ = [
    "EventRecord",
    "ReadableJournal",
    "SqliteJournalReader",
    "decoded",
    "events_of_type",
]


class EventRecord(NamedTuple):
    """One journaled event as a reader finds it."""

    seq: int
    ts_ns: int
    type: str
    event: JournalEvent | None
    """None: its payload does not decode (or, sealed, does not open)."""


class ReadableJournal(Protocol):
    """A journal open for reading only; each call sees the journal's last commit."""

    where: str
    """How messages name it: the file, or ``postgresql journal 'NAME' (db@host:port)``."""

    def committed_seq(self) -> int:
        """The seq of the last committed event (0: none)."""
        ...

    def events_of(
        self,
        types: Sequence[str],
        *,
        after: int = 0,
        before: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[EventRecord]:
        """The events whose type (journal tag) is one of ``types``, with ``after < seq
        < before`` (None: no upper bound), by seq, descending if ``newest_first``."""
        ...

    def stats(self) -> JournalStats:
        """Counts and extents, as ``bastion journal stats`` prints them."""
        ...

    def export_jsonl(self, out: IO[bytes], *, from_seq: int = 1, to_seq: int | None = None) -> int:
        """Write events with ``from_seq <= seq <= to_seq`` (None: to the last) to ``out``
        as ``bastion journal export`` does; return how many."""
        ...

    def close(self) -> None: ...


def decoded(decode: Callable[[bytes], JournalEvent], payload: bytes) -> JournalEvent | None:
    """The event ``payload`` holds, or None when it does not decode."""
    try:
        return decode(payload)
    except (msgspec.DecodeError, TypeError):
        return None


def events_of_type(journal: ReadableJournal, type_name: str) -> list[tuple[int, JournalEvent]]:
    """Every event of type ``type_name`` as ``(seq, event)``, oldest first. One that does
    not decode is an ``OperationalError`` naming its seq (a check must not skip it)."""
    found: list[tuple[int, JournalEvent]] = []
    for record in journal.events_of((type_name,)):
        if record.event is None:
            raise OperationalError(f"{journal.where}: seq {record.seq}: undecodable payload")
        found.append((record.seq, record.event))
    return found


class SqliteJournalReader:
    """A SQLite journal read without writing it: each call opens the file ``mode=ro``
    (decrypted with ``keys.encryption``), so it may be used from any thread.

    ``NotAJournalError`` (``NoJournalYet`` when the file does not exist) or
    ``StorageKeyError`` at once if the file cannot be read as a journal."""

    def __init__(self, path: Path, keys: JournalKeys = PLAINTEXT) -> None:
        self.path = path
        self.where = str(path)
        self._keys = keys
        with open_readonly(path, keys.encryption):
            pass

    def __repr__(self) -> str:
        return f"SqliteJournalReader({self.where!r})"

    def committed_seq(self) -> int:
        with open_readonly(self.path, self._keys.encryption) as (db, _version):
            (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(last)

    def events_of(
        self,
        types: Sequence[str],
        *,
        after: int = 0,
        before: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[EventRecord]:
        if not types:
            return
        decode = new_decoder().decode
        marks = ",".join("?" * len(types))
        order = "DESC" if newest_first else "ASC"
        with open_readonly(self.path, self._keys.encryption) as (db, _version):
            rows = db.execute(
                f"SELECT seq, ts_ns, type, payload FROM events WHERE type IN ({marks}) "
                f"AND seq > ? AND seq < ? ORDER BY seq {order}",
                (*types, after, MAX_SEQ if before is None else before),
            )
            for seq, ts_ns, type_name, payload in rows:
                yield EventRecord(seq, ts_ns, type_name, decoded(decode, payload))

    def stats(self) -> JournalStats:
        return journal_stats(self.path, keys=self._keys)

    def export_jsonl(self, out: IO[bytes], *, from_seq: int = 1, to_seq: int | None = None) -> int:
        return export_jsonl(self.path, out, from_seq=from_seq, to_seq=to_seq, keys=self._keys)

    def close(self) -> None:
        """Nothing stays open between calls."""

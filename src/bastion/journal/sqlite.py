"""The journal, first version: every order event and fill appended to SQLite.

One table of events, each with a sequence number, its time, its type, the order
it concerns and a msgpack payload (the event struct, tagged, so it decodes back
to the same type). Appends are buffered in memory and committed by ``flush``
(the live node calls it every ``flush_interval_ms`` and on shutdown), so the
trading loop never waits on the disk. The ``runs`` table hands out the run
epoch that makes client order ids unique across restarts.

The schema is versioned in ``meta`` so later versions can migrate it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from bastion.errors import OperationalError
from bastion.model import events as ev

SCHEMA_VERSION = 1

JournalEvent = (
    ev.OrderInitialized
    | ev.OrderDenied
    | ev.OrderSubmitted
    | ev.OrderAccepted
    | ev.OrderRejected
    | ev.OrderPendingCancel
    | ev.OrderPendingReplace
    | ev.OrderCanceled
    | ev.OrderExpired
    | ev.OrderUpdated
    | ev.OrderCancelRejected
    | ev.OrderModifyRejected
    | ev.OrderFilled
    | ev.OrderTransitionRefused
    | ev.TradingStateChanged
    | ev.StrategyFailed
    | ev.CommandDenied
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    epoch INTEGER PRIMARY KEY,
    node_id TEXT NOT NULL,
    started_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    type TEXT NOT NULL,
    client_order_id TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_order ON events (client_order_id);
"""


class SqliteJournal:
    """Append-only event journal in a SQLite file (WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_version()
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        except sqlite3.Error as error:
            raise OperationalError(f"journal {path}: {error}") from error
        self._seq: int = row[0]
        self._buffer: list[tuple[int, int, str, str | None, bytes]] = []
        self._encoder = msgspec.msgpack.Encoder()

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise OperationalError(
                f"journal {self.path} has schema version {row[0]}, newer than this "
                f"bastion ({SCHEMA_VERSION}); upgrade bastion"
            )

    def begin_run(self, node_id: str, started_ns: int) -> int:
        """Record a new run and return its epoch (1, 2, 3…)."""
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO runs (node_id, started_ns) VALUES (?, ?)", (node_id, started_ns)
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, event: Any) -> None:
        """Buffer one event; it is durable after the next ``flush``."""
        self._seq += 1
        self._buffer.append(
            (
                self._seq,
                event.ts_ns,
                type(event).__name__,
                getattr(event, "client_order_id", None),
                self._encoder.encode(event),
            )
        )

    def flush(self) -> int:
        """Commit everything buffered; return how many events were written."""
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise OperationalError(f"journal {self.path}: write failed: {error}") from error
        return len(rows)

    def close(self) -> None:
        self.flush()
        self._db.close()

    def read(self) -> Iterator[tuple[int, JournalEvent]]:
        """Every committed event in sequence order, decoded."""
        decoder = msgspec.msgpack.Decoder(JournalEvent)
        for seq, payload in self._db.execute("SELECT seq, payload FROM events ORDER BY seq"):
            yield seq, decoder.decode(payload)

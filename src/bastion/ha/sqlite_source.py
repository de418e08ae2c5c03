"""A standby's read-only view of a SQLite journal (``TailSource``): the committed
records, read through a ``mode=ro`` connection while the leader writes (WAL lets a
reader follow a writer on the same host). It never takes the journal's write lock and
never changes the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bastion.errors import OperationalError
from bastion.ha.tail import ChainedSnapshot
from bastion.journal._codec import Chain, Row
from bastion.journal._integrity import COLUMNS, check_keying, read_keying
from bastion.journal.anchors import anchor_path
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.reader import NotAJournalError
from bastion.storage.connect import DB_ERRORS, connect

_READ_CHUNK: Final = 4096


class SqliteTailSource:
    """Committed records of the SQLite journal at ``path``, read-only."""

    def __init__(self, path: Path, *, keys: JournalKeys = PLAINTEXT) -> None:
        if not path.is_file():
            raise NotAJournalError(f"{path}: journal file not found")
        self.path = path
        self.chain = Chain(keys.chain)
        try:
            self._db = connect(path, key=keys.encryption, readonly=True, what="journal")
        except DB_ERRORS as error:
            raise NotAJournalError(f"{path}: cannot open: {error}") from error
        try:
            events = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            check_keying(
                path,
                read_keying(self._db),
                self.chain,
                events=events,
                anchors_exist=anchor_path(path).exists(),
            )
        except BaseException:
            self._db.close()
            raise

    def read(self, after: int) -> Iterator[Row]:
        last = after
        while True:
            rows = self._query(
                f"SELECT {COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, _READ_CHUNK),
            )
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def latest_snapshot(self) -> ChainedSnapshot | None:
        try:
            row = self._db.execute(
                "SELECT seq, ts_ns, payload, event_hash, digest FROM snapshots "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except DB_ERRORS as error:
            raise OperationalError(f"journal {self.path}: cannot read: {error}") from error
        return None if row is None else ChainedSnapshot(*row)

    def committed_seq(self) -> int:
        rows = self._query("SELECT MAX(seq) FROM events", ())
        return int(rows[0][0] or 0)

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except DB_ERRORS as error:
            raise OperationalError(f"journal {self.path}: cannot read: {error}") from error

"""A standby's read-only view of a PostgreSQL journal (``TailSource``): the committed
records as every backend chains them (payloads opened with the encryption key by
``PostgresJournalReader``), the newest snapshot, and a bounded wait for the next
commit on the journal's LISTEN/NOTIFY channel.

Two connections: one reads (the tail's ``poll`` and ``status``, on the node's loop),
one waits for commits (on a worker thread), so a status request never queues behind
a wait. It never writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.ha.tail import ChainedSnapshot
from bastion.journal._codec import Row
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.pg_reader import PostgresJournalReader


class PostgresTailSource:
    """Journal ``name``'s committed records in the PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        password: str | None = None,
        keys: JournalKeys = PLAINTEXT,
        statement_timeout_ms: int = 5_000,
    ) -> None:
        self.name = name
        self._reader = PostgresJournalReader(
            url,
            name=name,
            password=password,
            keys=keys,
            connect_timeout_s=2,
            statement_timeout_ms=statement_timeout_ms,
        )
        try:
            self._waiter = PostgresJournalReader(
                url,
                name=name,
                password=password,
                keys=keys,
                connect_timeout_s=2,
                statement_timeout_ms=statement_timeout_ms,
            )
        except BaseException:
            self._reader.close()
            raise

    def read(self, after: int) -> Iterator[Row]:
        return self._reader.records_after(after)

    def latest_snapshot(self) -> ChainedSnapshot | None:
        found = self._reader.newest_snapshot()
        return None if found is None else ChainedSnapshot(*found)

    def committed_seq(self) -> int:
        return self._reader.committed_seq()

    def wait_for_commit(self, after: int, timeout_s: float) -> int | None:
        """Block (a worker thread) until a commit past ``after`` or ``timeout_s``."""
        return self._waiter.wait_for_commit(after, timeout_s)

    def close(self) -> None:
        self._reader.close()
        self._waiter.close()

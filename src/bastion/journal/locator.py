"""``JournalLocator``: where a journal is and what reading it takes, for the features
that read the node's journal (``bastion.journal.readable``): a SQLite file and its keys,
or a PostgreSQL URL, journal name, password and keys. ``journal_locator`` in
``bastion.journal.factory`` makes one from the node's ``[journal]`` table. Its ``repr``
shows neither the keys nor the password.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.journal.anchors import anchor_path
from bastion.journal.config import Backend
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.readable import ReadableJournal, SqliteJournalReader
from bastion.journal.reader import NoJournalYet, VerifyResult, verify_journal
from bastion.storage.connect import is_encrypted

if TYPE_CHECKING:
    from bastion.journal.pg_reader import PostgresJournalReader

__all__ = ["JournalLocator"]


@dataclass(frozen=True, kw_only=True)
class JournalLocator:
    """Where a journal is and what reading it takes.

    ``path``: SQLite, the journal file; PostgreSQL, the local path the node names its own
    files after (control socket, arming, anchors, the paper/live marker's directory)."""

    backend: Backend
    path: Path
    keys: JournalKeys = field(default=PLAINTEXT, repr=False)
    url: str | None = None
    name: str | None = None
    password: str | None = field(default=None, repr=False)
    connect_timeout_s: int = 5

    @classmethod
    def sqlite(cls, path: Path, keys: JournalKeys = PLAINTEXT) -> JournalLocator:
        return cls(backend="sqlite", path=path, keys=keys)

    @classmethod
    def postgres(
        cls,
        url: str,
        *,
        name: str,
        path: Path,
        password: str | None = None,
        keys: JournalKeys = PLAINTEXT,
        connect_timeout_s: int = 5,
    ) -> JournalLocator:
        return cls(
            backend="postgres",
            path=path,
            keys=keys,
            url=url,
            name=name,
            password=password,
            connect_timeout_s=connect_timeout_s,
        )

    @property
    def where(self) -> str:
        """How messages name the journal before it is opened."""
        return str(self.path) if self.backend == "sqlite" else f"postgresql journal {self.name!r}"

    @property
    def config_key(self) -> str:
        """The config key that says which journal this is."""
        return "journal.path" if self.backend == "sqlite" else "journal.name"

    def open(self) -> ReadableJournal:
        """The journal, open for reading (close it: ``contextlib.closing``).

        ``NotAJournalError`` (``NoJournalYet``: nothing journaled there yet),
        ``StorageKeyError`` (a key missing or wrong), or ``OperationalError`` (the
        database cannot be reached; never holding its password)."""
        if self.backend == "sqlite":
            return SqliteJournalReader(self.path, self.keys)
        return self._postgres_reader()

    def verify(self) -> VerifyResult:
        """Check the whole journal, as ``bastion journal verify`` does: every record's
        seq, chain, payload and seal, every snapshot, and each anchor in the local
        anchors file (``anchor_path(path)``). Raises as ``open`` does."""
        if self.backend == "sqlite":
            return verify_journal(self.path, keys=self.keys)
        with closing(self._postgres_reader()) as reader:
            return reader.verify(anchors=anchor_path(self.path))

    def _postgres_reader(self) -> PostgresJournalReader:
        from bastion.journal.pg_reader import PostgresJournalReader

        assert self.url is not None and self.name is not None
        return PostgresJournalReader(
            self.url,
            name=self.name,
            password=self.password,
            keys=self.keys,
            connect_timeout_s=self.connect_timeout_s,
        )

    def open_existing(self) -> ReadableJournal | None:
        """As ``open``, but None when nothing is journaled there yet (a first start)."""
        try:
            return self.open()
        except NoJournalYet:
            return None

    def unreadable_without_key(self) -> bool:
        """A SQLite file that looks encrypted while no encryption key is given: without
        the key it cannot even be told from a file that is not a journal."""
        return (
            self.backend == "sqlite"
            and self.keys.encryption is None
            and bool(is_encrypted(self.path))
        )

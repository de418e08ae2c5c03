"""The event journal (SQLite)."""

from bastion.journal.config import JournalConfig
from bastion.journal.sqlite import JournalEvent, SqliteJournal

__all__ = ["JournalConfig", "JournalEvent", "SqliteJournal"]

"""The event journal (a SQLite file, or PostgreSQL): append-only, hash-chained, with
read-only inspection tools (``readable``: what the features that read it take)."""

from bastion.journal.config import JournalConfig
from bastion.journal.reader import (
    ExportedRecord,
    JournalStats,
    NotAJournalError,
    VerifyResult,
    export_jsonl,
    journal_stats,
    verify_journal,
)
from bastion.journal.sqlite import JournalEvent, SqliteJournal

__all__ = [
    "ExportedRecord",
    "JournalConfig",
    "JournalEvent",
    "JournalStats",
    "NotAJournalError",
    "SqliteJournal",
    "VerifyResult",
    "export_jsonl",
    "journal_stats",
    "verify_journal",
]

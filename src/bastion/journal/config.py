"""Journal configuration."""

from __future__ import annotations

import msgspec


class JournalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where order events and fills are appended (a SQLite file, WAL mode).

    ``flush_interval_ms``: how often buffered events are committed by the live node;
    everything buffered is committed on shutdown.
    """

    path: str = "journal.sqlite"
    flush_interval_ms: int = 5

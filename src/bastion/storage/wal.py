"""Checkpoint an SQLite WAL file off the hot path.

In WAL mode with ``synchronous=NORMAL`` a commit does not fsync; the checkpoint
that copies the log back into the database does. Left to SQLite, that checkpoint
runs inside whichever commit crosses the threshold, stalling it for as long as
the disk takes. ``WalCheckpointer`` turns automatic checkpoints off on the
writer's connection and runs a PASSIVE checkpoint from its own connection on a
background thread instead: it never blocks the writer, and the log stays small.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import structlog

from bastion.storage.connect import DB_ERRORS, STORAGE_ERRORS, connect

log = structlog.get_logger("bastion.sqlite")


class WalCheckpointer:
    """A daemon thread that checkpoints ``path`` every ``interval_s``."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        *,
        interval_s: float = 0.5,
        key: bytes | None = None,
    ) -> None:
        """``key``: the file's encryption key (its connection opens it as the writer's)."""
        writer.execute("PRAGMA wal_autocheckpoint=0")
        self._path = path
        self._key = key
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint-{path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            db = connect(
                self._path,
                key=self._key,
                create=False,
                isolation_level=None,
                check_same_thread=False,
                encrypted=self._key is not None,  # the writer has it open: no peeking
            )
        except STORAGE_ERRORS as error:
            log.error("wal_checkpointer_failed", path=str(self._path), error=str(error))
            return
        try:
            while not self._stop.wait(self._interval_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except DB_ERRORS as error:  # busy or closing: try again next time
                    log.debug("wal_checkpoint_skipped", path=str(self._path), error=str(error))
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except DB_ERRORS:
            pass
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

"""A client-side bound on every journal transaction.

``statement_timeout`` is enforced by the server and ``tcp_user_timeout`` by the kernel
when packets go unacknowledged; neither fires when the server (or a proxy before it)
accepts the bytes and then never answers: a stopped postmaster, a hung disk. So each
write transaction is armed here with a deadline; past it the connection's socket is
shut down, the blocked call fails at once, and the journal refuses further events.
One thread per journal (started on first use, joined by ``close``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import structlog

log = structlog.get_logger("bastion.journal")


class Watchdog:
    """Shuts ``conn``'s socket down if an armed transaction outlives ``limit_s``."""

    def __init__(self, conn: psycopg.Connection[Any], limit_s: float, what: str) -> None:
        self._conn = conn
        self.limit_s = limit_s
        self._what = what
        self._deadline: float | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.fired = False

    @contextmanager
    def armed(self) -> Iterator[None]:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-pg-journal-watchdog", daemon=True
                )
                self._thread.start()
            self._deadline = time.monotonic() + self.limit_s
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self.fired = True
                log.error("journal_db_unresponsive", journal=self._what, limit_s=self.limit_s)
                with suppress(OSError, psycopg.Error):
                    fd = self._conn.pgconn.socket
                    # a dup of the connection's socket: shutting it ends the blocked call
                    with socket.socket(fileno=socket.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

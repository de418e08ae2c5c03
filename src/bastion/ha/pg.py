"""One PostgreSQL connection of an HA member, every statement bounded in time: the
lease's (``bastion.ha.lease``) and the members table's (``bastion.ha.members``).

Each statement runs under ``statement_timeout`` and ``lock_timeout`` and under a local
watchdog that shuts the connection's socket if no answer came in time (a silent
partition, where the server's own timeout never fires, fails as fast as a refused
connection); connecting is bounded by libpq's ``connect_timeout``. A failed statement
drops the connection (the next one reconnects) and raises ``LeaseUnavailable``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import psycopg
import structlog

from bastion.errors import ConfigError, LeaseUnavailable

log = structlog.get_logger("bastion.ha")

CONNECT_TIMEOUT_S: Final = 2  # libpq's smallest

Connect = Callable[..., psycopg.Connection[Any]]


class BoundedConnection:
    """A lazily opened autocommit connection (one statement at a time; the methods hold
    a lock). ``what`` names the thing for errors ("the lease", "the members table");
    ``ddl`` runs once after each connect (``CREATE TABLE IF NOT EXISTS ...``)."""

    def __init__(
        self,
        *,
        group: str,
        member: str,
        what: str,
        url: str,
        password: str | None,
        timeout_ms: int,
        ddl: str,
        connect: Connect = psycopg.connect,
    ) -> None:
        self.group = group
        self.member = member
        self.what = what
        self.timeout_ms = timeout_ms
        self._url = url
        self._password = password
        self._ddl = ddl
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def one(self, query: str, params: Mapping[str, object]) -> tuple[Any, ...] | None:
        """The first row of one statement (None: no row)."""
        rows = self._run(query, params, first=True)
        return rows[0] if rows else None

    def all(self, query: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """Every row of one statement."""
        return self._run(query, params, first=False)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _run(
        self, query: str, params: Mapping[str, object], *, first: bool
    ) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            watchdog = threading.Timer(self.timeout_ms / 1000 + 0.05, _shut, args=(conn,))
            watchdog.daemon = True
            watchdog.start()
            try:
                cursor = conn.execute(query, params)
                if cursor.description is None:
                    return []
                if first:
                    row = cursor.fetchone()
                    return [] if row is None else [row]
                return cursor.fetchall()
            except psycopg.Error as error:
                self._drop()
                raise LeaseUnavailable(
                    f"HA group '{self.group}': {self.what}'s PostgreSQL did not answer "
                    f"in time or failed: {first_line(error)}"
                ) from None
            finally:
                watchdog.cancel()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout_ms = self.timeout_ms
        try:
            conn = self._connect(
                self._url,
                password=self._password,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=f"bastion-ha {self.member}"[:63],
                options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                keepalives=1,
                keepalives_idle=1,
                keepalives_interval=1,
                keepalives_count=2,
                tcp_user_timeout=timeout_ms + 100,
            )
        except psycopg.Error as error:
            text = first_line(error)
            if "password authentication failed" in text or "no password supplied" in text:
                raise ConfigError(
                    f"HA group '{self.group}': PostgreSQL refused {self.what}'s "
                    "credentials (password authentication failed): check ha.password "
                    "(or journal.password) and the role in the URL"
                ) from None
            raise LeaseUnavailable(
                f"HA group '{self.group}': cannot connect to {self.what}'s PostgreSQL: {text}"
            ) from None
        try:
            conn.execute(self._ddl)
        except (
            psycopg.errors.UniqueViolation,
            psycopg.errors.DuplicateTable,
            psycopg.errors.DuplicateObject,
        ):
            pass  # another member created it at the same moment
        except psycopg.Error as error:
            conn.close()
            raise LeaseUnavailable(
                f"HA group '{self.group}': cannot prepare {self.what}'s table: {first_line(error)}"
            ) from None
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("ha_connection_close_failed", group=self.group, what=self.what)


def _shut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket (from the watchdog's thread): a statement blocked
    on a silent network returns at once with an error."""
    try:
        fd = os.dup(conn.fileno())
    except (OSError, psycopg.Error):
        return
    with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""The drill's scratch PostgreSQL database: made new for one drill, dropped after it.

``[dr] scratch_url`` names a server (and a database there to connect to) that the drill
may write. Each drill creates a database of its own on that server
(``bastion_drill_<time>_<random>``), restores the journal into it under the journal's
own name, recovers from it and drops it (unless kept). A new database, not a scratch
journal name beside the source's: a sealed payload's seal binds the journal's name, so
the rows as stored only open under that name; and a database the drill made itself can
never be the source's, whichever server ``scratch_url`` points at.

Nothing is written in the database ``scratch_url`` names: the drill only connects there
to create and drop its own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bastion.errors import BackupError, OperationalError
from bastion.journal._pg_schema import connect, pg_error

log = structlog.get_logger("bastion.backup")

PREFIX: Final = "bastion_drill_"
_TIMEOUT_MS: Final = 60_000


@dataclass(frozen=True)
class ScratchServer:
    """Where a drill may create its database: a libpq URL (no password) and the
    password (``PGPASSWORD`` or the vault's; None: libpq's ``~/.pgpass``)."""

    url: str
    password: str | None = field(default=None, repr=False)

    def create(self, clock_ns: int) -> ScratchDatabase:
        """A new, empty database on the server, owned by the drill's role."""
        stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime(clock_ns / 1e9))
        name = f"{PREFIX}{stamp}_{secrets.token_hex(4)}"
        with self._maintenance() as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as error:
                raise pg_error(
                    f"dr.scratch_url: cannot create database {name}", error, self.password,
                    kind=BackupError,
                ) from None  # fmt: skip
        params = conninfo_to_dict(self.url)
        params["dbname"] = name
        log.info("dr_drill_scratch_created", database=name)
        return ScratchDatabase(server=self, name=name, url=make_conninfo(**params))  # type: ignore[arg-type]

    def _maintenance(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return connect(
                self.url,
                password=self.password,
                connect_timeout_s=10,
                statement_timeout_ms=_TIMEOUT_MS,
                application_name="bastion-dr-drill",
            )
        except OperationalError as error:
            raise BackupError(f"dr.scratch_url: {error}") from None


@dataclass(frozen=True)
class ScratchDatabase:
    """One drill's database (``url`` names it; the password is the server's)."""

    server: ScratchServer
    name: str
    url: str

    @property
    def password(self) -> str | None:
        return self.server.password

    def drop(self) -> None:
        """Drop it; a failure is logged (the database is left for an operator)."""
        try:
            with self.server._maintenance() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
        except psycopg.Error as error:
            problem = str(pg_error(self.name, error, self.password))
            log.warning("dr_drill_scratch_not_dropped", database=self.name, error=problem)
            return
        except BackupError as error:
            log.warning("dr_drill_scratch_not_dropped", database=self.name, error=str(error))
            return
        log.info("dr_drill_scratch_dropped", database=self.name)

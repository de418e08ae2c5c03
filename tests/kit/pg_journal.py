"""PostgreSQL journals for tests: opened from a kit URL (the password split off, as a
node gets it from the vault), located for the features that read them, written as a
twin of a SQLite journal (the same events in both, to compare what readers answer),
and their stored rows read or edited as a superuser."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bastion.journal.base import Journal
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.locator import JournalLocator
from bastion.journal.postgres import LEASES_DDL, PostgresJournal
from bastion.journal.sqlite import SqliteJournal
from kit.postgres import PostgresServer

NAME = "node-1"
SEALED_KEYS = JournalKeys(encryption=bytes(range(32)), chain=bytes(range(32, 64)))
"""The sealed and keyed PostgreSQL journals' keys in the tests (a vault holds them)."""

PG_NODE_CONFIG = """
strategies = []

[[instruments]]
id = "X.A"
tick_size = "0.01"

[feed]
instrument = "X.A"

[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
name = "node-1"
path = "node-1.pg"
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
"""
"""A node config journaling to PostgreSQL, sealed and keyed (``{url}``: the database)."""


def split_password(dsn: str) -> tuple[str, str]:
    """``dsn`` without its password (a libpq conninfo string), and the password."""
    params = conninfo_to_dict(dsn)
    password = str(params.pop("password"))
    return make_conninfo(**params), password  # type: ignore[arg-type]


def open_pg(
    dsn: str, state_dir: Path, *, name: str = NAME, keys: JournalKeys = PLAINTEXT, **kw: Any
) -> PostgresJournal:
    url, password = split_password(dsn)
    return PostgresJournal(
        url, name=name, path=state_dir / f"{name}.pg", password=password, keys=keys, **kw
    )


def pg_locator(
    dsn: str, state_dir: Path, *, name: str = NAME, keys: JournalKeys = PLAINTEXT
) -> JournalLocator:
    """Journal ``name`` as the features that read it find it (``open_pg``'s local path)."""
    url, password = split_password(dsn)
    return JournalLocator.postgres(
        url, name=name, path=state_dir / f"{name}.pg", password=password, keys=keys
    )


def twin_journals(
    root: Path,
    dsn: str,
    events: Iterable[Any],
    *,
    keys: JournalKeys = PLAINTEXT,
    node_id: str = NAME,
    started_ns: int = 1,
) -> tuple[JournalLocator, JournalLocator]:
    """One run of ``events`` journaled to the SQLite file ``root/twin.sqlite`` and to
    the PostgreSQL journal ``NAME`` (both with ``keys``): (SQLite, PostgreSQL) located
    for reading."""
    events = list(events)
    sqlite = SqliteJournal(root / "twin.sqlite", keys=keys)
    postgres = open_pg(dsn, root, keys=keys)
    for journal in (sqlite, postgres):
        _write(journal, node_id, started_ns, events)
    return JournalLocator.sqlite(sqlite.path, keys), pg_locator(dsn, root, keys=keys)


def _write(journal: Journal, node_id: str, started_ns: int, events: list[Any]) -> None:
    try:
        journal.begin_run(node_id, started_ns)
        for event in events:
            journal.append(event)
    finally:
        journal.close()


def dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


def stored_rows(server: PostgresServer, dsn: str, name: str = NAME) -> list[tuple[Any, ...]]:
    """Journal ``name``'s rows as stored (seq, ts_ns, type, client_order_id, payload,
    prev_hash, hash), by seq."""
    with server.superuser(dbname(dsn)) as conn:
        rows = conn.execute(
            "SELECT seq, ts_ns, type, client_order_id, payload, prev_hash, hash "
            "FROM bastion_events WHERE name = %s ORDER BY seq",
            (name,),
        ).fetchall()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def as_superuser(server: PostgresServer, dsn: str, query: str, *params: object) -> None:
    """Run ``query`` as the database's superuser (an insider with database access)."""
    with server.superuser(dbname(dsn)) as conn:
        conn.execute(query, params)


def set_lease(server: PostgresServer, dsn: str, name: str, epoch: int) -> None:
    """Write the lease row as the HA package does on a takeover (as the node's role)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEASES_DDL)
        conn.execute(
            "INSERT INTO bastion_leases VALUES (%s, %s, 'test', now() + interval '10 s', now()) "
            "ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, holder = EXCLUDED.holder",
            (name, epoch),
        )


def connect_as_node(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def journal_backend_pid(journal: PostgresJournal) -> int:
    """The server process serving ``journal``'s connection (to stop it: a stalled server)."""
    return int(journal._db.info.backend_pid)

"""The PostgreSQL journal's schema, and how a node connects to it.

One database holds many journals: every table is keyed by the journal's ``name`` (a
node id, or an HA group). The schema is created on open, under a transaction-scoped
advisory lock so two nodes opening at once do not race, and its version is kept in
``bastion_meta`` under the empty name. ``bastion_leases`` belongs to the HA package
(``bastion.ha``); it is created here exactly as that package creates it, so the
journal's fencing check and the lease agree whichever side starts first.

Connections (``connect``) carry the password from the vault as a separate parameter,
never in the URL; they time out connecting (``connect_timeout``), keep TCP alive and
give up on unacknowledged data (``tcp_user_timeout``), and bound every statement
(``statement_timeout``, ``lock_timeout``), so a partitioned database makes a write
fail in bounded time instead of hanging. Errors are translated with ``pg_error``,
which scrubs the password should libpq ever echo it.
"""

from __future__ import annotations

import hashlib
from typing import Final

import psycopg

from bastion.errors import OperationalError

SCHEMA_VERSION: Final = 1
_SCHEMA_LOCK: Final = 0x62617374696F6E  # "bastion": serializes schema creation
_LOCK_DOMAIN: Final = "bastion-journal-writer:"

LEASES_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bastion_leases (name text PRIMARY KEY, epoch bigint NOT NULL, "
    "holder text NOT NULL, expires_at timestamptz NOT NULL, renewed_at timestamptz NOT NULL)"
)

_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bastion_meta (name text NOT NULL, key text NOT NULL, "
    "value text NOT NULL, PRIMARY KEY (name, key))",
    "CREATE TABLE IF NOT EXISTS bastion_events (name text NOT NULL, seq bigint NOT NULL, "
    "ts_ns bigint NOT NULL, type text NOT NULL, client_order_id text, payload bytea NOT NULL, "
    "prev_hash bytea NOT NULL, hash bytea NOT NULL, PRIMARY KEY (name, seq))",
    "CREATE TABLE IF NOT EXISTS bastion_snapshots (name text NOT NULL, seq bigint NOT NULL, "
    "ts_ns bigint NOT NULL, event_hash bytea NOT NULL, payload bytea NOT NULL, "
    "digest bytea NOT NULL, PRIMARY KEY (name, seq))",
    "CREATE TABLE IF NOT EXISTS bastion_runs (name text NOT NULL, run bigint NOT NULL, "
    "node_id text NOT NULL, started_ns bigint NOT NULL, epoch bigint NOT NULL, "
    "PRIMARY KEY (name, run))",
    "CREATE TABLE IF NOT EXISTS bastion_torn_records (name text NOT NULL, seq bigint NOT NULL, "
    "found_ns bigint NOT NULL, problem text NOT NULL, ts_ns bigint, type text, "
    "client_order_id text, payload bytea, prev_hash bytea, hash bytea)",
    LEASES_DDL,
)


def describe(conn: psycopg.Connection[tuple[object, ...]] | None, name: str) -> str:
    """How messages name a journal: ``postgresql journal 'desk-1' (db@host:port)``."""
    if conn is None:
        return f"postgresql journal {name!r}"
    info = conn.info
    return f"postgresql journal {name!r} ({info.dbname}@{info.host}:{info.port})"


def scrub(text: str, password: str | None) -> str:
    """``text`` with the password (and its URL-quoted form) masked."""
    if password:
        from urllib.parse import quote

        for form in {password, quote(password, safe="")}:
            text = text.replace(form, "***")
    return text


def pg_error(
    what: str,
    error: BaseException,
    password: str | None,
    *,
    kind: type[OperationalError] = OperationalError,
) -> OperationalError:
    """A bastion error for a psycopg one, its message scrubbed of the password."""
    message = " ".join(str(error).split()) or type(error).__name__
    return kind(f"{what}: {scrub(message, password)}")


def connect(
    url: str,
    *,
    password: str | None,
    connect_timeout_s: int,
    statement_timeout_ms: int,
    application_name: str = "bastion-journal",
) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection with bounded waits (see the module docstring).

    ``OperationalError`` (never holding the password) if it cannot be made."""
    options = (
        f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms} "
        f"-c idle_in_transaction_session_timeout={max(statement_timeout_ms * 4, 10_000)}"
    )
    keepalive_s = max(1, statement_timeout_ms // 3000)
    try:
        return psycopg.connect(
            url,
            password=password,
            autocommit=True,
            connect_timeout=connect_timeout_s,
            keepalives=1,
            keepalives_idle=keepalive_s,
            keepalives_interval=keepalive_s,
            keepalives_count=3,
            tcp_user_timeout=statement_timeout_ms,
            application_name=application_name,
            options=options,
        )
    except psycopg.Error as error:
        raise pg_error("postgresql journal: cannot connect", error, password) from None


def prepare(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Create the tables (if need be) in one transaction; return the version found
    (0: a new database). A database from a newer bastion is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        exists = conn.execute("SELECT to_regclass('bastion_meta') IS NOT NULL").fetchone()
        found = 0
        if exists is not None and exists[0]:
            row = conn.execute(
                "SELECT value FROM bastion_meta WHERE name = '' AND key = 'schema_version'"
            ).fetchone()
            found = 0 if row is None else int(str(row[0]))
        if found > SCHEMA_VERSION:
            raise OperationalError(
                f"postgresql journal: the database has schema version {found}, newer than "
                f"this bastion ({SCHEMA_VERSION}); upgrade bastion"
            )
        for statement in _DDL:
            conn.execute(statement)
        if found != SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO bastion_meta VALUES ('', 'schema_version', %s) "
                "ON CONFLICT (name, key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION),),
            )
    return found


def writer_lock_key(name: str) -> int:
    """The advisory lock a fenceless writer holds for journal ``name`` (signed 64 bits)."""
    digest = hashlib.sha256((_LOCK_DOMAIN + name).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def notify_channel(name: str) -> str:
    """The LISTEN/NOTIFY channel on which journal ``name``'s commits are announced
    (payload: the committed seq). Hashed: a channel is an identifier of 63 bytes at most."""
    return "bastion_journal_" + hashlib.sha256(name.encode()).hexdigest()[:32]


def read_meta(conn: psycopg.Connection[tuple[object, ...]], name: str) -> dict[str, str]:
    rows = conn.execute("SELECT key, value FROM bastion_meta WHERE name = %s", (name,)).fetchall()
    return {str(key): str(value) for key, value in rows}


def write_meta(
    conn: psycopg.Connection[tuple[object, ...]], name: str, values: dict[str, str]
) -> None:
    for key, value in values.items():
        conn.execute(
            "INSERT INTO bastion_meta VALUES (%s, %s, %s) "
            "ON CONFLICT (name, key) DO UPDATE SET value = EXCLUDED.value",
            (name, key, value),
        )

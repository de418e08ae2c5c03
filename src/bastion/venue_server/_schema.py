"""The venue ledger's SQLite schema, its version (``PRAGMA user_version``) and migrations.

``MIGRATIONS[n]`` takes a file from version ``n + 1`` to ``n + 2``; a later version
appends one step. Creation or migration runs in one transaction together with the
new ``user_version``, so a file is never left half-migrated.

Version 2 adds the venue's fence (``bastion.venue_server.fencing``): ``session_epochs``,
the highest fencing epoch that logged on per session, and ``order_epochs``, every order,
cancel and replace with the epoch its ClOrdID carries, when it arrived, and whether the
fence refused it.

Money columns are exact text: ``Decimal`` strings for quantities, prices, notionals
and fees, ``Fraction`` strings ("p/q") for position cost and realized PnL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bastion.errors import OperationalError

SCHEMA_VERSION: Final = 2

_FENCE_TABLES: Final = (
    """CREATE TABLE session_epochs (
        session TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE order_epochs (
        account TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        cl_ord_id TEXT NOT NULL,
        epoch INTEGER,
        session_epoch INTEGER,
        received_ns INTEGER NOT NULL,
        refused TEXT
    )""",
    "CREATE INDEX order_epochs_account ON order_epochs (account)",
)

_SCHEMA: Final = (
    """CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        root_cl_ord_id TEXT NOT NULL,
        cl_ord_id TEXT NOT NULL,
        orig_cl_ord_id TEXT,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        time_in_force TEXT NOT NULL,
        quantity TEXT NOT NULL,
        price TEXT,
        cum_qty TEXT NOT NULL,
        cum_notional TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX orders_open ON orders (account, priority) WHERE status IN ('0', '1')",
    """CREATE TABLE cl_ord_ids (
        account TEXT NOT NULL,
        cl_ord_id TEXT NOT NULL,
        order_id TEXT NOT NULL REFERENCES orders (order_id),
        UNIQUE (account, cl_ord_id)
    )""",
    "CREATE INDEX cl_ord_ids_order ON cl_ord_ids (order_id)",
    """CREATE TABLE fills (
        exec_id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        order_id TEXT NOT NULL REFERENCES orders (order_id),
        cl_ord_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty TEXT NOT NULL,
        px TEXT NOT NULL,
        fee TEXT NOT NULL,
        fee_currency TEXT NOT NULL,
        liquidity TEXT NOT NULL,
        ts_ns INTEGER NOT NULL
    )""",
    "CREATE INDEX fills_account ON fills (account, symbol)",
    "CREATE INDEX fills_order ON fills (order_id)",
    """CREATE TABLE positions (
        account TEXT NOT NULL,
        symbol TEXT NOT NULL,
        net_qty TEXT NOT NULL,
        cost TEXT NOT NULL,
        realized TEXT NOT NULL,
        fees TEXT NOT NULL,
        n_fills INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (account, symbol)
    )""",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    *_FENCE_TABLES,
)

Migration = Callable[[sqlite3.Connection], None]


def _add_fence_tables(db: sqlite3.Connection) -> None:
    for statement in _FENCE_TABLES:
        db.execute(statement)


MIGRATIONS: Final[list[Migration]] = [_add_fence_tables]
assert len(MIGRATIONS) == SCHEMA_VERSION - 1


def prepare(db: sqlite3.Connection, path: Path) -> int:
    """Create or migrate the schema to ``SCHEMA_VERSION``; return the version found (0: new).

    A file from a newer bastion, or a SQLite file that is not a ledger, is refused
    with ``OperationalError``.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise OperationalError(
                f"venue ledger {path} has schema version {found}, newer than this "
                f"bastion ({SCHEMA_VERSION}); upgrade bastion"
            )
        if found == 0:
            if db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
                raise OperationalError(f"{path} is a SQLite file but not a venue ledger")
            for statement in _SCHEMA:
                db.execute(statement)
        else:
            for step in MIGRATIONS[found - 1 :]:
                step(db)
        if found != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return found

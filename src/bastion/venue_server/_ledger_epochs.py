"""The ledger's record of the venue's fence (``bastion.venue_server.fencing``):
``OrderEpochRow``, and the SQL of the ``session_epochs`` and ``order_epochs`` tables.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

_EPOCH_COLUMNS: Final = "account, msg_type, cl_ord_id, epoch, session_epoch, received_ns, refused"
_INSERT: Final = f"INSERT INTO order_epochs ({_EPOCH_COLUMNS}) VALUES ({', '.join('?' * 7)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEpochRow:
    """An order, cancel or replace as the venue's fence saw it (``bastion.venue_server.
    fencing``): the epoch its ClOrdID carries (None: none that names its sender), the
    session's highest epoch then (None: the session was not fenced), when it arrived, and
    why the fence refused it (None: passed on to the books)."""

    account: str
    msg_type: str
    cl_ord_id: str
    epoch: int | None
    session_epoch: int | None
    received_ns: int
    refused: str | None


def raise_session_epoch(
    db: sqlite3.Connection, session: str, account: str, epoch: int, ts_ns: int
) -> None:
    """``epoch`` becomes the session's highest if it is higher."""
    db.execute(
        "INSERT INTO session_epochs (session, account, epoch, updated_ns) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (session) DO UPDATE SET "
        "epoch = excluded.epoch, updated_ns = excluded.updated_ns "
        "WHERE excluded.epoch > session_epochs.epoch",
        (session, account, epoch, ts_ns),
    )


def insert_order_epoch(db: sqlite3.Connection, row: OrderEpochRow) -> None:
    db.execute(
        _INSERT,
        (
            row.account,
            row.msg_type,
            row.cl_ord_id,
            row.epoch,
            row.session_epoch,
            row.received_ns,
            row.refused,
        ),
    )


def session_epochs(db: sqlite3.Connection) -> dict[str, int]:
    """The highest fencing epoch that logged on, per session key."""
    return dict(db.execute("SELECT session, epoch FROM session_epochs").fetchall())


def order_epochs(db: sqlite3.Connection, account: str | None) -> list[OrderEpochRow]:
    """What the fence saw, in the order it arrived."""
    rows = db.execute(
        f"SELECT {_EPOCH_COLUMNS} FROM order_epochs WHERE (? IS NULL OR account = ?) "
        "ORDER BY rowid",
        (account, account),
    )
    return [
        OrderEpochRow(
            account=r[0],
            msg_type=r[1],
            cl_ord_id=r[2],
            epoch=r[3],
            session_epoch=r[4],
            received_ns=r[5],
            refused=r[6],
        )
        for r in rows
    ]

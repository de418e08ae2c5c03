"""The ledger's orders and their ClOrdID chains: ``OrderRow``, and the SQL of the
``orders`` and ``cl_ord_ids`` tables. ``VenueLedger`` (``bastion.venue_server.ledger``)
runs each write in its transaction and keeps the set of known ClOrdIDs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import bastion.venue_server._exact as _exact
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.venue_server.messages import OPEN_STATUSES, OrdStatusCode

_ORDER_COLUMNS: Final = (
    "order_id, account, root_cl_ord_id, cl_ord_id, orig_cl_ord_id, symbol, side, "
    "order_type, time_in_force, quantity, price, cum_qty, cum_notional, status, "
    "priority, created_ns, updated_ns"
)
_INSERT: Final = f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({', '.join('?' * 17)})"
_OPEN: Final = "status IN ('0', '1')"


@dataclass(slots=True, kw_only=True)
class OrderRow:
    """One order as the venue holds it. ``cl_ord_id`` is the latest id of its chain and
    ``orig_cl_ord_id`` the one it replaced; ``cum_notional`` is the exact sum of
    ``last_qty * last_px``; ``priority`` ranks resting orders (lower is earlier)."""

    account: str
    order_id: str
    root_cl_ord_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None
    cum_qty: Decimal
    cum_notional: Decimal
    status: OrdStatusCode
    priority: int
    created_ns: int
    updated_ns: int

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves_qty(self) -> Decimal:
        return _exact.sub(self.quantity, self.cum_qty) if self.is_open else _exact.ZERO


# -- writes ---------------------------------------------------------------------------
def insert(db: sqlite3.Connection, order: OrderRow) -> None:
    db.execute(_INSERT, _order_params(order))


def update(db: sqlite3.Connection, order: OrderRow) -> None:
    db.execute(
        "UPDATE orders SET cl_ord_id = ?, orig_cl_ord_id = ?, quantity = ?, price = ?, "
        "cum_qty = ?, cum_notional = ?, status = ?, priority = ?, updated_ns = ? "
        "WHERE order_id = ?",
        (
            order.cl_ord_id,
            order.orig_cl_ord_id,
            str(order.quantity),
            None if order.price is None else str(order.price),
            str(order.cum_qty),
            str(order.cum_notional),
            order.status,
            order.priority,
            order.updated_ns,
            order.order_id,
        ),
    )


def add_cl_ord_id(db: sqlite3.Connection, order: OrderRow) -> None:
    """The order's current ClOrdID joins its chain."""
    db.execute(
        "INSERT INTO cl_ord_ids (account, cl_ord_id, order_id) VALUES (?, ?, ?)",
        (order.account, order.cl_ord_id, order.order_id),
    )


# -- reads ----------------------------------------------------------------------------
def known_cl_ord_ids(db: sqlite3.Connection) -> set[tuple[str, str]]:
    """Every (account, ClOrdID) of every chain."""
    return {
        (account, cl_ord_id)
        for account, cl_ord_id in db.execute("SELECT account, cl_ord_id FROM cl_ord_ids")
    }


def by_order_id(db: sqlite3.Connection, order_id: str) -> OrderRow | None:
    row = db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
    ).fetchone()
    return None if row is None else _order_from(row)


def by_cl_ord_id(db: sqlite3.Connection, account: str, cl_ord_id: str) -> OrderRow | None:
    """The account's order that ``cl_ord_id`` names (any id of its replace chain)."""
    row = db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = "
        "(SELECT order_id FROM cl_ord_ids WHERE account = ? AND cl_ord_id = ?)",
        (account, cl_ord_id),
    ).fetchone()
    return None if row is None else _order_from(row)


def chain(db: sqlite3.Connection, order_id: str) -> list[str]:
    """Every ClOrdID the order has carried, oldest first."""
    rows = db.execute(
        "SELECT cl_ord_id FROM cl_ord_ids WHERE order_id = ? ORDER BY rowid", (order_id,)
    )
    return [cl_ord_id for (cl_ord_id,) in rows]


def open_orders(db: sqlite3.Connection, account: str | None) -> list[OrderRow]:
    """Open orders (New, PartiallyFilled) in time priority."""
    return _orders(db, f"{_OPEN} AND (? IS NULL OR account = ?) ORDER BY priority", account)


def all_orders(db: sqlite3.Connection, account: str | None) -> list[OrderRow]:
    """Every order, open or closed, in the order the venue received them."""
    return _orders(db, "(? IS NULL OR account = ?) ORDER BY rowid", account)


def _orders(db: sqlite3.Connection, where: str, account: str | None) -> list[OrderRow]:
    rows = db.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {where}", (account, account))
    return [_order_from(row) for row in rows]


def _order_params(o: OrderRow) -> tuple[Any, ...]:
    return (
        o.order_id,
        o.account,
        o.root_cl_ord_id,
        o.cl_ord_id,
        o.orig_cl_ord_id,
        o.symbol,
        o.side.value,
        o.order_type.value,
        o.time_in_force.value,
        str(o.quantity),
        None if o.price is None else str(o.price),
        str(o.cum_qty),
        str(o.cum_notional),
        o.status,
        o.priority,
        o.created_ns,
        o.updated_ns,
    )


def _order_from(row: tuple[Any, ...]) -> OrderRow:
    return OrderRow(
        order_id=row[0],
        account=row[1],
        root_cl_ord_id=row[2],
        cl_ord_id=row[3],
        orig_cl_ord_id=row[4],
        symbol=row[5],
        side=OrderSide(row[6]),
        order_type=OrderType(row[7]),
        time_in_force=TimeInForce(row[8]),
        quantity=Decimal(row[9]),
        price=None if row[10] is None else Decimal(row[10]),
        cum_qty=Decimal(row[11]),
        cum_notional=Decimal(row[12]),
        status=row[13],
        priority=row[14],
        created_ns=row[15],
        updated_ns=row[16],
    )

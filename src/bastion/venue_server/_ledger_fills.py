"""The ledger's executions and the positions they make: ``FillRow``, ``PositionRow``,
``apply_fill`` (average-cost netting, realized PnL exact), and the SQL of the ``fills``
and ``positions`` tables. ``VenueLedger`` (``bastion.venue_server.ledger``) records a
fill, its order and the position in one transaction, and keeps positions as last
committed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final

import bastion.venue_server._exact as _exact
from bastion.model.enums import OrderSide
from bastion.venue_server.messages import LiquidityCode

_FILL_COLUMNS: Final = (
    "exec_id, account, order_id, cl_ord_id, symbol, side, qty, px, fee, fee_currency, "
    "liquidity, ts_ns"
)
_POSITION_COLUMNS: Final = "account, symbol, net_qty, cost, realized, fees, n_fills, updated_ns"
_INSERT_FILL: Final = f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_SAVE_POSITION: Final = (
    f"INSERT OR REPLACE INTO positions ({_POSITION_COLUMNS}) VALUES ({', '.join('?' * 8)})"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FillRow:
    """One execution. ``liquidity`` is "1" (added, maker) or "2" (removed, taker)."""

    exec_id: str
    account: str
    order_id: str
    cl_ord_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    px: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: LiquidityCode
    ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionRow:
    """An account's netting position in one symbol (long > 0)."""

    account: str
    symbol: str
    net_qty: Decimal
    cost: Fraction
    realized: Fraction
    fees: Decimal
    n_fills: int
    updated_ns: int


def apply_fill(position: PositionRow | None, fill: FillRow) -> PositionRow:
    """The position after ``fill``: average-cost netting, realized PnL exact."""
    net, cost, realized, fees, n = (
        (_exact.ZERO, Fraction(0), Fraction(0), _exact.ZERO, 0)
        if position is None
        else (position.net_qty, position.cost, position.realized, position.fees, position.n_fills)
    )
    sign = 1 if fill.side is OrderSide.BUY else -1
    held, qty, px = Fraction(net), Fraction(fill.qty), Fraction(fill.px)
    if held == 0 or (held > 0) == (sign > 0):
        cost += sign * qty * px
    else:
        closing = min(qty, abs(held))
        removed = cost * closing / abs(held)
        realized += (closing * px if held > 0 else -closing * px) - removed
        cost += sign * (qty - closing) * px - removed
    net = _exact.add(net, fill.qty) if sign > 0 else _exact.sub(net, fill.qty)
    return PositionRow(
        account=fill.account,
        symbol=fill.symbol,
        net_qty=net,
        cost=cost if net else Fraction(0),
        realized=realized,
        fees=_exact.add(fees, fill.fee),
        n_fills=n + 1,
        updated_ns=fill.ts_ns,
    )


# -- writes ---------------------------------------------------------------------------
def insert_fill(db: sqlite3.Connection, fill: FillRow) -> None:
    db.execute(
        _INSERT_FILL,
        (
            fill.exec_id,
            fill.account,
            fill.order_id,
            fill.cl_ord_id,
            fill.symbol,
            fill.side.value,
            str(fill.qty),
            str(fill.px),
            str(fill.fee),
            fill.fee_currency,
            fill.liquidity,
            fill.ts_ns,
        ),
    )


def save_position(db: sqlite3.Connection, position: PositionRow) -> None:
    """The account's position in the symbol, replaced."""
    db.execute(
        _SAVE_POSITION,
        (
            position.account,
            position.symbol,
            str(position.net_qty),
            str(position.cost),
            str(position.realized),
            str(position.fees),
            position.n_fills,
            position.updated_ns,
        ),
    )


# -- reads ----------------------------------------------------------------------------
def fills(db: sqlite3.Connection, account: str | None, symbol: str | None) -> list[FillRow]:
    """Executions in the order they happened."""
    rows = db.execute(
        f"SELECT {_FILL_COLUMNS} FROM fills WHERE (? IS NULL OR account = ?) "
        "AND (? IS NULL OR symbol = ?) ORDER BY rowid",
        (account, account, symbol, symbol),
    )
    return [_fill_from(row) for row in rows]


def positions(db: sqlite3.Connection, account: str | None) -> list[PositionRow]:
    rows = db.execute(
        f"SELECT {_POSITION_COLUMNS} FROM positions WHERE (? IS NULL OR account = ?) "
        "ORDER BY account, symbol",
        (account, account),
    )
    return [_position_from(row) for row in rows]


def position(db: sqlite3.Connection, account: str, symbol: str) -> PositionRow | None:
    row = db.execute(
        f"SELECT {_POSITION_COLUMNS} FROM positions WHERE account = ? AND symbol = ?",
        (account, symbol),
    ).fetchone()
    return None if row is None else _position_from(row)


def position_state(p: PositionRow) -> tuple[Decimal, Fraction, Fraction, Decimal, int]:
    """What a replay of the fills must reproduce of a position."""
    return (p.net_qty, p.cost, p.realized, p.fees, p.n_fills)


def _fill_from(row: tuple[Any, ...]) -> FillRow:
    return FillRow(
        exec_id=row[0],
        account=row[1],
        order_id=row[2],
        cl_ord_id=row[3],
        symbol=row[4],
        side=OrderSide(row[5]),
        qty=Decimal(row[6]),
        px=Decimal(row[7]),
        fee=Decimal(row[8]),
        fee_currency=row[9],
        liquidity=row[10],
        ts_ns=row[11],
    )


def _position_from(row: tuple[Any, ...]) -> PositionRow:
    return PositionRow(
        account=row[0],
        symbol=row[1],
        net_qty=Decimal(row[2]),
        cost=Fraction(row[3]),
        realized=Fraction(row[4]),
        fees=Decimal(row[5]),
        n_fills=row[6],
        updated_ns=row[7],
    )

"""The venue simulator's persistent ledger: orders, ClOrdID chains, fills, positions, ids.

One SQLite file (WAL, ``synchronous=NORMAL``: a commit survives the process
crashing, which is what the simulator must outlive). Every mutation is one
transaction, and every transaction also saves the id counters, so an order id or
exec id that has been reported is never handed out again after a restart.

Quantities and prices are exact ``Decimal``s in instrument units; a position's
``cost`` (signed ``qty * px`` of the open quantity) and ``realized`` PnL are exact
``Fraction``s in the same ``qty * px`` units (no contract multiplier), so a
replay of the fills (``verify``) reproduces them exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import bastion.venue_server._exact as _exact
from bastion.errors import OperationalError
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.storage.connect import DB_ERRORS, STORAGE_ERRORS, connect
from bastion.storage.wal import WalCheckpointer
from bastion.venue_server._schema import SCHEMA_VERSION, prepare
from bastion.venue_server.messages import OPEN_STATUSES, LiquidityCode, OrdStatusCode

__all__ = [
    "SCHEMA_VERSION",
    "Counter",
    "FillRow",
    "OrderEpochRow",
    "OrderRow",
    "PositionRow",
    "VenueLedger",
    "apply_fill",
]

Counter = Literal["order", "exec", "priority"]
_COUNTERS: Final[tuple[Counter, ...]] = ("order", "exec", "priority")

_ORDER_COLUMNS: Final = (
    "order_id, account, root_cl_ord_id, cl_ord_id, orig_cl_ord_id, symbol, side, "
    "order_type, time_in_force, quantity, price, cum_qty, cum_notional, status, "
    "priority, created_ns, updated_ns"
)
_FILL_COLUMNS: Final = (
    "exec_id, account, order_id, cl_ord_id, symbol, side, qty, px, fee, fee_currency, "
    "liquidity, ts_ns"
)
_POSITION_COLUMNS: Final = "account, symbol, net_qty, cost, realized, fees, n_fills, updated_ns"
_EPOCH_COLUMNS: Final = "account, msg_type, cl_ord_id, epoch, session_epoch, received_ns, refused"
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


class VenueLedger:
    """The simulator's durable books in one SQLite file (single-threaded use)."""

    def __init__(self, path: Path, *, encryption_key: bytes | None = None) -> None:
        """``encryption_key``: 32 bytes to keep the books encrypted (SQLCipher), or None."""
        self.path = path
        try:
            self._db = connect(path, key=encryption_key, what="venue ledger")
        except STORAGE_ERRORS as error:
            raise OperationalError(f"venue ledger {path}: {error}") from error
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self.migrated_from = prepare(self._db, path)
            saved = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        except BaseException as error:
            self._db.close()
            if isinstance(error, DB_ERRORS):
                raise OperationalError(f"venue ledger {path}: {error}") from error
            raise
        self._counters: dict[Counter, int] = {name: int(saved.get(name, 0)) for name in _COUNTERS}
        self._batch_db: sqlite3.Connection | None = None
        # positions as last committed (a fill reads its position without a query)
        self._positions: dict[tuple[str, str], PositionRow] = {}
        self._ids: set[tuple[str, str]] | None = None  # see _known_ids
        self._saved_counters = dict(self._counters)
        self._checkpointer = WalCheckpointer(path, self._db, key=encryption_key)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        self._checkpointer.stop()
        self._db.close()

    def __enter__(self) -> VenueLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- ids --------------------------------------------------------------------------
    def take_id(self, counter: Counter) -> int:
        """The next number of ``counter`` (from 1); saved by the next transaction."""
        self._counters[counter] = value = self._counters[counter] + 1
        return value

    # -- mutations (one transaction each) ---------------------------------------------
    def save_counters(self) -> None:
        """Persist the id counters alone (before reporting an id no other write carries)."""
        with self._transaction():
            pass

    def insert_order(self, order: OrderRow) -> None:
        """Record a new (accepted or rejected) order and its ClOrdID."""
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({_marks(17)})", _order_params(order)
            )
            self._add_cl_ord_id(db, order)

    def update_order(self, order: OrderRow, *, new_cl_ord_id: bool = False) -> None:
        """Save an order's changed state; ``new_cl_ord_id`` records its new chain id."""
        with self._transaction() as db:
            self._update(db, order)
            if new_cl_ord_id:
                self._add_cl_ord_id(db, order)

    def record_fill(self, order: OrderRow, fill: FillRow) -> PositionRow:
        """Record an execution, the order it fills and the account's position, atomically."""
        with self._transaction() as db:
            self._update(db, order)
            db.execute(
                f"INSERT INTO fills ({_FILL_COLUMNS}) VALUES ({_marks(12)})",
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
            key = (fill.account, fill.symbol)
            before = (
                self._positions[key]
                if key in self._positions
                else self._position(db, fill.account, fill.symbol)
            )
            position = apply_fill(before, fill)
            db.execute(
                f"INSERT OR REPLACE INTO positions ({_POSITION_COLUMNS}) VALUES ({_marks(8)})",
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
            self._positions[key] = position  # kept only if the transaction commits
        return position

    def raise_session_epoch(self, session: str, account: str, epoch: int, ts_ns: int) -> None:
        """Remember ``epoch`` as the highest that logged on to ``session`` (if it is)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO session_epochs (session, account, epoch, updated_ns) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session) DO UPDATE SET "
                "epoch = excluded.epoch, updated_ns = excluded.updated_ns "
                "WHERE excluded.epoch > session_epochs.epoch",
                (session, account, epoch, ts_ns),
            )

    def record_order_epoch(self, row: OrderEpochRow) -> None:
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO order_epochs ({_EPOCH_COLUMNS}) VALUES ({_marks(7)})",
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

    # -- queries ----------------------------------------------------------------------
    def session_epochs(self) -> dict[str, int]:
        """The highest fencing epoch that logged on, per session key."""
        return dict(self._db.execute("SELECT session, epoch FROM session_epochs").fetchall())

    def order_epochs(self, account: str | None = None) -> list[OrderEpochRow]:
        """What the fence saw, in the order it arrived."""
        rows = self._db.execute(
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

    def order(self, order_id: str) -> OrderRow | None:
        row = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else _order_from(row)

    def find(self, account: str, cl_ord_id: str) -> OrderRow | None:
        """The account's order that ``cl_ord_id`` names (any id of its replace chain)."""
        if (account, cl_ord_id) not in self._known_ids():
            return None  # the usual case, a new order: no query
        row = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = "
            "(SELECT order_id FROM cl_ord_ids WHERE account = ? AND cl_ord_id = ?)",
            (account, cl_ord_id),
        ).fetchone()
        return None if row is None else _order_from(row)

    def chain(self, order_id: str) -> list[str]:
        """Every ClOrdID the order has carried, oldest first."""
        rows = self._db.execute(
            "SELECT cl_ord_id FROM cl_ord_ids WHERE order_id = ? ORDER BY rowid", (order_id,)
        )
        return [cl_ord_id for (cl_ord_id,) in rows]

    def open_orders(self, account: str | None = None) -> list[OrderRow]:
        """Open orders (New, PartiallyFilled) in time priority."""
        return self._orders(f"{_OPEN} AND (? IS NULL OR account = ?) ORDER BY priority", account)

    def orders(self, account: str | None = None) -> list[OrderRow]:
        """Every order, open or closed, in the order the venue received them."""
        return self._orders("(? IS NULL OR account = ?) ORDER BY rowid", account)

    def fills(self, account: str | None = None, symbol: str | None = None) -> list[FillRow]:
        """Executions in the order they happened."""
        rows = self._db.execute(
            f"SELECT {_FILL_COLUMNS} FROM fills WHERE (? IS NULL OR account = ?) "
            "AND (? IS NULL OR symbol = ?) ORDER BY rowid",
            (account, account, symbol, symbol),
        )
        return [_fill_from(row) for row in rows]

    def positions(self, account: str | None = None) -> list[PositionRow]:
        rows = self._db.execute(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE (? IS NULL OR account = ?) "
            "ORDER BY account, symbol",
            (account, account),
        )
        return [_position_from(row) for row in rows]

    def position(self, account: str, symbol: str) -> PositionRow | None:
        return self._position(self._db, account, symbol)

    def counter(self, counter: Counter) -> int:
        """The last number handed out by ``counter``."""
        return self._counters[counter]

    def verify(self) -> list[str]:
        """Problems found replaying the fills: positions and order fills must match them.

        An empty list means every position equals the replay of its fills and every
        order's filled quantity and notional equal the sum of its fills (and never
        exceed its quantity).
        """
        problems: list[str] = []
        replayed: dict[tuple[str, str], PositionRow] = {}
        per_order: dict[str, tuple[Decimal, Decimal]] = {}
        for fill in self.fills():
            key = (fill.account, fill.symbol)
            replayed[key] = apply_fill(replayed.get(key), fill)
            qty, notional = per_order.get(fill.order_id, (_exact.ZERO, _exact.ZERO))
            per_order[fill.order_id] = (
                _exact.add(qty, fill.qty),
                _exact.add(notional, _exact.mul(fill.qty, fill.px)),
            )
        stored = {(p.account, p.symbol): p for p in self.positions()}
        for key in sorted(stored.keys() | replayed.keys()):
            want, have = replayed.get(key), stored.get(key)
            if want is None or have is None or _pos_state(want) != _pos_state(have):
                problems.append(f"position {key}: stored {have}, fills give {want}")
        for order in self.orders():
            qty, notional = per_order.get(order.order_id, (_exact.ZERO, _exact.ZERO))
            if (order.cum_qty, order.cum_notional) != (qty, notional):
                problems.append(
                    f"order {order.order_id}: cum_qty {order.cum_qty} notional "
                    f"{order.cum_notional}, fills give {qty} and {notional}"
                )
            if order.cum_qty and order.cum_qty > order.quantity:  # (a rejected qty may be NaN)
                problems.append(f"order {order.order_id}: overfilled {order.cum_qty}")
        return problems

    # -- internals --------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for every write inside (nested writes join it).

        The simulator wraps each burst of inbound FIX messages in one batch, and its
        reports leave only after the batch commits: one commit per burst, not per write.
        """
        if self._batch_db is not None:
            yield
            return
        with self._transaction() as db:
            self._batch_db = db
            try:
                yield
            finally:
                self._batch_db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._batch_db is not None:
            yield self._batch_db
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                changed = [
                    (name, value)
                    for name, value in self._counters.items()
                    if self._saved_counters.get(name) != value
                ]
                if changed:
                    db.executemany(
                        "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", changed
                    )
                db.execute("COMMIT")
                self._saved_counters.update(changed)
            except BaseException:
                db.execute("ROLLBACK")
                self._positions.clear()  # may hold positions of the rolled-back writes
                self._ids = None  # likewise ids
                raise
        except DB_ERRORS as error:
            raise OperationalError(f"venue ledger {self.path}: {error}") from error

    def _orders(self, where: str, account: str | None) -> list[OrderRow]:
        rows = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {where}", (account, account)
        )
        return [_order_from(row) for row in rows]

    @staticmethod
    def _update(db: sqlite3.Connection, order: OrderRow) -> None:
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

    def _add_cl_ord_id(self, db: sqlite3.Connection, order: OrderRow) -> None:
        db.execute(
            "INSERT INTO cl_ord_ids (account, cl_ord_id, order_id) VALUES (?, ?, ?)",
            (order.account, order.cl_ord_id, order.order_id),
        )
        self._known_ids().add((order.account, order.cl_ord_id))

    def _known_ids(self) -> set[tuple[str, str]]:
        """Every (account, ClOrdID) in the ledger, loaded once and kept up to date."""
        if self._ids is None:
            self._ids = {
                (account, cl_ord_id)
                for account, cl_ord_id in self._db.execute(
                    "SELECT account, cl_ord_id FROM cl_ord_ids"
                )
            }
        return self._ids

    @staticmethod
    def _position(db: sqlite3.Connection, account: str, symbol: str) -> PositionRow | None:
        row = db.execute(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE account = ? AND symbol = ?",
            (account, symbol),
        ).fetchone()
        return None if row is None else _position_from(row)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _pos_state(p: PositionRow) -> tuple[Decimal, Fraction, Fraction, Decimal, int]:
    return (p.net_qty, p.cost, p.realized, p.fees, p.n_fills)


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

"""The venue simulator's persistent ledger: orders, ClOrdID chains, fills, positions, ids.

One SQLite file (WAL, ``synchronous=NORMAL``: a commit survives the process
crashing, which is what the simulator must outlive). Every mutation is one
transaction, and every transaction also saves the id counters, so an order id or
exec id that has been reported is never handed out again after a restart.

Quantities and prices are exact ``Decimal``s in instrument units; a position's
``cost`` (signed ``qty * px`` of the open quantity) and ``realized`` PnL are exact
``Fraction``s in the same ``qty * px`` units (no contract multiplier), so a
replay of the fills (``verify``) reproduces them exactly.

``VenueLedger`` owns the connection, the transactions, the id counters and what it
keeps in memory (positions as last committed, the known ClOrdIDs); the rows and the
SQL of each table are beside it: ``bastion.venue_server._ledger_orders`` (orders and
their ClOrdID chains), ``_ledger_fills`` (fills and positions), ``_ledger_epochs``
(the fence's record) and ``_schema`` (the schema and its migrations).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

import bastion.venue_server._exact as _exact
import bastion.venue_server._ledger_epochs as _epochs
import bastion.venue_server._ledger_fills as _fills
import bastion.venue_server._ledger_orders as _orders
from bastion.errors import OperationalError
from bastion.storage.connect import DB_ERRORS, STORAGE_ERRORS, connect
from bastion.storage.wal import WalCheckpointer
from bastion.venue_server._ledger_epochs import OrderEpochRow
from bastion.venue_server._ledger_fills import FillRow, PositionRow, apply_fill
from bastion.venue_server._ledger_orders import OrderRow
from bastion.venue_server._schema import SCHEMA_VERSION, prepare

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
            _orders.insert(db, order)
            self._add_cl_ord_id(db, order)

    def update_order(self, order: OrderRow, *, new_cl_ord_id: bool = False) -> None:
        """Save an order's changed state; ``new_cl_ord_id`` records its new chain id."""
        with self._transaction() as db:
            _orders.update(db, order)
            if new_cl_ord_id:
                self._add_cl_ord_id(db, order)

    def record_fill(self, order: OrderRow, fill: FillRow) -> PositionRow:
        """Record an execution, the order it fills and the account's position, atomically."""
        with self._transaction() as db:
            _orders.update(db, order)
            _fills.insert_fill(db, fill)
            key = (fill.account, fill.symbol)
            before = (
                self._positions[key]
                if key in self._positions
                else _fills.position(db, fill.account, fill.symbol)
            )
            position = apply_fill(before, fill)
            _fills.save_position(db, position)
            self._positions[key] = position  # kept only if the transaction commits
        return position

    def raise_session_epoch(self, session: str, account: str, epoch: int, ts_ns: int) -> None:
        """Remember ``epoch`` as the highest that logged on to ``session`` (if it is)."""
        with self._transaction() as db:
            _epochs.raise_session_epoch(db, session, account, epoch, ts_ns)

    def record_order_epoch(self, row: OrderEpochRow) -> None:
        with self._transaction() as db:
            _epochs.insert_order_epoch(db, row)

    # -- queries ----------------------------------------------------------------------
    def session_epochs(self) -> dict[str, int]:
        """The highest fencing epoch that logged on, per session key."""
        return _epochs.session_epochs(self._db)

    def order_epochs(self, account: str | None = None) -> list[OrderEpochRow]:
        """What the fence saw, in the order it arrived."""
        return _epochs.order_epochs(self._db, account)

    def order(self, order_id: str) -> OrderRow | None:
        return _orders.by_order_id(self._db, order_id)

    def find(self, account: str, cl_ord_id: str) -> OrderRow | None:
        """The account's order that ``cl_ord_id`` names (any id of its replace chain)."""
        if (account, cl_ord_id) not in self._known_ids():
            return None  # the usual case, a new order: no query
        return _orders.by_cl_ord_id(self._db, account, cl_ord_id)

    def chain(self, order_id: str) -> list[str]:
        """Every ClOrdID the order has carried, oldest first."""
        return _orders.chain(self._db, order_id)

    def open_orders(self, account: str | None = None) -> list[OrderRow]:
        """Open orders (New, PartiallyFilled) in time priority."""
        return _orders.open_orders(self._db, account)

    def orders(self, account: str | None = None) -> list[OrderRow]:
        """Every order, open or closed, in the order the venue received them."""
        return _orders.all_orders(self._db, account)

    def fills(self, account: str | None = None, symbol: str | None = None) -> list[FillRow]:
        """Executions in the order they happened."""
        return _fills.fills(self._db, account, symbol)

    def positions(self, account: str | None = None) -> list[PositionRow]:
        return _fills.positions(self._db, account)

    def position(self, account: str, symbol: str) -> PositionRow | None:
        return _fills.position(self._db, account, symbol)

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
            if (
                want is None
                or have is None
                or _fills.position_state(want) != _fills.position_state(have)
            ):
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

    def _add_cl_ord_id(self, db: sqlite3.Connection, order: OrderRow) -> None:
        _orders.add_cl_ord_id(db, order)
        self._known_ids().add((order.account, order.cl_ord_id))

    def _known_ids(self) -> set[tuple[str, str]]:
        """Every (account, ClOrdID) in the ledger, loaded once and kept up to date."""
        if self._ids is None:
            self._ids = _orders.known_cl_ord_ids(self._db)
        return self._ids

"""The venue ledger: round trips, ClOrdID chains, exact positions, verify, schema version."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from bastion.errors import OperationalError
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.venue_server.ledger import (
    SCHEMA_VERSION,
    FillRow,
    OrderEpochRow,
    OrderRow,
    VenueLedger,
)

T0 = 1_704_205_800_000_000_000


def order(order_id: str = "SIM-1", cl_ord_id: str = "c1", account: str = "A") -> OrderRow:
    return OrderRow(
        account=account,
        order_id=order_id,
        root_cl_ord_id=cl_ord_id,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=None,
        symbol="XYZ",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=Decimal(10),
        price=Decimal("100.01"),
        cum_qty=Decimal(0),
        cum_notional=Decimal(0),
        status="0",
        priority=1,
        created_ns=T0,
        updated_ns=T0,
    )


def fill(
    row: OrderRow, exec_id: str, qty: str, px: str, side: OrderSide = OrderSide.BUY
) -> FillRow:
    return FillRow(
        exec_id=exec_id,
        account=row.account,
        order_id=row.order_id,
        cl_ord_id=row.cl_ord_id,
        symbol=row.symbol,
        side=side,
        qty=Decimal(qty),
        px=Decimal(px),
        fee=Decimal("0.0750075"),
        fee_currency="USD",
        liquidity="2",
        ts_ns=T0 + 1,
    )


def filled(row: OrderRow, f: FillRow) -> OrderRow:
    row.cum_qty += f.qty
    row.cum_notional += f.qty * f.px
    row.status = "2" if row.cum_qty == row.quantity else "1"
    return row


def test_when_order_replaced_and_filled_then_reopened_ledger_returns_it_exactly(
    tmp_path: Path,
) -> None:
    """An order, its replace chain, a fill, the position and the id counters survive a reopen."""
    path = tmp_path / "venue.db"
    with VenueLedger(path) as ledger:
        row = order()
        assert ledger.take_id("order") == 1
        ledger.insert_order(row)
        row.orig_cl_ord_id, row.cl_ord_id = row.cl_ord_id, "c2"
        row.quantity = Decimal(12)
        ledger.update_order(row, new_cl_ord_id=True)
        exec_id = f"SIM-E{ledger.take_id('exec')}"
        f = fill(row, exec_id, "3", "100.01")
        ledger.record_fill(filled(row, f), f)
    with VenueLedger(path) as ledger:
        assert ledger.order("SIM-1") == row
        assert ledger.find("A", "c1") == row
        assert ledger.find("A", "c2") == row
        assert ledger.find("B", "c1") is None
        assert ledger.chain("SIM-1") == ["c1", "c2"]
        assert ledger.open_orders() == [row]
        assert ledger.open_orders("B") == []
        assert ledger.fills("A") == [f]
        (position,) = ledger.positions("A")
        assert (position.net_qty, position.cost, position.fees) == (
            Decimal(3),
            Fraction(30003, 100),
            Decimal("0.0750075"),
        )
        assert (ledger.counter("order"), ledger.counter("exec")) == (1, 1)
        assert ledger.take_id("exec") == 2
        assert ledger.verify() == []


def test_when_position_partly_closed_then_realized_pnl_and_cost_are_exact(tmp_path: Path) -> None:
    """Buy 3 @ 100.00 and 1 @ 100.01, sell 2 @ 101.00: realized and remaining cost are exact."""
    with VenueLedger(tmp_path / "venue.db") as ledger:
        row = order()
        ledger.insert_order(row)
        for exec_id, qty, px, side in [
            ("E1", "3", "100.00", OrderSide.BUY),
            ("E2", "1", "100.01", OrderSide.BUY),
            ("E3", "2", "101.00", OrderSide.SELL),
        ]:
            position = ledger.record_fill(row, fill(row, exec_id, qty, px, side))
        avg = Fraction(40001, 400)
        assert position.net_qty == 2
        assert position.realized == 2 * (101 - avg)
        assert position.cost == 2 * avg
        assert ledger.position("A", "XYZ") == position


def test_when_position_table_tampered_then_verify_reports_it(tmp_path: Path) -> None:
    """verify() replays the fills: a position that disagrees with them is named."""
    path = tmp_path / "venue.db"
    with VenueLedger(path) as ledger:
        row = order()
        ledger.insert_order(row)
        f = fill(row, "E1", "3", "100.01")
        ledger.record_fill(filled(row, f), f)
        assert ledger.verify() == []
    db = sqlite3.connect(path)
    db.execute("UPDATE positions SET net_qty = '4'")
    db.execute("UPDATE orders SET cum_qty = '2'")
    db.commit()
    db.close()
    with VenueLedger(path) as ledger:
        problems = ledger.verify()
    assert len(problems) == 2
    assert problems[0].startswith("position ('A', 'XYZ')")
    assert problems[1].startswith("order SIM-1")


def test_when_cl_ord_id_reused_by_account_then_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    """UNIQUE(account, cl_ord_id): a second order with a used id is refused whole."""
    with VenueLedger(tmp_path / "venue.db") as ledger:
        ledger.insert_order(order("SIM-1", "c1"))
        ledger.insert_order(order("SIM-2", "c1", account="B"))  # another account may use it
        with pytest.raises(OperationalError, match="UNIQUE"):
            ledger.insert_order(order("SIM-3", "c1"))
        assert ledger.order("SIM-3") is None
        assert [o.order_id for o in ledger.orders()] == ["SIM-1", "SIM-2"]


def test_when_counters_taken_then_saved_only_with_a_transaction(tmp_path: Path) -> None:
    """take_id advances in memory; the next transaction (here save_counters) persists it."""
    path = tmp_path / "venue.db"
    with VenueLedger(path) as ledger:
        ledger.take_id("exec")
        ledger.take_id("exec")
        ledger.save_counters()
        ledger.take_id("exec")  # never saved: nothing reported it
    with VenueLedger(path) as ledger:
        assert ledger.take_id("exec") == 3


def test_when_new_file_then_schema_version_in_user_version(tmp_path: Path) -> None:
    """A new ledger records SCHEMA_VERSION in PRAGMA user_version and uses WAL."""
    path = tmp_path / "venue.db"
    with VenueLedger(path) as ledger:
        assert ledger.migrated_from == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with VenueLedger(path) as ledger:
        assert ledger.migrated_from == SCHEMA_VERSION


def test_when_version_1_file_then_fence_tables_added_and_books_kept(tmp_path: Path) -> None:
    """A ledger of schema 1 (before the fence) is migrated in place: its orders stay, and
    the session epochs and order epochs are recorded from then on."""
    path = tmp_path / "venue.db"
    with VenueLedger(path) as ledger:
        ledger.insert_order(order())
    db = sqlite3.connect(path)
    db.execute("DROP TABLE order_epochs")
    db.execute("DROP TABLE session_epochs")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with VenueLedger(path) as ledger:
        assert ledger.migrated_from == 1
        assert [o.order_id for o in ledger.orders()] == ["SIM-1"]
        ledger.raise_session_epoch("FIX.4.4:SIM->NODE", "A", 3, T0)
        ledger.raise_session_epoch("FIX.4.4:SIM->NODE", "A", 2, T0 + 1)  # never lowered
        row = OrderEpochRow(
            account="A",
            msg_type="D",
            cl_ord_id="n-3-1",
            epoch=3,
            session_epoch=3,
            received_ns=T0,
            refused=None,
        )
        ledger.record_order_epoch(row)
    with VenueLedger(path) as ledger:
        assert ledger.migrated_from == SCHEMA_VERSION
        assert ledger.session_epochs() == {"FIX.4.4:SIM->NODE": 3}
        assert ledger.order_epochs("A") == [row]


def test_when_file_from_newer_bastion_then_refused(tmp_path: Path) -> None:
    """A ledger with a newer schema version is refused, not misread."""
    path = tmp_path / "venue.db"
    VenueLedger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(OperationalError, match="newer than this bastion"):
        VenueLedger(path)


def test_when_sqlite_file_is_not_a_ledger_then_refused(tmp_path: Path) -> None:
    """Another application's SQLite file is refused rather than written into."""
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE things (x)")
    db.close()
    with pytest.raises(OperationalError, match="not a venue ledger"):
        VenueLedger(path)

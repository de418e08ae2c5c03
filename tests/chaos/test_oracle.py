"""The oracle itself: silent on books that agree, and it names each kind of disagreement.

One real session (venue and node processes, an orderly stop) makes books that agree;
each test tampers with a copy of them the way a bug would, and expects the mismatch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from bastion.fix.codec import encode
from kit.chaos_harness import (
    Desk,
    alive,
    kill,
    node_fill_count,
    start_node,
    venue_process,
    wait_reconciled,
    write_desk,
)
from kit.chaos_oracle import compare, read_ledger
from kit.node_process import terminate
from kit.waiting import eventually

Tamper = Callable[[Desk], str]  # changes the copy; returns the text a mismatch must contain


@pytest.fixture(scope="module")
def agreed(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    """A desk whose node traded (fills, resting orders, cancels) and stopped in order."""
    desk = write_desk(tmp_path_factory.mktemp("agreed"), seed=3)
    with venue_process(desk) as venue:
        node = start_node(desk)
        try:
            wait_reconciled(desk, node, 1)
            eventually(
                lambda: alive(node, desk.log("node")) and node_fill_count(desk.journal) >= 3, 30
            )
            assert terminate(node) == 0
        finally:
            if node.poll() is None:
                kill(node)
        assert terminate(venue) == 0
    return desk


def _sql(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db, db:
        return db.execute(sql, params).fetchall()


def _drop_journaled_fill(desk: Desk) -> str:
    ((seq, payload),) = _sql(
        desk.journal, "SELECT seq, payload FROM events WHERE type = 'OrderFilled' LIMIT 1"
    )
    _sql(desk.journal, "DELETE FROM events WHERE seq = ?", seq)
    return f"fill {msgspec.msgpack.decode(payload)['exec_id']}: venue ("


def _journal_fill_twice(desk: Desk) -> str:
    ((payload, coid),) = _sql(
        desk.journal,
        "SELECT payload, client_order_id FROM events WHERE type = 'OrderFilled' LIMIT 1",
    )
    ((last,),) = _sql(desk.journal, "SELECT MAX(seq) FROM events")
    _sql(
        desk.journal,
        "INSERT INTO events (seq, ts_ns, type, client_order_id, payload) "
        "VALUES (?, 0, 'OrderFilled', ?, ?)",
        int(str(last)) + 1,
        coid,
        payload,
    )
    return "journaled as OrderFilled 2 times"


def _reopen_canceled_order(desk: Desk) -> str:
    canceled = [o for o in read_ledger(desk.ledger).orders if o["status"] == "4"]
    assert canceled, "the session canceled nothing"
    _sql(desk.ledger, "UPDATE orders SET status = '0' WHERE order_id = ?", canceled[0]["order_id"])
    return "venue OrdStatus 0, journal CANCELED"


def _venue_rejected_duplicate(desk: Desk) -> str:
    ((coid,),) = _sql(desk.ledger, "SELECT root_cl_ord_id FROM orders LIMIT 1")
    report = encode(
        "FIX.4.4",
        [(35, "8"), (34, "999999"), (37, "NONE"), (11, str(coid)), (150, "8"), (103, "6")],
    )
    _sql(
        desk.venue_store, "INSERT INTO fix_messages VALUES ('FIX.4.4:SIM->NODE', 999999, ?)", report
    )
    return f"venue rejected a duplicate ClOrdID {coid}"


def _node_sent_id_twice(desk: Desk) -> str:
    ((coid,),) = _sql(desk.ledger, "SELECT root_cl_ord_id FROM orders LIMIT 1")
    again = encode("FIX.4.4", [(35, "D"), (34, "999999"), (11, str(coid)), (55, "XYZ.SIM")])
    _sql(desk.node_store, "INSERT INTO fix_messages VALUES ('FIX.4.4:NODE->SIM', 999999, ?)", again)
    return f"node sent ClOrdID {coid} in 2 messages"


def _tear_a_record(desk: Desk) -> str:
    ((last,),) = _sql(desk.journal, "SELECT MAX(seq) FROM events")
    _sql(desk.journal, "UPDATE events SET payload = substr(payload, 1, 3) WHERE seq = ?", last)
    return f"journal seq {last}: undecodable"


def _venue_order_the_node_never_sent(desk: Desk) -> str:
    _sql(
        desk.ledger,
        "INSERT INTO orders SELECT 'SIM-X', account, 'chaos-999-1', 'chaos-999-1', NULL, symbol, "
        "side, order_type, time_in_force, quantity, price, '0', '0', '0', priority, created_ns, "
        "updated_ns FROM orders LIMIT 1",
    )
    return "venue order SIM-X (chaos-999-1)"


@pytest.mark.chaos
def test_when_books_agree_then_oracle_finds_no_mismatch(agreed: Desk, tmp_path: Path) -> None:
    """A session stopped in order: the journal and the ledger agree, and there was trading."""
    books = compare(agreed.copy(tmp_path / "desk"))
    assert books.mismatches == []
    assert books.venue_fills >= 3
    assert books.venue_orders == books.node_orders


@pytest.mark.chaos
@pytest.mark.parametrize(
    "tamper",
    [
        _drop_journaled_fill,
        _journal_fill_twice,
        _reopen_canceled_order,
        _venue_rejected_duplicate,
        _node_sent_id_twice,
        _tear_a_record,
        _venue_order_the_node_never_sent,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_when_books_disagree_then_oracle_names_it(
    agreed: Desk, tmp_path: Path, tamper: Tamper
) -> None:
    """Each tampering of a copy is reported with what differs."""
    desk = agreed.copy(tmp_path / "desk")
    expected = tamper(desk)
    mismatches = compare(desk).mismatches
    assert any(expected in m for m in mismatches), mismatches

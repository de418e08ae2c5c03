"""Reading a node's journal from a test: read-only while the node runs, whole once it
stopped; orders rebuilt from their events."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec

from bastion.journal.sqlite import JournalEvent, SqliteJournal
from bastion.model import events as ev
from bastion.model.enums import TERMINAL_STATUSES, OrderSide, OrderType
from bastion.model.orders import Order

_DECODER = msgspec.msgpack.Decoder(JournalEvent)


def peek_journal(path: Path) -> list[tuple[int, Any]]:
    """Committed events, read-only while the node may be writing; AssertionError if none yet."""
    if not path.is_file():
        raise AssertionError(f"no journal at {path} yet")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as db:
            rows = db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
    except sqlite3.Error as e:  # schema not created yet, or a writer holds a lock
        raise AssertionError(f"journal not readable yet: {e}") from e
    return [(seq, _DECODER.decode(payload)) for seq, payload in rows]


def read_journal(path: Path) -> list[tuple[int, Any]]:
    """Every event in the journal, through bastion's own reader (the node has exited)."""
    journal = SqliteJournal(path)
    try:
        return list(journal.read())
    finally:
        journal.close()


def replay_orders(events: list[tuple[int, Any]]) -> dict[str, Order]:
    """Each journaled order rebuilt by applying its events through the order state machine.

    An ``OrderTransitionRefused`` is what the OMS journals *instead of* an event it did
    not apply, so it is skipped, exactly as the node did.
    """
    orders: dict[str, Order] = {}
    for _, event in events:
        if isinstance(event, ev.OrderInitialized):
            orders[event.client_order_id] = Order(
                client_order_id=event.client_order_id,
                strategy_id=event.strategy_id,
                instrument_id=event.instrument_id,
                venue="SIM",
                side=event.side,
                order_type=event.order_type,
                quantity=event.quantity,
                price=event.price,
                time_in_force=event.time_in_force,
            )
        elif isinstance(event, ev.OrderEvent) and not isinstance(event, ev.OrderTransitionRefused):
            orders[event.client_order_id].apply(event)
    return orders


def assert_every_order_terminal(events: list[tuple[int, Any]]) -> dict[str, Order]:
    """Every journaled order ended (by the state machine and by its events); the orders."""
    orders = replay_orders(events)
    assert orders, "the journal has no orders"
    submitted = {e.client_order_id for _, e in events if isinstance(e, ev.OrderSubmitted)}
    assert submitted <= set(orders)
    open_left = {
        coid: o.status.value for coid, o in orders.items() if o.status not in TERMINAL_STATUSES
    }
    assert open_left == {}, f"orders not in a terminal state: {open_left}"
    # independently of the state machine: each order has an event that ends it
    ending = (ev.OrderCanceled, ev.OrderRejected, ev.OrderDenied, ev.OrderExpired)
    ended = {e.client_order_id for _, e in events if isinstance(e, ending)}
    filled_qty: dict[str, int] = {}
    for _, e in events:
        if isinstance(e, ev.OrderFilled):
            filled_qty[e.client_order_id] = filled_qty.get(e.client_order_id, 0) + e.last_qty
    ended |= {coid for coid, o in orders.items() if filled_qty.get(coid) == o.quantity}
    assert set(orders) <= ended
    return orders


def net_position(events: list[tuple[int, Any]]) -> int:
    """The net filled quantity (buys minus sells) in ``events``."""
    net = 0
    for _, e in events:
        if isinstance(e, ev.OrderFilled):
            net += e.last_qty if e.side is OrderSide.BUY else -e.last_qty
    return net


def trading_long_with_resting_orders(journal: Path) -> bool:
    """True once two limit orders rest and the position is 2 or more long (else AssertionError)."""
    events = peek_journal(journal)
    limits = {
        e.client_order_id
        for _, e in events
        if isinstance(e, ev.OrderInitialized) and e.order_type is OrderType.LIMIT
    }
    accepted = {e.client_order_id for _, e in events if isinstance(e, ev.OrderAccepted)}
    assert len(limits & accepted) >= 2, "resting orders not accepted yet"
    assert net_position(events) >= 2, "no position yet"
    return True


def halted_denials_after(journal: Path, seq: int, strategy: str) -> list[Any]:
    """The strategy's denials journaled after ``seq``; AssertionError while there are none."""
    denied = [
        e
        for s, e in peek_journal(journal)
        if s > seq and isinstance(e, ev.OrderDenied) and e.strategy_id == strategy
    ]
    assert denied, "no strategy order denied yet"
    return denied


def last_state_change(events: list[tuple[int, Any]]) -> tuple[int, ev.TradingStateChanged]:
    """The last ``TradingStateChanged`` and its seq; AssertionError if there is none."""
    changes = [(s, e) for s, e in events if isinstance(e, ev.TradingStateChanged)]
    assert changes, "no TradingStateChanged journaled"
    return changes[-1]

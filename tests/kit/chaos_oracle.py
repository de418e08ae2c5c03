"""The chaos tests' oracle: the node's journal against the venue's ledger, exactly.

Both are read read-only (SQLite files with ``mode=ro``; a PostgreSQL journal through
``PostgresJournalReader``, its records as stored), and the journal's msgpack payloads
are decoded into plain dicts, so the oracle shares no code with the node's recovery: it
folds the order events itself. ``compare`` returns the mismatches as sentences; an
empty list means the books agree: every venue order of the account is a journaled
order with the same client order id, side, type, quantity, price, status and filled
quantity; a journaled order the venue never saw ended REJECTED or DENIED; the fills
(ExecID, order, side, quantity, price) are the same sets with no ExecID journaled
twice; the net positions are equal; and no ClOrdID was used twice. ``compare`` reads
a single node's desk; ``compare_books`` any journal's events (an HA group's, from
``pg_journal_events``) with several members' FIX stores. The venue's ledger is checked
for a request of an older fencing epoch accepted after a newer one's first by
``kit.ha_oracle.epoch_violations``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from bastion.journal.pg_reader import PostgresJournalReader
from kit.chaos_harness import ACCOUNT, NODE_ID, PRICE_DECIMALS, SIZE_DECIMALS, Desk, read_only

Events = list[tuple[int, str, dict[str, Any]]]

# -- the node's journal ---------------------------------------------------------------------


def journal_events(journal: Path) -> tuple[Events, list[str]]:
    """Every record of a SQLite journal as (seq, type, payload as a plain dict), and the
    undecodable ones."""
    with closing(read_only(journal)) as db:
        rows = db.execute("SELECT seq, type, payload FROM events ORDER BY seq").fetchall()
    return _decoded(rows)


def pg_journal_events(url: str, *, name: str, password: str) -> tuple[Events, list[str]]:
    """The same for PostgreSQL journal ``name`` (its committed records, as stored)."""
    with PostgresJournalReader(url, name=name, password=password) as reader:
        rows = [
            (seq, type_name, payload)
            for seq, _ts, type_name, _coid, payload, *_ in reader.records_after(0)
        ]
    return _decoded(rows)


def _decoded(rows: list[tuple[int, str, bytes]]) -> tuple[Events, list[str]]:
    events, problems = [], []
    for seq, type_name, payload in rows:
        try:
            event = msgspec.msgpack.decode(payload)
        except (msgspec.DecodeError, TypeError) as error:
            problems.append(f"journal seq {seq}: undecodable {type_name} record: {error}")
            continue
        if not isinstance(event, dict) or event.get("type") != type_name:
            problems.append(f"journal seq {seq}: payload is not a {type_name} event")
            continue
        events.append((seq, type_name, event))
    return events, problems


_TERMINAL = {
    "OrderDenied": "DENIED",
    "OrderRejected": "REJECTED",
    "OrderCanceled": "CANCELED",
    "OrderExpired": "EXPIRED",
}
# the venue's OrdStatus -> the node statuses that agree with it (an open order may still
# show a cancel or replace the node sent as pending)
_AGREES = {
    "0": {"ACCEPTED", "PENDING_CANCEL", "PENDING_REPLACE"},
    "1": {"PARTIALLY_FILLED", "PENDING_CANCEL", "PENDING_REPLACE"},
    "2": {"FILLED"},
    "4": {"CANCELED"},
    "8": {"REJECTED"},
    "C": {"EXPIRED"},
}


# -- the node's orders ----------------------------------------------------------------------


@dataclass
class NodeOrder:
    """One order folded from the journal's events (raw integer quantity and price)."""

    coid: str
    instrument: str
    side: str
    order_type: str
    quantity: int
    price: int | None
    filled: int = 0
    submitted: bool = False
    accepted: bool = False
    pending_cancel: bool = False
    pending_replace: bool = False
    terminal: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.terminal is not None:
            return self.terminal
        if self.pending_cancel:
            return "PENDING_CANCEL"
        if self.pending_replace:
            return "PENDING_REPLACE"
        if self.filled:
            return "PARTIALLY_FILLED"
        if self.accepted:
            return "ACCEPTED"
        return "SUBMITTED" if self.submitted else "INITIALIZED"


def _qty(raw: int) -> Decimal:
    return Decimal(raw).scaleb(-SIZE_DECIMALS)


def _px(raw: int | None) -> Decimal | None:
    return None if raw is None else Decimal(raw).scaleb(-PRICE_DECIMALS)


def fold_orders(
    events: Events,
) -> tuple[dict[str, NodeOrder], list[dict[str, Any]], list[str]]:
    """The node's orders and fills as its journal tells them, and what does not add up."""
    orders: dict[str, NodeOrder] = {}
    fills: list[dict[str, Any]] = []
    problems: list[str] = []
    for seq, type_name, event in events:
        if type_name == "StrategyFailed":
            problems.append(f"journal seq {seq}: strategy failed: {event.get('error')}")
        coid = event.get("client_order_id")
        if coid is None or not type_name.startswith("Order"):
            continue
        if type_name == "OrderInitialized":
            if coid in orders:
                problems.append(f"journal seq {seq}: {coid} initialized twice")
            orders[coid] = NodeOrder(
                coid=coid,
                instrument=event["instrument_id"],
                side=event["side"],
                order_type=event["order_type"],
                quantity=event["quantity"],
                price=event.get("price"),
            )
            continue
        order = orders.get(coid)
        if order is None:
            problems.append(f"journal seq {seq}: {type_name} for {coid}, never initialized")
            continue
        if type_name == "OrderTransitionRefused":
            continue  # journaled instead of an event the node did not apply
        if type_name == "OrderFilled":
            fills.append({**event, "seq": seq})  # even one after the order ended
        if order.terminal is not None:
            problems.append(f"journal seq {seq}: {type_name} for {coid} after {order.terminal}")
            continue
        if type_name in _TERMINAL:
            order.terminal = _TERMINAL[type_name]
            order.reasons.append(str(event.get("reason", "")))
        elif type_name == "OrderSubmitted":
            order.submitted = True
        elif type_name == "OrderAccepted":
            order.accepted = True
        elif type_name == "OrderPendingCancel":
            order.pending_cancel = True
        elif type_name == "OrderPendingReplace":
            order.pending_replace = True
        elif type_name == "OrderCancelRejected":
            order.pending_cancel = False
        elif type_name == "OrderModifyRejected":
            order.pending_replace = False
        elif type_name == "OrderUpdated":
            order.quantity = event["quantity"]
            if event.get("price") is not None:
                order.price = event["price"]
            order.pending_replace = False
        elif type_name == "OrderFilled":
            order.filled += event["last_qty"]
            if event["side"] != order.side:
                problems.append(f"journal seq {seq}: fill side {event['side']} for {order!r}")
            if order.filled > order.quantity:
                problems.append(f"journal seq {seq}: {coid} overfilled ({order.filled})")
            elif order.filled == order.quantity:
                order.terminal = "FILLED"
    return orders, fills, problems


# -- the venue's books ----------------------------------------------------------------------


@dataclass
class VenueBooks:
    orders: list[dict[str, Any]]
    chains: dict[str, list[str]]  # order id -> every ClOrdID of its chain
    fills: list[dict[str, Any]]
    positions: dict[str, Decimal]


def read_ledger(ledger: Path) -> VenueBooks:
    """The account's orders, ClOrdID chains, fills and positions from the venue's ledger."""
    with closing(read_only(ledger)) as db:
        db.row_factory = sqlite3.Row
        orders = [
            dict(r)
            for r in db.execute(
                "SELECT order_id, root_cl_ord_id, cl_ord_id, symbol, side, order_type, quantity, "
                "price, cum_qty, status FROM orders WHERE account = ? ORDER BY rowid",
                (ACCOUNT,),
            )
        ]
        chains: dict[str, list[str]] = {}
        for r in db.execute(
            "SELECT order_id, cl_ord_id FROM cl_ord_ids WHERE account = ? ORDER BY rowid",
            (ACCOUNT,),
        ):
            chains.setdefault(r["order_id"], []).append(r["cl_ord_id"])
        fills = [
            dict(r)
            for r in db.execute(
                "SELECT exec_id, order_id, cl_ord_id, symbol, side, qty, px FROM fills "
                "WHERE account = ? ORDER BY rowid",
                (ACCOUNT,),
            )
        ]
        positions = {
            r["symbol"]: Decimal(r["net_qty"])
            for r in db.execute(
                "SELECT symbol, net_qty FROM positions WHERE account = ?", (ACCOUNT,)
            )
        }
    return VenueBooks(orders, chains, fills, positions)


def _fix_fields(raw: bytes) -> dict[int, str]:
    """A stored FIX message's fields (the first of a repeated tag)."""
    fields: dict[int, str] = {}
    for part in bytes(raw).split(b"\x01"):
        tag, sep, value = part.partition(b"=")
        if sep and tag.isdigit():
            fields.setdefault(int(tag), value.decode("utf-8", "replace"))
    return fields


def _stored_messages(store: Path) -> list[tuple[str, int, dict[int, str]]]:
    with closing(read_only(store)) as db:
        rows = db.execute(
            "SELECT session_key, seq, raw FROM fix_messages ORDER BY session_key, seq"
        ).fetchall()
    return [(key, seq, _fix_fields(raw)) for key, seq, raw in rows]


def duplicate_cl_ord_ids(desk: Desk) -> list[str]:
    """``duplicates_in`` the desk's venue and node stores."""
    return duplicates_in(desk.venue_store, [desk.node_store])


def duplicates_in(venue_store: Path, node_stores: list[Path]) -> list[str]:
    """ClOrdIDs the account used twice. The venue's ledger cannot show them (it records a
    ClOrdID once, and a duplicate's reject is not written to it), so they are counted
    from the FIX messages both sides stored: the venue's rejects for a duplicate
    ClOrdID (ExecutionReport OrdRejReason 6, OrderCancelReject CxlRejReason 6), and the
    new, cancel and replace requests carrying an id sent before, over every node store
    (each HA member stores only what it sent itself)."""
    problems = []
    if not venue_store.is_file():
        return [f"no venue session store at {venue_store}"]
    for _key, seq, f in _stored_messages(venue_store):
        if f.get(35) == "8" and f.get(150) == "8" and f.get(103) == "6":
            problems.append(f"venue rejected a duplicate ClOrdID {f.get(11)} (venue seq {seq})")
        elif f.get(35) == "9" and f.get(102) == "6":
            problems.append(f"venue refused a duplicate ClOrdID {f.get(11)} (venue seq {seq})")
    sent: dict[str, list[int]] = {}
    for store in node_stores:
        if not store.is_file():
            continue
        for _key, seq, f in _stored_messages(store):
            if f.get(35) in ("D", "F", "G") and f.get(11) is not None:
                sent.setdefault(f[11], []).append(seq)
    problems += [
        f"node sent ClOrdID {cl_ord_id} in {len(seqs)} messages (seqs {seqs})"
        for cl_ord_id, seqs in sent.items()
        if len(seqs) > 1
    ]
    return problems


def epoch_of(cl_ord_id: str) -> int:
    """The fencing epoch in ``{node}-{epoch}-{seq}``; for a cancel's or replace's id
    (``{order id}/...``), its order's (``kit.ha_oracle.epoch_of`` reads the sender's)."""
    return int(cl_ord_id.split("/")[0].split("-")[-2])


# -- the verdict ----------------------------------------------------------------------------


@dataclass
class Comparison:
    """The oracle's verdict and the counts behind it."""

    mismatches: list[str]
    venue_orders: int
    node_orders: int
    venue_fills: int
    node_fills: int
    duplicates: int
    not_known_at_venue: int  # journaled as sent, never reached the venue: REJECTED on recovery


def compare(desk: Desk) -> Comparison:
    """Node journal versus venue ledger: orders, fills, positions, ClOrdID uniqueness."""
    missing = [f"no such file: {p}" for p in (desk.journal, desk.ledger) if not p.is_file()]
    if missing:
        return Comparison(missing, 0, 0, 0, 0, 0, 0)
    events, undecodable = journal_events(desk.journal)
    books = compare_books(events, desk.ledger, duplicate_cl_ord_ids(desk))
    books.mismatches[:0] = undecodable
    return books


def compare_books(
    events: Events, ledger: Path, duplicates: list[str], *, node_id: str = NODE_ID
) -> Comparison:
    """A journal's events (of node ``node_id``) versus the venue's ledger, and the
    duplicate ClOrdIDs found in the FIX stores (``duplicates_in``)."""
    if not ledger.is_file():
        return Comparison([f"no such file: {ledger}"], 0, 0, 0, 0, 0, 0)
    orders, node_fills, problems = fold_orders(events)
    venue = read_ledger(ledger)
    problems += _compare_orders(orders, venue, node_id)
    problems += _compare_fills(node_fills, venue)
    problems += _compare_positions(node_fills, venue)
    return Comparison(
        mismatches=problems + duplicates,
        venue_orders=len(venue.orders),
        node_orders=len(orders),
        venue_fills=len(venue.fills),
        node_fills=len(node_fills),
        duplicates=len(duplicates),
        not_known_at_venue=sum(
            any("not known at venue" in r for r in o.reasons) for o in orders.values()
        ),
    )


def _compare_orders(
    orders: dict[str, NodeOrder], venue: VenueBooks, node_id: str = NODE_ID
) -> list[str]:
    problems = []
    at_venue: set[str] = set()
    for v in venue.orders:
        root = v["root_cl_ord_id"]
        at_venue.add(root)
        where = f"venue order {v['order_id']} ({root})"
        chain = venue.chains.get(v["order_id"], [])
        if not root.startswith(f"{node_id}-") or len(root.split("-")) != 3:
            problems.append(f"{where}: ClOrdID not of the form {node_id}-EPOCH-N")
        strays = [c for c in chain if c != root and not c.startswith(f"{root}/")]
        if strays:
            problems.append(f"{where}: chain ids {strays} not of the form {root}/N")
        node = orders.get(root)
        if node is None:
            problems.append(
                f"{where} {v['side']} {v['quantity']} status {v['status']}: not in journal"
            )
            continue
        mine = (node.instrument, node.side, node.order_type, _qty(node.quantity), _px(node.price))
        theirs = (
            v["symbol"],
            v["side"],
            v["order_type"],
            Decimal(v["quantity"]),
            None if v["price"] is None else Decimal(v["price"]),
        )
        if mine != theirs:
            problems.append(f"{where}: venue has {theirs}, journal {mine}")
        if node.status not in _AGREES.get(v["status"], set()):
            problems.append(f"{where}: venue OrdStatus {v['status']}, journal {node.status}")
        if Decimal(v["cum_qty"]) != _qty(node.filled):
            problems.append(f"{where}: venue filled {v['cum_qty']}, journal {_qty(node.filled)}")
    for coid, node in orders.items():
        if coid not in at_venue and node.terminal not in ("REJECTED", "DENIED"):
            problems.append(f"{coid}: {node.status} in journal, unknown at the venue")
    return problems


def _compare_fills(node_fills: list[dict[str, Any]], venue: VenueBooks) -> list[str]:
    problems = []
    seen = Counter(f["exec_id"] for f in node_fills)
    problems += [
        f"ExecID {exec_id} journaled as OrderFilled {n} times"
        for exec_id, n in seen.items()
        if n > 1
    ]
    roots = {v["order_id"]: v["root_cl_ord_id"] for v in venue.orders}
    theirs = {
        f["exec_id"]: (
            roots.get(f["order_id"]),
            f["side"],
            Decimal(f["qty"]),
            Decimal(f["px"]),
        )
        for f in venue.fills
    }
    mine = {
        f["exec_id"]: (f["client_order_id"], f["side"], _qty(f["last_qty"]), _px(f["last_px"]))
        for f in node_fills
    }
    for exec_id in sorted(theirs.keys() | mine.keys()):
        if theirs.get(exec_id) != mine.get(exec_id):
            problems.append(
                f"fill {exec_id}: venue {theirs.get(exec_id)}, journal {mine.get(exec_id)}"
            )
    return problems


def _compare_positions(node_fills: list[dict[str, Any]], venue: VenueBooks) -> list[str]:
    problems = []
    mine: dict[str, Decimal] = {}
    from_venue_fills: dict[str, Decimal] = {}
    for f in node_fills:
        signed = _qty(f["last_qty"]) * (1 if f["side"] == "BUY" else -1)
        mine[f["instrument_id"]] = mine.get(f["instrument_id"], Decimal(0)) + signed
    for f in venue.fills:
        signed = Decimal(f["qty"]) * (1 if f["side"] == "BUY" else -1)
        from_venue_fills[f["symbol"]] = from_venue_fills.get(f["symbol"], Decimal(0)) + signed
    for symbol in sorted(mine.keys() | venue.positions.keys() | from_venue_fills.keys()):
        node_net = mine.get(symbol, Decimal(0))
        venue_net = venue.positions.get(symbol, Decimal(0))
        if node_net != venue_net:
            problems.append(f"position {symbol}: venue {venue_net}, journal {node_net}")
        if from_venue_fills.get(symbol, Decimal(0)) != venue_net:
            problems.append(
                f"position {symbol}: venue ledger says {venue_net} but its fills sum to "
                f"{from_venue_fills.get(symbol, Decimal(0))}"
            )
    return problems


def summary(problems: list[str], limit: int = 25) -> str:
    """The first ``limit`` mismatches, one a line."""
    shown = "\n".join(problems[:limit])
    more = len(problems) - limit
    return shown + (f"\n... and {more} more" if more > 0 else "")

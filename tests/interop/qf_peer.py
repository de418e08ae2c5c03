#!/usr/bin/env python3
"""A QuickFIX FIX 4.4 acceptor that interop tests drive as the venue bastion did not write.

Run as a script, not a test module::

    python tests/interop/qf_peer.py --port P --sender-comp-id QFVENUE \\
        --target-comp-id BASTION --store-dir DIR [--username U --password PW] [--heartbeat-s N]

It owns one FIX session and a tiny deterministic exchange behind it: orders rest until a
``fill`` or ``cancel`` control command moves them. Control is JSON lines: one command per line
on stdin, one JSON reply per line on stdout (the commands are the ``_cmd_*`` methods of
``Controller``; a request's ``id`` is echoed). QuickFIX keeps sequence numbers and sent
messages in its file store in DIR; the exchange keeps its orders, id counters and sent
execution reports in the journal DIR/qf_peer_state.jsonl, so a restarted peer is the same venue.

Threads: QuickFIX calls ``PeerApp`` on its own thread while the control loop runs on the main
thread. ``_emit`` makes "change the book, then send the report" atomic so reports go out in
book order; ``_lock`` guards the book itself and is never held while calling into QuickFIX,
because QuickFIX calls ``toApp`` while holding its session mutex.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psutil

# the script runs outside pytest: tests/ goes on the path for the shared test kit
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import quickfix as fix
import quickfix44 as fix44

from kit.qf_common import (
    JsonController,
    common_settings,
    find_data_dictionary,
    get,
    utc_now,
    write_line,
)
from kit.qf_common import parse_args as common_args

log = logging.getLogger("qf_peer")

Fields = list[tuple[int, str]]
ZERO = Decimal(0)
OPEN_STATUSES = ("0", "1")  # OrdStatus New, PartiallyFilled
PASSWORD_RE = re.compile("(\x01554=)[^\x01]*")
# Tags worth showing in `status.received`, per message type; 554 (Password) is never among them.
SUMMARY_TAGS: dict[str, tuple[int, ...]] = {
    "0": (112,),
    "1": (112,),
    "2": (7, 16),
    "3": (45, 371, 372, 373, 58),
    "4": (36, 123),
    "5": (58,),
    "A": (98, 108, 141, 553),
    "j": (45, 372, 380, 58),
}
APP_SUMMARY_TAGS = (11, 41, 37, 55, 54, 38, 44, 40, 790, 584, 585, 262, 263)
EMIT_COMMANDS = frozenset({"quote", "fill", "cancel", "skip_seq", "resend_exec"})


def dec(value: object, name: str) -> Decimal:
    """A decimal from a string or int; floats are refused because money is never a float."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a decimal string")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"{name} is not finite")
    return result


def fmt(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-8")).normalize(), "f")


@dataclass
class Order:
    """One order on the venue; its ClOrdID chain grows with every accepted cancel/replace."""

    order_id: str
    cl_ord_ids: list[str]
    symbol: str
    side: str
    ord_type: str
    qty: Decimal
    price: Decimal | None
    cum_qty: Decimal = ZERO
    notional: Decimal = ZERO
    status: str = "0"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.cum_qty if self.is_open else ZERO

    @property
    def avg_px(self) -> Decimal:
        return self.notional / self.cum_qty if self.cum_qty else ZERO

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("qty", "price", "cum_qty", "notional"):
            data[key] = None if data[key] is None else format(data[key], "f")
        return data

    def view(self) -> dict[str, Any]:
        """The order as the ``status`` command shows it."""
        numbers = {"qty": self.qty, "cum_qty": self.cum_qty, "leaves_qty": self.leaves_qty}
        return {
            **{k: v for k, v in self.to_json().items() if k != "notional"},
            **{k: fmt(v) for k, v in numbers.items()},
            "price": None if self.price is None else fmt(self.price),
            "avg_px": fmt(self.avg_px),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        price = data.pop("price")
        order = cls(**data, price=None if price is None else Decimal(price))
        for key in ("qty", "cum_qty", "notional"):
            setattr(order, key, Decimal(getattr(order, key)))
        return order


class Book:
    """The venue's durable state: orders, every ClOrdID seen, sent reports, quotes.

    Each change is appended to a JSON-lines journal (rewriting a snapshot per report made the
    peer slow) and replayed at start, so a restarted peer is the same venue.
    """

    def __init__(self, path: Path) -> None:
        self.orders: dict[str, Order] = {}  # OrderID -> order, in arrival order
        self.used_cl_ord_ids: set[str] = set()
        self.execs: dict[str, dict[str, Any]] = {}  # ExecID -> fields and SendingTime
        self.quotes: dict[str, dict[str, str]] = {}
        lines = path.read_text().splitlines() if path.is_file() else []
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by SIGKILL
            self._replay(event)
        self._journal = path.open("a")

    def _replay(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "order":
            order = Order.from_json(event["order"])
            self.orders[order.order_id] = order
        elif kind == "used":
            self.used_cl_ord_ids.add(event["cl_ord_id"])
        elif kind == "exec":
            self.execs[event["exec_id"]] = {"fields": event["fields"], "sending_time": None}
        elif kind == "sent":
            self.execs[event["exec_id"]]["sending_time"] = event["sending_time"]
        elif kind == "quote":
            self.quotes[event["symbol"]] = event["quote"]

    def _write(self, **event: Any) -> None:
        self._journal.write(json.dumps(event) + "\n")
        self._journal.flush()

    def find(self, cl_ord_id: str | None = None, order_id: str | None = None) -> Order | None:
        if order_id in self.orders:
            return self.orders[order_id]
        return next((o for o in self.orders.values() if cl_ord_id in o.cl_ord_ids), None)

    def use(self, cl_ord_id: str) -> bool:
        """Remember a ClOrdID; True when it had been used before."""
        if cl_ord_id in self.used_cl_ord_ids:
            return True
        self.used_cl_ord_ids.add(cl_ord_id)
        self._write(kind="used", cl_ord_id=cl_ord_id)
        return False

    def add_order(self, order: Order) -> Order:
        order.order_id = f"QF-{len(self.orders) + 1}"
        self.orders[order.order_id] = order
        self.save_order(order)
        return order

    def save_order(self, order: Order) -> None:
        self._write(kind="order", order=order.to_json())

    def add_exec(self, fields: Fields) -> str:
        exec_id = f"QFE-{len(self.execs) + 1}"
        self.execs[exec_id] = {"fields": [(17, exec_id), *fields], "sending_time": None}
        self._write(kind="exec", exec_id=exec_id, fields=self.execs[exec_id]["fields"])
        return exec_id

    def mark_sent(self, exec_id: str, sending_time: str | None) -> None:
        if exec_id in self.execs:
            self.execs[exec_id]["sending_time"] = sending_time
            self._write(kind="sent", exec_id=exec_id, sending_time=sending_time)

    def set_quote(self, symbol: str, quote: dict[str, str]) -> None:
        self.quotes[symbol] = quote
        self._write(kind="quote", symbol=symbol, quote=quote)


class PeerApp(fix.Application):  # type: ignore[misc]
    """QuickFIX callbacks plus the exchange behind them (see the module docstring on threads)."""

    def __init__(
        self,
        *,
        session_id: fix.SessionID,
        state_path: Path,
        username: str | None,
        password: str | None,
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self._username = username
        self._password = password
        self._emit = threading.RLock()
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self.book = Book(state_path)
        self.received: list[dict[str, Any]] = []
        self.sent_exec_ids: list[str] = []
        self.subscriptions: dict[str, set[str]] = {}  # MDReqID -> symbols
        self.counts = {"logons": 0, "logouts": 0, "rejected_logons": 0, "logouts_sent": 0}
        self.logged_on = False
        self.last_logon_heartbeat_s: int | None = None
        self._reenable_after_logout = False
        self._resend_copies: dict[str, str] = {}  # ExecID -> OrigSendingTime for resend_exec

    # -- QuickFIX callbacks: each one catches everything, since an exception escaping a
    # director callback would end QuickFIX's thread. RejectLogon is the one meant to escape.

    def onCreate(self, sessionID: fix.SessionID) -> None:
        log.info("session created %s", sessionID.toString())

    def onLogon(self, sessionID: fix.SessionID) -> None:
        with self.changed:
            self.logged_on = True
            self.counts["logons"] += 1
            self.changed.notify_all()
        log.info("logon %s", sessionID.toString())

    def onLogout(self, sessionID: fix.SessionID) -> None:
        with self.changed:
            self.logged_on = False
            self.counts["logouts"] += 1
            self.subscriptions.clear()  # market data subscriptions die with the session
            self.changed.notify_all()
        log.info("logout %s", sessionID.toString())

    def toAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            if get(message.getHeader(), 35) != "5":
                return
            with self.changed:
                self.counts["logouts_sent"] += 1
                reenable, self._reenable_after_logout = self._reenable_after_logout, False
                self.changed.notify_all()
            if reenable:  # Session.logout() disabled the session; let the initiator back in
                fix.Session.lookupSession(sessionID).logon()
        except Exception:
            log.exception("toAdmin failed")

    def fromAdmin(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            msg_type = self._record(message)
        except Exception:
            log.exception("fromAdmin failed")
            return
        if msg_type == "A" and self._username is not None:
            ok = get(message, 553) == self._username and get(message, 554) == self._password
            if not ok:
                with self._lock:
                    self.counts["rejected_logons"] += 1
                log.info("logon rejected: bad credentials")
                raise fix.RejectLogon("invalid username or password")

    def toApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            header = message.getHeader()
            exec_id = get(message, 17)
            if get(header, 35) != "8" or exec_id is None or get(header, 43) == "Y":
                return  # QuickFIX's own resends arrive here with PossDupFlag already set
            with self._lock:
                orig_sending_time = self._resend_copies.pop(exec_id, None)
                if orig_sending_time is None:
                    self.sent_exec_ids.append(exec_id)
                    self.book.mark_sent(exec_id, get(header, 52))
            if orig_sending_time is not None:
                # Session::send strips 43/122 before toApp, so a deliberate copy adds them here.
                header.setField(43, "Y")
                header.setField(122, orig_sending_time)
        except Exception:
            log.exception("toApp failed")

    def fromApp(self, message: fix.Message, sessionID: fix.SessionID) -> None:
        try:
            msg_type = self._record(message)
            handler = self._handlers().get(msg_type)
        except Exception:
            log.exception("fromApp failed")
            return
        if handler is None:
            raise fix.UnsupportedMessageType()
        try:
            with self._emit:
                handler(message)
        except Exception:
            log.exception("handling %s failed", msg_type)

    def _record(self, message: fix.Message) -> str:
        header = message.getHeader()
        msg_type = get(header, 35) or ""
        text = PASSWORD_RE.sub(r"\1***", message.toString()).replace("\x01", "|")
        log.info("received %s", text)
        tags = SUMMARY_TAGS.get(msg_type, APP_SUMMARY_TAGS)
        entry = {
            "msg_type": msg_type,
            "seq": int(get(header, 34) or 0),
            "poss_dup": get(header, 43) == "Y",
            "tags": {str(t): v for t in tags if (v := get(message, t)) is not None},
        }
        with self._lock:
            self.received.append(entry)
            if msg_type == "A" and (hb := get(message, 108)) is not None:
                self.last_logon_heartbeat_s = int(hb)
        return msg_type

    def _handlers(self) -> dict[str, Callable[[fix.Message], None]]:
        return {
            "D": self._on_new_order,
            "F": self._on_cancel,
            "G": self._on_replace,
            "H": self._on_status,
            "AF": self._on_mass_status,
            "V": self._on_market_data_request,
        }

    # -- sending

    def send(
        self, msg_type: str, fields: Iterable[tuple[int, str]], groups: Iterable[fix.Group] = ()
    ) -> bool:
        message = fix.Message()
        message.getHeader().setField(35, msg_type)
        for tag, value in fields:
            message.setField(tag, value)
        for group in groups:
            message.addGroup(group)
        return bool(fix.Session.sendToTarget(message, self.session_id))

    def issue_exec(self, fields: Fields) -> tuple[str, Fields]:
        """Give an ExecutionReport its ExecID and remember it for ``resend_exec`` (hold _lock)."""
        exec_id = self.book.add_exec([*fields, (60, utc_now())])
        return exec_id, self.book.execs[exec_id]["fields"]

    def order_exec(
        self, order: Order, exec_type: str, *extra: tuple[int, str]
    ) -> tuple[str, Fields]:
        fields: Fields = [
            (37, order.order_id), (150, exec_type), (39, order.status),
            (11, order.cl_ord_ids[-1]), (55, order.symbol), (54, order.side),
            (40, order.ord_type), (38, fmt(order.qty)), (151, fmt(order.leaves_qty)),
            (14, fmt(order.cum_qty)), (6, fmt(order.avg_px)),
        ]  # fmt: skip
        if order.price is not None:
            fields.append((44, fmt(order.price)))
        overrides = dict(extra)
        fields = [(t, overrides.pop(t, v)) for t, v in fields] + list(overrides.items())
        return self.issue_exec(fields)

    def cancel_reject(
        self, msg: fix.Message, response_to: str, reason: str, text: str, order: Order | None
    ) -> None:
        fields: Fields = [
            (37, order.order_id if order else "NONE"), (11, get(msg, 11) or ""),
            (41, get(msg, 41) or ""), (39, order.status if order else "8"),
            (434, response_to), (102, reason), (58, text),
        ]  # fmt: skip
        self.send("9", fields)

    # -- order handlers (called with _emit held)

    def _on_new_order(self, msg: fix.Message) -> None:
        cl_ord_id = get(msg, 11) or ""
        poss_dup = get(msg.getHeader(), 43) == "Y"
        with self._lock:
            known = self.book.find(cl_ord_id)
            if self.book.use(cl_ord_id):
                if poss_dup and known is not None:
                    _, fields = self.order_exec(known, "I", (11, cl_ord_id))
                else:
                    _, fields = self._reject_new(msg, "6", "duplicate ClOrdID")
            else:
                qty = Decimal(get(msg, 38) or "0")
                price = get(msg, 44)
                ord_type = get(msg, 40) or ""
                if qty <= 0:
                    _, fields = self._reject_new(msg, "13", "order quantity must be positive")
                elif ord_type == "2" and price is None:
                    _, fields = self._reject_new(msg, "99", "limit order without price")
                else:
                    order = Order(
                        order_id="",
                        cl_ord_ids=[cl_ord_id],
                        symbol=get(msg, 55) or "",
                        side=get(msg, 54) or "",
                        ord_type=ord_type,
                        qty=qty,
                        price=None if price is None else Decimal(price),
                    )
                    self.book.add_order(order)
                    _, fields = self.order_exec(order, "0")
        self.send("8", fields)

    def _reject_new(self, msg: fix.Message, reason: str, text: str) -> tuple[str, Fields]:
        fields: Fields = [
            (37, "NONE"), (150, "8"), (39, "8"), (103, reason), (58, text),
            (11, get(msg, 11) or ""), (55, get(msg, 55) or ""), (54, get(msg, 54) or ""),
            (40, get(msg, 40) or ""), (38, get(msg, 38) or "0"), (151, "0"), (14, "0"), (6, "0"),
        ]  # fmt: skip
        return self.issue_exec(fields)

    def _on_cancel(self, msg: fix.Message) -> None:
        self._amend(msg, replace=False)

    def _on_replace(self, msg: fix.Message) -> None:
        self._amend(msg, replace=True)

    def _amend(self, msg: fix.Message, *, replace: bool) -> None:
        new_id, orig_id = get(msg, 11) or "", get(msg, 41) or ""
        response_to = "2" if replace else "1"
        with self._lock:
            order = self.book.find(orig_id, get(msg, 37))
            duplicate = self.book.use(new_id)
            new_qty = Decimal(get(msg, 38) or "0") if replace else ZERO
            reject: tuple[str, str] | None = None
            if duplicate:
                reject = ("6", "duplicate ClOrdID")
            elif order is None:
                reject = ("1", "unknown order")
            elif not order.is_open:
                reject = ("0", "order already closed")
            elif replace and new_qty <= order.cum_qty:
                reject = ("99", "new quantity must exceed the filled quantity")
            if reject is None and order is not None:
                order.cl_ord_ids.append(new_id)
                if replace:
                    order.qty = new_qty
                    if (price := get(msg, 44)) is not None:
                        order.price = Decimal(price)
                    order.ord_type = get(msg, 40) or order.ord_type
                    order.status = "1" if order.cum_qty else "0"
                else:
                    order.status = "4"
                self.book.save_order(order)
                _, fields = self.order_exec(order, "5" if replace else "4", (41, orig_id))
        if reject is not None:
            self.cancel_reject(msg, response_to, *reject, order)
        else:
            self.send("8", fields)

    def _on_status(self, msg: fix.Message) -> None:
        cl_ord_id = get(msg, 11) or ""
        extra = [(790, v)] if (v := get(msg, 790)) is not None else []
        with self._lock:
            order = self.book.find(cl_ord_id, get(msg, 37))
            if order is not None:
                _, fields = self.order_exec(order, "I", *extra)
            else:
                fields = [
                    (37, "NONE"), (150, "I"), (39, "8"), (11, cl_ord_id), (58, "unknown order"),
                    (55, get(msg, 55) or ""), (54, get(msg, 54) or "1"),
                    (151, "0"), (14, "0"), (6, "0"), *extra,
                ]  # fmt: skip
                _, fields = self.issue_exec(fields)
        self.send("8", fields)

    def _on_mass_status(self, msg: fix.Message) -> None:
        req_id = get(msg, 584) or ""
        reports: list[Fields] = []
        with self._lock:
            open_orders = [o for o in self.book.orders.values() if o.is_open]
            total = str(len(open_orders))
            for i, order in enumerate(open_orders):
                last = "Y" if i == len(open_orders) - 1 else "N"
                reports.append(
                    self.order_exec(order, "I", (584, req_id), (911, total), (912, last))[1]
                )
            if not open_orders:
                fields: Fields = [
                    (37, "NONE"), (11, "NONE"), (150, "I"), (39, "8"), (55, "NONE"), (54, "1"),
                    (151, "0"), (14, "0"), (6, "0"), (584, req_id), (911, "0"), (912, "Y"),
                ]  # fmt: skip
                reports.append(self.issue_exec(fields)[1])
        for fields in reports:
            self.send("8", fields)

    # -- market data

    def _on_market_data_request(self, msg: fix.Message) -> None:
        req_id = get(msg, 262) or ""
        request_type = get(msg, 263) or "0"
        symbols = []
        group = fix44.MarketDataRequest.NoRelatedSym()
        for i in range(1, int(get(msg, 146) or "0") + 1):
            msg.getGroup(i, group)
            symbols.append(get(group, 55) or "")
        with self._lock:
            if request_type == "2":
                self.subscriptions.pop(req_id, None)
                return
            if request_type == "1":
                self.subscriptions[req_id] = set(symbols)
            quotes = {s: self.book.quotes.get(s) for s in symbols}
        for symbol, quote in quotes.items():
            entries = self._md_entries(fix44.MarketDataSnapshotFullRefresh.NoMDEntries, quote)
            fields = [(262, req_id), (55, symbol)] + ([] if entries else [(268, "0")])
            self.send("W", fields, entries)

    @staticmethod
    def _md_entries(
        group_type: Callable[[], fix.Group], quote: dict[str, str] | None, *extra: tuple[int, str]
    ) -> list[fix.Group]:
        """The bid (269=0) and offer (269=1) entries of a W or X; none without a quote."""
        entries = []
        for entry_type, px, size in (("0", "bid", "bid_size"), ("1", "ask", "ask_size")):
            if quote is None:
                break
            entry = group_type()
            for tag, value in ((269, entry_type), (270, quote[px]), (271, quote[size]), *extra):
                entry.setField(tag, value)
            entries.append(entry)
        return entries

    def publish_quote(self, symbol: str, quote: dict[str, str]) -> int:
        """Store a quote and send an incremental refresh to each subscription holding it."""
        with self._lock:
            self.book.set_quote(symbol, quote)
            req_ids = sorted(r for r, symbols in self.subscriptions.items() if symbol in symbols)
        group_type = fix44.MarketDataIncrementalRefresh.NoMDEntries
        entries = self._md_entries(group_type, quote, (279, "1"), (55, symbol))
        for req_id in req_ids:
            self.send("X", [(262, req_id)], entries)
        return len(req_ids)

    # -- control-side operations (the Controller holds _emit around these)

    def fill(self, order: Order, qty: Decimal, px: Decimal) -> str:
        with self._lock:
            if qty <= 0 or qty > order.leaves_qty:
                raise ValueError(f"fill qty {fmt(qty)} outside (0, {fmt(order.leaves_qty)}]")
            order.cum_qty += qty
            order.notional += qty * px
            order.status = "2" if order.cum_qty == order.qty else "1"
            self.book.save_order(order)
            exec_id, fields = self.order_exec(order, "F", (32, fmt(qty)), (31, fmt(px)), (851, "1"))
        self.send("8", fields)
        return exec_id

    def cancel(self, order: Order) -> str:
        with self._lock:
            if not order.is_open:
                raise ValueError(f"order {order.order_id} is not open")
            order.status = "4"
            self.book.save_order(order)
            exec_id, fields = self.order_exec(order, "4")
        self.send("8", fields)
        return exec_id

    def resend_exec(self, exec_id: str) -> str:
        with self._lock:
            record = self.book.execs.get(exec_id)
            if record is None or record["sending_time"] is None:
                raise ValueError(f"no sent ExecutionReport {exec_id}")
            self._resend_copies[exec_id] = record["sending_time"]
            fields = [(int(t), v) for t, v in record["fields"]]
        self.send("8", fields)
        return str(record["sending_time"])

    def expect_logout(self) -> None:
        with self._lock:
            self._reenable_after_logout = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            orders = {o.cl_ord_ids[0]: o.view() for o in self.book.orders.values()}
            return {
                "orders": orders,
                "received": list(self.received),
                "sent_exec_ids": list(self.sent_exec_ids),
                "last_logon_heartbeat_s": self.last_logon_heartbeat_s,
                **{k: v for k, v in self.counts.items() if k != "logouts_sent"},
            }


def drop_connections(port: int) -> int:
    """Shut down every established TCP connection on our acceptor port.

    shutdown() on a duplicate of QuickFIX's socket makes its own thread see EOF and run
    Session::disconnect itself; calling Session.disconnect() from this thread would mutate
    SocketAcceptor's unlocked socket monitor while its thread is inside select().
    """
    dropped = 0
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.status != psutil.CONN_ESTABLISHED or conn.fd < 0 or not conn.raddr:
            continue
        if conn.laddr.port != port:
            continue
        try:
            with socket.socket(fileno=os.dup(conn.fd)) as dup:
                dup.shutdown(socket.SHUT_RDWR)
            dropped += 1
        except OSError:
            continue  # already gone
    return dropped


class Controller(JsonController):
    """Runs one JSON command per stdin line; every reply is one JSON line on stdout."""

    def __init__(self, app: PeerApp, port: int) -> None:
        self.app = app
        self.port = port

    def _guard(self, cmd: str) -> contextlib.AbstractContextManager[object]:
        # Commands that change the book or the outgoing sequence go in order with
        # QuickFIX-driven reports; the waiting ones must not block QuickFIX's thread.
        return self.app._emit if cmd in EMIT_COMMANDS else contextlib.nullcontext()

    def session(self) -> fix.Session:
        return fix.Session.lookupSession(self.app.session_id)

    def _order(self, cl_ord_id: str | None, order_id: str | None) -> Order:
        with self.app._lock:
            order = self.app.book.find(cl_ord_id, order_id)
        if order is None:
            raise ValueError(f"unknown order {cl_ord_id or order_id!r}")
        return order

    def _cmd_quote(
        self, *, symbol: str, bid: str, ask: str, bid_size: str, ask_size: str
    ) -> dict[str, Any]:
        values = {"bid": bid, "ask": ask, "bid_size": bid_size, "ask_size": ask_size}
        quote = {k: fmt(dec(v, k)) for k, v in values.items()}
        return {"published": self.app.publish_quote(str(symbol), quote)}

    def _cmd_fill(
        self, *, qty: str, px: str, cl_ord_id: str | None = None, order_id: str | None = None
    ) -> dict[str, Any]:
        order = self._order(cl_ord_id, order_id)
        exec_id = self.app.fill(order, dec(qty, "qty"), dec(px, "px"))
        return {"exec_id": exec_id, "ord_status": order.status, "cum_qty": fmt(order.cum_qty)}

    def _cmd_cancel(
        self, *, cl_ord_id: str | None = None, order_id: str | None = None
    ) -> dict[str, Any]:
        return {"exec_id": self.app.cancel(self._order(cl_ord_id, order_id))}

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        with self.app.changed:
            return self.app.changed.wait_for(predicate, timeout=timeout_s)

    def _cmd_disconnect(self) -> dict[str, Any]:
        dropped = drop_connections(self.port)
        logged_out = self._wait(lambda: not self.app.logged_on, 5.0)
        return {"dropped": dropped, "logged_on": not logged_out}

    def _cmd_logout(self, *, text: str = "") -> dict[str, Any]:
        if not self.app.logged_on:
            raise ValueError("not logged on")
        sent_before = self.app.counts["logouts_sent"]
        self.app.expect_logout()
        self.session().logout(str(text))  # sent by QuickFIX's next timer tick
        if not self._wait(lambda: self.app.counts["logouts_sent"] > sent_before, 5.0):
            raise ValueError("Logout was not sent within 5 s")
        return {}

    def _cmd_skip_seq(self, *, n: int) -> dict[str, Any]:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError("n must be a positive integer")
        session = self.session()
        session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + n)
        return {"next_sender_seq": session.getExpectedSenderNum()}

    def _cmd_resend_exec(self, *, exec_id: str) -> dict[str, Any]:
        return {"exec_id": exec_id, "orig_sending_time": self.app.resend_exec(str(exec_id))}

    def _cmd_status(self) -> dict[str, Any]:
        session = self.session()
        return {
            "logged_on": bool(session.isLoggedOn()),
            "next_sender_seq": session.getExpectedSenderNum(),
            "next_target_seq": session.getExpectedTargetNum(),
            **self.app.snapshot(),
        }


def settings_text(args: argparse.Namespace, dictionary: Path) -> str:
    return "\n".join(
        [
            "[DEFAULT]",
            "ConnectionType=acceptor",
            *common_settings(dictionary, args.store_dir),
            "ValidateFieldsOutOfOrder=N",
            "SocketAcceptHost=127.0.0.1",
            f"SocketAcceptPort={args.port}",
            "",
            "[SESSION]",
            "BeginString=FIX.4.4",
            f"SenderCompID={args.sender_comp_id}",
            f"TargetCompID={args.target_comp_id}",
            # An acceptor answers with the initiator's HeartBtInt(108); this is informational.
            f"HeartBtInt={args.heartbeat_s}",
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return common_args(__doc__.splitlines()[0], "QFVENUE", "BASTION", argv)[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s qf_peer %(threadName)s %(message)s",
    )
    args.store_dir.mkdir(parents=True, exist_ok=True)
    config = args.store_dir / "qf_peer.cfg"
    config.write_text(settings_text(args, find_data_dictionary()))
    session_id = fix.SessionID("FIX.4.4", args.sender_comp_id, args.target_comp_id)
    app = PeerApp(
        session_id=session_id,
        state_path=args.store_dir / "qf_peer_state.jsonl",
        username=args.username,
        password=args.password,
    )
    settings = fix.SessionSettings(str(config))
    # No LogFactory: a FileLog would write the initiator's Logon, password included, to disk.
    acceptor = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings)
    try:
        acceptor.start()
    except (fix.ConfigError, fix.RuntimeError) as e:
        write_line({"ready": False, "error": str(e)})
        return 1
    write_line({"ready": True, "port": args.port})
    controller = Controller(app, args.port)
    try:
        controller.serve(sys.stdin)
    finally:
        acceptor.stop(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

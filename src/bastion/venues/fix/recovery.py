"""What a FIX venue adds to recovery: the inbound stream rewound, lost orders adopted,
and the venue's positions queried.

The journal commits in groups, so a node killed mid-stream may have lost the last
few milliseconds of events while its FIX session store (committed before every
send and with every inbound batch) has moved on. Recovery therefore:

- rewinds the session's expected inbound MsgSeqNum to where it stood at the last
  snapshot (``VenueMark``): after logon the venue resends everything since, and the
  adapter applies only what the journal does not already hold (fills by ExecID,
  other reports when the order does not reflect them yet);
- adopts orders whose NewOrderSingle is in the session store but whose journal
  records were lost: the order exists at the venue, so the node takes it over from
  the stored message (strategy from SecondaryClOrdID 526) instead of forgetting it;
- adopts, from the venue's resent reports, orders neither the journal nor the store
  knows (sent after the last backup segment of a desk restored from backup, or by a
  previous HA leader whose last records never committed: a new leader cannot read the
  old leader's store): a resent report names an order of this node's ClOrdID prefix,
  with its symbol, side, quantity, type and price; and takes as sent an order the
  journal holds as created only (``INITIALIZED``) once the venue reports on it;
- sets the resend floor: messages stored before this start are never resent (a
  ResendRequest for them gets a GapFill), so an old order never reaches the venue
  late; reconciliation resolves it by ClOrdID instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Protocol

import msgspec
import structlog

from bastion.clock import Clock
from bastion.errors import VenueRequestFailed, VenueUnavailable
from bastion.execution.ids import order_id_of
from bastion.fix.codec import FixMessage, FixParser
from bastion.fix.session import FixSession
from bastion.fix.store import SqliteSessionStore
from bastion.fix.timestamps import format_utc_timestamp, parse_utc_timestamp
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.instruments import Instrument
from bastion.model.orders import UNKNOWN_STRATEGY, Order
from bastion.venues.base import NodeOrders, SenderSeqs, VenueMark

log = structlog.get_logger("bastion.venues.fix")

_SIDE = {"1": OrderSide.BUY, "2": OrderSide.SELL}
_TYPE = {"1": OrderType.MARKET, "2": OrderType.LIMIT}
_TIF = {"0": TimeInForce.DAY, "1": TimeInForce.GTC, "3": TimeInForce.IOC}


class RecoveringVenue(Protocol):
    """What recovery needs of the FIX venue adapter (``bastion.venues.fix.adapter``)."""

    name: str
    account: str | None
    clock: Clock
    instruments: dict[str, Instrument]
    store: SqliteSessionStore
    session: FixSession
    resume_mark: VenueMark | None
    sender_seqs: SenderSeqs | None
    """Set on an HA member: the session is the group's, each member keeps a store."""

    @property
    def logons(self) -> int: ...

    position_requests: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]]
    position_expected: dict[str, int]

    def register(self, order: Order) -> None: ...

    def seed_exec_ids(self, exec_ids: Iterable[str]) -> None: ...

    def next_request_id(self) -> int: ...

    def send_request(self, msg: FixMessage, ref: str) -> None: ...

    adopt_reported: Callable[[FixMessage], Order | None] | None


class PositionAnswers(Protocol):
    """What the answers to a RequestForPositions need of the FIX venue adapter."""

    position_requests: dict[str, tuple[asyncio.Future[list[FixMessage]], list[FixMessage]]]
    position_expected: dict[str, int]


class FixRecoveryPrep(msgspec.Struct, kw_only=True):
    """What preparing a FIX venue for recovery did."""

    rewound_from: int
    rewound_to: int
    adopted: list[str]
    resend_floor: int


def mark(adapter: RecoveringVenue) -> VenueMark:
    """Where the session stands; before its first logon in this process, the mark it was
    restored from (a warm standby hands on the leader's mark, not its own idle store's)."""
    if adapter.logons == 0 and adapter.resume_mark is not None:
        return adapter.resume_mark
    store = adapter.store
    return VenueMark(
        venue=adapter.name,
        session_key=store.session_key,
        creation_ns=store.creation_ns,
        next_target_seq=store.next_target_seq,
        next_sender_seq=store.next_sender_seq,
    )


def prepare(
    adapter: RecoveringVenue,
    execution: NodeOrders,
    resume: VenueMark | None,
    *,
    order_id_prefix: str,
) -> FixRecoveryPrep:
    """Before connecting: register the recovered orders, adopt lost ones, rewind inbound."""
    store = adapter.store
    same_session = (
        resume is not None
        and resume.session_key == store.session_key
        and resume.creation_ns == store.creation_ns
    )
    target_from = store.next_target_seq
    sender_from = 1
    group_session = (
        adapter.sender_seqs is not None
        and resume is not None
        and resume.session_key == store.session_key
        and not same_session
    )
    if group_session:
        # the mark is another member's (an HA takeover): its inbound position holds for
        # the group's session; what this member's own store sent is older than the mark
        assert resume is not None
        store.set_next_target_seq(resume.next_target_seq)
        sender_from = store.next_sender_seq
        log.info(
            "fix_inbound_taken_over",
            venue=adapter.name,
            from_seq=target_from,
            to_seq=resume.next_target_seq,
            note="the previous leader's mark: the venue resends from here; reports the "
            "journal holds are skipped",
        )
    elif resume is None or same_session:
        rewind_to = resume.next_target_seq if resume is not None else 1
        if resume is not None:
            sender_from = resume.next_sender_seq
        if rewind_to < target_from:
            store.set_next_target_seq(rewind_to)
            log.info(
                "fix_inbound_rewound",
                venue=adapter.name,
                from_seq=target_from,
                to_seq=rewind_to,
                note="the venue resends from here; reports the journal holds are skipped",
            )
    else:
        log.warning(
            "fix_session_changed_since_snapshot",
            venue=adapter.name,
            note="no resend across sessions; reconciliation relies on order status",
        )
        sender_from = store.next_sender_seq
    for order in execution.orders():
        if order.venue == adapter.name:
            adapter.register(order)
    adapter.seed_exec_ids(execution.venue_exec_ids(adapter.name))  # unique per venue only
    adopted = []
    for _seq, raw in store.sent_messages(sender_from, store.next_sender_seq - 1):
        lost = _lost_order(adapter, execution, raw, order_id_prefix)
        if lost is not None:
            execution.adopt(lost, reason="sent to the venue; its journal records were lost")
            adapter.register(lost)
            adopted.append(lost.client_order_id)
    adapter.session.resend_floor = store.next_sender_seq

    def adopt_reported(msg: FixMessage) -> Order | None:
        coid = order_id_of(msg.get(11) or "")
        known = execution.order(coid)
        if known is not None:
            if known.status is not OrderStatus.INITIALIZED:
                return None
            # journaled as created, its submission lost, and the venue has it: it was sent
            execution.adopt(known, reason="reported by the venue; its submission was lost")
            return known
        if not coid.startswith(order_id_prefix):
            return None
        order = _order_of(adapter, msg, coid)
        if order is not None:
            execution.adopt(order, reason="reported by the venue; its journal records were lost")
            adapter.register(order)
        return order

    adapter.adopt_reported = adopt_reported
    return FixRecoveryPrep(
        rewound_from=target_from,
        rewound_to=store.next_target_seq,
        adopted=adopted,
        resend_floor=store.next_sender_seq,
    )


def _lost_order(
    adapter: RecoveringVenue, execution: NodeOrders, raw: bytes, prefix: str
) -> Order | None:
    """The order a stored NewOrderSingle sent, if the journal lost it (or its submission)."""
    parser = FixParser(adapter.session.settings.begin_string)
    parser.feed(raw)
    msg = next(iter(parser.messages()), None)
    if not isinstance(msg, FixMessage) or msg.msg_type != "D":
        return None
    coid = msg.get(11) or ""
    known = execution.order(coid)
    if known is not None:
        # journaled as intent (INITIALIZED) but its submission was lost: it was sent
        return known if known.status is OrderStatus.INITIALIZED else None
    if not coid.startswith(prefix):
        return None
    return _order_of(adapter, msg, coid)


def _order_of(adapter: RecoveringVenue, msg: FixMessage, coid: str) -> Order | None:
    """The order a NewOrderSingle or an ExecutionReport describes (same tags)."""
    instrument = adapter.instruments.get(msg.get(55) or "")
    side, order_type = _SIDE.get(msg.get(54) or ""), _TYPE.get(msg.get(40) or "")
    if instrument is None or side is None or order_type is None:
        log.error("fix_stored_order_unreadable", venue=adapter.name, client_order_id=coid)
        return None
    price_text = msg.get(44)
    sent_ns = parse_utc_timestamp(msg.get(60) or "") or adapter.clock.timestamp_ns()
    return Order(
        client_order_id=coid,
        strategy_id=msg.get(526) or UNKNOWN_STRATEGY,
        instrument_id=instrument.id,
        venue=adapter.name,
        side=side,
        order_type=order_type,
        quantity=instrument.size_raw(Decimal(msg.get(38) or "0")),
        price=None if price_text is None else instrument.price_raw(Decimal(price_text)),
        time_in_force=_TIF.get(msg.get(59) or "0", TimeInForce.DAY),
        ts_init=sent_ns,
    )


async def positions(adapter: RecoveringVenue, timeout_s: float = 5.0) -> dict[str, Decimal]:
    """The account's net position per symbol (RequestForPositions), as the venue reports."""
    if not adapter.session.logged_on:
        raise VenueUnavailable("venue session not logged on")
    req_id = f"POS-{adapter.next_request_id():x}"
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[FixMessage]] = loop.create_future()
    adapter.position_requests[req_id] = (future, [])
    # Account (1) is required in FIX 4.4's AN: without one configured, the session's own
    # SenderCompID names it (the account a venue keys its sessions by)
    account = adapter.account or adapter.session.settings.sender_comp_id
    fields: list[tuple[int, object]] = [(710, req_id), (724, "0"), (1, account)]
    now = adapter.clock.timestamp_ns()
    fields += [(581, "1"), (715, format_utc_timestamp(now)[:8]), (60, format_utc_timestamp(now))]
    adapter.send_request(FixMessage.of("AN", *fields), req_id)
    try:
        async with asyncio.timeout(timeout_s):
            reports = await future
    except TimeoutError as error:
        raise VenueRequestFailed(f"no RequestForPositions answer in {timeout_s} s") from error
    finally:
        adapter.position_requests.pop(req_id, None)
    net: dict[str, Decimal] = {}
    for report in reports:
        symbol = report.get(55) or ""
        long_qty = sum((Decimal(v) for v in report.get_all(704)), Decimal(0))
        short_qty = sum((Decimal(v) for v in report.get_all(705)), Decimal(0))
        net[symbol] = net.get(symbol, Decimal(0)) + long_qty - short_qty
    return net


def on_position_message(adapter: PositionAnswers, msg: FixMessage) -> None:
    """AO (the request's ack: how many reports follow) and AP (one report)."""
    entry = adapter.position_requests.get(msg.get(710) or "")
    if entry is None:
        return
    future, reports = entry
    if future.done():
        return
    if msg.msg_type == "AO":
        result = msg.get(728) or "0"
        if result not in ("0", "2"):
            future.set_exception(
                VenueRequestFailed(f"venue refused RequestForPositions: PosReqResult {result}")
            )
            return
        expected = int(msg.get(727) or "0")
        adapter.position_expected[msg.get(710) or ""] = expected
    else:
        reports.append(msg)
    expected_n = adapter.position_expected.get(msg.get(710) or "")
    if expected_n is not None and len(reports) >= expected_n:
        adapter.position_expected.pop(msg.get(710) or "", None)
        future.set_result(reports)

"""The FIX venue adapter against an in-process FIX acceptor session (bytes passed in memory).

The adapter's own initiator ``FixSession`` is wired to a venue-side acceptor ``FixSession``
through two byte queues that ``Link.pump`` delivers, so every order goes out as real FIX
bytes and every report comes back through the session layer (sequence numbers, Reject
answers). Cases that only concern the mapping drive ``adapter.on_message`` directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.errors import ConfigError, VenueUnavailable
from bastion.fix.codec import (
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    FixMessage,
)
from bastion.fix.rejects import RejectMessage
from bastion.fix.session import FixSession
from bastion.fix.timestamps import format_utc_timestamp
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import LiquiditySide, TimeInForce
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from bastion.vault import MemorySecrets, SecretNotFound
from bastion.venues.fix.adapter import NOT_LOGGED_ON
from bastion.venues.fix.config import FixScheduleConfig, FixVenueConfig
from kit.fix_link import BUY, ELSEWHERE, IID, SELL, T0, VENUE, Link, execution, order
from kit.fix_pair import parse_all


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    """A logged-on adapter with a venue on the other end of the line."""
    lk = Link(tmp_path)
    lk.connect()
    yield lk
    lk.close()


# -- orders out -------------------------------------------------------------------------------
def test_when_limit_order_submitted_then_new_order_single_fields(link: Link) -> None:
    """A limit order becomes D with ClOrdID, account, symbol, side, decimal qty/price, TIF."""
    o = order(BUY, qty=1_500, price=10_125, tif=TimeInForce.GTC)
    link.adapter.submit(o)
    link.pump()
    nos = link.venue_app.last("D")
    assert nos.get(11) == o.client_order_id
    assert (nos.get(1), nos.get(55), nos.get(54)) == ("ACC-1", IID, "1")
    assert (nos.get(38), nos.get(40), nos.get(44), nos.get(59)) == ("1.500", "2", "101.25", "1")
    assert nos.get(60) == format_utc_timestamp(T0)


def test_when_market_order_submitted_then_no_price_and_type_1(link: Link) -> None:
    """A market sell has 40=1, 54=2 and no Price (44)."""
    link.adapter.submit(order(SELL, qty=2_000, price=None, tif=TimeInForce.DAY))
    link.pump()
    nos = link.venue_app.last("D")
    assert (nos.get(40), nos.get(54), nos.get(38), nos.get(59)) == ("1", "2", "2.000", "0")
    assert 44 not in nos


def test_when_ioc_order_submitted_then_time_in_force_3(link: Link) -> None:
    """TimeInForce IOC is 59=3."""
    link.adapter.submit(order(tif=TimeInForce.IOC))
    link.pump()
    assert link.venue_app.last("D").get(59) == "3"


def test_when_logged_on_then_market_data_subscribed_for_own_instruments(link: Link) -> None:
    """On logon a MarketDataRequest asks for top of book and trades of this venue's
    instruments only."""
    request = link.venue_app.last("V")
    assert (request.get(263), request.get(264), request.get(265)) == ("1", "1", "1")
    assert request.get(267) == "3" and request.get_all(269) == ["0", "1", "2"]
    assert request.get(146) == "1" and request.get_all(55) == [IID]


# -- execution reports in ----------------------------------------------------------------------
def test_when_new_then_order_accepted(link: Link) -> None:
    """ExecType 0 becomes OrderAccepted with the venue's OrderID."""
    o = order()
    link.adapter.submit(o)
    link.send(execution(o.client_order_id, "0", "X-1"))
    assert link.events == [
        OrderAccepted(
            ts_ns=T0,
            client_order_id=o.client_order_id,
            strategy_id="s1",
            instrument_id=IID,
            venue_order_id="V-1",
        )
    ]


def test_when_trade_then_order_filled_with_exact_raw_values_and_fee(link: Link) -> None:
    """A trade is OrderFilled with exact raw qty/px, a Decimal fee, MAKER only for 851=1."""
    o = order()
    link.adapter.submit(o)
    link.send(
        execution(
            o.client_order_id,
            "F",
            "T-1",
            (32, "0.700"),
            (31, "101.25"),
            (12, "0.0123"),
            (851, "1"),
            status="1",
        )
    )
    link.send(execution(o.client_order_id, "F", "T-2", (32, "0.8"), (31, "101.2"), status="2"))
    first, second = link.events
    assert isinstance(first, OrderFilled) and isinstance(second, OrderFilled)
    assert (first.last_qty, first.last_px, first.fee, first.fee_currency) == (
        700,
        10_125,
        Decimal("0.0123"),
        "USD",
    )
    assert (first.exec_id, first.venue_order_id, first.side) == ("T-1", "V-1", BUY)
    assert first.liquidity is LiquiditySide.MAKER
    assert (second.last_qty, second.last_px, second.fee) == (800, 10_120, Decimal(0))
    assert second.liquidity is LiquiditySide.TAKER


def test_when_exec_id_repeated_then_fill_emitted_once(link: Link) -> None:
    """A trade report repeated by the venue (same ExecID, PossResend) is not a second fill."""
    o = order()
    link.adapter.submit(o)
    trade = execution(o.client_order_id, "F", "T-9", (32, "0.5"), (31, "101"), status="1")
    link.send(trade)
    again = trade.copy()
    again.fields.insert(1, (97, "Y"))  # PossResend, a header field
    link.send(again)
    fills = [e for e in link.events if isinstance(e, OrderFilled)]
    assert len(fills) == 1
    assert link.adapter.counters["duplicate_exec_ids"] == 1


def test_when_session_resends_a_trade_then_fill_emitted_once(link: Link) -> None:
    """A trade that arrives again through a session-level resend does not fill twice."""
    o = order()
    link.adapter.submit(o)
    link.send(execution(o.client_order_id, "F", "T-1", (32, "0.5"), (31, "101"), status="1"))
    # the node forgets it processed the report (e.g. its store lagged), asks for it again
    link.session.store.set_next_target_seq(link.session.store.next_target_seq - 1)
    link.session.disconnect("line drop")
    link.venue.disconnect("line drop")
    link.connect()
    link.pump()
    fills = [e for e in link.events if isinstance(e, OrderFilled)]
    assert len(fills) == 1
    assert link.adapter.counters["duplicate_exec_ids"] == 1
    assert any(m.get(43) == "Y" and m.msg_type == "8" for m in link.node_messages())


def test_when_replaced_then_order_updated_and_cancel_names_new_cl_ord_id(link: Link) -> None:
    """Replaced is OrderUpdated; a later cancel names the replace ClOrdID as OrigClOrdID."""
    o = order()
    link.adapter.submit(o)
    link.send(execution(o.client_order_id, "0", "X-1"))
    link.adapter.modify(o, 2_000, 10_150)
    link.pump()
    replace = link.venue_app.last("G")
    new_id = replace.get(11) or ""
    assert new_id.startswith(o.client_order_id + "/")
    assert (replace.get(41), replace.get(38), replace.get(44)) == (
        o.client_order_id,
        "2.000",
        "101.50",
    )
    link.send(execution(new_id, "5", "X-2", (41, o.client_order_id), (38, "2.000"), (44, "101.50")))
    updated = link.events[-1]
    assert isinstance(updated, OrderUpdated)
    assert (updated.client_order_id, updated.quantity, updated.price) == (
        o.client_order_id,
        2_000,
        10_150,
    )
    link.adapter.cancel(o)
    link.pump()
    cancel = link.venue_app.last("F")
    assert cancel.get(41) == new_id
    assert (cancel.get(11) or "").startswith(o.client_order_id + "/")
    assert cancel.get(11) != new_id
    link.send(execution(cancel.get(11) or "", "4", "X-3", (58, "user cancel"), status="4"))
    canceled = link.events[-1]
    assert isinstance(canceled, OrderCanceled)
    assert (canceled.client_order_id, canceled.reason) == (o.client_order_id, "user cancel")


@pytest.mark.parametrize(
    ("exec_type", "extra", "event_type", "reason"),
    [
        ("8", [(58, "too big"), (103, "3")], OrderRejected, "too big (OrdRejReason 3)"),
        ("8", [(103, "1")], OrderRejected, "OrdRejReason 1"),
        ("8", [], OrderRejected, "rejected by venue"),
        ("4", [], OrderCanceled, "canceled"),
        ("C", [], OrderExpired, None),
    ],
)
def test_when_rejected_canceled_or_expired_then_matching_event(
    link: Link,
    exec_type: str,
    extra: list[tuple[int, object]],
    event_type: type[OrderEvent],
    reason: str | None,
) -> None:
    """ExecType 8, 4 and C become OrderRejected, OrderCanceled and OrderExpired."""
    o = order()
    link.adapter.submit(o)
    link.send(execution(o.client_order_id, exec_type, "X-1", *extra))
    (event,) = link.events
    assert type(event) is event_type
    assert event.client_order_id == o.client_order_id
    if reason is not None:
        assert event.reason == reason  # type: ignore[attr-defined]


def test_when_report_for_unknown_order_then_counted_and_ignored(link: Link) -> None:
    """A report naming no order of ours is counted, not answered with a Reject."""
    link.send(execution("someone-else", "0", "X-1"))
    assert link.events == []
    assert link.adapter.counters["unknown_order_reports"] == 1
    assert link.session.counters["rejects_sent"] == 0


@pytest.mark.parametrize(
    ("response_to", "event_type"),
    [("1", OrderCancelRejected), ("2", OrderModifyRejected)],
)
def test_when_order_cancel_reject_then_cancel_or_modify_rejected(
    link: Link, response_to: str, event_type: type[OrderEvent]
) -> None:
    """OrderCancelReject (9) with 434=1 fails a cancel, with 434=2 a replace."""
    o = order()
    link.adapter.submit(o)
    link.send(
        FixMessage.of(
            "9",
            (37, "V-1"),
            (11, f"{o.client_order_id}/abc"),
            (41, o.client_order_id),
            (39, "0"),
            (434, response_to),
            (102, "0"),
        )
    )
    (event,) = link.events
    assert type(event) is event_type
    assert event.reason == "CxlRejReason 0"  # type: ignore[attr-defined]


def test_when_venue_rejects_our_request_then_request_fails(link: Link) -> None:
    """A session Reject (35=3) of our NewOrderSingle, found by RefSeqNum, rejects the order."""
    o = order()
    link.adapter.submit(o)
    nos_seq = link.session.store.next_sender_seq - 1
    link.send(FixMessage.of("3", (45, nos_seq), (371, 44), (372, "D"), (373, 5), (58, "no")))
    (event,) = link.events
    assert isinstance(event, OrderRejected)
    assert event.reason == "venue rejected D: no"


# -- malformed reports ------------------------------------------------------------------------
@pytest.mark.parametrize("missing", [37, 17, 150, 39, 54, 151, 14, 6])
def test_when_required_tag_missing_then_reject_message_names_it(link: Link, missing: int) -> None:
    """Each required ExecutionReport tag, when absent, raises RejectMessage(1, tag)."""
    o = order()
    link.adapter.submit(o)
    report = execution(o.client_order_id, "0", "X-1")
    report.remove(missing)
    with pytest.raises(RejectMessage) as info:
        link.adapter.on_message(link.session, report)
    assert (info.value.reason, info.value.ref_tag) == (REQUIRED_TAG_MISSING, missing)
    assert link.events == []


def test_when_required_tag_missing_on_the_wire_then_session_reject_sent(link: Link) -> None:
    """Through the session, the RejectMessage becomes a Reject (35=3) with 371 and 373=1."""
    o = order()
    link.adapter.submit(o)
    report = execution(o.client_order_id, "F", "T-1", (32, "1"), (31, "101"))
    report.remove(151)
    link.send(report)
    reject = next(m for m in reversed(link.venue_app.messages) if m.msg_type == "3")
    assert (reject.get(371), reject.get(373), reject.get(372)) == ("151", "1", "8")
    assert link.events == []


@pytest.mark.parametrize(
    ("fields", "reason", "tag"),
    [
        ([(32, "abc"), (31, "101")], INCORRECT_DATA_FORMAT, 32),
        ([(32, "1"), (31, "1.0.1")], INCORRECT_DATA_FORMAT, 31),
        ([(32, "Infinity"), (31, "101")], INCORRECT_DATA_FORMAT, 32),
        ([(32, "1"), (31, "NaN")], INCORRECT_DATA_FORMAT, 31),
        ([(32, "1"), (31, "101"), (12, "fee")], INCORRECT_DATA_FORMAT, 12),
        ([(31, "101")], REQUIRED_TAG_MISSING, 32),
        ([(32, "1.0005"), (31, "101")], VALUE_INCORRECT, 32),
        ([(32, "1"), (31, "101.001")], VALUE_INCORRECT, 31),
        ([(32, "0"), (31, "101")], VALUE_INCORRECT, 32),
        ([(32, "1"), (31, "-5")], VALUE_INCORRECT, 31),
    ],
)
def test_when_trade_values_bad_then_reject_message_with_reason(
    link: Link, fields: list[tuple[int, object]], reason: int, tag: int
) -> None:
    """Bad decimals: INCORRECT_DATA_FORMAT; off-precision values: VALUE_INCORRECT; tag named."""
    o = order()
    link.adapter.submit(o)
    with pytest.raises(RejectMessage) as info:
        link.adapter.on_message(link.session, execution(o.client_order_id, "F", "T-1", *fields))
    assert (info.value.reason, info.value.ref_tag) == (reason, tag)
    assert link.events == []


def test_when_trade_side_unknown_then_value_incorrect(link: Link) -> None:
    """A trade whose Side (54) is not 1 or 2 is VALUE_INCORRECT on tag 54."""
    o = order()
    link.adapter.submit(o)
    report = execution(o.client_order_id, "F", "T-1", (32, "1"), (31, "101"), side="7")
    with pytest.raises(RejectMessage) as info:
        link.adapter.on_message(link.session, report)
    assert (info.value.reason, info.value.ref_tag) == (VALUE_INCORRECT, 54)


def test_when_unsupported_message_type_then_business_reject(link: Link) -> None:
    """A message type the adapter does not handle is answered with 35=j, 380=3."""
    link.send(FixMessage.of("B", (148, "news"), (33, "1"), (58, "text")))
    business_reject = next(m for m in link.venue_app.messages if m.msg_type == "j")
    assert (business_reject.get(380), business_reject.get(372)) == ("3", "B")


# -- refused locally ---------------------------------------------------------------------------
def test_when_not_logged_on_then_requests_refused_on_next_loop_turn(tmp_path: Path) -> None:
    """While logged off, requests are refused by events delivered on the next loop turn."""
    lk = Link(tmp_path)

    async def main() -> None:
        o = order()
        lk.adapter.submit(o)
        lk.adapter.cancel(o)
        lk.adapter.modify(o, 1, 1)
        lk.adapter.submit(order(instrument_id=ELSEWHERE.id))
        assert lk.events == []
        await asyncio.sleep(0)
        kinds = [type(e) for e in lk.events]
        assert kinds == [OrderRejected, OrderCancelRejected, OrderModifyRejected, OrderRejected]
        assert [e.reason for e in lk.events[:3]] == [NOT_LOGGED_ON] * 3  # type: ignore[attr-defined]
        assert lk.events[3].reason == f"{ELSEWHERE.id} is not on {VENUE}"  # type: ignore[attr-defined]
        assert lk.adapter.counters["refused_locally"] == 4

    try:
        asyncio.run(main())
        assert lk.session.store.sent_messages(1, 100) == []
    finally:
        lk.close()


def test_when_order_lost_in_a_dropped_connection_then_never_resent_on_the_next_logon(
    link: Link,
) -> None:
    """A NewOrderSingle whose bytes die with the connection is gap-filled when the venue
    asks for it after the next logon, however late: reconciliation settles it by ClOrdID."""
    o = order()
    link.adapter.submit(o)
    lost_seq = int(link.adapter.store.sent_messages(1, 100)[-1][0])
    link.to_venue.clear()  # in flight when the connection fails
    link.session.connection_lost("network failure")
    link.venue.connection_lost("network failure")
    link.clock.advance_to(T0 + 60 * 1_000_000_000)
    link.connect()
    link.pump()
    assert [m.get(11) for m in link.venue_app.messages if m.msg_type == "D"] == []
    assert link.session.counters["gap_fills_sent"] >= 1
    assert link.session.resend_floor > lost_seq
    assert link.venue.store.next_target_seq == link.session.store.next_sender_seq


def test_when_cancel_lost_in_a_dropped_connection_then_resent_on_the_next_logon(
    link: Link,
) -> None:
    """A cancel is the one request still resent after a drop (PossDup): late it does no
    harm, lost it would leave the order working at the venue."""
    o = order()
    link.adapter.submit(o)
    link.send(execution(o.client_order_id, "0", "X-1"))
    link.adapter.cancel(o)
    link.to_venue.clear()
    link.session.connection_lost("network failure")
    link.venue.connection_lost("network failure")
    link.connect()
    link.pump()
    cancels = [m for m in link.venue_app.messages if m.msg_type == "F"]
    assert [(m.get(41), m.get(43)) for m in cancels] == [(o.client_order_id, "Y")]
    assert [m.get(11) for m in link.venue_app.messages if m.msg_type == "D"] == [o.client_order_id]


def test_when_node_clock_moves_then_session_heartbeats_follow_it(link: Link) -> None:
    """The session's timers read the node's clock (here simulated), not the system's: a
    heartbeat interval of silence on that clock sends a Heartbeat, SendingTime from it."""
    link.pump()
    link.session.tick()
    assert link.to_venue == []
    link.clock.advance_to(T0 + 31 * 1_000_000_000)
    link.session.tick()
    sent = parse_all(b"".join(link.to_venue))
    assert [(m.msg_type, m.get(52)) for m in sent] == [
        ("0", format_utc_timestamp(T0 + 31 * 1_000_000_000))
    ]


def test_when_cancel_of_unknown_order_then_cancel_rejected(link: Link) -> None:
    """Cancelling an order this adapter never sent is refused locally."""

    async def main() -> None:
        link.adapter.cancel(order())
        await asyncio.sleep(0)

    asyncio.run(main())
    (event,) = link.events
    assert isinstance(event, OrderCancelRejected) and event.reason == "order unknown to venue"


# -- market data -------------------------------------------------------------------------------
def snapshot(bid: str, bid_size: str, ask: str, ask_size: str) -> FixMessage:
    return FixMessage.of(
        "W",
        (262, "MD-1"),
        (55, IID),
        (268, 2),
        (269, "0"),
        (270, bid),
        (271, bid_size),
        (269, "1"),
        (270, ask),
        (271, ask_size),
    )


def test_when_snapshot_then_incremental_then_quote_ticks(link: Link) -> None:
    """W gives a QuoteTick of the whole top of book; X changes one side of it."""
    link.send(snapshot("101.25", "2.5", "101.30", "1"))
    link.send(
        FixMessage.of(
            "X",
            (262, "MD-1"),
            (268, 1),
            (279, "1"),
            (269, "1"),
            (55, IID),
            (270, "101.28"),
            (271, "0.75"),
        )
    )
    assert link.quotes == [
        QuoteTick(IID, T0, 10_125, 10_130, 2_500, 1_000),
        QuoteTick(IID, T0, 10_125, 10_128, 2_500, 750),
    ]


def test_when_book_crossed_then_quote_dropped_and_counted(link: Link) -> None:
    """A bid at or above the ask is not published; the adapter counts it."""
    link.send(snapshot("101.30", "1", "101.30", "1"))
    link.send(snapshot("101.40", "1", "101.30", "1"))
    assert link.quotes == []
    assert link.adapter.counters["market_data_crossed"] == 2


def test_when_market_data_for_unknown_symbol_then_counted(link: Link) -> None:
    """Entries for symbols that are not this venue's instruments are counted and skipped."""
    msg = snapshot("1", "1", "2", "1")
    msg.set(55, "NOPE")
    link.send(msg)
    assert link.quotes == []
    assert link.adapter.counters["market_data_unknown_symbol"] == 1


def test_when_market_data_price_bad_then_reject_message(link: Link) -> None:
    """A price that is not a decimal raises RejectMessage (INCORRECT_DATA_FORMAT, 270)."""
    with pytest.raises(RejectMessage) as info:
        link.adapter.on_message(link.session, snapshot("x", "1", "2", "1"))
    assert (info.value.reason, info.value.ref_tag) == (INCORRECT_DATA_FORMAT, 270)


def test_when_incremental_deletes_bid_then_side_cleared(link: Link) -> None:
    """X with [279=2, 269=0] deletes the bid; [279=0, 269=1, ...] is a new ask."""
    link.send(snapshot("101.25", "2.5", "101.30", "1"))
    delete_bid_new_ask = FixMessage.of(
        "X",
        (262, "MD-1"),
        (268, 2),
        (279, "2"),
        (269, "0"),
        (55, IID),
        (279, "0"),
        (269, "1"),
        (55, IID),
        (270, "101.29"),
        (271, "3"),
    )
    link.adapter.on_message(link.session, delete_bid_new_ask)
    assert len(link.quotes) == 1  # no quote without a bid
    link.send(snapshot("101.20", "1", "101.29", "3"))
    assert link.quotes[-1] == QuoteTick(IID, T0, 10_120, 10_129, 1_000, 3_000)


def test_when_snapshot_has_no_offers_then_stale_ask_not_published(link: Link) -> None:
    """A full refresh replaces the book: a W holding only a bid leaves no ask to quote."""
    link.send(snapshot("101.25", "2.5", "101.30", "1"))
    link.send(FixMessage.of("W", (262, "MD-1"), (55, IID), (268, 1), (269, "0"), (270, "101")))
    assert len(link.quotes) == 1


def trade_entry(price: str, size: str, *extra: tuple[int, object]) -> FixMessage:
    return FixMessage.of(
        "X",
        (262, "MD-1"),
        (268, 1),
        (279, "0"),
        (269, "2"),
        (55, IID),
        (270, price),
        (271, size),
        *extra,
    )


def test_when_incremental_trade_entry_then_trade_tick_at_arrival_and_no_quote(link: Link) -> None:
    """X with a Trade entry (269=2) is a print stamped when it arrived; the book and the
    quotes are untouched."""
    link.send(snapshot("101.25", "2.5", "101.30", "1"))
    link.clock.set_time(T0 + 7)
    link.send(trade_entry("101.30", "0.5"))
    assert link.trades == [TradeTick(IID, T0 + 7, 10_130, 500)]
    assert len(link.quotes) == 1


def test_when_snapshot_holds_last_trade_then_it_keeps_its_own_time(link: Link) -> None:
    """A W's Trade entry is the last trade, dated by MDEntryDate/MDEntryTime (272/273):
    an old print stays old; one without a date is dropped and counted."""
    traded = T0 - 60_000_000_000  # a minute before
    stamp = format_utc_timestamp(traded)

    def with_trade(*dates: tuple[int, str]) -> FixMessage:
        book = snapshot("101.25", "2.5", "101.30", "1")
        book.set(268, "3")
        return FixMessage([*book.fields, (269, "2"), (270, "101.27"), (271, "2"), *dates])

    link.send(with_trade((272, stamp[:8]), (273, stamp[9:])))
    assert link.trades == [TradeTick(IID, traded, 10_127, 2_000)]
    assert link.quotes == [QuoteTick(IID, T0, 10_125, 10_130, 2_500, 1_000)]
    link.send(with_trade())
    assert len(link.trades) == 1
    assert link.adapter.counters["market_data_trade_undated"] == 1


def test_when_trade_entry_price_bad_then_reject_message(link: Link) -> None:
    """A Trade entry whose price is not a decimal raises RejectMessage (270)."""
    with pytest.raises(RejectMessage) as info:
        link.adapter.on_message(link.session, trade_entry("x", "1"))
    assert (info.value.reason, info.value.ref_tag) == (INCORRECT_DATA_FORMAT, 270)
    assert link.trades == []


# -- reconciliation queries ----------------------------------------------------------------------
def _status_report(
    req_id: str, cl_ord_id: str, total: int, last: bool, status: str = "0"
) -> FixMessage:
    return FixMessage.of(
        "8",
        (37, "V-1" if cl_ord_id != "NONE" else "NONE"),
        (11, cl_ord_id),
        (17, f"S-{cl_ord_id}"),
        (150, "I"),
        (39, status),
        (55, IID),
        (54, "1"),
        (151, "1"),
        (14, "0"),
        (6, "0"),
        (584, req_id),
        (911, total),
        (912, "Y" if last else "N"),
    )


def test_when_mass_status_answered_then_reports_collected_until_last(link: Link) -> None:
    """OrderMassStatusRequest (AF, 585=7) collects every 150=I report up to 912=Y."""

    def answer(session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type == "AF":
            req_id = msg.get(584) or ""
            session.send(_status_report(req_id, "node-1-a", 2, last=False))
            session.send(_status_report(req_id, "node-1-b/3f", 2, last=True, status="1"))

    link.venue_app.answer = answer

    async def main() -> tuple[list[FixMessage], set[str]]:
        task = asyncio.create_task(link.adapter.mass_status(timeout_s=2))
        await asyncio.sleep(0)
        link.pump()
        reports = await task
        ids_task = asyncio.create_task(link.adapter.open_order_ids())
        await asyncio.sleep(0)
        link.pump()
        return reports, await ids_task

    reports, ids = asyncio.run(main())
    assert [r.get(11) for r in reports] == ["node-1-a", "node-1-b/3f"]
    assert link.venue_app.last("AF").get(585) == "7"
    assert ids == {"node-1-a", "node-1-b"}


def test_when_mass_status_finds_nothing_then_empty_list(link: Link) -> None:
    """A single 911=0 report naming no order resolves to no reports."""

    def answer(session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type == "AF":
            session.send(_status_report(msg.get(584) or "", "NONE", 0, last=True))

    link.venue_app.answer = answer

    async def main() -> set[str]:
        task = asyncio.create_task(link.adapter.open_order_ids())
        await asyncio.sleep(0)
        link.pump()
        return await task

    assert asyncio.run(main()) == set()


def test_when_session_drops_during_mass_status_then_venue_unavailable(link: Link) -> None:
    """A pending query fails with VenueUnavailable when the session goes down."""

    async def main() -> None:
        task = asyncio.create_task(link.adapter.mass_status(timeout_s=2))
        await asyncio.sleep(0)
        link.session.disconnect("line drop")
        with pytest.raises(VenueUnavailable, match="line drop"):
            await task

    asyncio.run(main())
    assert not link.adapter.logged_on.is_set()


def test_when_mass_status_while_logged_off_then_venue_unavailable(tmp_path: Path) -> None:
    """Queries need a logged-on session."""
    lk = Link(tmp_path)
    try:
        with pytest.raises(VenueUnavailable, match=NOT_LOGGED_ON):
            asyncio.run(lk.adapter.mass_status())
    finally:
        lk.close()


# -- configuration -----------------------------------------------------------------------------
def fix_config(**overrides: object) -> FixVenueConfig:
    fields: dict[str, object] = {"port": 9878, "sender_comp_id": "NODE", "target_comp_id": "EX"}
    fields.update(overrides)
    return FixVenueConfig(**fields)  # type: ignore[arg-type]


def test_when_password_env_unset_then_config_error_names_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``password_env`` naming an unset variable is a ConfigError that names it."""
    monkeypatch.delenv("BASTION_TEST_FIX_PASSWORD", raising=False)
    config = fix_config(password_env="BASTION_TEST_FIX_PASSWORD")
    with pytest.raises(ConfigError, match="BASTION_TEST_FIX_PASSWORD"):
        config.settings()


def test_when_password_env_set_then_used_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The password comes from the environment; neither the config nor the settings show it."""
    monkeypatch.setenv("BASTION_TEST_FIX_PASSWORD", "env-secret-31")
    config = fix_config(password_env="BASTION_TEST_FIX_PASSWORD", username="u")
    settings = config.settings()
    assert settings.password == "env-secret-31"
    assert "env-secret-31" not in repr(settings) and "env-secret-31" not in str(settings)


def test_when_password_is_a_literal_then_refused_naming_the_key() -> None:
    """``password`` takes a vault reference; a literal is refused, its value not echoed."""
    with pytest.raises(ConfigError, match=r"fix_venue\.password") as caught:
        fix_config(password="file-secret-77")
    assert "file-secret-77" not in str(caught.value)


def test_when_password_is_a_reference_then_resolved_through_the_source() -> None:
    """``secret:NAME`` is read from the secret source; without one the error names it."""
    config = fix_config(password="secret:fix/acct1", username="u")
    settings = config.settings(MemorySecrets({"fix/acct1": "vault-secret-55"}))
    assert settings.password == "vault-secret-55"
    assert "vault-secret-55" not in repr(settings)
    with pytest.raises(ConfigError, match="fix/acct1"):
        config.settings()
    with pytest.raises(SecretNotFound, match="fix/acct1"):
        config.settings(MemorySecrets({}))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"port": 0}, "fix_venue.port"),
        ({"sender_comp_id": ""}, "fix_venue.sender_comp_id"),
        ({"heartbeat_s": 0}, "fix_venue.heartbeat_s"),
        ({"password": "secret:a", "password_env": "B"}, "fix_venue.password"),
        ({"reconnect_initial_ms": 0}, "fix_venue.reconnect_initial_ms"),
        ({"reconnect_initial_ms": 10, "reconnect_max_ms": 5}, "fix_venue.reconnect_max_ms"),
        ({"max_sending_time_skew_s": 0.0}, "fix_venue.max_sending_time_skew_s"),
        ({"schedule": FixScheduleConfig(start="9am", end="17:00")}, "fix_venue.schedule"),
        (
            {"schedule": FixScheduleConfig(start="08:00", end="17:00", timezone="Mars/Base")},
            "fix_venue.schedule",
        ),
    ],
)
def test_when_config_value_bad_then_config_error_names_key(
    overrides: dict[str, object], key: str
) -> None:
    """Every invalid value is refused with the key's name in the message."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        fix_config(**overrides)


def test_when_config_has_unknown_key_then_rejected() -> None:
    """Unknown keys are refused, naming the key."""
    with pytest.raises(msgspec.ValidationError, match="hearbeat_s"):
        msgspec.convert(
            {"port": 1, "sender_comp_id": "A", "target_comp_id": "B", "hearbeat_s": 5},
            FixVenueConfig,
        )

"""FIX 4.4 messages to venue requests and venue reports to FIX messages.

``parse_request`` validates an inbound order message and raises the session's
``RejectMessage`` naming the tag and the SessionRejectReason when a required tag
is missing, a value is malformed or out of range: bad input is answered, never
half-applied. A well-formed request the venue declines is the engine's to answer
(an ExecutionReport, an OrderCancelReject, a RequestForPositionsAck).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final, TypeVar

from bastion.fix.codec import (
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    FixMessage,
)
from bastion.fix.rejects import RejectMessage
from bastion.fix.timestamps import format_utc_timestamp
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.venue_server.messages import (
    CancelReject,
    CancelRequest,
    MassStatusRequest,
    NewOrderRequest,
    PositionReport,
    PositionsAck,
    PositionsRequest,
    QuoteUpdate,
    ReplaceRequest,
    Report,
    Request,
    StatusRequest,
    TradeUpdate,
)

_SIDE_IN = {"1": OrderSide.BUY, "2": OrderSide.SELL}
_SIDE_OUT = {OrderSide.BUY: "1", OrderSide.SELL: "2"}
_TYPE_IN = {"1": OrderType.MARKET, "2": OrderType.LIMIT}
_TYPE_OUT = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
_TIF_IN = {"0": TimeInForce.DAY, "1": TimeInForce.GTC, "3": TimeInForce.IOC}
_TIF_OUT = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3"}
T = TypeVar("T")
ORDER_MSG_TYPES = frozenset({"D", "F", "G", "H", "AF", "AN"})
_INT: Final = re.compile(r"-?[0-9]+")  # FIX int: ASCII digits only, unlike Python's int()
# AccountType (581) 1: carried on the customer side of the books
_ACCOUNT_TYPE: Final = "1"


def parse_request(msg: FixMessage) -> Request:
    """The venue request an order message asks for; ``RejectMessage`` if it is invalid."""
    msg_type = msg.msg_type
    if msg_type == "D":
        order_type = _enum(msg, 40, _TYPE_IN)
        price = _price(msg, 44) if order_type is OrderType.LIMIT else None
        if order_type is OrderType.MARKET and msg.get(44) is not None:
            raise RejectMessage(VALUE_INCORRECT, 44, "Price (44) given for a market order")
        return NewOrderRequest(
            cl_ord_id=_required(msg, 11),
            symbol=_required(msg, 55),
            side=_enum(msg, 54, _SIDE_IN),
            order_type=order_type,
            quantity=_quantity(msg, 38),
            price=price,
            time_in_force=_enum(msg, 59, _TIF_IN, default="0"),
            poss_dup=msg.get(43) == "Y" or msg.get(97) == "Y",  # PossDupFlag, PossResend
        )
    if msg_type == "F":
        return CancelRequest(
            cl_ord_id=_required(msg, 11),
            orig_cl_ord_id=_required(msg, 41),
            symbol=_required(msg, 55),
            side=_enum(msg, 54, _SIDE_IN),
        )
    if msg_type == "G":
        order_type = _enum(msg, 40, _TYPE_IN)
        return ReplaceRequest(
            cl_ord_id=_required(msg, 11),
            orig_cl_ord_id=_required(msg, 41),
            symbol=_required(msg, 55),
            side=_enum(msg, 54, _SIDE_IN),
            quantity=_quantity(msg, 38),
            price=_price(msg, 44) if order_type is OrderType.LIMIT else None,
        )
    if msg_type == "H":
        return StatusRequest(
            cl_ord_id=_required(msg, 11),
            symbol=_required(msg, 55),
            side=_enum(msg, 54, _SIDE_IN),
        )
    if msg_type == "AF":
        req_type = _required(msg, 585)
        if req_type != "7":
            raise RejectMessage(
                VALUE_INCORRECT, 585, "MassStatusReqType (585): only 7 (all orders) is supported"
            )
        return MassStatusRequest(mass_status_req_id=_required(msg, 584))
    if msg_type == "AN":  # AccountType (581), ClearingBusinessDate (715), 60: accepted, unused
        return PositionsRequest(
            pos_req_id=_required(msg, 710),
            pos_req_type=_int(msg, 724),
            account=msg.get(1),
            symbol=msg.get(55),
        )
    raise ValueError(f"not an order message: {msg_type}")


def report_to_fix(report: Report) -> FixMessage:
    if isinstance(report, PositionsAck):
        return _positions_ack_to_fix(report)
    if isinstance(report, PositionReport):
        return _position_report_to_fix(report)
    if isinstance(report, CancelReject):
        return FixMessage.of(
            "9",
            (37, report.order_id or "NONE"),
            (11, report.cl_ord_id),
            (41, report.orig_cl_ord_id),
            (39, report.ord_status),
            (434, report.response_to),
            (102, report.reason),
            (58, report.text or "cancel rejected"),
            (60, format_utc_timestamp(report.transact_time_ns)),
        )
    fields: list[tuple[int, object]] = [
        (37, report.order_id),
        (11, report.cl_ord_id),
    ]
    if report.orig_cl_ord_id is not None:
        fields.append((41, report.orig_cl_ord_id))
    fields += [(17, report.exec_id), (150, report.exec_type), (39, report.ord_status)]
    if report.ord_rej_reason is not None:
        fields.append((103, report.ord_rej_reason))
    fields += [(55, report.symbol), (54, _SIDE_OUT[report.side] if report.side else "1")]
    if report.order_type is not None:
        fields.append((40, _TYPE_OUT[report.order_type]))
    if report.time_in_force is not None:
        fields.append((59, _TIF_OUT[report.time_in_force]))
    fields.append((38, report.order_qty))
    if report.price is not None:
        fields.append((44, report.price))
    fields.append((32, report.last_qty))
    if report.last_px is not None:
        fields.append((31, report.last_px))
    fields += [(151, report.leaves_qty), (14, report.cum_qty), (6, report.avg_px)]
    if report.commission is not None:
        fields += [(12, report.commission), (13, "3")]
    if report.liquidity is not None:
        fields.append((851, report.liquidity))
    if report.text:
        fields.append((58, report.text))
    fields.append((60, format_utc_timestamp(report.transact_time_ns)))
    if report.mass_status_req_id is not None:
        fields.append((584, report.mass_status_req_id))
    if report.tot_num_reports is not None:
        fields.append((911, report.tot_num_reports))
    if report.last_rpt_requested is not None:
        fields.append((912, "Y" if report.last_rpt_requested else "N"))
    return FixMessage.of("8", *fields)


def _positions_ack_to_fix(ack: PositionsAck) -> FixMessage:
    fields: list[tuple[int, object]] = [
        (721, ack.pos_maint_rpt_id),
        (710, ack.pos_req_id),
        (727, ack.total_num_pos_reports),
        (728, ack.pos_req_result),
        (729, ack.pos_req_status),
        (1, ack.account),
        (581, _ACCOUNT_TYPE),
    ]
    if ack.text:
        fields.append((58, ack.text))
    return FixMessage.of("AO", *fields)


def _position_report_to_fix(report: PositionReport) -> FixMessage:
    return FixMessage.of(
        "AP",
        (721, report.pos_maint_rpt_id),
        (710, report.pos_req_id),
        (727, report.total_num_pos_reports),
        (728, 0),  # PosReqResult: valid request
        (715, report.clearing_business_date),
        (1, report.account),
        (581, _ACCOUNT_TYPE),
        (55, report.symbol),
        (730, report.settl_price),
        (731, "1"),  # SettlPriceType: final
        (734, 0),  # PriorSettlPrice: the venue keeps no settlement history
        (702, 1),  # NoPositions: the one net quantity
        (703, "TQ"),  # PosType: transaction quantity
        (704, report.long_qty),
        (705, report.short_qty),
        (706, "0"),  # PosQtyStatus: submitted
    )


def market_data_snapshot(
    req_id: str, quote: QuoteUpdate, trade: TradeUpdate | None = None
) -> FixMessage:
    """Bid and offer, then the last trade (269=2, with its MDEntryDate and MDEntryTime)
    when one is given."""
    fields: list[tuple[int, object]] = [
        (262, req_id),
        (55, quote.symbol),
        (268, 2 if trade is None else 3),
        (269, "0"),
        (270, quote.bid),
        (271, quote.bid_size),
        (269, "1"),
        (270, quote.ask),
        (271, quote.ask_size),
    ]
    if trade is not None:
        fields += [(269, "2"), *_trade_fields(trade)]
    return FixMessage.of("W", *fields)


def market_data_trade(req_id: str, trade: TradeUpdate) -> FixMessage:
    """One new Trade entry (279=0, 269=2): a match's price, size and time."""
    return FixMessage.of(
        "X",
        (262, req_id),
        (268, 1),
        (279, "0"),
        (269, "2"),
        (55, trade.symbol),
        *_trade_fields(trade),
    )


def _trade_fields(trade: TradeUpdate) -> list[tuple[int, object]]:
    stamp = format_utc_timestamp(trade.ts_ns)  # YYYYMMDD-HH:MM:SS.sss
    return [(270, trade.price), (271, trade.size), (272, stamp[:8]), (273, stamp[9:])]


def market_data_incremental(req_id: str, quote: QuoteUpdate) -> FixMessage:
    return FixMessage.of(
        "X",
        (262, req_id),
        (268, 2),
        (279, "1"),
        (269, "0"),
        (55, quote.symbol),
        (270, quote.bid),
        (271, quote.bid_size),
        (279, "1"),
        (269, "1"),
        (55, quote.symbol),
        (270, quote.ask),
        (271, quote.ask_size),
    )


def _required(msg: FixMessage, tag: int) -> str:
    value = msg.get(tag)
    if value is None:
        raise RejectMessage(REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}")
    return value


def _enum(msg: FixMessage, tag: int, table: dict[str, T], default: str | None = None) -> T:
    value = msg.get(tag, default)
    if value is None:
        raise RejectMessage(REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}")
    try:
        return table[value]
    except KeyError:
        raise RejectMessage(
            VALUE_INCORRECT, tag, f"Value is incorrect (out of range) for tag {tag}: {value!r}"
        ) from None


def _int(msg: FixMessage, tag: int) -> int:
    text = _required(msg, tag)
    if not _INT.fullmatch(text):
        raise RejectMessage(
            INCORRECT_DATA_FORMAT, tag, f"Incorrect data format for tag {tag}: {text!r}"
        )
    return int(text)


def _decimal(msg: FixMessage, tag: int) -> Decimal:
    text = _required(msg, tag)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RejectMessage(
            INCORRECT_DATA_FORMAT, tag, f"Incorrect data format for tag {tag}: {text!r}"
        ) from None
    if not value.is_finite():
        raise RejectMessage(INCORRECT_DATA_FORMAT, tag, f"Incorrect data format for tag {tag}")
    return value


def _quantity(msg: FixMessage, tag: int) -> Decimal:
    value = _decimal(msg, tag)
    if value <= 0 or value > Decimal("1e12"):
        raise RejectMessage(
            VALUE_INCORRECT, tag, f"Value is incorrect (out of range) for tag {tag}"
        )
    return value


def _price(msg: FixMessage, tag: int) -> Decimal:
    value = _decimal(msg, tag)
    if value <= 0 or value > Decimal("1e12"):
        raise RejectMessage(
            VALUE_INCORRECT, tag, f"Value is incorrect (out of range) for tag {tag}"
        )
    return value

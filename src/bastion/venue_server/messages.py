"""What an account says to the venue simulator and what the simulator says back.

Plain, transport-neutral messages with FIX 4.4 semantics: the FIX acceptor turns
wire messages into the requests below and the reports below into wire messages.
Prices and quantities are exact ``Decimal``s in instrument units at this boundary;
the engine converts them with the ``Instrument`` to raw integers inside.

FIX codes are kept as the wire's own strings (``ExecType`` 150, ``OrdStatus`` 39,
``LastLiquidityInd`` 851, ``CxlRejResponseTo`` 434) so the acceptor copies them
without a mapping table; the ``Literal`` aliases let mypy check every use.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

import msgspec

from bastion.model.enums import OrderSide, OrderType, TimeInForce

ExecTypeCode = Literal["0", "4", "5", "8", "C", "F", "I"]
OrdStatusCode = Literal["0", "1", "2", "4", "8", "C"]
LiquidityCode = Literal["1", "2"]
ResponseToCode = Literal["1", "2"]

EXEC_NEW: Final = "0"
EXEC_CANCELED: Final = "4"
EXEC_REPLACED: Final = "5"
EXEC_REJECTED: Final = "8"
EXEC_EXPIRED: Final = "C"
EXEC_TRADE: Final = "F"
EXEC_STATUS: Final = "I"

STATUS_NEW: Final = "0"
STATUS_PARTIALLY_FILLED: Final = "1"
STATUS_FILLED: Final = "2"
STATUS_CANCELED: Final = "4"
STATUS_REJECTED: Final = "8"
STATUS_EXPIRED: Final = "C"
OPEN_STATUSES: Final = frozenset({STATUS_NEW, STATUS_PARTIALLY_FILLED})

LIQUIDITY_ADDED: Final = "1"
LIQUIDITY_REMOVED: Final = "2"

RESPONSE_TO_CANCEL: Final = "1"
RESPONSE_TO_REPLACE: Final = "2"

# OrdRejReason (103)
REJ_BROKER_OPTION: Final = 0
REJ_UNKNOWN_SYMBOL: Final = 1
REJ_EXCEEDS_LIMIT: Final = 3
REJ_UNKNOWN_ORDER: Final = 5
REJ_DUPLICATE_ORDER: Final = 6
REJ_UNSUPPORTED: Final = 11
REJ_INCORRECT_QUANTITY: Final = 13
REJ_OTHER: Final = 99

# CxlRejReason (102)
CXL_TOO_LATE: Final = 0
CXL_UNKNOWN_ORDER: Final = 1
CXL_ALREADY_PENDING: Final = 3
CXL_DUPLICATE_CL_ORD_ID: Final = 6
CXL_OTHER: Final = 99

NONE_ID: Final = "NONE"  # the id FIX reports carry when they name no order

# PosReqType (724), PosReqResult (728), PosReqStatus (729)
POS_REQ_POSITIONS: Final = 0
POS_RESULT_VALID: Final = 0
POS_RESULT_UNSUPPORTED: Final = 1  # "invalid or unsupported request"
POS_RESULT_NONE_FOUND: Final = 2
POS_RESULT_NOT_AUTHORIZED: Final = 3
POS_STATUS_COMPLETED: Final = 0
POS_STATUS_REJECTED: Final = 2


class _Message(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


# -- requests (from an account) ---------------------------------------------------------
class NewOrderRequest(_Message, frozen=True, kw_only=True):
    """NewOrderSingle (D). ``poss_dup``: PossDupFlag (43) or PossResend (97) says it may
    have been sent before (a ClOrdID already known is answered with its status)."""

    cl_ord_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    poss_dup: bool = False


class CancelRequest(_Message, frozen=True, kw_only=True):
    """OrderCancelRequest (F): a new ``cl_ord_id`` naming the order by any id of its chain."""

    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: OrderSide


class ReplaceRequest(_Message, frozen=True, kw_only=True):
    """OrderCancelReplaceRequest (G): new total quantity and price (None keeps the price)."""

    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal | None = None


class StatusRequest(_Message, frozen=True, kw_only=True):
    """OrderStatusRequest (H), naming the order by any id of its chain."""

    cl_ord_id: str
    symbol: str
    side: OrderSide


class MassStatusRequest(_Message, frozen=True, kw_only=True):
    """OrderMassStatusRequest (AF) for every open order of the account."""

    mass_status_req_id: str


class PositionsRequest(_Message, frozen=True, kw_only=True):
    """RequestForPositions (AN): ``pos_req_type`` is PosReqType (724), of which only 0
    (positions) is served; ``account`` (1) and ``symbol`` (55) are as sent, if sent."""

    pos_req_id: str
    pos_req_type: int
    account: str | None = None
    symbol: str | None = None


Request = (
    NewOrderRequest
    | CancelRequest
    | ReplaceRequest
    | StatusRequest
    | MassStatusRequest
    | PositionsRequest
)


# -- reports (to an account) ------------------------------------------------------------
class ExecReport(_Message, frozen=True, kw_only=True):
    """ExecutionReport (8).

    ``exec_id`` is unique per venue, across restarts. ``last_qty`` is zero and
    ``last_px``/``commission``/``liquidity`` are None except on trades (``F``).
    ``side``/``order_type``/``time_in_force`` are None only on a report that names
    no order (``order_id == "NONE"``, e.g. a mass status answer with no open orders).
    The mass status fields are set only on answers to a ``MassStatusRequest``.
    """

    exec_type: ExecTypeCode
    ord_status: OrdStatusCode
    order_id: str
    exec_id: str
    cl_ord_id: str
    orig_cl_ord_id: str | None = None
    symbol: str
    side: OrderSide | None
    order_type: OrderType | None
    time_in_force: TimeInForce | None
    order_qty: Decimal
    price: Decimal | None
    last_qty: Decimal
    last_px: Decimal | None = None
    leaves_qty: Decimal
    cum_qty: Decimal
    avg_px: Decimal
    commission: Decimal | None = None
    liquidity: LiquidityCode | None = None
    ord_rej_reason: int | None = None
    text: str = ""
    transact_time_ns: int
    mass_status_req_id: str | None = None
    tot_num_reports: int | None = None
    last_rpt_requested: bool | None = None


class CancelReject(_Message, frozen=True, kw_only=True):
    """OrderCancelReject (9): ``response_to`` "1" cancel, "2" replace; ``reason`` CxlRejReason."""

    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str | None
    ord_status: OrdStatusCode
    response_to: ResponseToCode
    reason: int
    text: str
    transact_time_ns: int


class PositionsAck(_Message, frozen=True, kw_only=True):
    """RequestForPositionsAck (AO): how a ``PositionsRequest`` is answered and how many
    ``PositionReport``s follow. ``pos_maint_rpt_id`` is unique per venue, across restarts."""

    pos_maint_rpt_id: str
    pos_req_id: str
    total_num_pos_reports: int
    pos_req_result: int
    pos_req_status: int
    account: str
    text: str = ""


class PositionReport(_Message, frozen=True, kw_only=True):
    """PositionReport (AP): one symbol's net position, as long and short quantity (one of
    them zero). ``settl_price`` is the average open price (zero when flat);
    ``clearing_business_date`` is the UTC date as YYYYMMDD."""

    pos_maint_rpt_id: str
    pos_req_id: str
    total_num_pos_reports: int
    clearing_business_date: str
    account: str
    symbol: str
    settl_price: Decimal
    long_qty: Decimal
    short_qty: Decimal


Report = ExecReport | CancelReject | PositionsAck | PositionReport


class QuoteUpdate(_Message, frozen=True, kw_only=True):
    """Top of book the simulator matches against, for market data publication."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts_ns: int


class TradeUpdate(_Message, frozen=True, kw_only=True):
    """One match of the simulator (an order against the book), for market data
    publication as a Trade entry (269=2): its price, size and time."""

    symbol: str
    price: Decimal
    size: Decimal
    ts_ns: int

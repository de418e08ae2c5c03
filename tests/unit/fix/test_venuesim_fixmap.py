"""The venue simulator's FIX mapping: order messages to requests, reports to FIX messages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.fix.codec import (
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    FixMessage,
)
from bastion.fix.rejects import RejectMessage
from bastion.fix.timestamps import format_utc_timestamp
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.venue_server.fixmap import (
    market_data_incremental,
    market_data_snapshot,
    market_data_trade,
    parse_request,
    report_to_fix,
)
from bastion.venue_server.messages import (
    CancelReject,
    CancelRequest,
    ExecReport,
    MassStatusRequest,
    NewOrderRequest,
    QuoteUpdate,
    ReplaceRequest,
    StatusRequest,
    TradeUpdate,
)

T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
NOS = {11: "c1", 55: "XYZ", 54: "1", 40: "2", 38: "10", 44: "101.25", 59: "1"}


def message(msg_type: str, fields: dict[int, str], **changes: str | None) -> FixMessage:
    """``fields`` as a message, with ``t<tag>=value`` changes (None removes the tag)."""
    merged: dict[int, str | None] = dict(fields)
    for key, value in changes.items():
        merged[int(key[1:])] = value
    return FixMessage.of(msg_type, *((t, v) for t, v in merged.items() if v is not None))


def rejected(msg: FixMessage) -> tuple[int, int | None]:
    with pytest.raises(RejectMessage) as info:
        parse_request(msg)
    return info.value.reason, info.value.ref_tag


# -- NewOrderSingle (D) -------------------------------------------------------------------------
def test_when_limit_order_then_new_order_request() -> None:
    """Every D field maps onto NewOrderRequest, decimals exact."""
    assert parse_request(message("D", NOS)) == NewOrderRequest(
        cl_ord_id="c1",
        symbol="XYZ",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("10"),
        price=Decimal("101.25"),
        time_in_force=TimeInForce.GTC,
        poss_dup=False,
    )


def test_when_market_order_without_tif_then_day_and_no_price() -> None:
    """A market order has no price; TimeInForce defaults to Day (0); PossDup is read."""
    msg = message("D", NOS, t40="1", t44=None, t59=None, t54="2")
    msg.append(43, "Y")
    request = parse_request(msg)
    assert isinstance(request, NewOrderRequest)
    assert (request.order_type, request.price, request.time_in_force) == (
        OrderType.MARKET,
        None,
        TimeInForce.DAY,
    )
    assert request.side is OrderSide.SELL and request.poss_dup


@pytest.mark.parametrize(("tif", "expected"), [("0", "DAY"), ("1", "GTC"), ("3", "IOC")])
def test_when_supported_tif_then_mapped(tif: str, expected: str) -> None:
    """Day, GTC and IOC are the supported TimeInForce values."""
    request = parse_request(message("D", NOS, t59=tif))
    assert isinstance(request, NewOrderRequest)
    assert request.time_in_force is TimeInForce[expected]


@pytest.mark.parametrize("missing", [11, 55, 54, 40, 38, 44])
def test_when_nos_tag_missing_then_required_tag_missing(missing: int) -> None:
    """Each required tag of a limit order, absent, is REQUIRED_TAG_MISSING naming it."""
    assert rejected(message("D", NOS, **{f"t{missing}": None})) == (REQUIRED_TAG_MISSING, missing)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"t54": "3"}, (VALUE_INCORRECT, 54)),
        ({"t54": ""}, (VALUE_INCORRECT, 54)),
        ({"t40": "3"}, (VALUE_INCORRECT, 40)),
        ({"t59": "2"}, (VALUE_INCORRECT, 59)),
        ({"t59": "6"}, (VALUE_INCORRECT, 59)),
        ({"t40": "1"}, (VALUE_INCORRECT, 44)),
        ({"t38": "ten"}, (INCORRECT_DATA_FORMAT, 38)),
        ({"t38": "1.2.3"}, (INCORRECT_DATA_FORMAT, 38)),
        ({"t38": "NaN"}, (INCORRECT_DATA_FORMAT, 38)),
        ({"t38": "Infinity"}, (INCORRECT_DATA_FORMAT, 38)),
        ({"t44": "abc"}, (INCORRECT_DATA_FORMAT, 44)),
        ({"t44": "-Infinity"}, (INCORRECT_DATA_FORMAT, 44)),
        ({"t38": "0"}, (VALUE_INCORRECT, 38)),
        ({"t38": "-1"}, (VALUE_INCORRECT, 38)),
        ({"t38": "1000000000001"}, (VALUE_INCORRECT, 38)),
        ({"t44": "0"}, (VALUE_INCORRECT, 44)),
        ({"t44": "-101.25"}, (VALUE_INCORRECT, 44)),
        ({"t44": "2e12"}, (VALUE_INCORRECT, 44)),
    ],
)
def test_when_nos_value_bad_then_reject_names_reason_and_tag(
    changes: dict[str, str], expected: tuple[int, int]
) -> None:
    """Bad side, type, TIF, decimal, range or a market order price: rejected with its tag."""
    assert rejected(message("D", NOS, **changes)) == expected


def test_when_reject_message_raised_then_text_names_tag() -> None:
    """The Reject text says which tag and value were wrong."""
    with pytest.raises(RejectMessage, match="tag 54: '9'"):
        parse_request(message("D", NOS, t54="9"))


# -- cancel, replace, status, mass status -------------------------------------------------------
CANCEL = {11: "c1/1", 41: "c1", 55: "XYZ", 54: "2"}


def test_when_cancel_then_cancel_request() -> None:
    """F maps ClOrdID, OrigClOrdID, symbol and side."""
    assert parse_request(message("F", CANCEL)) == CancelRequest(
        cl_ord_id="c1/1", orig_cl_ord_id="c1", symbol="XYZ", side=OrderSide.SELL
    )


@pytest.mark.parametrize("missing", [11, 41, 55, 54])
def test_when_cancel_tag_missing_then_required_tag_missing(missing: int) -> None:
    """Each required tag of F, absent, is named."""
    assert rejected(message("F", CANCEL, **{f"t{missing}": None})) == (
        REQUIRED_TAG_MISSING,
        missing,
    )


def test_when_replace_then_replace_request() -> None:
    """G carries the new total quantity and price; a market replace has no price."""
    fields = {**CANCEL, 40: "2", 38: "7", 44: "99.5"}
    assert parse_request(message("G", fields)) == ReplaceRequest(
        cl_ord_id="c1/1",
        orig_cl_ord_id="c1",
        symbol="XYZ",
        side=OrderSide.SELL,
        quantity=Decimal("7"),
        price=Decimal("99.5"),
    )
    market = parse_request(message("G", fields, t40="1", t44=None))
    assert isinstance(market, ReplaceRequest) and market.price is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"t38": None}, (REQUIRED_TAG_MISSING, 38)),
        ({"t40": None}, (REQUIRED_TAG_MISSING, 40)),
        ({"t44": None}, (REQUIRED_TAG_MISSING, 44)),
        ({"t41": None}, (REQUIRED_TAG_MISSING, 41)),
        ({"t38": "x"}, (INCORRECT_DATA_FORMAT, 38)),
        ({"t44": "0"}, (VALUE_INCORRECT, 44)),
        ({"t54": "S"}, (VALUE_INCORRECT, 54)),
    ],
)
def test_when_replace_invalid_then_rejected(
    changes: dict[str, str | None], expected: tuple[int, int]
) -> None:
    """G is validated like D."""
    fields = {**CANCEL, 40: "2", 38: "7", 44: "99.5"}
    assert rejected(message("G", fields, **changes)) == expected


def test_when_status_request_then_status_request() -> None:
    """H maps ClOrdID, symbol and side; a missing side is named."""
    fields = {11: "c1", 55: "XYZ", 54: "1"}
    assert parse_request(message("H", fields)) == StatusRequest(
        cl_ord_id="c1", symbol="XYZ", side=OrderSide.BUY
    )
    assert rejected(message("H", fields, t54=None)) == (REQUIRED_TAG_MISSING, 54)


def test_when_mass_status_request_type_7_then_mass_status_request() -> None:
    """AF with MassStatusReqType 7 (all orders) is supported."""
    assert parse_request(message("AF", {584: "m1", 585: "7"})) == MassStatusRequest(
        mass_status_req_id="m1"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({584: "m1", 585: "1"}, (VALUE_INCORRECT, 585)),
        ({584: "m1", 585: "8"}, (VALUE_INCORRECT, 585)),
        ({584: "m1"}, (REQUIRED_TAG_MISSING, 585)),
        ({585: "7"}, (REQUIRED_TAG_MISSING, 584)),
    ],
)
def test_when_mass_status_request_not_type_7_then_rejected(
    fields: dict[int, str], expected: tuple[int, int]
) -> None:
    """Any other MassStatusReqType, or a missing tag, is rejected naming the tag."""
    assert rejected(message("AF", fields)) == expected


def test_when_not_an_order_message_then_value_error() -> None:
    """Only D, F, G, H and AF are order messages."""
    with pytest.raises(ValueError, match="not an order message: 8"):
        parse_request(FixMessage.of("8", (11, "x")))


# -- reports out --------------------------------------------------------------------------------
def exec_report(**changes: object) -> ExecReport:
    fields: dict[str, object] = {
        "exec_type": "F",
        "ord_status": "1",
        "order_id": "SIM-1",
        "exec_id": "SIM-E7",
        "cl_ord_id": "c1/2",
        "orig_cl_ord_id": "c1",
        "symbol": "XYZ",
        "side": OrderSide.SELL,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.IOC,
        "order_qty": Decimal("10"),
        "price": Decimal("101.25"),
        "last_qty": Decimal("4"),
        "last_px": Decimal("101.30"),
        "leaves_qty": Decimal("6"),
        "cum_qty": Decimal("4"),
        "avg_px": Decimal("101.300000"),
        "commission": Decimal("0.0405"),
        "liquidity": "2",
        "ord_rej_reason": None,
        "text": "partial",
        "transact_time_ns": T0,
    }
    fields.update(changes)
    return ExecReport(**fields)  # type: ignore[arg-type]


def test_when_trade_report_then_every_field_mapped_in_order() -> None:
    """A trade report becomes 35=8 with each FIX tag in the documented order."""
    msg = report_to_fix(exec_report())
    assert msg.fields == [
        (35, "8"),
        (37, "SIM-1"),
        (11, "c1/2"),
        (41, "c1"),
        (17, "SIM-E7"),
        (150, "F"),
        (39, "1"),
        (55, "XYZ"),
        (54, "2"),
        (40, "2"),
        (59, "3"),
        (38, "10"),
        (44, "101.25"),
        (32, "4"),
        (31, "101.30"),
        (151, "6"),
        (14, "4"),
        (6, "101.300000"),
        (12, "0.0405"),
        (13, "3"),
        (851, "2"),
        (58, "partial"),
        (60, format_utc_timestamp(T0)),
    ]


def test_when_report_names_no_order_then_optional_tags_left_out() -> None:
    """A report naming no order omits optional tags and carries 103 and mass status tags."""
    report = exec_report(
        exec_type="I",
        ord_status="8",
        order_id="NONE",
        cl_ord_id="NONE",
        orig_cl_ord_id=None,
        side=None,
        order_type=None,
        time_in_force=None,
        price=None,
        last_qty=Decimal(0),
        last_px=None,
        commission=None,
        liquidity=None,
        ord_rej_reason=5,
        text="",
        mass_status_req_id="m1",
        tot_num_reports=0,
        last_rpt_requested=True,
    )
    msg = report_to_fix(report)
    tags = [t for t, _ in msg.fields]
    for absent in (41, 40, 59, 44, 31, 12, 13, 851, 58):
        assert absent not in tags
    assert (msg.get(103), msg.get(584), msg.get(911), msg.get(912)) == ("5", "m1", "0", "Y")
    assert msg.get(54) == "1"  # Side is required in a report; none known defaults to buy
    partial = report_to_fix(exec_report(mass_status_req_id="m2", last_rpt_requested=False))
    assert partial.get(912) == "N"


def test_when_decimal_has_exponent_then_report_uses_plain_notation() -> None:
    """Quantities and prices go out as plain decimals, whatever Decimal form they had."""
    msg = report_to_fix(
        exec_report(order_qty=Decimal("1E+1"), price=Decimal("1.0E+2"), leaves_qty=Decimal("1E+1"))
    )
    for tag in (38, 44, 151):
        value = msg.get(tag) or ""
        assert "E" not in value.upper(), f"{tag}={value}"
    assert Decimal(msg.get(38) or "") == 10 and Decimal(msg.get(44) or "") == 100


def test_when_cancel_reject_then_order_cancel_reject_message() -> None:
    """A CancelReject becomes 35=9; an unknown order is OrderID NONE; empty text gets one."""
    reject = CancelReject(
        cl_ord_id="c1/3",
        orig_cl_ord_id="c1",
        order_id=None,
        ord_status="8",
        response_to="2",
        reason=1,
        text="",
        transact_time_ns=T0,
    )
    assert report_to_fix(reject).fields == [
        (35, "9"),
        (37, "NONE"),
        (11, "c1/3"),
        (41, "c1"),
        (39, "8"),
        (434, "2"),
        (102, "1"),
        (58, "cancel rejected"),
        (60, format_utc_timestamp(T0)),
    ]


def test_when_quote_published_then_snapshot_and_incremental_entries() -> None:
    """W lists bid then ask under one symbol; X repeats 279/269/55 per entry."""
    quote = QuoteUpdate(
        symbol="XYZ",
        bid=Decimal("101.25"),
        ask=Decimal("101.30"),
        bid_size=Decimal("5"),
        ask_size=Decimal("7"),
        ts_ns=T0,
    )
    w = market_data_snapshot("md-1", quote)
    assert (w.msg_type, w.get(262), w.get(55), w.get(268)) == ("W", "md-1", "XYZ", "2")
    assert w.get_all(269) == ["0", "1"]
    assert w.get_all(270) == ["101.25", "101.30"] and w.get_all(271) == ["5", "7"]
    x = market_data_incremental("md-1", quote)
    assert x.msg_type == "X" and x.get_all(279) == ["1", "1"] and x.get_all(55) == ["XYZ"] * 2
    assert x.get_all(270) == ["101.25", "101.30"]


def test_when_trade_published_then_x_trade_entry_and_w_carries_the_last_trade() -> None:
    """A match is X [279=0, 269=2, 55, 270, 271, 272 date, 273 time]; a W given the last
    trade lists it after bid and ask (268=3)."""
    trade = TradeUpdate(symbol="XYZ", price=Decimal("101.27"), size=Decimal("2"), ts_ns=T0)
    x = market_data_trade("md-1", trade)
    assert x.fields[1:] == [
        (262, "md-1"),
        (268, "1"),
        (279, "0"),
        (269, "2"),
        (55, "XYZ"),
        (270, "101.27"),
        (271, "2"),
        (272, "20240102"),
        (273, "14:30:00.000"),
    ]
    quote = QuoteUpdate(
        symbol="XYZ",
        bid=Decimal("101.25"),
        ask=Decimal("101.30"),
        bid_size=Decimal("5"),
        ask_size=Decimal("7"),
        ts_ns=T0,
    )
    w = market_data_snapshot("md-1", quote, trade)
    assert w.get(268) == "3" and w.get_all(269) == ["0", "1", "2"]
    assert w.get_all(270)[-1] == "101.27" and w.get(272) == "20240102"


# -- property: bad input is answered, never crashes ----------------------------------------------
_TAGS = st.sampled_from([11, 55, 54, 40, 38, 44, 59, 43, 41, 584, 585, 1, 9999])
_VALUES = st.one_of(
    st.sampled_from(
        ["1", "2", "3", "7", "0", "-1", "Y", "N", "1e3", "1E+999999999", "1e-999999999"]
    ),
    st.sampled_from(["NaN", "sNaN", "Infinity", "-0", "0.0000001", "99999999999999", " 5 "]),
    st.sampled_from(["1_000", "\u0661\u0662", "", "1.2.3", "0x10", "\u0661.5"]),
    st.text(max_size=12),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    msg_type=st.sampled_from(["D", "D", "D", "F", "G", "H", "AF"]),
    fields=st.lists(st.tuples(_TAGS, _VALUES), max_size=12),
)
def test_when_random_fields_then_request_or_reject_message_only(
    msg_type: str, fields: list[tuple[int, str]]
) -> None:
    """Any fields give a valid request or a RejectMessage, never another exception."""
    msg = FixMessage([(35, msg_type), *fields])
    try:
        request = parse_request(msg)
    except RejectMessage as reject:
        assert reject.reason in (REQUIRED_TAG_MISSING, VALUE_INCORRECT, INCORRECT_DATA_FORMAT)
        assert reject.ref_tag is not None and reject.text
        return
    if isinstance(request, NewOrderRequest | ReplaceRequest):
        assert request.quantity.is_finite() and 0 < request.quantity <= Decimal("1e12")
        if isinstance(request, NewOrderRequest):
            assert (request.price is None) == (request.order_type is OrderType.MARKET)
        if request.price is not None:
            assert request.price.is_finite() and request.price > 0

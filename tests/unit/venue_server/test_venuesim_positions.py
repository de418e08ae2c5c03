"""RequestForPositions (AN): parsed into a request, answered with an AO then one AP per
position row of the account, on the wire exactly as FIX 4.4 lays them out."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.config import InstrumentConfig
from bastion.fix.codec import INCORRECT_DATA_FORMAT, REQUIRED_TAG_MISSING, FixMessage
from bastion.fix.rejects import RejectMessage
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.model.instruments import Instrument
from bastion.vault import MemorySecrets
from bastion.venue_server.config import AccountConfig, VenueSimConfig
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.fixmap import parse_request, report_to_fix
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import (
    NewOrderRequest,
    PositionReport,
    PositionsAck,
    PositionsRequest,
    Report,
)
from bastion.venue_server.server import VenueSimServer
from bastion.venues.sim.config import SimVenueConfig
from kit.venuesim_desk import BUY, SELL, SYM, T0, XYZ, Desk

AN = {710: "p1", 724: "0", 1: "A", 581: "1", 715: "20240102", 60: "20240102-14:30:00.000"}
ABC = Instrument(
    id="ABC", venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path / "venue.db")
    yield d
    d.close()


def an(**changes: str | None) -> FixMessage:
    """An AN message with ``t<tag>=value`` changes (None removes the tag)."""
    fields: dict[int, str | None] = dict(AN)
    for key, value in changes.items():
        fields[int(key[1:])] = value
    return FixMessage.of("AN", *((t, v) for t, v in fields.items() if v is not None))


def ask(
    desk: Desk,
    session: str = "A",
    *,
    pos_req_type: int = 0,
    account: str | None = None,
) -> tuple[PositionsAck, list[PositionReport]]:
    """A RequestForPositions on ``session``'s account; the ack and the reports that follow."""
    request = PositionsRequest(pos_req_id="p1", pos_req_type=pos_req_type, account=account)
    desk.engine.handle(session, request)
    return split(desk.take(session))


def split(reports: list[Report]) -> tuple[PositionsAck, list[PositionReport]]:
    ack, *rest = reports
    assert isinstance(ack, PositionsAck), ack
    assert all(isinstance(r, PositionReport) for r in rest), rest
    return ack, [r for r in rest if isinstance(r, PositionReport)]


def trade(desk: Desk, side: OrderSide, qty: int, *, account: str = "A") -> None:
    """A market order that fills at once against a deep quote (bid 99.99, ask 100.01)."""
    desk.quote(9_999, 10_001, bid_size=1_000, ask_size=1_000)
    desk.new(f"{account}{len(desk.ledger.fills())}-{side.name}", side, qty, None, account=account)
    desk.take()


# -- parsing ----------------------------------------------------------------------------------
def test_when_full_request_for_positions_then_positions_request() -> None:
    """710, 724, 1 and 55 map onto the request; 581, 715 and 60 are accepted."""
    assert parse_request(an(t55="XYZ")) == PositionsRequest(
        pos_req_id="p1", pos_req_type=0, account="A", symbol="XYZ"
    )
    assert parse_request(an(t1=None, t581=None, t715=None, t60=None)) == PositionsRequest(
        pos_req_id="p1", pos_req_type=0
    )


@pytest.mark.parametrize(
    ("changes", "reason", "tag"),
    [
        ({"t710": None}, REQUIRED_TAG_MISSING, 710),
        ({"t724": None}, REQUIRED_TAG_MISSING, 724),
        ({"t724": "x"}, INCORRECT_DATA_FORMAT, 724),
        ({"t724": "1.0"}, INCORRECT_DATA_FORMAT, 724),
        ({"t724": "\u0660"}, INCORRECT_DATA_FORMAT, 724),  # a digit to Python, not to FIX
    ],
)
def test_when_request_for_positions_malformed_then_reject_names_tag(
    changes: dict[str, str | None], reason: int, tag: int
) -> None:
    """A missing PosReqID or PosReqType, or a non-integer PosReqType, is a session reject."""
    with pytest.raises(RejectMessage) as info:
        parse_request(an(**changes))
    assert (info.value.reason, info.value.ref_tag) == (reason, tag)


# -- answers ----------------------------------------------------------------------------------
def test_when_long_then_ack_and_report_with_exact_fix_fields(desk: Desk) -> None:
    """A net long is LongQty with ShortQty 0, SettlPrice the average open price."""
    trade(desk, BUY, 3)
    trade(desk, BUY, 2)
    ack, (report,) = ask(desk, account="A")
    assert report_to_fix(ack).fields == [
        (35, "AO"),
        (721, "SIM-P5"),
        (710, "p1"),
        (727, "1"),
        (728, "0"),
        (729, "0"),
        (1, "A"),
        (581, "1"),
    ]
    assert report_to_fix(report).fields == [
        (35, "AP"),
        (721, "SIM-P6"),
        (710, "p1"),
        (727, "1"),
        (728, "0"),
        (715, "20240102"),
        (1, "A"),
        (581, "1"),
        (55, SYM),
        (730, "100.01000000"),
        (731, "1"),
        (734, "0"),
        (702, "1"),
        (703, "TQ"),
        (704, "5"),
        (705, "0"),
        (706, "0"),
    ]


def test_when_short_then_short_qty_and_average_sell_price(desk: Desk) -> None:
    """A net short is ShortQty (positive) with LongQty 0; the price is exact, not a float."""
    trade(desk, SELL, 4)
    desk.quote(9_998, 10_001, bid_size=1_000)
    desk.new("s2", SELL, 2, None)
    desk.take()
    _, (report,) = ask(desk)
    assert (report.long_qty, report.short_qty) == (Decimal(0), Decimal(6))
    # (4 * 99.99 + 2 * 99.98) / 6 = 99.98666..., rounded half-even like AvgPx
    assert report.settl_price == Decimal("99.98666667")
    assert dict(report_to_fix(report).fields)[705] == "6"


def test_when_flat_then_report_with_zero_quantities_and_price(desk: Desk) -> None:
    """A symbol traded back to flat is still reported, 0 long, 0 short, SettlPrice 0."""
    trade(desk, BUY, 3)
    trade(desk, SELL, 3)
    ack, (report,) = ask(desk)
    assert (ack.pos_req_result, ack.total_num_pos_reports) == (0, 1)
    assert (report.symbol, report.long_qty, report.short_qty, report.settl_price) == (
        SYM,
        Decimal(0),
        Decimal(0),
        Decimal(0),
    )
    fields = dict(report_to_fix(report).fields)
    assert (fields[704], fields[705], fields[730]) == ("0", "0", "0")


def test_when_no_positions_then_ack_none_found_and_no_reports(desk: Desk) -> None:
    """No position rows for the account (B's don't count): 728=2, 727=0, no AP."""
    trade(desk, BUY, 3, account="B")
    ack, reports = ask(desk)
    assert reports == []
    assert (ack.pos_req_result, ack.pos_req_status, ack.total_num_pos_reports) == (2, 0, 0)
    assert (ack.account, ack.text) == ("A", "")


def test_when_pos_req_type_unsupported_then_ack_rejects_without_reports(desk: Desk) -> None:
    """Only PosReqType 0 is served; 1 (trades) is answered 728=1, 729=2, nothing follows."""
    trade(desk, BUY, 3)
    ack, reports = ask(desk, pos_req_type=1)
    assert reports == []
    assert report_to_fix(ack).fields[2:] == [
        (710, "p1"),
        (727, "0"),
        (728, "1"),
        (729, "2"),
        (1, "A"),
        (581, "1"),
        (58, "unsupported request for positions"),
    ]


def test_when_account_is_not_the_sessions_then_ack_not_authorized(desk: Desk) -> None:
    """Asking for B's positions on A's session is 728=3 (not authorized), 729=2, no AP."""
    trade(desk, BUY, 3, account="B")
    ack, reports = ask(desk, "A", account="B")
    assert reports == []
    assert (ack.pos_req_result, ack.pos_req_status, ack.total_num_pos_reports) == (3, 2, 0)
    assert ack.account == "B"
    assert ack.text == "not authorized for account B"


def test_when_ids_taken_then_unique_across_a_restart(desk: Desk) -> None:
    """PosMaintRptIDs share the persisted exec counter: no id repeats after a restart."""
    trade(desk, BUY, 3)
    first, (report,) = ask(desk)
    desk.restart()
    again, (report2,) = ask(desk)
    ids = [first.pos_maint_rpt_id, report.pos_maint_rpt_id]
    ids += [again.pos_maint_rpt_id, report2.pos_maint_rpt_id]
    assert len(set(ids)) == 4


def test_when_symbol_given_then_only_that_symbol_reported(tmp_path: Path) -> None:
    """55 narrows the answer to one instrument; 727 counts only what follows."""
    clock = SimClock(T0)
    reports: list[Report] = []
    ledger = VenueLedger(tmp_path / "venue.db")
    engine = VenueSimEngine(
        instruments={SYM: XYZ, "ABC": ABC},
        sim_config=SimVenueConfig(),
        ledger=ledger,
        clock=clock,
        on_report=lambda _account, report: reports.append(report),
    )
    try:
        for n, (symbol, side) in enumerate([(SYM, BUY), ("ABC", SELL)]):
            engine.on_quote(QuoteTick(symbol, T0, 9_999, 10_001, 100, 100))
            request = NewOrderRequest(
                cl_ord_id=f"c{n}",
                symbol=symbol,
                side=side,
                order_type=OrderType.MARKET,
                quantity=Decimal(2),
            )
            engine.new_order("A", request)
        reports.clear()
        engine.positions("A", PositionsRequest(pos_req_id="all", pos_req_type=0))
        ack, every = split(reports[:])
        assert [(r.symbol, r.long_qty, r.short_qty) for r in every] == [
            ("ABC", Decimal(0), Decimal(2)),
            (SYM, Decimal(2), Decimal(0)),
        ]
        reports.clear()
        engine.positions("A", PositionsRequest(pos_req_id="one", pos_req_type=0, symbol="ABC"))
        ack, (one,) = split(reports[:])
        assert (ack.total_num_pos_reports, one.total_num_pos_reports, one.symbol) == (1, 1, "ABC")
        reports.clear()
        engine.positions("A", PositionsRequest(pos_req_id="no", pos_req_type=0, symbol="QQQ"))
        ack, none = split(reports[:])
        assert (ack.pos_req_result, ack.total_num_pos_reports, none) == (2, 0, [])
    finally:
        ledger.close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B"]), st.sampled_from([BUY, SELL]), st.integers(1, 9)),
        max_size=12,
    )
)
def test_when_random_fills_then_reports_equal_ledger_net_positions(
    trades: list[tuple[str, OrderSide, int]],
) -> None:
    """Whatever fills happen, each AP's long/short is the ledger's net and its price the
    exact average open price, rounded as AvgPx is."""
    with tempfile.TemporaryDirectory() as tmp:
        desk = Desk(Path(tmp) / "venue.db")
        try:
            for account, side, qty in trades:
                trade(desk, side, qty, account=account)
            for account in ("A", "B"):
                ack, reports = ask(desk, account)
                rows = desk.ledger.positions(account)
                assert ack.total_num_pos_reports == len(rows) == len(reports)
                assert ack.pos_req_result == (0 if rows else 2)
                for row, report in zip(rows, reports, strict=True):
                    assert report.long_qty - report.short_qty == row.net_qty
                    assert min(report.long_qty, report.short_qty) == 0
                    if row.net_qty:
                        error = Fraction(report.settl_price) - row.cost / Fraction(row.net_qty)
                        assert abs(error) <= Fraction(1, 2 * 10**8)
                    else:
                        assert report.settl_price == 0
        finally:
            desk.close()


def test_when_an_arrives_on_a_session_then_ao_and_ap_are_sent_on_it(tmp_path: Path) -> None:
    """Through the server: a D and an AN on the account's session, an AO and AP stored
    for it (sent once it is logged on), encoded as FIX."""
    config = VenueSimConfig(
        comp_id="SIM",
        accounts=[
            AccountConfig(name="acct", comp_id="NODE", username="u", password="secret:fix/acct")
        ],
        instruments=[InstrumentConfig(id=SYM, tick_size=Decimal("0.01"))],
    )
    server = VenueSimServer(config, tmp_path, secrets=MemorySecrets({"fix/acct": "pw-123456"}))
    app = server.apps["acct"]
    session = app.session
    assert session is not None
    try:
        with server._committing():
            server._start_engine()
        server.on_quote(QuoteTick(SYM, T0, 9_999, 10_001, 100, 100))
        nos = FixMessage.of("D", (11, "c1"), (55, SYM), (54, "2"), (40, "1"), (38, "7"))
        with server._committing():
            app.on_message(session, nos)
            app.on_message(session, an(t1="acct"))
        sent = [raw for _, raw in session.store.sent_messages(1, 100)]
        wire = [dict(f.split("=", 1) for f in raw.decode().split("\x01") if f) for raw in sent]
        assert [m["35"] for m in wire] == ["8", "8", "AO", "AP"]
        ao, ap = wire[2], wire[3]
        assert [ao[t] for t in ("710", "727", "728", "729", "1")] == ["p1", "1", "0", "0", "acct"]
        assert [ap[t] for t in ("55", "704", "705", "730")] == [SYM, "0", "7", "99.99000000"]
    finally:
        session.store.close()
        server.ledger.close()

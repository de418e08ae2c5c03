"""The venue simulator engine: FIX order handling over the matching engine and the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.model.enums import OrderType
from bastion.model.instruments import Instrument
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import (
    CancelReject,
    ExecReport,
    MassStatusRequest,
    NewOrderRequest,
    StatusRequest,
)
from bastion.venues.sim.config import SimVenueConfig
from kit.venuesim_desk import BUY, DAY, IOC, MIDNIGHT, SELL, SYM, T0, XYZ, Desk, kinds


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path / "venue.db", taker_fee_bps=Decimal("2.5"), maker_fee_bps=Decimal(1))
    yield d
    d.close()


def test_when_limit_order_rests_then_new_report_with_exact_fields(desk: Desk) -> None:
    """A resting limit order is acknowledged with ExecType 0 and all its fields."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 5, "100.00")
    (new,) = desk.execs()
    assert (new.exec_type, new.ord_status) == ("0", "0")
    assert (new.order_id, new.exec_id, new.cl_ord_id, new.orig_cl_ord_id) == (
        "SIM-1",
        "SIM-E1",
        "c1",
        None,
    )
    assert (new.order_qty, new.price, new.leaves_qty, new.cum_qty, new.avg_px) == (
        Decimal(5),
        Decimal("100.00"),
        Decimal(5),
        Decimal(0),
        Decimal(0),
    )
    assert (new.last_qty, new.last_px, new.commission, new.transact_time_ns) == (
        Decimal(0),
        None,
        None,
        T0,
    )


def test_when_market_order_takes_and_limit_fills_as_maker_then_trades_carry_fees_and_liquidity(
    desk: Desk,
) -> None:
    """Taker fills say "2" removed, maker fills "1" added, with exact commission."""
    desk.quote(9_999, 10_001, ask_size=3)
    desk.new("m1", BUY, 3, None)
    desk.new("l1", BUY, 5, "100.00")
    desk.quote(9_999, 10_000)
    reports = desk.execs()
    assert kinds(reports) == [("0", "0"), ("F", "2"), ("0", "0"), ("F", "2")]
    taker, maker = reports[1], reports[3]
    assert (taker.last_qty, taker.last_px, taker.liquidity, taker.commission) == (
        Decimal(3),
        Decimal("100.01"),
        "2",
        Decimal("0.0750075"),
    )
    assert (maker.last_px, maker.liquidity, maker.commission, maker.cum_qty) == (
        Decimal("100.00"),
        "1",
        Decimal("0.0500"),
        Decimal(5),
    )


def test_when_order_fills_at_two_prices_then_avg_px_is_exact(desk: Desk) -> None:
    """Fills of 1 @ 100.01 and 2 @ 100.02 average 100.016666... rounded half-even."""
    desk.quote(9_999, 10_001, ask_size=1)
    desk.new("c1", BUY, 3, "100.02")  # takes 1 @ 100.01, rests 2 @ 100.02
    desk.quote(9_999, 10_002, ask_size=5)
    last = desk.execs()[-1]
    assert (last.exec_type, last.cum_qty, last.leaves_qty) == ("F", Decimal(3), Decimal(0))
    assert last.avg_px == Decimal("100.01666667")


def test_when_cl_ord_id_reused_then_rejected_as_duplicate_and_original_untouched(
    desk: Desk,
) -> None:
    """A second NOS with a used ClOrdID is rejected (OrdRejReason 6); the first stays open."""
    desk.new("c1", BUY, 5, "100.00")
    desk.new("c1", SELL, 2, "101.00")
    _, dup = desk.execs()
    assert (dup.exec_type, dup.ord_status, dup.ord_rej_reason, dup.order_id) == (
        "8",
        "8",
        6,
        "NONE",
    )
    assert (dup.cl_ord_id, dup.side, dup.order_qty) == ("c1", SELL, Decimal(2))
    assert [o.cl_ord_id for o in desk.engine.open_orders("A")] == ["c1"]
    assert len(desk.ledger.orders()) == 1


def test_when_cl_ord_id_reused_by_another_account_then_accepted(desk: Desk) -> None:
    """ClOrdIDs are unique per account: account B may use A's id."""
    desk.new("c1", account="A")
    desk.new("c1", account="B")
    assert [(r.exec_type, r.order_id) for r in desk.execs()] == [("0", "SIM-1"), ("0", "SIM-2")]


def test_when_poss_dup_resend_of_known_order_then_status_answered_not_new_order(
    desk: Desk,
) -> None:
    """A PossDup NOS for a known ClOrdID gets ExecType I with the order's state."""
    desk.quote(9_999, 10_001, ask_size=2)
    desk.new("c1", BUY, 5, "100.01")
    desk.take()
    desk.new("c1", BUY, 5, "100.01", poss_dup=True)
    (status,) = desk.execs()
    assert (status.exec_type, status.ord_status, status.order_id) == ("I", "1", "SIM-1")
    assert (status.cum_qty, status.leaves_qty) == (Decimal(2), Decimal(3))
    assert len(desk.ledger.orders()) == 1


def test_when_poss_dup_for_unknown_cl_ord_id_then_treated_as_new_order(desk: Desk) -> None:
    """A PossDup NOS the venue never saw is a new order (the original was lost)."""
    desk.new("c1", poss_dup=True)
    assert kinds(desk.execs()) == [("0", "0")]


@pytest.mark.parametrize(
    ("symbol", "qty", "price", "reason", "text"),
    [
        ("NOPE", 5, "100.00", 1, "unknown symbol"),
        (SYM, 0, "100.00", 13, "not positive"),
        (SYM, "NaN", "100.00", 13, "not positive"),
        (SYM, "1.5", "100.00", 13, "decimals"),
        (SYM, 5, "100.001", 99, "decimals"),
        (SYM, 101, "100.00", 3, "maximum"),
    ],
    ids=["unknown-symbol", "zero-qty", "nan-qty", "fractional-lot", "off-tick", "above-max"],
)
def test_when_new_order_invalid_then_rejected_with_reason(
    tmp_path: Path, symbol: str, qty: int | str, price: str, reason: int, text: str
) -> None:
    """Bad orders are rejected (ExecType 8) with the FIX OrdRejReason and a text."""
    desk = Desk(tmp_path / "venue.db", max_order_quantity=Decimal(100))
    desk.new("c1", BUY, qty, price, symbol=symbol)
    (rej,) = desk.execs()
    assert (rej.exec_type, rej.ord_status, rej.ord_rej_reason) == ("8", "8", reason)
    assert text in rej.text
    desk.new("c1", BUY, 1, "100.00")  # the rejected order's id stays used
    assert desk.execs()[0].ord_rej_reason == 6
    assert desk.ledger.verify() == []
    desk.close()


def test_when_market_order_without_market_then_rejected_broker_option(desk: Desk) -> None:
    """No quote yet: a market order is rejected with OrdRejReason 0."""
    desk.new("c1", BUY, 1, None)
    (rej,) = desk.execs()
    assert (rej.exec_type, rej.ord_rej_reason, rej.text) == ("8", 0, "no market")


def test_when_order_replaced_twice_then_chain_ids_carried_and_any_id_names_it(
    desk: Desk,
) -> None:
    """c1 -> c2 -> c3 (naming c1), then a cancel naming c2: each report has new and orig ids."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 5, "100.00")
    desk.replace("c2", "c1", 6, "99.99")
    desk.replace("c3", "c1", 7, None)
    reports = desk.execs()
    assert [(r.exec_type, r.cl_ord_id, r.orig_cl_ord_id) for r in reports] == [
        ("0", "c1", None),
        ("5", "c2", "c1"),
        ("5", "c3", "c2"),
    ]
    assert (reports[2].order_qty, reports[2].price, reports[2].order_id) == (
        Decimal(7),
        Decimal("99.99"),
        "SIM-1",
    )
    desk.quote(9_998, 9_999, ask_size=3)
    (fill,) = desk.execs()
    assert (fill.exec_type, fill.cl_ord_id, fill.orig_cl_ord_id, fill.leaves_qty) == (
        "F",
        "c3",
        "c2",
        Decimal(4),
    )
    desk.cancel("c4", "c2")
    (canceled,) = desk.execs()
    assert (canceled.exec_type, canceled.ord_status) == ("4", "4")
    assert (canceled.cl_ord_id, canceled.orig_cl_ord_id, canceled.cum_qty) == (
        "c4",
        "c3",
        Decimal(3),
    )
    assert desk.ledger.chain("SIM-1") == ["c1", "c2", "c3", "c4"]
    assert desk.ledger.find("A", "c4") == desk.ledger.order("SIM-1")


def test_when_replace_crosses_the_touch_then_replaced_then_filled(desk: Desk) -> None:
    """A replace to a marketable price reports Replaced then the Trade under the new id."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 5, "100.00")
    desk.replace("c2", "c1", 5, "100.01")
    assert [(r.exec_type, r.cl_ord_id) for r in desk.execs()] == [
        ("0", "c1"),
        ("5", "c2"),
        ("F", "c2"),
    ]


def test_when_cancel_names_unknown_order_then_cancel_reject_unknown(desk: Desk) -> None:
    """Unknown OrigClOrdID: CxlRejReason 1, OrdStatus 8, no order id."""
    desk.cancel("x1", "ghost")
    rej = desk.reject()
    assert (rej.reason, rej.ord_status, rej.order_id, rej.response_to) == (1, "8", None, "1")
    assert (rej.cl_ord_id, rej.orig_cl_ord_id) == ("x1", "ghost")


def test_when_cancel_names_another_accounts_order_then_unknown(desk: Desk) -> None:
    """An account cannot reach another account's orders."""
    desk.new("c1", account="A")
    desk.take()
    desk.cancel("x1", "c1", account="B")
    (rej,) = desk.take("B")
    assert isinstance(rej, CancelReject)
    assert rej.reason == 1
    assert len(desk.engine.open_orders("A")) == 1


def test_when_replace_names_filled_order_then_too_late_with_its_status(desk: Desk) -> None:
    """A replace for a filled order: CxlRejReason 0 (too late), OrdStatus 2, its order id."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 5, "100.01")
    desk.take()
    desk.replace("c2", "c1", 6, "100.01")
    rej = desk.reject()
    assert (rej.reason, rej.ord_status, rej.order_id, rej.response_to) == (0, "2", "SIM-1", "2")
    assert desk.ledger.find("A", "c2") is None


def test_when_cancel_reuses_a_cl_ord_id_then_duplicate_reject(desk: Desk) -> None:
    """A cancel whose own ClOrdID was used before: CxlRejReason 6, the order stays open."""
    desk.new("c1")
    desk.new("c2")
    desk.take()
    desk.cancel("c2", "c1")
    assert desk.reject().reason == 6
    assert len(desk.engine.open_orders("A")) == 2


def test_when_replace_below_filled_quantity_then_rejected_other(desk: Desk) -> None:
    """A replace to a quantity not above the filled quantity is refused (99) with a text."""
    desk.quote(9_999, 10_001, ask_size=3)
    desk.new("c1", BUY, 5, "100.01")
    desk.take()
    desk.replace("c2", "c1", 3, None)
    rej = desk.reject()
    assert (rej.reason, rej.ord_status, rej.response_to) == (99, "1", "2")
    assert "filled" in rej.text
    assert desk.order("SIM-1").cl_ord_id == "c1"


def test_when_cancel_side_mismatches_then_rejected_other(desk: Desk) -> None:
    """A cancel naming the order with the wrong side is refused (99)."""
    desk.new("c1", BUY)
    desk.take()
    desk.cancel("c2", "c1", SELL)
    assert desk.reject().reason == 99


def test_when_second_cancel_while_first_in_latency_then_already_pending(tmp_path: Path) -> None:
    """With latency, a cancel for an order whose cancel is in flight: CxlRejReason 3."""
    desk = Desk(tmp_path / "venue.db", latency_ms=5)
    desk.new("c1")
    desk.clock.advance_to(T0 + 5_000_000)
    assert kinds(desk.execs()) == [("0", "0")]
    desk.cancel("c2", "c1")
    desk.cancel("c3", "c1")
    assert desk.reject().reason == 3
    desk.clock.advance_to(T0 + 10_000_000)
    (canceled,) = desk.execs()
    assert (canceled.exec_type, canceled.cl_ord_id, canceled.transact_time_ns) == (
        "4",
        "c2",
        T0 + 10_000_000,
    )
    desk.close()


def test_when_status_requested_by_chain_id_then_current_state_reported(desk: Desk) -> None:
    """A status request naming an older id of the chain reports the order as it is now."""
    desk.new("c1")
    desk.replace("c2", "c1", 8, "99.00")
    desk.take()
    desk.engine.status("A", StatusRequest(cl_ord_id="c1", symbol=SYM, side=BUY))
    (status,) = desk.execs()
    assert (status.exec_type, status.cl_ord_id, status.order_qty) == ("I", "c2", Decimal(8))


def test_when_status_requested_for_unknown_order_then_rejected_status(desk: Desk) -> None:
    """Unknown order: ExecType I, OrdStatus 8, OrdRejReason 5, order id NONE."""
    desk.engine.status("A", StatusRequest(cl_ord_id="zz", symbol=SYM, side=SELL))
    (status,) = desk.execs()
    assert (status.exec_type, status.ord_status, status.ord_rej_reason) == ("I", "8", 5)
    assert (status.order_id, status.cl_ord_id, status.side) == ("NONE", "zz", SELL)


def test_when_mass_status_with_open_orders_then_one_report_each_last_flagged(
    desk: Desk,
) -> None:
    """Only the account's open orders are reported, in priority order; the last says so."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 5, "100.00")
    desk.new("c2", BUY, 5, "100.01")  # fills: closed
    desk.new("c3", SELL, 5, "101.00")
    desk.new("b1", account="B")
    desk.take()
    desk.engine.mass_status("A", MassStatusRequest(mass_status_req_id="m1"))
    reports = desk.execs()
    assert [(r.cl_ord_id, r.exec_type, r.mass_status_req_id) for r in reports] == [
        ("c1", "I", "m1"),
        ("c3", "I", "m1"),
    ]
    assert [(r.tot_num_reports, r.last_rpt_requested) for r in reports] == [(2, False), (2, True)]


def test_when_mass_status_without_open_orders_then_single_none_report(desk: Desk) -> None:
    """No open orders: one report, OrdStatus 8, ids and symbol NONE, 0 reports, last."""
    desk.new("b1", account="B")
    desk.take()
    desk.engine.mass_status("A", MassStatusRequest(mass_status_req_id="m2"))
    (none,) = desk.execs()
    assert (none.exec_type, none.ord_status, none.cl_ord_id, none.order_id, none.symbol) == (
        "I",
        "8",
        "NONE",
        "NONE",
        "NONE",
    )
    assert (none.mass_status_req_id, none.tot_num_reports, none.last_rpt_requested) == (
        "m2",
        0,
        True,
    )


def test_when_cancel_all_then_every_open_order_of_that_account_canceled(desk: Desk) -> None:
    """Cancel-on-disconnect cancels A's open orders (with the reason), not B's."""
    desk.new("c1")
    desk.new("c2", SELL, 3, "101.00")
    desk.new("b1", account="B")
    desk.take()
    assert desk.engine.cancel_all("A", "cancel on disconnect") == 2
    reports = desk.execs()
    assert [(r.exec_type, r.cl_ord_id, r.orig_cl_ord_id, r.text) for r in reports] == [
        ("4", "c1", None, "cancel on disconnect"),
        ("4", "c2", None, "cancel on disconnect"),
    ]
    assert desk.engine.open_orders("A") == []
    assert desk.ledger.open_orders("A") == []
    assert [o.cl_ord_id for o in desk.ledger.open_orders()] == ["b1"]
    assert desk.engine.cancel_all("A", "again") == 0


def test_when_ioc_partially_fills_then_remainder_canceled(desk: Desk) -> None:
    """An IOC takes what the touch offers; the rest is reported canceled with a text."""
    desk.quote(9_999, 10_001, ask_size=2)
    desk.new("c1", BUY, 5, "100.01", IOC)
    reports = desk.execs()
    assert kinds(reports) == [("0", "0"), ("F", "1"), ("4", "4")]
    assert (reports[2].text, reports[2].cum_qty, reports[2].leaves_qty) == (
        "IOC remainder",
        Decimal(2),
        Decimal(0),
    )


def test_when_midnight_passes_then_day_order_expires(desk: Desk) -> None:
    """A resting DAY order is reported expired (ExecType C) at UTC midnight."""
    desk.new("c1", BUY, 5, "100.00", DAY)
    desk.take()
    desk.clock.advance_to(MIDNIGHT)
    (expired,) = desk.execs()
    assert (expired.exec_type, expired.ord_status, expired.transact_time_ns) == ("C", "C", MIDNIGHT)
    assert desk.order("SIM-1").status == "C"


def test_when_accounts_trade_then_positions_equal_sum_of_fills(desk: Desk) -> None:
    """Each account's ledger position is the signed sum of its fills; verify() agrees."""
    desk.quote(9_999, 10_001, bid_size=100, ask_size=100)
    desk.new("a1", BUY, 7, "100.01")
    desk.new("a2", SELL, 3, "99.99")
    desk.new("b1", SELL, 4, None, account="B")
    reports = desk.execs()
    for account in ("A", "B"):
        fills = desk.ledger.fills(account)
        net = sum((f.qty if f.side is BUY else -f.qty for f in fills), Decimal(0))
        (position,) = desk.ledger.positions(account)
        assert position.net_qty == net
        assert position.fees == sum((f.fee for f in fills), Decimal(0))
    assert desk.position("A").net_qty == 4
    assert desk.position("A").realized == 3 * (Decimal("99.99") - Decimal("100.01"))
    assert [f.exec_id for f in desk.ledger.fills()] == [
        r.exec_id for r in reports if r.exec_type == "F"
    ]
    assert desk.ledger.verify() == []


def test_when_ledger_written_then_before_the_report(tmp_path: Path) -> None:
    """on_report sees the ledger already holding what the report says."""
    seen: list[tuple[str, str | None]] = []
    ledger = VenueLedger(tmp_path / "venue.db")

    def on_report(account: str, report: ExecReport | CancelReject) -> None:
        assert isinstance(report, ExecReport)
        stored = ledger.order(report.order_id)
        seen.append((report.exec_type, None if stored is None else stored.status))

    engine = VenueSimEngine(
        instruments={SYM: XYZ},
        sim_config=SimVenueConfig(),
        ledger=ledger,
        clock=SimClock(T0),
        on_report=on_report,
    )
    request = NewOrderRequest(
        cl_ord_id="c1",
        symbol=SYM,
        side=BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(5),
        price=Decimal("100.00"),
    )
    engine.new_order("A", request)
    assert seen == [("0", "0")]
    ledger.close()


def test_when_instrument_on_another_venue_then_config_error(tmp_path: Path) -> None:
    """Every instrument given to the engine must trade on the simulated venue."""
    other = Instrument(
        id="ABC",
        venue="OTHER",
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    )
    with VenueLedger(tmp_path / "venue.db") as ledger, pytest.raises(ConfigError, match="ABC"):
        VenueSimEngine(
            instruments={"ABC": other},
            sim_config=SimVenueConfig(),
            ledger=ledger,
            clock=SimClock(T0),
            on_report=lambda account, report: None,
        )

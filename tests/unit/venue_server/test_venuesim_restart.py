"""Simulator restarts: open orders come back to the books from the ledger and carry on."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.model.enums import OrderType
from bastion.venue_server.ledger import OrderRow
from kit.venuesim_desk import BUY, DAY, GTC, IOC, MIDNIGHT, SELL, SYM, T0, Desk, kinds


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path / "venue.db")
    yield d
    d.close()


def test_when_restarted_then_partly_filled_order_fills_on_and_ids_stay_unique(
    desk: Desk,
) -> None:
    """4 of 10 filled, restart, the rest fills: cum qty continues, no order or exec id repeats."""
    desk.quote(9_999, 10_001)
    desk.new("c1", BUY, 10, "100.00")
    desk.quote(9_999, 10_000, ask_size=4)
    before = desk.execs()
    desk.restart()
    assert desk.take() == []  # a clean restore says nothing
    desk.quote(9_998, 9_999, ask_size=10)
    desk.new("c2", SELL, 1, "101.00")
    after = desk.execs()
    assert [(r.exec_type, r.cl_ord_id, r.last_qty, r.cum_qty) for r in after] == [
        ("F", "c1", Decimal(6), Decimal(10)),
        ("0", "c2", Decimal(0), Decimal(0)),
    ]
    assert after[0].avg_px == Decimal("100.00")
    exec_ids = [r.exec_id for r in before + after]
    assert len(set(exec_ids)) == len(exec_ids)
    assert after[1].order_id == "SIM-2"
    assert desk.ledger.verify() == []
    assert desk.position("A").net_qty == 10


def test_when_restarted_then_time_priority_is_kept(desk: Desk) -> None:
    """Two buys at one price: after a restart the older still fills first."""
    desk.quote(9_999, 10_001)
    desk.new("first", BUY, 5, "100.00")
    desk.new("second", BUY, 5, "100.00")
    desk.replace("first2", "first", 5, "100.00")  # a replace moves it behind "second"
    desk.take()
    desk.restart()
    desk.quote(9_999, 10_000, ask_size=7)
    assert [(r.cl_ord_id, r.last_qty) for r in desk.execs()] == [
        ("second", Decimal(5)),
        ("first2", Decimal(2)),
    ]


def test_when_restarted_then_cl_ord_ids_remain_used_and_chain_resolves(desk: Desk) -> None:
    """After a restart a used ClOrdID is still a duplicate and an old chain id names the order."""
    desk.new("c1")
    desk.replace("c2", "c1", 6, "99.00")
    desk.take()
    desk.restart()
    desk.new("c1")
    assert desk.execs()[0].ord_rej_reason == 6
    desk.cancel("c3", "c1")
    (canceled,) = desk.execs()
    assert (canceled.exec_type, canceled.cl_ord_id, canceled.orig_cl_ord_id) == ("4", "c3", "c2")


def test_when_restarted_after_midnight_then_yesterdays_day_order_expires(desk: Desk) -> None:
    """A DAY order restored after its midnight expires at once, stamped at that midnight."""
    desk.new("day", BUY, 5, "100.00", DAY)
    desk.new("gtc", BUY, 5, "99.00", GTC)
    desk.take()
    desk.clock.set_time(MIDNIGHT + 3_600 * 10**9)  # the process is down over midnight
    desk.restart()
    desk.clock.advance_to(desk.clock.timestamp_ns())
    (expired,) = desk.execs()
    assert (expired.exec_type, expired.cl_ord_id, expired.transact_time_ns) == (
        "C",
        "day",
        MIDNIGHT,
    )
    assert [o.cl_ord_id for o in desk.engine.open_orders()] == ["gtc"]


def test_when_restarted_before_midnight_then_day_order_expires_at_midnight(desk: Desk) -> None:
    """A restored DAY order keeps resting until its own midnight."""
    desk.new("day", BUY, 5, "100.00", DAY)
    desk.take()
    desk.restart()
    desk.clock.advance_to(MIDNIGHT - 1)
    assert desk.take() == []
    desk.clock.advance_to(MIDNIGHT)
    assert kinds(desk.execs()) == [("C", "C")]


def _crashed_mid_order(desk: Desk, tif_or_market: str) -> None:
    """Leave an order open in the ledger as if the process died before closing it."""
    market = tif_or_market == "market"
    desk.ledger.take_id("order")
    desk.ledger.insert_order(
        OrderRow(
            account="A",
            order_id="SIM-1",
            root_cl_ord_id="c1",
            cl_ord_id="c1",
            orig_cl_ord_id=None,
            symbol=SYM,
            side=BUY,
            order_type=OrderType.MARKET if market else OrderType.LIMIT,
            time_in_force=GTC if market else IOC,
            quantity=Decimal(5),
            price=None if market else Decimal("100.00"),
            cum_qty=Decimal(0),
            cum_notional=Decimal(0),
            status="0",
            priority=desk.ledger.take_id("priority"),
            created_ns=T0,
            updated_ns=T0,
        )
    )


@pytest.mark.parametrize("kind", ["ioc", "market"])
def test_when_order_that_cannot_rest_found_open_on_restart_then_canceled_with_report(
    desk: Desk, kind: str
) -> None:
    """An IOC (or a market remainder the venue cancels) left open by a crash is canceled."""
    _crashed_mid_order(desk, kind)
    desk.restart()
    (canceled,) = desk.execs()
    assert (canceled.exec_type, canceled.cl_ord_id) == ("4", "c1")
    assert "restart" in canceled.text
    assert desk.ledger.open_orders() == []


def test_when_market_remainder_rests_then_it_is_restored(tmp_path: Path) -> None:
    """With market_remainder="rest" a resting market order survives a restart and fills."""
    desk = Desk(tmp_path / "venue.db", market_remainder="rest")
    desk.quote(9_999, 10_001, ask_size=2)
    desk.new("m1", BUY, 5, None)
    desk.take()
    desk.restart()
    desk.quote(10_000, 10_002, ask_size=10)
    (fill,) = desk.execs()
    assert (fill.last_qty, fill.last_px, fill.cum_qty, fill.ord_status) == (
        Decimal(3),
        Decimal("100.02"),
        Decimal(5),
        "2",
    )
    desk.close()

"""Time-window price collar (instrument pause) and stale market data: at the limit and one
tick / one ms beyond, pause expiry and extension, amends and cancels while blocked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.model.enums import OrderStatus
from bastion.risk.config import InstrumentRiskConfig, RiskConfig
from bastion.risk.market import MoveWindow
from kit.risk_node import (
    BUY,
    COARSE,
    MS,
    SECOND,
    SELL,
    STOCK,
    T0,
    Wired,
    assert_denied,
    assert_sent,
)

WINDOW = dict(collar_window_pct=Decimal(5), collar_window_ms=1_000, collar_window_pause_ms=500)


def test_when_unconfigured_then_no_quote_hook_no_fill_hook_and_no_extra_checks() -> None:
    """Absent keys cost nothing: no quote hook, no fill hook, no optional checks built."""
    node = Wired()
    assert node.gate.quote_hook is None
    assert not node.gate.watches_fills
    assert node.gate._checks is None and node.gate._market is None


def test_when_only_stale_data_configured_then_quotes_are_not_watched() -> None:
    """stale_data_ms reads the last quote on the order path; it needs no quote hook."""
    node = Wired(stale_data_ms=100)
    assert node.gate.quote_hook is None
    assert node.gate._market is not None


@pytest.mark.parametrize(
    ("at_limit", "beyond"),
    [(10_500, 10_501), (9_500, 9_499)],
    ids=["rise", "fall"],
)
def test_when_mid_moves_exactly_collar_window_pct_then_no_pause_and_one_tick_more_pauses(
    at_limit: int, beyond: int
) -> None:
    """100.00 -> 105.00 (or 95.00) is exactly 5 % and passes; one tick further pauses."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(at_limit, T0 + 100 * MS)
    assert node.paused == []
    assert_sent(node, node.submit(BUY, 1, at_limit))
    node.mid(beyond, T0 + 200 * MS)
    assert len(node.paused) == 1
    paused = node.paused[0]
    assert paused.instrument_id == STOCK.id
    assert paused.until_ns == T0 + 200 * MS + 500 * MS
    assert "5.010%" in paused.reason and "collar_window_pct 5" in paused.reason
    denied = node.submit(BUY, 1, beyond)
    assert_denied(node, denied, "INSTRUMENT_PAUSED")
    assert "collar_window_pause_ms 500" in node.denied[-1].message
    assert node.gate.denials["INSTRUMENT_PAUSED"] == 1


@pytest.mark.parametrize(
    ("after_ns", "pauses"),
    [(1_000 * MS - 1, True), (1_000 * MS, False)],
    ids=["inside-window", "window-later"],
)
def test_when_old_mid_ended_collar_window_ms_ago_then_it_no_longer_counts(
    after_ns: int, pauses: bool
) -> None:
    """100.00 prevails until 103.00 replaces it at 1 ms; 106.00 is 6 % above 100.00 but
    only 2.9 % above 103.00: it pauses while 100.00 ended less than 1000 ms before."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(10_300, T0 + MS)
    node.mid(10_600, T0 + MS + after_ns)
    assert bool(node.paused) is pauses


def test_when_mid_jumps_after_a_quiet_spell_then_the_old_mid_still_counts() -> None:
    """A mid prevails until the next quote changes it: 100.00 quoted 10 s ago and
    unchanged since, then 106.00, is a 6 % move within the window."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(10_000, T0 + 5 * SECOND)
    node.mid(10_600, T0 + 10 * SECOND)
    assert len(node.paused) == 1


def test_when_moved_step_by_step_then_the_window_extremes_count() -> None:
    """Small steps add up: the move is measured from the lowest mid in the window."""
    node = Wired(**WINDOW)
    for n, mid in enumerate((10_000, 10_200, 10_100, 10_400, 10_500)):
        node.mid(mid, T0 + n * 100 * MS)
    assert node.paused == []
    node.mid(10_501, T0 + 900 * MS)
    assert len(node.paused) == 1
    assert "100.00 to 105.01" in node.paused[0].reason


def test_when_paused_then_repricing_amends_denied_and_shrinks_and_cancels_pass() -> None:
    """During a pause: amends that change the price or add quantity are denied
    INSTRUMENT_PAUSED; reducing the quantity and canceling still go."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    resting = node.submit(BUY, 5, 9_900)
    assert_sent(node, resting)
    other = node.submit(SELL, 5, 10_100)
    node.mid(10_600, T0 + 10 * MS)
    assert node.paused
    assert not node.gate.modify_order(resting, 5, 9_901)
    assert node.command_denied[-1].reason == "INSTRUMENT_PAUSED"
    assert not node.gate.modify_order(resting, 6, 9_900)
    assert node.command_denied[-1].reason == "INSTRUMENT_PAUSED"
    assert node.gate.modify_order(resting, 4, 9_900)
    assert node.gate.cancel_order(other)
    assert other.client_order_id in node.venue.canceled


def test_when_pause_ends_then_resumed_event_and_orders_pass_again() -> None:
    """Denied until 1 ns before until_ns; at until_ns an InstrumentResumed is published
    and orders pass."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(10_600, T0 + 10 * MS)
    until = node.paused[0].until_ns
    node.at(until - 1)
    node.mid(10_600)
    assert_denied(node, node.submit(BUY, 1, 10_600), "INSTRUMENT_PAUSED")
    assert node.resumed == []
    node.at(until)
    assert [e.instrument_id for e in node.resumed] == [STOCK.id]
    assert node.resumed[0].ts_ns == until
    assert node.gate.paused_instruments == {}
    assert_sent(node, node.submit(BUY, 1, 10_600))


def test_when_moved_again_during_pause_then_pause_is_extended_from_the_new_reference() -> None:
    """A pause resets the window to the trigger quote; another 5 % move extends the pause
    (a second InstrumentPaused) and the first end does not resume it."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(10_600, T0 + 10 * MS)  # pause 1: 100.00 -> 106.00
    node.mid(11_130, T0 + 100 * MS)  # exactly 5 % above 106.00: no new pause
    assert len(node.paused) == 1
    node.mid(11_131, T0 + 200 * MS)  # beyond: pause 2
    assert len(node.paused) == 2
    first, second = node.paused[0].until_ns, node.paused[1].until_ns
    assert second == T0 + 700 * MS > first
    node.at(first)
    assert node.resumed == []
    assert_denied(node, node.submit(BUY, 1, 11_131), "INSTRUMENT_PAUSED")
    node.at(second)
    assert len(node.resumed) == 1
    assert_sent(node, node.submit(BUY, 1, 11_131))


def test_when_instrument_override_then_only_that_instrument_is_collared() -> None:
    """[risk.instruments."ABC.SIM"] sets the window for ABC only; XYZ is never paused."""
    node = Wired(
        RiskConfig(
            instruments={
                COARSE.id: InstrumentRiskConfig(
                    collar_window_pct=Decimal(1),
                    collar_window_ms=1_000,
                    collar_window_pause_ms=100,
                )
            }
        )
    )
    node.mid(10_000, T0)
    node.mid(20_000, T0 + MS)
    node.mid(10_000, T0, instrument=COARSE)
    node.mid(10_105, T0 + MS, instrument=COARSE)  # 1.05 % (tick 0.05)
    assert [e.instrument_id for e in node.paused] == [COARSE.id]
    assert_sent(node, node.submit(BUY, 1, 20_000))
    assert_denied(node, node.submit(BUY, 10, 10_105, instrument=COARSE), "INSTRUMENT_PAUSED")


def test_when_one_sided_quote_then_it_does_not_enter_the_window() -> None:
    """A quote without a bid or an ask has no mid: no pause from a zero price."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.tick(0, 10_001, T0 + MS)
    assert node.paused == []


def test_when_move_window_slides_then_old_extremes_drop() -> None:
    """MoveWindow keeps the mids that prevailed in the last window_ns for its high and low."""
    window = MoveWindow(Decimal(10), 100)
    assert window.add(0, 1_000) is None
    assert window.add(50, 1_050) is None  # 1_000 prevailed until 50
    assert window.add(100, 1_099) is None  # 9.9 % above 1_000
    assert window.add(150, 1_101) is None  # 1_000 ended 100 ago: out; 4.9 % above 1_050
    assert window.add(199, 1_156) == 1_050  # 10.1 % above 1_050, which ended 99 ago
    assert window.add(199, 1_156) is None  # an unchanged mid costs nothing


# -- stale market data -------------------------------------------------------------------


def test_when_quote_age_equals_stale_data_ms_then_allowed_and_one_ms_more_denied() -> None:
    """stale_data_ms=200: a quote exactly 200 ms old passes, 201 ms old is denied."""
    node = Wired(stale_data_ms=200)
    node.mid(10_000, T0)
    node.at(T0 + 200 * MS)
    assert_sent(node, node.submit(BUY, 1, 10_000))
    node.at(T0 + 201 * MS)
    assert_denied(node, node.submit(BUY, 1, 10_000), "STALE_MARKET_DATA")
    assert "201 ms old" in node.denied[-1].message
    assert "stale_data_ms 200" in node.denied[-1].message
    node.mid(10_000)  # a fresh quote lifts it
    assert_sent(node, node.submit(BUY, 1, 10_001))


def test_when_no_quote_yet_then_stale_market_data() -> None:
    """Without any quote, an instrument's data is stale."""
    node = Wired(stale_data_ms=200)
    assert_denied(node, node.submit(SELL, 1, 10_000), "STALE_MARKET_DATA")
    assert "no quote" in node.denied[-1].message


def test_when_stale_then_amend_that_reprices_denied_and_shrink_passes() -> None:
    """Stale data blocks repricing amends; shrinking an order and canceling still go."""
    node = Wired(stale_data_ms=200)
    node.mid(10_000, T0)
    order = node.submit(BUY, 5, 9_990)
    node.at(T0 + SECOND)
    assert not node.gate.modify_order(order, 5, 9_991)
    assert node.command_denied[-1].reason == "STALE_MARKET_DATA"
    assert node.gate.modify_order(order, 3, 9_990)
    assert node.gate.cancel_order(order)


def test_when_stale_data_per_instrument_then_others_keep_the_default() -> None:
    """An override applies to its instrument; the [risk] value to the others."""
    node = Wired(
        RiskConfig(
            stale_data_ms=1_000,
            instruments={STOCK.id: InstrumentRiskConfig(stale_data_ms=10)},
        )
    )
    node.mid(10_000, T0)
    node.mid(10_000, T0, instrument=COARSE)
    node.at(T0 + 11 * MS)
    assert_denied(node, node.submit(BUY, 1, 10_000), "STALE_MARKET_DATA")
    assert_sent(node, node.submit(BUY, 10, 10_000, instrument=COARSE))


def test_when_reference_max_age_and_stale_data_then_both_apply_separately() -> None:
    """reference_max_age_ms only judges the collar's reference (NO_REFERENCE_PRICE);
    stale_data_ms blocks every new order (STALE_MARKET_DATA), and is checked first."""
    node = Wired(collar_pct=Decimal(5), reference_max_age_ms=100, stale_data_ms=300)
    node.mid(10_000, T0)
    node.at(T0 + 200 * MS)
    assert_denied(node, node.submit(BUY, 1, 10_000), "NO_REFERENCE_PRICE")
    node.at(T0 + 301 * MS)
    assert_denied(node, node.submit(BUY, 1, 10_000), "STALE_MARKET_DATA")


def test_when_paused_then_flatten_order_is_denied_too() -> None:
    """The kill switch's flatten path passes every check but HALTED: a pause applies."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.hold(3)
    node.mid(10_600, T0 + MS)
    flatten = node.order(SELL, 3, strategy="operator")
    assert not node.gate.submit_flatten(flatten)
    assert flatten.status is OrderStatus.DENIED
    assert node.denied[-1].reason == "INSTRUMENT_PAUSED"


def test_when_operator_resumes_a_paused_instrument_then_orders_pass_and_no_timer_fires() -> None:
    """An early resume is journaled with who and why; the pause's own end does not fire
    again later; an instrument that is not paused is answered False."""
    node = Wired(**WINDOW)
    node.mid(10_000, T0)
    node.mid(10_600, T0 + MS)
    assert len(node.paused) == 1
    assert node.gate.resume_instrument(STOCK.id, "alice", "news checked")
    assert [(r.instrument_id, r.who, r.why) for r in node.resumed] == [
        (STOCK.id, "alice", "news checked")
    ]
    assert_sent(node, node.submit(BUY, 1, 10_600))
    node.at(T0 + 2 * SECOND)  # past the pause's own end: its timer was canceled
    assert len(node.resumed) == 1
    assert not node.gate.resume_instrument(STOCK.id, "alice", "again")

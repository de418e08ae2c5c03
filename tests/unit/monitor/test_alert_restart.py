"""Alerts across a restart, on the engine (``AlertEngine.take_over``): an alert the
journal says was firing keeps its id and start; still holding, it is neither journaled
nor sent again (a repeat only on its cadence); cleared while the node was down, it
resolves at the first evaluation and the resolution is sent; its rule gone, it resolves
at once saying so; acknowledgements and silences carry over."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import CommandRefused
from bastion.model.enums import TradingState
from bastion.model.events import (
    AlertFired,
    AlertResolved,
    InstrumentPaused,
    InstrumentResumed,
    OrderRejected,
    TradingStateChanged,
    VenueLoggedOn,
    VenueSessionLost,
)
from bastion.monitor.alerts.restart import clearing_of, standing_conditions
from bastion.node.kernel import Kernel
from kit.alerts import T0, Bench, S, bench, journaled_book, restarted, route

LAG = "bastion_journal_commit_lag_seconds"
PNL = "bastion_pnl"


def lag(b: Bench, value: float) -> None:
    b.read({LAG: {(): value}})


def lost() -> VenueSessionLost:
    return VenueSessionLost(ts_ns=T0, venue="FIXSIM", reason="session dropped")


def rejected() -> OrderRejected:
    return OrderRejected(
        ts_ns=T0, client_order_id="O-1", strategy_id="ema", instrument_id="X", reason="no market"
    )


def state(to: TradingState) -> TradingStateChanged:
    return TradingStateChanged(ts_ns=T0, state=to, reason="kill by ops: drill")


def lagging_journal() -> tuple[Bench, AlertFired]:
    """A run whose journal-lag fired (held 5 s) and was still firing when it stopped."""
    b = bench(only=["journal-lag"])
    lag(b, 2.0)
    b.advance_s(5)
    lag(b, 2.0)
    (fired,) = b.alert_events(AlertFired)
    return b, fired


def test_when_a_threshold_still_holds_after_a_restart_then_nothing_is_fired_or_sent() -> None:
    """journal-lag still over: same id and start, no AlertFired, no notification; its
    next repeat comes on its 600 s cadence from when it fired, not from the restart."""
    before, fired = lagging_journal()
    after = restarted(before, down_s=60, only=["journal-lag"])
    lag(after, 2.0)
    after.engine.tick()
    assert after.journaled == [] and after.notifier.sent == []
    (alert,) = after.engine.active.values()
    assert (alert.id, alert.fired_ns, alert.value) == (fired.alert_id, fired.ts_ns, 2.0)
    after.advance_s(539)  # 599 s after it fired
    assert after.notifier.sent == []
    after.advance_s(2)
    assert after.notifier.statuses("ops") == ["repeat"]
    assert after.notifier.to("ops")[0].alert_id == fired.alert_id


def test_when_a_threshold_cleared_while_down_then_it_resolves_at_the_first_reading() -> None:
    """journal-lag back under when the node is back: AlertResolved (same id, cleared)
    at the first sample, and the resolution reaches the route that had it."""
    before, fired = lagging_journal()
    after = restarted(before, down_s=60, only=["journal-lag"])
    lag(after, 0.1)
    (resolved,) = after.journaled
    assert isinstance(resolved, AlertResolved)
    assert (resolved.alert_id, resolved.how) == (fired.alert_id, "cleared")
    assert after.notifier.statuses("ops") == ["resolved"]
    assert after.active() == []


@pytest.mark.parametrize(("down_s", "then_s"), [(100.0, 200.0), (400.0, 0.0)])
def test_when_an_event_alert_is_quiet_for_resolve_after_s_then_it_resolves_from_its_fire(
    down_s: float, then_s: float
) -> None:
    """order-rejected (resolve_after_s 300) carried over: resolved 300 s after it fired,
    later in the new run or at its first tick when the node was down longer."""
    before = bench(only=["order-rejected"])
    before.publish(rejected())
    (fired,) = before.alert_events(AlertFired)
    after = restarted(before, down_s=down_s, only=["order-rejected"])
    if then_s:
        after.advance_s(then_s - 1)
        assert after.active() == ["order-rejected"]
    after.advance_s(1)
    (resolved,) = after.alert_events(AlertResolved)
    assert (resolved.alert_id, resolved.how) == (fired.alert_id, "no new event for 300 s")
    assert after.notifier.statuses("ops") == ["resolved"]
    assert after.notifier.to("ops")[0].summary == fired.summary


def test_when_still_halted_after_a_restart_then_the_kill_switch_alert_goes_on_unsent() -> None:
    """HALTED before and after: the standing condition meets its alert carried over, so
    nothing is fired or sent; the resume resolves that same alert."""
    before = bench(only=["kill-switch"])
    before.publish(state(TradingState.HALTED))
    (fired,) = before.alert_events(AlertFired)
    after = restarted(before, down_s=30, only=["kill-switch"])
    after.engine.standing([state(TradingState.HALTED)])
    after.engine.tick()
    assert after.journaled == [] and after.notifier.sent == []
    assert after.engine.listing()["alerts"][0]["summary"] == "node HALTED: kill by ops: drill"
    after.publish(state(TradingState.ACTIVE))
    (resolved,) = after.alert_events(AlertResolved)
    assert (resolved.alert_id, resolved.how) == (fired.alert_id, "TradingStateChanged")
    assert after.notifier.statuses("ops") == ["resolved"]


def test_when_the_node_starts_out_of_the_state_an_alert_was_about_then_it_resolves(
    tmp_path: Path,
) -> None:
    """kill-switch and instrument-paused of the last run, a node that starts ACTIVE with
    X not paused (``clearing_of`` a kernel): both resolve at start; a paused instrument
    the kernel does not have stays."""
    before = bench(only=["kill-switch", "instrument-paused"])
    before.publish(state(TradingState.HALTED))
    before.publish(InstrumentPaused(ts_ns=T0, instrument_id="X", reason="drill", until_ns=T0))
    before.publish(InstrumentPaused(ts_ns=T0, instrument_id="Y", reason="drill", until_ns=T0))
    clock = SimClock(before.now_ns() + 60 * S)
    after = bench(only=["kill-switch", "instrument-paused"], clock=clock, id_prefix="2.")
    after.engine.take_over(journaled_book(before.journaled))
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="X", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="X")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=clock, epoch=2)
    clearing = clearing_of(kernel)
    assert [type(e) for e in clearing] == [TradingStateChanged, InstrumentResumed]
    after.engine.standing(standing_conditions(kernel.risk, clock), clearing)
    hows = {e.labels.get("instrument_id", e.alert): e.how for e in after.journaled}
    assert hows == {
        "kill-switch": "TradingStateChanged at start",
        "X": "InstrumentResumed at start",
    }
    assert [a.labels for a in after.engine.active.values()] == [{"instrument_id": "Y"}]
    assert after.notifier.statuses("ops") == ["resolved", "resolved"]


def test_when_its_rule_was_removed_then_the_alert_resolves_at_start_saying_so() -> None:
    """venue-disconnected firing, then a config without the rule: resolved at once
    with the reason, and the resolution (the journaled summary) is sent."""
    before = bench(only=["venue-disconnected"])
    before.publish(lost())
    (fired,) = before.alert_events(AlertFired)
    after = restarted(before, down_s=10, only=["order-rejected"])
    (resolved,) = after.journaled
    assert isinstance(resolved, AlertResolved)
    assert (resolved.alert_id, resolved.how, resolved.labels) == (
        fired.alert_id,
        "rule venue-disconnected no longer exists",
        {"venue": "FIXSIM"},
    )
    (sent,) = after.notifier.to("ops")
    assert (sent.status, sent.summary) == ("resolved", "venue FIXSIM: no session (session dropped)")
    assert after.engine.active == {} and after.engine.by_id == {}


def test_when_acknowledged_before_a_restart_then_it_stays_acknowledged_and_quiet() -> None:
    """An acknowledged alert carried over: listed as acknowledged, no repeats, and a
    second acknowledgement is refused."""
    before = bench(only=["venue-disconnected"])
    before.publish(lost())
    (alert_id,) = before.engine.by_id
    before.engine.acknowledge(alert_id, who="alice", why="on it")
    after = restarted(before, down_s=1000, only=["venue-disconnected"])
    (listed,) = after.engine.listing()["alerts"]
    assert listed["acknowledged"] == {"who": "alice", "why": "on it"}
    after.advance_s(3600)
    assert after.notifier.sent == []
    with pytest.raises(CommandRefused, match="already acknowledged by alice"):
        after.engine.acknowledge(alert_id, who="bob", why="mine")


def test_when_silenced_before_a_restart_then_the_silence_holds_until_it_runs_out() -> None:
    """A silence and the alert it kept quiet carry over: nothing sent until the silence
    runs out, then the alert is sent (nobody had it yet)."""
    before = bench(only=["venue-disconnected"])
    silence = before.engine.silence("venue-disconnected", {}, for_s=600.0, who="a", why="works")
    before.publish(lost())
    (fired,) = before.alert_events(AlertFired)
    assert fired.silenced and before.notifier.sent == []
    after = restarted(before, down_s=100, only=["venue-disconnected"])
    assert list(after.engine.silences) == [silence.id]
    after.advance_s(499)
    assert after.notifier.sent == []
    after.advance_s(1)
    assert after.notifier.statuses("ops") == ["firing"]
    assert after.notifier.to("ops")[0].alert_id == fired.alert_id


def test_when_a_silence_ran_out_while_the_node_was_down_then_the_alert_is_sent_at_start() -> None:
    """The silenced alert's silence ended while the node was down: sent when taken over."""
    before = bench(only=["venue-disconnected"])
    before.engine.silence("venue-disconnected", {}, for_s=60.0, who="a", why="works")
    before.publish(lost())
    after = restarted(before, down_s=120, only=["venue-disconnected"])
    assert after.engine.silences == {}
    assert after.notifier.statuses("ops") == ["firing"]
    assert after.journaled == []


def test_when_a_pnl_drop_is_carried_over_then_it_waits_a_window_of_readings() -> None:
    """A change rule's window is empty after a restart: the pnl-drop alert stays until
    the engine has read the PnL for a whole window (900 s) without the drop."""
    before = bench(daily_loss=Decimal(1000), only=["pnl-drop"])
    before.read({PNL: {(): 0.0}})
    before.advance_s(1)
    before.read({PNL: {(): -600.0}})
    assert before.active() == ["pnl-drop"]
    after = restarted(before, down_s=60, daily_loss=Decimal(1000), only=["pnl-drop"])
    after.read({PNL: {(): -600.0}})
    after.advance_s(899)
    after.read({PNL: {(): -600.0}})
    assert after.active() == ["pnl-drop"] and after.journaled == []
    after.advance_s(2)
    after.read({PNL: {(): -600.0}})
    (resolved,) = after.alert_events(AlertResolved)
    assert resolved.how == "cleared"


def test_when_alerts_fire_after_a_restart_then_their_ids_never_repeat_an_earlier_one() -> None:
    """A new run's ids carry its epoch ("2."); even under the same prefix, the id of an
    alert carried over is never given again."""
    before = bench(only=["venue-disconnected", "order-rejected"])
    before.publish(lost())
    assert list(before.engine.by_id) == ["1.1"]
    after = restarted(before, down_s=5, only=["venue-disconnected", "order-rejected"])
    after.publish(rejected())
    assert sorted(after.engine.by_id) == ["1.1", "2.1"]
    same = bench(only=["venue-disconnected", "order-rejected"], clock=SimClock(T0 + 5 * S))
    same.engine.take_over(journaled_book(before.journaled))
    same.publish(rejected())
    assert sorted(same.engine.by_id) == ["1.1", "1.2"]


def test_when_escalated_before_a_restart_then_it_is_not_escalated_again() -> None:
    """ops escalates to pager after 60 s: due before the restart, it is taken as done
    (no second page) and the resolution reaches both; not yet due, it comes on time."""
    routes = [
        route("ops", escalate_after_s=60.0, escalate_to="pager"),
        route("pager", severities=["info"]),
    ]
    before = bench(routes=routes, only=["venue-disconnected"])
    before.publish(lost())
    before.advance_s(61)
    assert before.notifier.statuses("pager") == ["escalated"]
    after = restarted(before, down_s=30, routes=routes, only=["venue-disconnected"])
    after.advance_s(30)
    assert after.notifier.sent == []
    after.publish(VenueLoggedOn(ts_ns=T0, venue="FIXSIM", logons=2))
    assert after.notifier.statuses("ops") == ["resolved"]
    assert after.notifier.statuses("pager") == ["resolved"]

    early = bench(routes=routes, only=["venue-disconnected"])
    early.publish(lost())
    early.advance_s(10)
    later = restarted(early, down_s=20, routes=routes, only=["venue-disconnected"])
    later.advance_s(29)
    assert later.notifier.sent == []
    later.advance_s(2)
    assert later.notifier.statuses("pager") == ["escalated"]

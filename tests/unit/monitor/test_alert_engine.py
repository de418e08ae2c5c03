"""The alert engine on a test clock: every built-in rule fires on its condition and
resolves when it clears; an alert fires once, repeats while active, escalates while
unacknowledged, stays quiet while silenced; every state change is journaled."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import CommandRefused
from bastion.model.data import QuoteTick
from bastion.model.enums import TradingState
from bastion.model.events import (
    EVENT_TYPES,
    AlertAcknowledged,
    AlertFired,
    AlertResolved,
    AlertSilenced,
    Event,
    FeedStatus,
    FeedSwitched,
    InstrumentPaused,
    InstrumentResumed,
    OrderRejected,
    ReconciliationCompleted,
    ReconciliationMismatch,
    StrategyDisabled,
    StrategyEnabled,
    StrategyFailed,
    TradingStateChanged,
    VenueLoggedOn,
    VenueSessionLost,
)
from bastion.monitor.alerts.config import AlertRuleConfig
from bastion.monitor.alerts.restart import standing_conditions
from bastion.node.kernel import Kernel
from kit.alerts import T0, bench, labels, route, sample_node

NOW = T0


def lost(venue: str = "FIXSIM") -> VenueSessionLost:
    return VenueSessionLost(ts_ns=NOW, venue=venue, reason="session dropped")


def logged_on(venue: str = "FIXSIM") -> VenueLoggedOn:
    return VenueLoggedOn(ts_ns=NOW, venue=venue, logons=2)


def rejected(coid: str = "O-1") -> OrderRejected:
    return OrderRejected(
        ts_ns=NOW, client_order_id=coid, strategy_id="ema", instrument_id="X", reason="no market"
    )


def state(to: TradingState) -> TradingStateChanged:
    return TradingStateChanged(ts_ns=NOW, state=to, reason="kill by ops: drill")


def completed(mismatches: list[str]) -> ReconciliationCompleted:
    return ReconciliationCompleted(
        ts_ns=NOW,
        venue="FIXSIM",
        epoch=2,
        orders_checked=1,
        adopted=0,
        resolved=0,
        mismatches=mismatches,
    )


MISMATCH = ReconciliationMismatch(
    ts_ns=NOW, venue="FIXSIM", state=TradingState.HALTED, mismatches=["X position: 1 vs 2"]
)
PAUSED = InstrumentPaused(ts_ns=NOW, instrument_id="X", reason="mid moved 5%", until_ns=NOW + 1)
RESUMED = InstrumentResumed(ts_ns=NOW, instrument_id="X")
FAILED = StrategyFailed(ts_ns=NOW, strategy_id="ema", error="ZeroDivisionError()")
DISABLED = StrategyDisabled(ts_ns=NOW, strategy_id="ema", reason="11 fills within 1 s")
ENABLED = StrategyEnabled(ts_ns=NOW, strategy_id="ema", who="ops", why="checked")
FAILED_OVER = FeedSwitched(
    ts_ns=NOW, instrument_id="X", from_feed="a", to_feed="b", reason="stale", preferred=False
)
RETURNED = FeedSwitched(
    ts_ns=NOW, instrument_id="X", from_feed="b", to_feed="a", reason="return", preferred=True
)
NO_FEED = FeedStatus(ts_ns=NOW, instrument_id="X", healthy=False, feed="", reason="silent")
FEED_BACK = FeedStatus(ts_ns=NOW, instrument_id="X", healthy=True, feed="b", reason="ticks")

# rule, the events that set it off, what ends it (an event, or seconds of quiet)
EVENT_RULES: list[tuple[str, list[Event], Event | float]] = [
    ("venue-disconnected", [lost()], logged_on()),
    ("order-rejected", [rejected("O-1"), rejected("O-2")], 300.0),
    ("kill-switch", [state(TradingState.HALTED)], state(TradingState.ACTIVE)),
    ("reconciliation-mismatch", [completed(["X position: 1 vs 2"]), MISMATCH], completed([])),
    ("strategy-failed", [FAILED, DISABLED], ENABLED),
    ("instrument-paused", [PAUSED], RESUMED),
    ("feed-failover", [FAILED_OVER], RETURNED),
    ("no-healthy-feed", [NO_FEED], FEED_BACK),
]


@pytest.mark.parametrize(("rule", "events", "end"), EVENT_RULES, ids=[r[0] for r in EVENT_RULES])
def test_when_a_builtin_event_rule_sees_its_event_then_it_fires_once_and_resolves(
    rule: str, events: list[Event], end: Event | float
) -> None:
    """The first matching event fires (journaled, notified); more count in it; the
    resolving event (or the quiet period) resolves it, notified to the same routes."""
    b = bench()
    for event in events:
        b.publish(event)
    fired = b.alert_events(AlertFired)
    assert [e.alert for e in fired] == [rule]
    assert fired[0].severity in ("warning", "critical")
    assert fired[0].runbook == f"docs/runbooks/{rule}.md"
    assert b.notifier.statuses("ops") == ["firing"]
    assert b.active() == [rule]
    if isinstance(end, float):
        b.advance_s(end - 1)
        assert b.active() == [rule]
        b.advance_s(1)
    else:
        b.publish(end)
    assert [e.alert_id for e in b.alert_events(AlertResolved)] == [fired[0].alert_id]
    assert b.notifier.statuses("ops") == ["firing", "resolved"]
    assert b.active() == []


def test_when_venue_session_is_lost_then_the_alert_names_the_venue_and_reason() -> None:
    """The summary is rendered from the event's fields; the alert is per venue."""
    b = bench()
    b.publish(lost("A"))
    b.publish(lost("B"))
    b.publish(logged_on("A"))
    (_, firing_a), (_, firing_b), (_, resolved_a) = b.notifier.sent
    assert firing_a.summary == "venue A: no session (session dropped)"
    assert firing_a.labels == {"venue": "A"} and firing_b.labels == {"venue": "B"}
    assert resolved_a.status == "resolved" and resolved_a.labels == {"venue": "A"}
    assert [a.labels for a in b.engine.active.values()] == [{"venue": "B"}]


def test_when_a_halt_moves_to_reducing_then_the_kill_switch_alert_resolves() -> None:
    """HALTED -> REDUCING ends the kill-switch alert too; REDUCING alone fires nothing."""
    b = bench()
    b.publish(state(TradingState.REDUCING))
    assert b.active() == []
    b.publish(state(TradingState.HALTED))
    b.publish(state(TradingState.REDUCING))
    assert b.notifier.statuses("ops") == ["firing", "resolved"]


def test_when_reconciliation_completes_with_mismatches_then_the_alert_stays() -> None:
    """Only a clean reconciliation of the same venue resolves a mismatch."""
    b = bench()
    b.publish(MISMATCH)
    b.publish(completed(["still off"]))
    assert b.active() == ["reconciliation-mismatch"]


M = dict[str, dict[tuple[tuple[str, str], ...], float]]

# rule, metric, series labels, value that holds the condition, value that clears it, for_s
METRIC_RULES: list[tuple[str, str, dict[str, str], float, float, float]] = [
    ("stale-market-data", "bastion_quote_age_seconds", {"instrument": "X"}, 6.0, 0.2, 0.0),
    ("journal-lag", "bastion_journal_commit_lag_seconds", {}, 1.5, 0.01, 5.0),
    ("disk-nearly-full", "bastion_disk_free_ratio", {}, 0.05, 0.5, 60.0),
    ("clock-offset", "bastion_clock_offset_seconds", {}, -0.08, 0.001, 60.0),
    ("node-not-ready", "bastion_node_ready", {}, 0.0, 1.0, 30.0),
]


@pytest.mark.parametrize(
    ("rule", "metric", "series", "bad", "good", "for_s"),
    METRIC_RULES,
    ids=[r[0] for r in METRIC_RULES],
)
def test_when_a_builtin_threshold_holds_for_its_duration_then_it_fires_and_resolves(
    rule: str, metric: str, series: dict[str, str], bad: float, good: float, for_s: float
) -> None:
    """Pending until the condition has held for ``for_s``, then firing; resolved by the
    first sample where it no longer holds."""
    b = bench()
    key = labels(**series)
    b.read({metric: {key: good}})
    b.read({metric: {key: bad}})
    if for_s:
        b.advance_s(for_s - 0.25)
        b.read({metric: {key: bad}})
        assert b.active() == []
        b.advance_s(0.25)
    b.read({metric: {key: bad}})
    assert b.active() == [rule]
    (fired,) = b.alert_events(AlertFired)
    assert fired.labels == series and fired.value == bad
    b.read({metric: {key: bad}})
    assert b.notifier.statuses("ops") == ["firing"]
    b.read({metric: {key: good}})
    assert b.active() == []
    assert b.notifier.statuses("ops") == ["firing", "resolved"]


def test_when_a_threshold_blips_shorter_than_for_s_then_nothing_fires() -> None:
    """A condition that clears before ``for_s`` starts over next time."""
    b = bench()
    lag = "bastion_journal_commit_lag_seconds"
    for _ in range(3):
        b.read({lag: {(): 2.0}})
        b.advance_s(4.0)
        b.read({lag: {(): 2.0}})
        b.read({lag: {(): 0.0}})
        b.advance_s(4.0)
    assert b.alert_events() == []


def test_when_a_series_disappears_then_its_alert_resolves() -> None:
    """An instrument no longer reported is no longer stale."""
    b = bench()
    b.read({"bastion_quote_age_seconds": {labels(instrument="X"): 9.0}})
    assert b.active() == ["stale-market-data"]
    b.read({"bastion_quote_age_seconds": {}})
    assert b.active() == []


def test_when_pnl_falls_by_more_than_half_the_daily_loss_within_the_window_then_it_fires() -> None:
    """pnl-drop: a fall of more than max_daily_loss/2 from the window's high fires; it
    resolves when the PnL recovers."""
    b = bench(daily_loss=Decimal(1000))
    for pnl in (100.0, 300.0, 50.0):
        b.read({"bastion_pnl": {(): pnl}})
        b.advance_s(60)
    assert b.active() == []
    b.read({"bastion_pnl": {(): -201.0}})
    assert b.active() == ["pnl-drop"]
    (fired,) = b.alert_events(AlertFired)
    assert fired.summary == "node PnL fell by more than 500 within 900 s (now -201)"
    b.advance_s(60)
    b.read({"bastion_pnl": {(): 0.0}})
    assert b.active() == []


def test_when_pnl_falls_slower_than_the_window_then_pnl_drop_stays_quiet() -> None:
    """A loss spread over more than window_s is not a sudden drop."""
    b = bench(daily_loss=Decimal(1000))
    for step in range(10):
        b.read({"bastion_pnl": {(): -100.0 * step}})
        b.advance_s(300)
    assert b.alert_events() == []


def test_when_no_daily_loss_limit_then_pnl_drop_is_off_unless_given_a_drop() -> None:
    """Without a limit to take half of, pnl-drop runs only with an explicit drop."""
    assert "pnl-drop" not in bench().engine.rules
    given = bench([AlertRuleConfig(name="pnl-drop", drop=250.0, window_s=60.0)])
    rule = given.engine.rules["pnl-drop"]
    assert rule.severity == "critical"
    given.read({"bastion_pnl": {(): 0.0}})
    given.read({"bastion_pnl": {(): -251.0}})
    assert given.active() == ["pnl-drop"]


def test_when_notifications_fail_then_notifier_failing_fires_and_clears_after_quiet() -> None:
    """notifier-failing: the failure counter of a route rose within 5 minutes."""
    b = bench()
    failed = "bastion_notifications_failed_total"
    b.read({failed: {labels(route="ops"): 0.0, labels(route="mail"): 0.0}})
    b.advance_s(1)
    b.read({failed: {labels(route="ops"): 0.0, labels(route="mail"): 2.0}})
    assert [a.labels for a in b.engine.active.values()] == [{"route": "mail"}]
    b.advance_s(299)
    b.read({failed: {labels(route="ops"): 0.0, labels(route="mail"): 2.0}})
    assert b.active() == ["notifier-failing"]
    b.advance_s(2)
    b.read({failed: {labels(route="ops"): 0.0, labels(route="mail"): 2.0}})
    assert b.active() == []


def test_when_an_alert_stays_active_then_it_repeats_every_repeat_s_until_acknowledged() -> None:
    """A critical alert repeats every 600 s; acknowledged, it stops (journaled with who)."""
    b = bench()
    b.publish(lost())
    b.advance_s(599)
    assert b.notifier.statuses("ops") == ["firing"]
    b.advance_s(1)
    b.advance_s(600)
    assert b.notifier.statuses("ops") == ["firing", "repeat", "repeat"]
    (alert_id,) = b.engine.by_id
    b.engine.acknowledge(alert_id, who="alice", why="restarting the venue")
    b.advance_s(3600)
    assert b.notifier.statuses("ops") == ["firing", "repeat", "repeat"]
    (ack,) = b.alert_events(AlertAcknowledged)
    assert (ack.alert_id, ack.who, ack.why) == (alert_id, "alice", "restarting the venue")
    b.publish(logged_on())
    assert b.notifier.statuses("ops") == ["firing", "repeat", "repeat", "resolved"]


def test_when_unacknowledged_past_escalate_after_s_then_the_next_route_is_notified() -> None:
    """ops escalates to pager after 60 s, pager to boss after 120 s more; the resolution
    reaches every route that had the alert."""
    b = bench(
        routes=[
            route("ops", escalate_after_s=60.0, escalate_to="pager"),
            route("pager", severities=["info"], escalate_after_s=120.0, escalate_to="boss"),
            route("boss", severities=["info"]),
        ]
    )
    b.publish(lost())
    assert [r for r, _ in b.notifier.sent] == ["ops"]
    b.advance_s(59.75)
    assert b.notifier.to("pager") == []
    b.advance_s(0.25)
    assert b.notifier.statuses("pager") == ["escalated"]
    b.advance_s(119.75)
    assert b.notifier.to("boss") == []
    b.advance_s(0.25)
    assert b.notifier.statuses("boss") == ["escalated"]
    b.publish(logged_on())
    for name in ("ops", "pager", "boss"):
        assert b.notifier.statuses(name)[-1] == "resolved", name


def test_when_acknowledged_in_time_then_there_is_no_escalation() -> None:
    """An acknowledgement before escalate_after_s keeps the next route quiet."""
    b = bench(
        routes=[
            route("ops", escalate_after_s=60.0, escalate_to="pager"),
            route("pager", severities=["info"]),
        ]
    )
    b.publish(lost())
    b.advance_s(30)
    b.engine.acknowledge(next(iter(b.engine.by_id)), who="bob", why="mine")
    b.advance_s(600)
    assert b.notifier.to("pager") == []


def test_when_routes_take_some_severities_then_each_gets_only_those() -> None:
    """Routes by severity: a warning does not page the critical-only route."""
    b = bench(routes=[route("chat"), route("pager", severities=["critical"])])
    b.publish(rejected())  # warning
    b.publish(lost())  # critical
    assert [n.alert for n in b.notifier.to("chat")] == ["order-rejected", "venue-disconnected"]
    assert [n.alert for n in b.notifier.to("pager")] == ["venue-disconnected"]


def test_when_silenced_then_matching_alerts_notify_nobody_until_the_silence_ends() -> None:
    """A silence on one venue keeps its alert quiet (still journaled, marked silenced)
    while another venue's goes out; when it runs out, the alert still firing is sent."""
    b = bench()
    silence = b.engine.silence(
        "venue-disconnected", {"venue": "A"}, for_s=60.0, who="alice", why="venue maintenance"
    )
    (journaled,) = b.alert_events(AlertSilenced)
    assert journaled.until_ns == b.now_ns() + 60 * 1_000_000_000
    assert (journaled.silence_id, journaled.who, journaled.labels) == (
        silence.id,
        "alice",
        {"venue": "A"},
    )
    b.publish(lost("A"))
    b.publish(lost("B"))
    fired = {e.labels["venue"]: e.silenced for e in b.alert_events(AlertFired)}
    assert fired == {"A": True, "B": False}
    assert [n.labels["venue"] for n in b.notifier.to("ops")] == ["B"]
    b.advance_s(59.75)
    assert len(b.notifier.to("ops")) == 1
    b.advance_s(0.25)
    assert b.engine.silences == {}
    assert [(n.labels["venue"], n.status) for n in b.notifier.to("ops")] == [
        ("B", "firing"),
        ("A", "firing"),
    ]


def test_when_a_silence_starts_then_an_active_alert_stops_repeating() -> None:
    """Silencing an alert already firing stops its repeats and escalation."""
    b = bench(
        routes=[
            route("ops", escalate_after_s=100.0, escalate_to="pager"),
            route("pager", severities=["info"]),
        ]
    )
    b.publish(lost())
    b.engine.silence("venue-disconnected", {}, for_s=3600.0, who="a", why="known")
    b.advance_s(1800)
    assert b.notifier.statuses("ops") == ["firing"]
    assert b.notifier.to("pager") == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.acknowledge("9.9", who="a", why="b"), "no active alert '9.9'"),
        (
            lambda e: e.silence("no-such-rule", {}, for_s=60.0, who="a", why="b"),
            "no alert rule 'no-such-rule'",
        ),
        (
            lambda e: e.silence("kill-switch", {}, for_s=0.0, who="a", why="b"),
            "at most 7 days",
        ),
        (
            lambda e: e.silence("kill-switch", {}, for_s=7 * 86_400.0 + 1, who="a", why="b"),
            "at most 7 days",
        ),
    ],
)
def test_when_an_operator_command_is_wrong_then_it_is_refused_and_nothing_journaled(
    call: Any, error: str
) -> None:
    """Unknown alert id, unknown rule, a silence of no time or beyond 7 days."""
    b = bench()
    with pytest.raises(CommandRefused, match=error):
        call(b.engine)
    assert b.alert_events() == []


def test_when_acknowledged_twice_then_the_second_is_refused() -> None:
    """One acknowledgement per alert; the second names who took it."""
    b = bench()
    b.publish(lost())
    alert_id = next(iter(b.engine.by_id))
    b.engine.acknowledge(alert_id, who="alice", why="mine")
    with pytest.raises(CommandRefused, match="already acknowledged by alice"):
        b.engine.acknowledge(alert_id, who="bob", why="mine too")


def test_when_an_event_field_holds_format_tricks_then_the_summary_shows_them_as_text() -> None:
    """A venue's reason text is substituted, never formatted: ``{0.__class__}`` stays."""
    b = bench()
    b.publish(VenueSessionLost(ts_ns=NOW, venue="V", reason="{0.__class__} {venue!r} %s"))
    (_, notification) = b.notifier.sent[0]
    assert notification.summary == "venue V: no session ({0.__class__} {venue!r} %s)"


def test_when_built_then_the_engine_subscribes_only_to_the_event_types_its_rules_name() -> None:
    """Never to quotes: exactly the rules' trigger and resolving events."""

    def subscribed(b: Any) -> set[type]:
        types = [*EVENT_TYPES, QuoteTick]
        return {t for t in types if b.engine._on_event in b.bus.subscribers(t)}

    b = bench()
    assert QuoteTick not in subscribed(b)
    assert {t.__name__ for t in subscribed(b)} == {
        "VenueSessionLost",
        "VenueLoggedOn",
        "OrderRejected",
        "TradingStateChanged",
        "ReconciliationMismatch",
        "ReconciliationCompleted",
        "StrategyFailed",
        "StrategyDisabled",
        "StrategyEnabled",
        "InstrumentPaused",
        "InstrumentResumed",
        "FeedSwitched",
        "FeedStatus",
        "LeaderTookOver",
        "LeaderStepDown",
        "StandbyStatus",
        "DrDrillCompleted",
    }
    assert subscribed(bench(only=["journal-lag"])) == set()


def test_when_alerts_fire_then_the_firing_counts_per_severity_are_in_its_series() -> None:
    """sources(): bastion_alerts_firing{severity} for every severity, 0 included."""
    from bastion.monitor.sample import SampleBuilder

    b = bench()
    b.publish(lost())
    b.publish(rejected())
    builder = SampleBuilder()
    b.engine.sources(builder)
    reading = builder.build(0, 0.0)
    assert {dict(k)["severity"]: v for k, v in reading.series("bastion_alerts_firing")} == {
        "info": 0.0,
        "warning": 1.0,
        "critical": 1.0,
    }


def test_when_alerts_are_listed_then_each_shows_its_state() -> None:
    """listing(): active alerts (acknowledged, silenced, routes) and silences."""
    b = bench()
    b.publish(lost())
    alert_id = next(iter(b.engine.by_id))
    b.engine.acknowledge(alert_id, who="alice", why="mine")
    b.engine.silence("stale-market-data", {"instrument": "X"}, for_s=60, who="bob", why="h")
    listed = b.engine.listing()
    (alert,) = listed["alerts"]
    assert alert["id"] == alert_id and alert["alert"] == "venue-disconnected"
    assert alert["acknowledged"] == {"who": "alice", "why": "mine"}
    assert alert["routes"] == ["ops"] and alert["silenced"] is False
    assert [s["alert"] for s in listed["silences"]] == ["stale-market-data"]


def test_when_a_kernel_gets_no_quote_for_too_long_then_stale_market_data_fires_and_clears(
    tmp_path: Path,
) -> None:
    """Read from a real kernel (``sample_node``): no quote on X for more than
    quote_stale_s fires stale-market-data for X; the next quote resolves it."""
    b = bench(quote_stale_s=2.0)
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="X", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="X")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=b.clock, epoch=1)

    def quote() -> None:
        now = b.clock.timestamp_ns()
        kernel.on_quote(QuoteTick("X", now, 10_000, 10_001, 5, 5))

    quote()
    for _ in range(8):
        b.advance_s(0.25)
        b.engine.on_sample(sample_node(kernel))
    assert b.active() == []
    b.advance_s(0.25)
    b.engine.on_sample(sample_node(kernel))
    assert b.active() == ["stale-market-data"]
    assert b.notifier.to("ops")[0].summary == "no quote for X for 2.25 s"
    quote()
    b.engine.on_sample(sample_node(kernel))
    assert b.active() == []


def test_when_a_node_starts_halted_then_its_recovered_conditions_alert_again(
    tmp_path: Path,
) -> None:
    """Recovered HALTED, a disabled strategy and a paused instrument each fire their
    rule at start (nothing published for them); they resolve as usual."""
    b = bench()
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="X", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="X")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=b.clock, epoch=1)
    kernel.restore_trading_state(TradingState.HALTED, "kill by ops: drill")
    kernel.risk.restore_disabled({"ema": "max_fills"})
    published: list[Event] = []
    for kind in (TradingStateChanged, StrategyDisabled):
        b.bus.subscribe(kind, published.append)
    b.engine.standing(standing_conditions(kernel.risk, b.clock))
    assert b.active() == ["kill-switch", "strategy-failed"]
    assert b.notifier.to("ops")[0].summary == "node HALTED: kill by ops: drill"
    assert published == []
    b.publish(state(TradingState.ACTIVE))
    b.publish(ENABLED)
    assert b.active() == []

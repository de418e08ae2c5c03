"""What the alert engine takes over when the node starts (``AlertEngine.take_over`` and
``AlertEngine.standing``).

- ``standing_conditions``: the state the node recovered that sets off a rule (HALTED,
  a strategy disabled, an instrument paused), as the events that would have set it;
- ``clearing_conditions``: the state it starts in that ends an alert of the earlier
  run (trading not HALTED, a strategy not disabled, an instrument not paused, an
  instrument with several feeds back on its preferred one, healthy: the feed arbiter
  starts there), as the events that would have ended it;
- the timing of an alert carried over: its series again, when it repeats next (on its
  ``repeat_s`` cadence from when it fired, so a restart adds no page) and which routes
  had it (those of its severity, and the escalations that fell due before the start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from bastion.clock import Clock
from bastion.model.enums import TradingState
from bastion.model.events import (
    Event,
    FeedStatus,
    FeedSwitched,
    InstrumentPaused,
    InstrumentResumed,
    StrategyDisabled,
    StrategyEnabled,
    TradingStateChanged,
)
from bastion.monitor.alerts.alert import Alert, common_values, metric_values
from bastion.monitor.alerts.book import AlertBook, FiringAlert
from bastion.monitor.alerts.config import SEVERITIES, AlertRouteConfig, Severity
from bastion.monitor.alerts.rules import DEFAULT_REPEAT_S, AlertRule, Change, EventMatch
from bastion.monitor.alerts.template import format_value
from bastion.monitor.sample import Labels

if TYPE_CHECKING:  # the engine runs in commands too, which build no risk gate
    from bastion.risk.gate import RiskGate
    from bastion.strategy.context import StrategyHost

START_WHO = "node"
"""Who the clearing conditions name (``StrategyEnabled.who``): nobody did anything."""

GONE = EventMatch(
    events=(), match={}, group_by=(), resolve_events=(), resolve_match={}, resolve_after_s=None
)
"""The condition of a rule that no longer exists (``stand_in_rule``): it matches nothing."""


class LaneLines(Protocol):
    """The feed arbiter, as seen here (``bastion.feeds.arbiter.Arbiter``)."""

    def preferred_feeds(self) -> dict[str, str]: ...


class StartingNode(Protocol):
    """What the engine reads of a node at start (``bastion.node.kernel.Kernel``)."""

    clock: Clock
    risk: RiskGate
    alerts: AlertBook
    strategies: StrategyHost

    @property
    def instruments(self) -> Mapping[str, object]: ...

    @property
    def arbiter(self) -> LaneLines | None: ...


def standing_conditions(risk: RiskGate, clock: Clock) -> list[Event]:
    """The state the risk gate recovered, as the events that would have set it: HALTED,
    each disabled strategy, each paused instrument."""
    now_ns = clock.timestamp_ns()
    events: list[Event] = []
    if risk.state is TradingState.HALTED:
        events.append(TradingStateChanged(ts_ns=now_ns, state=risk.state, reason=risk.state_reason))
    events += [
        StrategyDisabled(ts_ns=now_ns, strategy_id=strategy, reason=reason)
        for strategy, reason in sorted(risk.disabled.items())
    ]
    events += [
        InstrumentPaused(ts_ns=now_ns, instrument_id=iid, reason=reason, until_ns=until_ns)
        for iid, (until_ns, reason) in sorted(risk.paused_instruments.items())
    ]
    return events


def clearing_conditions(
    risk: RiskGate,
    clock: Clock,
    *,
    strategies: Iterable[str],
    instruments: Iterable[str],
    preferred_feeds: Mapping[str, str],
) -> list[Event]:
    """The state the node starts in, as the events that would end an alert of its last
    run: its trading state unless HALTED, each strategy not disabled (it runs again),
    each instrument not paused, each arbitrated instrument on its preferred feed and
    healthy. The engine lets them end alerts only, never set one off."""
    now_ns = clock.timestamp_ns()
    events: list[Event] = []
    if risk.state is not TradingState.HALTED:
        events.append(TradingStateChanged(ts_ns=now_ns, state=risk.state, reason=risk.state_reason))
    why = "not disabled when the node started"
    events += [
        StrategyEnabled(ts_ns=now_ns, strategy_id=sid, who=START_WHO, why=why)
        for sid in sorted(strategies)
        if sid not in risk.disabled
    ]
    paused = risk.paused_instruments
    events += [
        InstrumentResumed(ts_ns=now_ns, instrument_id=iid)
        for iid in sorted(instruments)
        if iid not in paused
    ]
    for iid, feed in sorted(preferred_feeds.items()):
        events.append(
            FeedSwitched(
                ts_ns=now_ns,
                instrument_id=iid,
                from_feed=feed,
                to_feed=feed,
                reason="node started",
                preferred=True,
            )
        )
        events.append(
            FeedStatus(ts_ns=now_ns, instrument_id=iid, healthy=True, feed=feed, reason="start")
        )
    return events


def clearing_of(node: StartingNode) -> list[Event]:
    """``clearing_conditions`` of ``node``."""
    arbiter = node.arbiter
    return clearing_conditions(
        node.risk,
        node.clock,
        strategies=node.strategies.strategies,
        instruments=node.instruments,
        preferred_feeds={} if arbiter is None else arbiter.preferred_feeds(),
    )


def carried_over(
    firing: FiringAlert,
    rule: AlertRule | None,
    series: Labels,
    *,
    routes: Mapping[str, AlertRouteConfig],
    now_ns: int,
    now_s: float,
) -> Alert:
    """``firing`` as an engine's alert of ``rule`` and ``series`` (``series_of``); of a
    stand-in rule when ``rule`` is None (gone from the config, or changed). Its
    ``silenced`` is left to the engine (the silences it holds)."""
    if rule is None:
        rule, series = stand_in_rule(firing), tuple(sorted(firing.labels.items()))
    condition = rule.condition
    fired_s = fired_at_s(firing.fired_ns, now_ns=now_ns, now_s=now_s)
    acknowledged = acknowledged_s = None
    if firing.acknowledged_by is not None:
        acknowledged = (firing.acknowledged_by, firing.acknowledged_why)
        acked_ns = firing.acknowledged_ns or firing.fired_ns
        acknowledged_s = fired_at_s(acked_ns, now_ns=now_ns, now_s=now_s)
    notified = not firing.silenced
    first = [r.name for r in routes.values() if rule.severity in r.severities]
    if isinstance(condition, EventMatch):
        # its event's fields are not known again until the next one: the summary stays
        values = {**common_values(rule, series), **dict(series)}
        values["count"] = format_value(firing.value)
        summary: str | None = firing.summary
    else:
        values, summary = metric_values(rule, series), None
    return Alert(
        id=firing.alert_id,
        rule=rule,
        series=series,
        values=values,
        value=firing.value,
        fired_ns=firing.fired_ns,
        last_seen_s=fired_s,
        next_repeat_s=next_repeat_s(fired_s, rule.repeat_s, now_s, notified=notified),
        silenced=False,
        routes=reached_routes(
            first if notified else (),
            routes,
            fired_s=fired_s,
            acknowledged_s=acknowledged_s,
            now_s=now_s,
        ),
        acknowledged=acknowledged,
        fixed_summary=summary,
        hold_until_s=now_s + condition.window_s if isinstance(condition, Change) else 0.0,
    )


def series_of(rule: AlertRule, labels: Mapping[str, str]) -> Labels | None:
    """The series (or event group) of ``rule`` an alert with ``labels`` is about; None
    when ``labels`` lack a field the rule groups by (the rule changed since)."""
    condition = rule.condition
    if isinstance(condition, EventMatch):
        if any(f not in labels for f in condition.group_by):
            return None
        return tuple((f, labels[f]) for f in condition.group_by)
    # a metric's series: its labels sorted (``bastion.monitor.sample``), less the rule's own
    return tuple(sorted((k, v) for k, v in labels.items() if k not in rule.labels))


def stand_in_rule(firing: FiringAlert) -> AlertRule:
    """A rule to resolve an alert by when its own is gone from the config."""
    severity: Severity = firing.severity if firing.severity in SEVERITIES else "warning"
    return AlertRule(
        name=firing.alert,
        severity=severity,
        summary=firing.summary,
        labels={},
        runbook=firing.runbook,
        repeat_s=DEFAULT_REPEAT_S,
        condition=GONE,
    )


def fired_at_s(fired_ns: int, *, now_ns: int, now_s: float) -> float:
    """When an alert fired, on the monotonic clock of this run (its wall time moved
    over; one stamped after now is taken as fired now)."""
    return now_s - max(0, now_ns - fired_ns) / 1e9


def next_repeat_s(fired_s: float, repeat_s: float, now_s: float, *, notified: bool) -> float:
    """The next repeat of an alert carried over: on its cadence from when it fired
    (``notified``: its ``AlertFired`` was sent), so the start adds none; else (it fired
    silenced) ``repeat_s`` from now."""
    if not notified:
        return now_s + repeat_s
    done = math.floor(max(0.0, now_s - fired_s) / repeat_s)
    return fired_s + (done + 1) * repeat_s


def reached_routes(
    first: Iterable[str],
    routes: Mapping[str, AlertRouteConfig],
    *,
    fired_s: float,
    acknowledged_s: float | None,
    now_s: float,
) -> dict[str, float]:
    """The routes an alert carried over had, with since when: ``first`` (those of its
    severity) from when it fired, and each escalation due before now and before it was
    acknowledged (taken as sent: the earlier run was up for it, or it was missed while
    the node was down; either way it is not sent again now)."""
    reached = dict.fromkeys(first, fired_s)
    todo = list(reached)
    while todo:
        route = routes.get(todo.pop())
        if route is None or route.escalate_to is None or route.escalate_after_s is None:
            continue
        due_s = reached[route.name] + route.escalate_after_s
        if route.escalate_to in reached or due_s > now_s:
            continue
        if acknowledged_s is not None and acknowledged_s <= due_s:
            continue
        reached[route.escalate_to] = due_s
        todo.append(route.escalate_to)
    return reached

"""The alert engine, on the trading loop: rules in, alerts and notifications out.

- ``on_sample(sample)``: threshold rules (per series: pending once the condition holds,
  firing after ``for_s``, resolved when it no longer holds or the series is gone) and
  change rules (a drop or rise within a window);
- journal events: the engine subscribes to exactly the event types its rules name
  (never to quotes); a matching event fires its group's alert, or counts in it, and a
  resolving event ends it;
- ``tick()`` (a few times a second): an event alert quiet for ``resolve_after_s`` is
  resolved, an active alert is sent again every ``repeat_s`` and escalated after a
  route's ``escalate_after_s`` while unacknowledged, a silence that ran out ends.

An alert fires once (journaled ``AlertFired``; every route of its severity notified),
and resolves once (``AlertResolved``; every route it reached notified). ``acknowledge``
(``AlertAcknowledged``) stops its repeats and escalation; ``silence``
(``AlertSilenced``) keeps the alerts it matches from notifying anyone until it ends by
itself. Every state change is also a log line (the ``log`` route). Notifications are
handed to the notifier's queues (``bastion.monitor.notify``): nothing here waits on a
receiver.

On start, ``take_over`` carries the alerts the journal says were firing (the node's
``AlertBook``) into the engine with their ids, start times, acknowledgements and the
silences still running: one still holding is not announced again, one whose condition
cleared while the node was down resolves at the first evaluation, one whose rule is gone
resolves at once (``bastion.monitor.alerts.restart``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol

import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.errors import CommandRefused
from bastion.model.events import (
    AlertAcknowledged,
    AlertFired,
    AlertResolved,
    AlertSilenced,
    Event,
)
from bastion.monitor.alerts.alert import Alert, Key, Silence, common_values, metric_values
from bastion.monitor.alerts.book import AlertBook
from bastion.monitor.alerts.config import LOG_ROUTE, SEVERITIES, AlertRouteConfig
from bastion.monitor.alerts.restart import carried_over, series_of
from bastion.monitor.alerts.rules import (
    AlertRule,
    Change,
    EventMatch,
    Threshold,
    event_fields,
    matches,
)
from bastion.monitor.alerts.template import format_value
from bastion.monitor.alerts.window import SlidingExtremes
from bastion.monitor.notify import Notification, Status
from bastion.monitor.sample import Labels, Sample, SampleBuilder

log = structlog.get_logger("bastion.monitor.alerts")

MAX_SILENCE_S: Final = 7 * 86_400.0


class Deliver(Protocol):
    """Where notifications go (``bastion.monitor.notify.Notifier``)."""

    def send(self, route: str, notification: Notification) -> None: ...


class AlertEngine:
    """The node's alert rules evaluated on its loop; see the module docstring."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        clock: Clock,
        rules: Sequence[AlertRule],
        routes: Sequence[AlertRouteConfig],
        notifier: Deliver,
        node: str,
        id_prefix: str,
        sources: Iterable[Callable[[SampleBuilder], None]] = (),
    ) -> None:
        """``id_prefix`` makes alert ids unique across the node's runs (its epoch);
        ``sources`` add more series to every sample (the notifier's counts, ...)."""
        self._bus = bus
        self.clock = clock
        self.rules = {rule.name: rule for rule in rules}
        self._routes = {route.name: route for route in routes}
        self._notifier = notifier
        self._node = node
        self._prefix = id_prefix
        self._sources = list(sources)
        self._ids = 0
        self.active: dict[Key, Alert] = {}
        self.by_id: dict[str, Alert] = {}
        self.silences: dict[str, Silence] = {}
        self._pending: dict[Key, float] = {}
        self._windows: dict[Key, SlidingExtremes] = {}
        self._sampled = [r for r in rules if isinstance(r.condition, Threshold | Change)]
        self._event_rules = [r for r in rules if isinstance(r.condition, EventMatch)]
        self._fire_on: dict[type[Event], list[AlertRule]] = {}
        self._resolve_on: dict[type[Event], list[AlertRule]] = {}
        for rule in self._event_rules:
            condition = rule.condition
            assert isinstance(condition, EventMatch)
            for event_type in condition.events:
                self._fire_on.setdefault(event_type, []).append(rule)
            for event_type in condition.resolve_events:
                self._resolve_on.setdefault(event_type, []).append(rule)
        for event_type in {*self._fire_on, *self._resolve_on}:
            bus.subscribe(event_type, self._on_event)

    # -- conditions --------------------------------------------------------------------
    def on_sample(self, sample: Sample) -> None:
        """Evaluate the metric rules on one reading of the node."""
        now_s = sample.monotonic_s
        for rule in self._sampled:
            condition = rule.condition
            assert isinstance(condition, Threshold | Change)
            holding: dict[Labels, float] = {}
            seen: set[Labels] = set()
            for series, value in sample.series(condition.metric):
                if not matches(condition.match, dict(series)) or math.isnan(value):
                    continue
                seen.add(series)
                if isinstance(condition, Threshold):
                    if condition.holds(value):
                        holding[series] = value
                elif self._changed(rule, condition, series, now_s, value):
                    holding[series] = value
            for series, value in holding.items():
                key = (rule.name, series)
                alert = self.active.get(key)
                if alert is not None:
                    alert.value = value
                    continue
                since = self._pending.setdefault(key, now_s)
                for_s = condition.for_s if isinstance(condition, Threshold) else 0.0
                if now_s - since >= for_s:
                    self._fire(rule, series, value, metric_values(rule, series))
            for key in [k for k in self._pending if k[0] == rule.name and k[1] not in holding]:
                del self._pending[key]
            for key in [k for k in self.active if k[0] == rule.name and k[1] not in holding]:
                if self.active[key].hold_until_s <= now_s:
                    self._resolve(self.active[key], "cleared")
            if isinstance(condition, Change):
                for key in [k for k in self._windows if k[0] == rule.name and k[1] not in seen]:
                    del self._windows[key]  # the series is gone: start again if it returns

    def _changed(
        self, rule: AlertRule, condition: Change, series: Labels, now_s: float, value: float
    ) -> bool:
        window = self._windows.get((rule.name, series))
        if window is None:
            window = self._windows[(rule.name, series)] = SlidingExtremes(condition.window_s)
        window.add(now_s, value)
        if condition.drop is not None:
            return window.highest - value > condition.drop
        assert condition.rise is not None
        return value - window.lowest > condition.rise

    def _on_event(self, event: Event) -> None:
        self._fire_on_event(event, standing=False)
        self._resolve_on_event(event, type(event).__name__)

    def _fire_on_event(self, event: Event, *, standing: bool) -> None:
        event_type = type(event)
        fields = event_fields(event)
        for rule in self._fire_on.get(event_type, ()):
            condition = rule.condition
            assert isinstance(condition, EventMatch)
            if not matches(condition.match, fields):
                continue
            series = tuple((f, fields[f]) for f in condition.group_by)
            values = {
                **common_values(rule, series),
                **fields,
                "event": event_type.__name__,
            }
            alert = self.active.get((rule.name, series))
            if alert is None:
                self._fire(rule, series, 1.0, {**values, "count": "1"})
            elif not standing:  # standing: the same condition, carried over from the last run
                alert.value += 1
                alert.last_seen_s = self.clock.monotonic_s()
                alert.values = {**values, "count": format_value(alert.value)}
                alert.fixed_summary = None

    def _resolve_on_event(self, event: Event, how: str) -> None:
        fields = event_fields(event)
        for rule in self._resolve_on.get(type(event), ()):
            condition = rule.condition
            assert isinstance(condition, EventMatch)
            if matches(condition.resolve_match, fields):
                series = tuple((f, fields[f]) for f in condition.group_by)
                alert = self.active.get((rule.name, series))
                if alert is not None:
                    self._resolve(alert, how)

    def standing(self, events: Iterable[Event], clearing: Iterable[Event] = ()) -> None:
        """Conditions the node starts in, recovered from its journal (HALTED, a strategy
        disabled, an instrument paused), as events: each sets off its rule as if it had
        just happened, so it is announced again and resolved when it clears, unless its
        alert was carried over (``take_over``: it goes on as it was). ``clearing``: the
        state it starts in that ends such conditions (trading, a strategy enabled, ...),
        as events that only resolve an alert carried over, never fire one. Neither is
        published: they happened in an earlier run, or describe the start."""
        for event in events:
            self._fire_on_event(event, standing=True)
            self._resolve_on_event(event, type(event).__name__)
        for event in clearing:
            self._resolve_on_event(event, f"{type(event).__name__} at start")

    def take_over(self, book: AlertBook) -> None:
        """Carry over the alerts ``book`` holds as firing (the journal's, from the
        node's last run) and the silences still running: call once, at start, before
        the first evaluation. Each keeps its id, start time, acknowledgement and the
        routes it reached; nothing is journaled nor sent for it now, unless its rule is
        gone or changed (resolved, saying so) or it fired silenced and its silence has
        run out since (sent now, as at the end of a silence)."""
        clock = self.clock
        now_ns, now_s = clock.timestamp_ns(), clock.monotonic_s()
        for s in book.running_silences(now_ns):
            self.silences[s.silence_id] = Silence(
                id=s.silence_id,
                alert=s.alert,
                labels=dict(s.labels),
                until_ns=s.until_ns,
                who=s.who,
                why=s.why,
            )
        for firing in sorted(book.firing.values(), key=lambda f: (f.fired_ns, f.alert_id)):
            rule = self.rules.get(firing.alert)
            series = None if rule is None else series_of(rule, firing.labels)
            alert = carried_over(
                firing,
                rule if series is not None else None,
                series or (),
                routes=self._routes,
                now_ns=now_ns,
                now_s=now_s,
            )
            alert.silenced = any(s.covers(alert) for s in self.silences.values())
            other = self.active.get(alert.key)
            self.by_id[alert.id] = alert
            if other is None:
                self.active[alert.key] = alert
            log.info("alert_taken_over", alert_id=alert.id, alert=firing.alert)
            if rule is None:
                self._resolve(alert, f"rule {firing.alert} no longer exists")
            elif series is None:
                self._resolve(alert, f"rule {firing.alert} changed: it groups by other fields")
            elif other is not None:
                self._resolve(alert, f"alert {other.id} of the same series is firing")
            elif firing.silenced and not alert.silenced:
                self._notify(alert, "firing", self._routes_for(rule), now_s)
                alert.next_repeat_s = now_s + rule.repeat_s

    # -- alert lifecycle ---------------------------------------------------------------
    def _fire(self, rule: AlertRule, series: Labels, value: float, values: dict[str, str]) -> None:
        clock = self.clock
        now_s = clock.monotonic_s()
        alert = Alert(
            id=self._next_id(""),
            rule=rule,
            series=series,
            values=values,
            value=value,
            fired_ns=clock.timestamp_ns(),
            last_seen_s=now_s,
            next_repeat_s=now_s + rule.repeat_s,
            silenced=False,
        )
        alert.silenced = any(s.covers(alert) for s in self.silences.values())
        key = (rule.name, series)
        self._pending.pop(key, None)
        self.active[key] = alert
        self.by_id[alert.id] = alert
        self._bus.publish(
            AlertFired(
                ts_ns=alert.fired_ns,
                alert_id=alert.id,
                alert=rule.name,
                severity=rule.severity,
                labels=alert.labels,
                summary=alert.summary(),
                value=value,
                runbook=rule.runbook,
                silenced=alert.silenced,
            )
        )
        self._notify(alert, "firing", self._routes_for(rule), now_s)

    def _next_id(self, kind: str) -> str:
        """A new alert (``kind`` "") or silence ("s") id: the run's prefix (its epoch)
        keeps it apart from an earlier run's, and one already known is skipped."""
        while True:
            self._ids += 1
            new = f"{self._prefix}{kind}{self._ids}"
            if new not in self.by_id and new not in self.silences:
                return new

    def _resolve(self, alert: Alert, how: str) -> None:
        if self.active.get(alert.key) is alert:
            del self.active[alert.key]
        del self.by_id[alert.id]
        self._bus.publish(
            AlertResolved(
                ts_ns=self.clock.timestamp_ns(),
                alert_id=alert.id,
                alert=alert.rule.name,
                labels=alert.labels,
                how=how,
            )
        )
        self._notify(alert, "resolved", list(alert.routes), self.clock.monotonic_s())

    def _routes_for(self, rule: AlertRule) -> list[str]:
        return [r.name for r in self._routes.values() if rule.severity in r.severities]

    def _notify(self, alert: Alert, status: Status, routes: list[str], now_s: float) -> None:
        """Log ``status`` (the ``log`` route) and, unless silenced, send it to ``routes``
        (a resolution goes to every route that had the alert, silenced or not)."""
        rule = alert.rule
        notification = Notification(
            alert_id=alert.id,
            alert=rule.name,
            severity=rule.severity,
            status=status,
            summary=alert.summary(),
            labels=alert.labels,
            value=alert.value,
            runbook=rule.runbook,
            node=self._node,
            ts_ns=self.clock.timestamp_ns(),
        )
        sending = [] if alert.silenced and status != "resolved" else routes
        level = log.info if status == "resolved" or rule.severity == "info" else log.warning
        level(
            f"alert_{status}",
            route=LOG_ROUTE,
            alert_id=alert.id,
            alert=rule.name,
            severity=rule.severity,
            summary=notification.summary,
            labels=notification.labels,
            silenced=alert.silenced,
            sent_to=sending,
        )
        for route in sending:
            alert.routes.setdefault(route, now_s)
            self._notifier.send(route, notification)

    def tick(self) -> None:
        """Quiet event alerts resolve, repeats and escalations go out, silences end."""
        clock = self.clock
        now_s, now_ns = clock.monotonic_s(), clock.timestamp_ns()
        for silence in [s for s in self.silences.values() if s.until_ns <= now_ns]:
            del self.silences[silence.id]
            log.info("alert_silence_ended", silence_id=silence.id, alert=silence.alert)
            for alert in list(self.active.values()):
                if alert.silenced and not any(s.covers(alert) for s in self.silences.values()):
                    alert.silenced = False
                    status: Status = "repeat" if alert.routes else "firing"
                    self._notify(alert, status, self._routes_for(alert.rule), now_s)
                    alert.next_repeat_s = now_s + alert.rule.repeat_s
        for alert in list(self.active.values()):
            condition = alert.rule.condition
            quiet_s = condition.resolve_after_s if isinstance(condition, EventMatch) else None
            if quiet_s is not None and now_s - alert.last_seen_s >= quiet_s:
                self._resolve(alert, f"no new event for {format_value(quiet_s)} s")
                continue
            if alert.silenced or alert.acknowledged is not None:
                continue
            if now_s >= alert.next_repeat_s:
                alert.next_repeat_s = now_s + alert.rule.repeat_s
                self._notify(alert, "repeat", list(alert.routes), now_s)
            for name, since_s in list(alert.routes.items()):
                route = self._routes.get(name)
                if route is None or route.escalate_to is None or route.escalate_after_s is None:
                    continue
                if route.escalate_to not in alert.routes and (
                    now_s - since_s >= route.escalate_after_s
                ):
                    self._notify(alert, "escalated", [route.escalate_to], now_s)

    # -- operator ----------------------------------------------------------------------
    def acknowledge(self, alert_id: str, *, who: str, why: str) -> Alert:
        """Take an active alert on (journaled): no more repeats nor escalation."""
        alert = self.by_id.get(alert_id)
        if alert is None:
            known = ", ".join(sorted(self.by_id)) or "none"
            raise CommandRefused(f"no active alert {alert_id!r} (active: {known})")
        if alert.acknowledged is not None:
            by, _ = alert.acknowledged
            raise CommandRefused(f"alert {alert_id} is already acknowledged by {by}")
        alert.acknowledged = (who, why)
        self._bus.publish(
            AlertAcknowledged(
                ts_ns=self.clock.timestamp_ns(),
                alert_id=alert.id,
                alert=alert.rule.name,
                who=who,
                why=why,
            )
        )
        log.warning("alert_acknowledged", alert_id=alert.id, alert=alert.rule.name, who=who)
        return alert

    def silence(
        self, alert: str, labels: dict[str, str], *, for_s: float, who: str, why: str
    ) -> Silence:
        """Keep rule ``alert``'s alerts whose labels include ``labels`` from notifying
        anyone for ``for_s`` seconds (journaled); the silence ends by itself."""
        if alert not in self.rules:
            known = ", ".join(sorted(self.rules)) or "none"
            raise CommandRefused(f"no alert rule {alert!r} on this node (rules: {known})")
        if not 0 < for_s <= MAX_SILENCE_S:
            raise CommandRefused(f"a silence lasts more than 0 s and at most 7 days, not {for_s}")
        silence = Silence(
            id=self._next_id("s"),
            alert=alert,
            labels=dict(labels),
            until_ns=self.clock.timestamp_ns() + round(for_s * 1e9),
            who=who,
            why=why,
        )
        self.silences[silence.id] = silence
        self._bus.publish(
            AlertSilenced(
                ts_ns=self.clock.timestamp_ns(),
                silence_id=silence.id,
                alert=alert,
                labels=silence.labels,
                until_ns=silence.until_ns,
                who=who,
                why=why,
            )
        )
        for active in self.active.values():
            if silence.covers(active):
                active.silenced = True
        log.warning("alert_silenced", silence_id=silence.id, alert=alert, who=who, for_s=for_s)
        return silence

    def listing(self) -> dict[str, Any]:
        """The active alerts and silences, for ``bastion alerts list``."""
        return {
            "alerts": [
                {
                    "id": a.id,
                    "alert": a.rule.name,
                    "severity": a.rule.severity,
                    "labels": a.labels,
                    "summary": a.summary(),
                    "value": a.value,
                    "fired_ns": a.fired_ns,
                    "acknowledged": (
                        None
                        if a.acknowledged is None
                        else {"who": a.acknowledged[0], "why": a.acknowledged[1]}
                    ),
                    "silenced": a.silenced,
                    "routes": sorted(a.routes),
                    "runbook": a.rule.runbook,
                }
                for a in sorted(self.active.values(), key=lambda a: a.fired_ns)
            ],
            "silences": [
                {
                    "id": s.id,
                    "alert": s.alert,
                    "labels": s.labels,
                    "until_ns": s.until_ns,
                    "who": s.who,
                    "why": s.why,
                }
                for s in self.silences.values()
            ],
        }

    def sources(self, builder: SampleBuilder) -> None:
        """The alerts firing per severity, and the series of ``sources``."""
        firing = dict.fromkeys(SEVERITIES, 0)
        for alert in self.active.values():
            firing[alert.rule.severity] += 1
        for severity, count in firing.items():
            builder.set("bastion_alerts_firing", count, severity=severity)
        for source in self._sources:
            source(builder)

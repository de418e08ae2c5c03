"""An active alert and a silence, as the engine holds them, and the values an alert's
summary is rendered from."""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.monitor.alerts.rules import AlertRule, Change, Threshold
from bastion.monitor.alerts.template import format_value, render
from bastion.monitor.sample import Labels

Key = tuple[str, Labels]
"""An alert's identity while active: its rule and its series (or event group)."""


@dataclass
class Alert:
    """An active alert."""

    id: str
    rule: AlertRule
    series: Labels
    values: dict[str, str]
    """What its summary is rendered from (the event's fields, the series' labels, ...)."""
    value: float
    fired_ns: int
    last_seen_s: float
    next_repeat_s: float
    silenced: bool
    routes: dict[str, float] = field(default_factory=dict)
    """Every route that had it, with when it first did (monotonic seconds)."""
    acknowledged: tuple[str, str] | None = None
    fixed_summary: str | None = None
    """The summary journaled when it fired, for an alert carried over from an earlier
    run whose values (an event's fields) are not known again until its next event."""
    hold_until_s: float = 0.0
    """A change rule's alert carried over: not resolved before its window holds readings
    of this run only (the earlier run's are gone)."""

    @property
    def key(self) -> Key:
        return (self.rule.name, self.series)

    @property
    def labels(self) -> dict[str, str]:
        return {**dict(self.series), **self.rule.labels}

    def summary(self) -> str:
        if self.fixed_summary is not None:
            return self.fixed_summary
        return render(self.rule.summary, {**self.values, "value": format_value(self.value)})


@dataclass(frozen=True)
class Silence:
    id: str
    alert: str
    labels: dict[str, str]
    until_ns: int
    who: str
    why: str

    def covers(self, alert: Alert) -> bool:
        labels = alert.labels
        return alert.rule.name == self.alert and all(
            labels.get(k) == v for k, v in self.labels.items()
        )


def common_values(rule: AlertRule, series: Labels) -> dict[str, str]:
    """What every summary may name: the rule's labels, ``alert``, ``severity``, ``labels``."""
    labels = {**dict(series), **rule.labels}
    return {
        **rule.labels,
        "alert": rule.name,
        "severity": rule.severity,
        "labels": ", ".join(f"{k}={v}" for k, v in labels.items()),
    }


def metric_values(rule: AlertRule, series: Labels) -> dict[str, str]:
    """What a metric rule's summary may name: ``common_values``, the series' labels and
    the condition's terms."""
    condition = rule.condition
    values = {**common_values(rule, series), **dict(series)}
    if isinstance(condition, Threshold):
        values.update(metric=condition.metric, threshold=format_value(condition.threshold))
    elif isinstance(condition, Change):
        values.update(
            metric=condition.metric,
            window_s=format_value(condition.window_s),
            drop="" if condition.drop is None else format_value(condition.drop),
            rise="" if condition.rise is None else format_value(condition.rise),
        )
    return values

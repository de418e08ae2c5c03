"""The alert rules a node runs: the built-in ones, adjusted or turned off by
``[[alerts]]`` tables of the same name, then the config's own (``alert_rules``), each
checked and resolved into an ``AlertRule`` whose condition is a ``Threshold``, a
``Change`` or an ``EventMatch``.

Built-in rules (each one's runbook is ``docs/runbooks/<name>.md``):

=========================  ========  ===============================================
venue-disconnected         critical  ``VenueSessionLost``; resolved by ``VenueLoggedOn``
order-rejected             warning   ``OrderRejected`` (by the venue); resolved after
                                     5 minutes without another, per strategy and
                                     instrument
kill-switch                critical  ``TradingStateChanged`` to HALTED; resolved by one
                                     to ACTIVE or REDUCING
reconciliation-mismatch    critical  ``ReconciliationMismatch``; resolved by a clean
                                     ``ReconciliationCompleted`` of the venue
strategy-failed            warning   ``StrategyFailed`` or ``StrategyDisabled``;
                                     resolved by ``StrategyEnabled``
instrument-paused          warning   ``InstrumentPaused``; resolved by ``InstrumentResumed``
feed-failover              warning   ``FeedSwitched`` to a feed not preferred; resolved by
                                     one back to the preferred feed, per instrument
no-healthy-feed            critical  ``FeedStatus`` healthy false; resolved by one healthy
                                     true, per instrument
pnl-drop                   critical  ``bastion_pnl`` fell by more than half the daily
                                     loss limit (``risk.max_daily_loss_node``, else
                                     ``risk.max_daily_loss``) within 15 minutes; off
                                     when neither is set and no ``drop`` is given
stale-market-data          warning   ``bastion_quote_age_seconds`` >
                                     ``monitoring.quote_stale_s``
journal-lag                critical  ``bastion_journal_commit_lag_seconds`` > 1 for 5 s
disk-nearly-full           warning   ``bastion_disk_free_ratio`` < 0.10 for 60 s
clock-offset               warning   abs(``bastion_clock_offset_seconds``) > 0.05 for 60 s
node-not-ready             critical  ``bastion_node_ready`` < 1 for 30 s
notifier-failing           warning   ``bastion_notifications_failed_total`` rose within
                                     5 minutes, per route
ha-takeover                critical  ``LeaderTookOver`` after a lease expired or a
                                     switchover (not a group's first start); resolved
                                     after 15 minutes
ha-step-down               critical  ``LeaderStepDown`` deposed, lease lost, fenced or
                                     journal failed (not a switchover); resolved by a
                                     ``LeaderTookOver`` of the group or after 15 minutes
ha-standby-lagging         warning   ``StandbyStatus`` lagging; resolved by one ok, lost
                                     or left, per standby
ha-standby-lost            warning   ``StandbyStatus`` lost; resolved by one ok, lagging
                                     or left, per standby
ha-no-standby              critical  ``bastion_ha_standbys`` < 1 (the leader only)
backup-failed              warning   ``bastion_backup_failures_total`` rose within 15
                                     minutes, per command (the node's journal shipping;
                                     a ``bastion backup`` command raises it itself)
dr-drill-failed            warning   ``DrDrillCompleted`` not ok (RTO over its target,
                                     or the positions disagreed); resolved by one ok
=========================  ========  ===============================================
"""

from __future__ import annotations

import difflib
import enum
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import msgspec
from msgspec import UNSET

from bastion.errors import ConfigError
from bastion.model.events import Event
from bastion.monitor.alerts.config import (
    CONDITION_KEYS,
    NAME,
    AlertRuleConfig,
    MatchValue,
    Op,
    Severity,
    not_negative,
    positive,
)
from bastion.monitor.alerts.known import METRIC_LABELS, RULE_EVENTS
from bastion.monitor.alerts.template import placeholders

DEFAULT_REPEAT_S: Final = 3600.0
DEFAULT_WINDOW_S: Final = 900.0
RUNBOOKS: Final = "docs/runbooks"

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}

Match = dict[str, frozenset[str]]
"""Field (or label) -> the values it may have."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """A metric's series beyond ``threshold`` for ``for_s`` seconds."""

    metric: str
    match: Match
    op: Op
    threshold: float
    absolute: bool
    for_s: float

    def holds(self, value: float) -> bool:
        return _OPS[self.op](abs(value) if self.absolute else value, self.threshold)


@dataclass(frozen=True, slots=True)
class Change:
    """A metric's series fell by more than ``drop`` from its highest within ``window_s``
    (or rose by more than ``rise`` from its lowest)."""

    metric: str
    match: Match
    drop: float | None
    rise: float | None
    window_s: float


@dataclass(frozen=True, slots=True)
class EventMatch:
    """Journal events of ``events`` with ``match``, one alert per ``group_by`` values;
    ended by a ``resolve_events`` event with ``resolve_match`` of the same group, or
    ``resolve_after_s`` without another event."""

    events: tuple[type[Event], ...]
    match: Match
    group_by: tuple[str, ...]
    resolve_events: tuple[type[Event], ...]
    resolve_match: Match
    resolve_after_s: float | None


Condition = Threshold | Change | EventMatch


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    severity: Severity
    summary: str
    labels: dict[str, str]
    runbook: str
    repeat_s: float
    condition: Condition


def matches(match: Match, values: dict[str, str]) -> bool:
    """Every field of ``match`` has one of its values in ``values``."""
    return all(values.get(key) in allowed for key, allowed in match.items())


def field_text(value: object) -> str:
    """An event field as a label, a match or a summary sees it."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(field_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={field_text(v)}" for k, v in value.items())
    return str(value)


def event_fields(event: Event) -> dict[str, str]:
    return {name: field_text(getattr(event, name)) for name in event.__struct_fields__}


# -- built-in rules ---------------------------------------------------------------------


def builtin_rules(*, quote_stale_s: float, daily_loss: Decimal | None) -> list[AlertRuleConfig]:
    """The seed's critical events as rules; ``pnl-drop`` has no ``drop`` without a daily
    loss limit (it runs only if a table gives one)."""
    R = AlertRuleConfig
    return [
        R(
            name="venue-disconnected",
            severity="critical",
            summary="venue {venue}: no session ({reason})",
            repeat_s=600.0,
            event="VenueSessionLost",
            group_by=["venue"],
            resolve_event="VenueLoggedOn",
        ),
        R(
            name="order-rejected",
            severity="warning",
            summary="order {client_order_id} of {strategy_id} on {instrument_id} rejected: "
            "{reason} ({value} rejected)",
            event="OrderRejected",
            group_by=["strategy_id", "instrument_id"],
            resolve_after_s=300.0,
        ),
        R(
            name="kill-switch",
            severity="critical",
            summary="node HALTED: {reason}",
            repeat_s=600.0,
            event="TradingStateChanged",
            match={"state": "HALTED"},
            resolve_event="TradingStateChanged",
            resolve_match={"state": ["ACTIVE", "REDUCING"]},
        ),
        R(
            name="reconciliation-mismatch",
            severity="critical",
            summary="venue {venue} does not agree with the node ({state}): {mismatches}",
            repeat_s=600.0,
            event="ReconciliationMismatch",
            group_by=["venue"],
            resolve_event="ReconciliationCompleted",
            resolve_match={"mismatches": ""},
        ),
        R(
            name="strategy-failed",
            severity="warning",
            summary="strategy {strategy_id} failed or was disabled",
            event=["StrategyFailed", "StrategyDisabled"],
            group_by=["strategy_id"],
            resolve_event="StrategyEnabled",
        ),
        R(
            name="instrument-paused",
            severity="warning",
            summary="instrument {instrument_id} paused: {reason}",
            event="InstrumentPaused",
            group_by=["instrument_id"],
            resolve_event="InstrumentResumed",
        ),
        R(
            name="feed-failover",
            severity="warning",
            summary="{instrument_id}: quotes now from feed {to_feed}, not {from_feed} ({reason})",
            event="FeedSwitched",
            match={"preferred": "false"},
            group_by=["instrument_id"],
            resolve_event="FeedSwitched",
            resolve_match={"preferred": "true"},
        ),
        R(
            name="no-healthy-feed",
            severity="critical",
            summary="{instrument_id}: no healthy feed ({reason})",
            repeat_s=600.0,
            event="FeedStatus",
            match={"healthy": "false"},
            group_by=["instrument_id"],
            resolve_event="FeedStatus",
            resolve_match={"healthy": "true"},
        ),
        R(
            name="pnl-drop",
            severity="critical",
            summary="node PnL fell by more than {drop} within {window_s} s (now {value})",
            repeat_s=600.0,
            metric="bastion_pnl",
            window_s=DEFAULT_WINDOW_S,
            drop=UNSET if daily_loss is None else float(daily_loss) / 2,
        ),
        R(
            name="stale-market-data",
            severity="warning",
            summary="no quote for {instrument} for {value} s",
            metric="bastion_quote_age_seconds",
            op=">",
            threshold=quote_stale_s,
        ),
        R(
            name="journal-lag",
            severity="critical",
            summary="journal commits lag by {value} s",
            repeat_s=600.0,
            metric="bastion_journal_commit_lag_seconds",
            op=">",
            threshold=1.0,
            for_s=5.0,
        ),
        R(
            name="disk-nearly-full",
            severity="warning",
            summary="the journal's disk is {value} free",
            metric="bastion_disk_free_ratio",
            op="<",
            threshold=0.10,
            for_s=60.0,
        ),
        R(
            name="clock-offset",
            severity="warning",
            summary="the host clock is off by {value} s",
            metric="bastion_clock_offset_seconds",
            op=">",
            threshold=0.05,
            absolute=True,
            for_s=60.0,
        ),
        R(
            name="node-not-ready",
            severity="critical",
            summary="the node is not ready",
            repeat_s=600.0,
            metric="bastion_node_ready",
            op="<",
            threshold=1.0,
            for_s=30.0,
        ),
        R(
            name="notifier-failing",
            severity="warning",
            summary="notifications to route {route} are failing ({value} failed so far)",
            metric="bastion_notifications_failed_total",
            rise=0.0,
            window_s=300.0,
        ),
        R(
            name="ha-takeover",
            severity="critical",
            summary="HA group {group}: {member} took over at epoch {epoch} ({reason}) from "
            "{previous_holder} (epoch {previous_epoch}); trading {wait_ms} ms after it won "
            "the lease",
            repeat_s=600.0,
            event="LeaderTookOver",
            match={"reason": ["lease expired", "switchover"]},
            group_by=["group"],
            resolve_after_s=DEFAULT_WINDOW_S,
        ),
        R(
            name="ha-step-down",
            severity="critical",
            summary="HA group {group}: {member} stopped leading (epoch {epoch}): {reason}",
            repeat_s=600.0,
            event="LeaderStepDown",
            match={"reason": ["deposed", "lease lost", "fenced", "journal failed"]},
            group_by=["group"],
            resolve_event="LeaderTookOver",
            resolve_after_s=DEFAULT_WINDOW_S,
        ),
        R(
            name="ha-standby-lagging",
            severity="warning",
            summary="HA group {group}: standby {member} is lagging: {reason}",
            event="StandbyStatus",
            match={"state": "lagging"},
            group_by=["group", "member"],
            resolve_event="StandbyStatus",
            resolve_match={"state": ["ok", "lost", "left"]},
        ),
        R(
            name="ha-standby-lost",
            severity="warning",
            summary="HA group {group}: standby {member} is lost: {reason}",
            event="StandbyStatus",
            match={"state": "lost"},
            group_by=["group", "member"],
            resolve_event="StandbyStatus",
            resolve_match={"state": ["ok", "lagging", "left"]},
        ),
        R(
            name="ha-no-standby",
            severity="critical",
            summary="no standby is heartbeating ({value} alive): if this leader fails, "
            "nobody takes over",
            repeat_s=600.0,
            metric="bastion_ha_standbys",
            op="<",
            threshold=1.0,
        ),
        R(
            name="backup-failed",
            severity="warning",
            summary="backup {command} failed ({value} failures so far): the desk's RPO grows "
            "until one succeeds",
            repeat_s=3600.0,
            metric="bastion_backup_failures_total",
            rise=0.0,
            window_s=DEFAULT_WINDOW_S,
        ),
        R(
            name="dr-drill-failed",
            severity="warning",
            summary="DR drill of backup {backup_id} failed: RTO {rto_s} s (target "
            "{rto_target_s} s), positions reconciled: {reconciled}",
            event="DrDrillCompleted",
            match={"ok": "false"},
            resolve_event="DrDrillCompleted",
            resolve_match={"ok": "true"},
        ),
    ]


def daily_loss_limit(
    max_daily_loss_node: Decimal | None, max_daily_loss: Decimal | None
) -> Decimal | None:
    """The loss the ``pnl-drop`` rule takes half of: the node's, else the strategies'."""
    return max_daily_loss_node if max_daily_loss_node is not None else max_daily_loss


# -- resolving the config ---------------------------------------------------------------


def alert_rules(
    alerts: list[AlertRuleConfig], *, quote_stale_s: float, daily_loss: Decimal | None
) -> list[AlertRule]:
    """The rules the node runs: built-ins (adjusted by tables of their name, left out if
    turned off), then the config's other tables. ``ConfigError`` naming the key for a
    bad table."""
    given: dict[str, int] = {}
    for n, table in enumerate(alerts):
        if not NAME.fullmatch(table.name):
            raise ConfigError(
                f"key 'alerts[{n}].name': lowercase letters, digits, '-' and '_' (at most "
                f"64), got {table.name!r}"
            )
        if table.name in given:
            raise ConfigError(
                f"key 'alerts[{n}].name': duplicate alert name '{table.name}' "
                f"(also alerts[{given[table.name]}])"
            )
        given[table.name] = n
    rules: list[AlertRule] = []
    builtins = builtin_rules(quote_stale_s=quote_stale_s, daily_loss=daily_loss)
    for builtin in builtins:
        n_given = given.get(builtin.name)
        if n_given is None:
            if builtin.name == "pnl-drop" and builtin.drop is UNSET:
                continue  # no limit to take half of
            rules.append(resolve(builtin, f"built-in alert '{builtin.name}'", builtin=True))
            continue
        merged = _merged(builtin, alerts[n_given])
        if merged.enabled is not False:
            key = f"alerts[{n_given}]"
            if merged.name == "pnl-drop" and merged.drop is UNSET and merged.rise is UNSET:
                raise ConfigError(
                    f"key '{key}.drop': pnl-drop needs the loss that sets it off (no "
                    "risk.max_daily_loss_node or risk.max_daily_loss to take half of)"
                )
            rules.append(resolve(merged, key, builtin=True))
    names = {b.name for b in builtins}
    for n, table in enumerate(alerts):
        if table.name not in names and table.enabled is not False:
            rules.append(resolve(table, f"alerts[{n}]", builtin=False))
    return rules


def _merged(builtin: AlertRuleConfig, table: AlertRuleConfig) -> AlertRuleConfig:
    """``builtin`` with the keys ``table`` gives; its condition replaced whole when
    ``table`` names a ``metric`` or an ``event``."""
    changes = {
        f: getattr(table, f) for f in table.__struct_fields__ if getattr(table, f) is not UNSET
    }
    base = builtin
    if table.metric is not UNSET or table.event is not UNSET:
        base = msgspec.structs.replace(builtin, **dict.fromkeys(CONDITION_KEYS, UNSET))
    return msgspec.structs.replace(base, **changes)


def _given(table: AlertRuleConfig, keys: Iterable[str]) -> list[str]:
    return [k for k in keys if getattr(table, k) is not UNSET]


def resolve(table: AlertRuleConfig, key: str, *, builtin: bool) -> AlertRule:
    """``table`` as a rule; ``ConfigError`` naming ``key`` and the bad key."""
    condition: Condition
    extra: set[str]
    if table.metric is not UNSET and table.event is not UNSET:
        raise ConfigError(f"key '{key}.event': a rule watches a metric or events, not both")
    if table.metric is not UNSET:
        labels = _metric_labels(table.metric, f"{key}.metric")
        match = _match(table.match, labels, f"{key}.match", "label")
        if table.threshold is not UNSET:
            _only(table, key, ("threshold", "op", "absolute", "for_s"), "a threshold rule")
            threshold = _finite(table.threshold, f"{key}.threshold")
            for_s = _value(table.for_s, 0.0)
            not_negative(for_s, f"{key}.for_s")
            condition = Threshold(
                metric=table.metric,
                match=match,
                op=_value(table.op, ">"),
                threshold=threshold,
                absolute=_value(table.absolute, False),
                for_s=for_s,
            )
            extra = {"metric", "threshold", *labels}
        elif table.drop is not UNSET or table.rise is not UNSET:
            _only(table, key, ("drop", "rise", "window_s"), "a change rule")
            if table.drop is not UNSET and table.rise is not UNSET:
                raise ConfigError(f"key '{key}.rise': a change rule has drop or rise, not both")
            for field in _given(table, ("drop", "rise")):
                not_negative(getattr(table, field), f"{key}.{field}")
            window_s = _value(table.window_s, DEFAULT_WINDOW_S)
            positive(window_s, f"{key}.window_s")
            condition = Change(
                metric=table.metric,
                match=match,
                drop=_value(table.drop, None),
                rise=_value(table.rise, None),
                window_s=window_s,
            )
            extra = {"metric", "drop", "rise", "window_s", *labels}
        else:
            raise ConfigError(
                f"key '{key}.threshold': a metric rule takes a threshold (with op, for_s) "
                "or a change (drop or rise, with window_s)"
            )
    elif table.event is not UNSET:
        condition, extra = _event_condition(table, key)
    else:
        raise ConfigError(
            f"key '{key}': give what the rule watches: metric = \"bastion_...\" (with a "
            'threshold, or a drop or rise) or event = "EventType"'
        )
    severity: Severity = _value(table.severity, "warning")
    repeat_s = _value(table.repeat_s, DEFAULT_REPEAT_S)
    positive(repeat_s, f"{key}.repeat_s")
    static = _value(table.labels, {})
    default_summary = "{alert}: {metric} {labels} = {value}"
    if isinstance(condition, EventMatch):
        default_summary = "{alert}: {event} {labels}"
    summary = _value(table.summary, default_summary)
    known = {"alert", "severity", "value", "labels", *static, *extra}
    for name in placeholders(summary, f"{key}.summary"):
        if name not in known:
            raise ConfigError(
                f"key '{key}.summary': unknown placeholder {{{name}}}{_suggest(name, known)} "
                f"(known: {', '.join(sorted(known))})"
            )
    runbook = _value(table.runbook, f"{RUNBOOKS}/{table.name}.md" if builtin else "")
    return AlertRule(
        name=table.name,
        severity=severity,
        summary=summary,
        labels=dict(static),
        runbook=runbook,
        repeat_s=repeat_s,
        condition=condition,
    )


def _event_condition(table: AlertRuleConfig, key: str) -> tuple[EventMatch, set[str]]:
    _only(
        table,
        key,
        ("event", "match", "group_by", "resolve_event", "resolve_match", "resolve_after_s"),
        "an event rule",
    )
    assert table.event is not UNSET
    events = _event_types(table.event, f"{key}.event")
    fields = _common_fields(events)
    match = _match(table.match, fields, f"{key}.match", "field")
    group_by = tuple(_value(table.group_by, []))
    for field in group_by:
        if field not in fields:
            raise _unknown_field(field, fields, f"{key}.group_by", events)
    resolve_events: tuple[type[Event], ...] = ()
    resolve_match: Match = {}
    if table.resolve_event is not UNSET:
        resolve_events = _event_types(table.resolve_event, f"{key}.resolve_event")
        resolve_fields = _common_fields(resolve_events)
        resolve_match = _match(table.resolve_match, resolve_fields, f"{key}.resolve_match", "field")
        for field in group_by:
            if field not in resolve_fields:
                raise ConfigError(
                    f"key '{key}.resolve_event': {_names(resolve_events)} has no field "
                    f"'{field}' (group_by): it could not tell which alert it ends"
                )
    elif table.resolve_match is not UNSET:
        raise ConfigError(f"key '{key}.resolve_match': applies with resolve_event only")
    resolve_after_s = _value(table.resolve_after_s, None)
    if resolve_after_s is not None:
        positive(resolve_after_s, f"{key}.resolve_after_s")
    if not resolve_events and resolve_after_s is None:
        raise ConfigError(
            f"key '{key}.resolve_event': say what ends the alert: resolve_event (a later "
            "event) or resolve_after_s (quiet for so long)"
        )
    condition = EventMatch(
        events=events,
        match=match,
        group_by=group_by,
        resolve_events=resolve_events,
        resolve_match=resolve_match,
        resolve_after_s=resolve_after_s,
    )
    return condition, {"event", "count", *fields}


def _only(table: AlertRuleConfig, key: str, allowed: tuple[str, ...], what: str) -> None:
    common = ("metric", "match")
    for field in _given(table, CONDITION_KEYS):
        if field not in allowed and field not in common:
            raise ConfigError(f"key '{key}.{field}': does not apply to {what}")


def _metric_labels(name: str, key: str) -> tuple[str, ...]:
    try:
        return METRIC_LABELS[name]
    except KeyError:
        raise ConfigError(
            f"key '{key}': unknown metric '{name}'{_suggest(name, METRIC_LABELS)}"
        ) from None


def _event_types(value: MatchValue, key: str) -> tuple[type[Event], ...]:
    names = [value] if isinstance(value, str) else value
    if not names:
        raise ConfigError(f"key '{key}': name at least one event type")
    types = []
    for name in names:
        try:
            types.append(RULE_EVENTS[name])
        except KeyError:
            raise ConfigError(
                f"key '{key}': unknown event type '{name}'{_suggest(name, RULE_EVENTS)}"
            ) from None
    return tuple(types)


def _common_fields(events: tuple[type[Event], ...]) -> tuple[str, ...]:
    """The fields every one of ``events`` has."""
    first = events[0].__struct_fields__
    return tuple(f for f in first if all(f in e.__struct_fields__ for e in events))


def _match(
    value: dict[str, MatchValue] | Any, names: tuple[str, ...], key: str, what: str
) -> Match:
    if value is UNSET:
        return {}
    match: Match = {}
    for name, allowed in value.items():
        if name not in names:
            known = ", ".join(names) or "none"
            raise ConfigError(
                f"key '{key}.{name}': no such {what}{_suggest(name, names)} ({what}s: {known})"
            )
        match[name] = frozenset([allowed] if isinstance(allowed, str) else allowed)
    return match


def _unknown_field(
    field: str, fields: tuple[str, ...], key: str, events: tuple[type[Event], ...]
) -> ConfigError:
    return ConfigError(
        f"key '{key}': {_names(events)} has no field '{field}'{_suggest(field, fields)} "
        f"(fields: {', '.join(fields)})"
    )


def _names(events: tuple[type[Event], ...]) -> str:
    return " / ".join(e.__name__ for e in events)


def _finite(value: float, key: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"key '{key}': must be a finite number, got {value}")
    return value


def _value(value: Any, default: Any) -> Any:
    return default if value is UNSET else value


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""

"""``[[alerts]]`` rules and ``[[alert_routes]]``, as written in the node's config.

A rule watches one of three things:

- a threshold on a metric held for a while: ``metric``, ``match`` (labels a series must
  have), ``op`` (``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``), ``threshold``, ``absolute``
  (compare the absolute value), ``for_s``; one alert per series;
- a change of a metric within a window: ``metric``, ``match``, ``drop`` (it fell by
  more than this from the window's highest) or ``rise`` (it rose by more than this from
  the window's lowest), ``window_s`` ("a loss of X within Y minutes");
- journal events: ``event`` (a type name, or a list), ``match`` (fields the event must
  have: a value, or a list of values), ``group_by`` (event fields: one alert per
  distinct value), and what ends it: ``resolve_event`` with ``resolve_match`` (a
  later event of the same group), or ``resolve_after_s`` (no new event for so long).

Each has a ``name`` (also its runbook's, ``docs/runbooks/<name>.md``), ``severity``
(``info``, ``warning``, ``critical``), a ``summary`` template (``bastion.monitor.alerts.
template``), static ``labels``, a ``runbook`` link and ``repeat_s`` (how often an active,
unacknowledged alert is sent again). A table named like a built-in rule
(``bastion.monitor.alerts.rules.BUILTIN_RULES``) changes only the keys it gives, or, with
``metric`` or ``event``, replaces its condition; ``enabled = false`` turns a rule off.
The resolved rules are ``bastion.monitor.alerts.rules``'s.

A route sends the alerts of its ``severities`` to its ``urls`` through apprise (Slack,
e-mail, webhooks, PagerDuty, ...). Such a URL carries a token, so each is a vault
reference (``"secret:notify/slack"``), never the URL itself. ``escalate_after_s`` and
``escalate_to``: an alert still unacknowledged that long after this route had it goes
to that route too. Delivery retries ``attempts`` times, waiting ``backoff_initial_ms``,
doubling up to ``backoff_max_ms``; at most ``queue_size`` notifications wait per URL
(past that the oldest is dropped, and counted). ``min_interval_s``: the least time
between two sends to one URL (unset: apprise's pace for the service, e.g. 5.5 s for
e-mail, 1.2 s for Slack, none for webhooks). The route ``log`` always exists: every
alert is a structured log line.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from bastion.errors import ConfigError
from bastion.vault import secret_name

Severity = Literal["info", "warning", "critical"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
MatchValue = str | list[str]

SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")
LOG_ROUTE: Final = "log"
NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class AlertRuleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[alerts]]`` table; a key not given is ``UNSET`` (a built-in's, or the
    default, applies)."""

    name: str
    enabled: bool | UnsetType = UNSET
    severity: Severity | UnsetType = UNSET
    summary: str | UnsetType = UNSET
    labels: dict[str, str] | UnsetType = UNSET
    runbook: str | UnsetType = UNSET
    repeat_s: float | UnsetType = UNSET
    # a metric: a threshold, or a change within a window
    metric: str | UnsetType = UNSET
    match: dict[str, MatchValue] | UnsetType = UNSET
    op: Op | UnsetType = UNSET
    threshold: float | UnsetType = UNSET
    absolute: bool | UnsetType = UNSET
    for_s: float | UnsetType = UNSET
    drop: float | UnsetType = UNSET
    rise: float | UnsetType = UNSET
    window_s: float | UnsetType = UNSET
    # journal events
    event: MatchValue | UnsetType = UNSET
    group_by: list[str] | UnsetType = UNSET
    resolve_event: MatchValue | UnsetType = UNSET
    resolve_match: dict[str, MatchValue] | UnsetType = UNSET
    resolve_after_s: float | UnsetType = UNSET


CONDITION_KEYS: Final = (
    "metric",
    "match",
    "op",
    "threshold",
    "absolute",
    "for_s",
    "drop",
    "rise",
    "window_s",
    "event",
    "group_by",
    "resolve_event",
    "resolve_match",
    "resolve_after_s",
)
"""The keys that say what a rule watches (the rest say what its alert looks like)."""


class AlertRouteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[alert_routes]]`` table."""

    name: str
    urls: list[str]
    severities: list[Severity] = msgspec.field(default_factory=lambda: list(SEVERITIES))
    escalate_after_s: float | None = None
    escalate_to: str | None = None
    attempts: int = 5
    backoff_initial_ms: int = 200
    backoff_max_ms: int = 30_000
    queue_size: int = 1000
    min_interval_s: float | None = None

    def secret_refs(self, key: str) -> list[tuple[str, str]]:
        return [
            (f"{key}.urls[{i}]", secret_name(url, f"{key}.urls[{i}]"))
            for i, url in enumerate(self.urls)
        ]

    def check(self, key: str) -> None:
        if not NAME.fullmatch(self.name):
            raise ConfigError(
                f"key '{key}.name': lowercase letters, digits, '-' and '_' (at most 64), "
                f"got {self.name!r}"
            )
        if self.name == LOG_ROUTE:
            raise ConfigError(
                f"key '{key}.name': '{LOG_ROUTE}' is the built-in route (every alert is "
                "logged); give this route another name"
            )
        if not self.urls:
            raise ConfigError(f"key '{key}.urls': give at least one URL (a vault reference)")
        self.secret_refs(key)
        if not self.severities:
            raise ConfigError(f"key '{key}.severities': give at least one severity")
        if (self.escalate_after_s is None) != (self.escalate_to is None):
            raise ConfigError(
                f"key '{key}.escalate_to': escalation takes both escalate_after_s and escalate_to"
            )
        if self.escalate_after_s is not None:
            positive(self.escalate_after_s, f"{key}.escalate_after_s")
        for field in ("attempts", "backoff_initial_ms", "backoff_max_ms", "queue_size"):
            positive(getattr(self, field), f"{key}.{field}")
        if self.min_interval_s is not None:
            not_negative(self.min_interval_s, f"{key}.min_interval_s")
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ConfigError(
                f"key '{key}.backoff_max_ms': less than backoff_initial_ms "
                f"({self.backoff_max_ms} < {self.backoff_initial_ms})"
            )


def check_routes(routes: list[AlertRouteConfig]) -> None:
    """Each route valid, names unique, escalation to a route that exists, no cycle."""
    index: dict[str, int] = {}
    for n, route in enumerate(routes):
        key = f"alert_routes[{n}]"
        route.check(key)
        if route.name in index:
            raise ConfigError(
                f"key '{key}.name': duplicate route name '{route.name}' "
                f"(also alert_routes[{index[route.name]}])"
            )
        index[route.name] = n
    by_name = {route.name: route for route in routes}
    for n, route in enumerate(routes):
        if route.escalate_to is None:
            continue
        key = f"alert_routes[{n}].escalate_to"
        if route.escalate_to == route.name:
            raise ConfigError(f"key '{key}': a route cannot escalate to itself")
        if route.escalate_to not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(f"key '{key}': unknown route '{route.escalate_to}' (routes: {known})")
        seen = [route.name]
        step: str | None = route.escalate_to
        while step is not None:
            if step in seen:
                chain = " -> ".join([*seen, step])
                raise ConfigError(f"key '{key}': escalation goes round in a circle: {chain}")
            seen.append(step)
            step = by_name[step].escalate_to


def positive(value: float, key: str) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"key '{key}': must be a positive number, got {value}")


def not_negative(value: float, key: str) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"key '{key}': must be a number >= 0, got {value}")

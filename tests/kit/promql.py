"""Reading the shipped Grafana dashboard and Prometheus rules: the PromQL expressions
they hold and the series names those select (for the tests that tie them to the node's
metric catalogue and to a running node's exposition)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from bastion.monitor.catalogue import METRICS
from kit.paths import TESTS_DIR

KNOWN_METRICS: Mapping[str, str] = {name: m.kind for name, m in METRICS.items()}
"""The node's metric names and kinds: its catalogue, where each is stated once."""

REPO = TESTS_DIR.parent
DASHBOARD = REPO / "deploy" / "grafana" / "bastion-node.json"
RULES = REPO / "deploy" / "prometheus" / "bastion-alerts.yml"

# Series Prometheus makes itself, not the node (the node-down rule reads ``up``).
PROMETHEUS_SERIES = frozenset({"up"})

# -- reading PromQL --------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "atan2", "inf", "nan"}
)
COUNTER_FUNCTIONS = re.compile(r"\b(rate|irate|increase|resets)\s*\(\s*([A-Za-z_:][\w:]*)")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, Grafana variables, numbers, functions (a name
    before a parenthesis) and keywords are taken out."""
    text = _GRAFANA_VARIABLE.sub(" ", _STRING.sub('""', expr))
    text = _RANGE.sub(" ", _MATCHERS.sub(" ", text))
    text = _LABEL_LIST.sub(" ", text)
    found = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        before = text[match.start() - 1] if match.start() else ""
        if before.isdigit() or before == ".":  # 1e3, 0.5: part of a number
            continue
        if text[match.end() :].lstrip().startswith("(") or name.lower() in _KEYWORDS:
            continue
        found.add(name)
    return found


def metric_of(series: str) -> str:
    """The metric a series belongs to: a histogram's ``_bucket``, ``_sum`` and ``_count``
    series belong to the histogram; any other name is the metric itself."""
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and KNOWN_METRICS.get(base) == "histogram":
            return base
    return series


# -- reading the files -----------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(board: Mapping[str, Any]) -> dict[str, str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables'
    queries (``label_values(metric, label)`` names the metric)."""
    exprs = {
        f"panel {panel['title']!r} target {target['refId']}": target["expr"]
        for panel in panels(board)
        for target in panel.get("targets", [])
    }
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable["type"] == "query" and query:
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            exprs[f"variable {variable['name']}"] = inner.group(1) if inner else query
    return exprs


def rule_exprs() -> dict[str, str]:
    return {f"rule {rule['alert']}": rule["expr"] for rule in rules()}

"""The Grafana dashboard and the Prometheus alerting rules that ship in deploy/: every
metric their PromQL names is one the node exposes, every rule is labelled and has a
runbook, and every built-in alert has a runbook."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from bastion.monitor.alerts.rules import builtin_rules
from kit.paths import TESTS_DIR
from kit.promql import (
    COUNTER_FUNCTIONS,
    KNOWN_METRICS,
    PROMETHEUS_SERIES,
    RULES,
    dashboard,
    dashboard_exprs,
    metric_of,
    panels,
    rule_exprs,
    rules,
    series_names,
)

BUILTIN_ALERTS = tuple(
    rule.name for rule in builtin_rules(quote_stale_s=5.0, daily_loss=Decimal("1000"))
)
"""The node's built-in alerts; each names its runbook file."""

SEVERITIES = frozenset({"info", "warning", "critical"})

REPO = TESTS_DIR.parent
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RUNBOOKS = REPO / "docs" / "runbooks"


def unknown_metrics(exprs: Mapping[str, str]) -> list[str]:
    """``where: name`` for every series an expression names that the node does not
    expose (and Prometheus does not make)."""
    return [
        f"{where}: {name}"
        for where, expr in exprs.items()
        for name in sorted(series_names(expr))
        if metric_of(name) not in KNOWN_METRICS and name not in PROMETHEUS_SERIES
    ]


def rates_of_gauges(exprs: Mapping[str, str]) -> list[str]:
    """``where: name`` for each rate/increase taken of a gauge (a mistake: only counters
    and a histogram's series only grow)."""
    return [
        f"{where}: {match.group(1)}({match.group(2)})"
        for where, expr in exprs.items()
        for match in COUNTER_FUNCTIONS.finditer(expr)
        if KNOWN_METRICS.get(metric_of(match.group(2))) == "gauge"
    ]


def runbook_file(url: str) -> Path:
    """The file a runbook_url points at: the part from ``docs/runbooks/`` on, in this
    repository (a desk rewrites the prefix to where it publishes the docs)."""
    _, sep, rest = url.partition("docs/runbooks/")
    assert sep, f"runbook_url {url!r} does not point into docs/runbooks/"
    return RUNBOOKS / rest


# -- the reader itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('bastion_pnl{instance=~"$instance"}', {"bastion_pnl"}),
        (
            "histogram_quantile(0.99, sum by (le, venue) "
            '(rate(bastion_order_to_ack_seconds_bucket{instance=~"$instance"}[$__rate_interval])))',
            {"bastion_order_to_ack_seconds_bucket"},
        ),
        ("(max_over_time(bastion_pnl[15m]) - bastion_pnl) > 1e3", {"bastion_pnl"}),
        ('up{job="bastion"} == 0 or on (instance) absent(x_y)', {"up", "x_y"}),
        ('sum without (state) (a{s="b c"}) / ignoring (z) group_left (q) b_c', {"a", "b_c"}),
    ],
)
def test_when_promql_read_then_only_its_series_names_come_out(expr: str, names: set[str]) -> None:
    """Functions, labels, ranges, strings, numbers and Grafana variables are no names."""
    assert series_names(expr) == names


def test_when_a_name_is_misspelt_or_a_gauge_is_rated_then_it_is_reported() -> None:
    """The checks below catch what they are for: an unknown name, a histogram suffix on
    a gauge, rate() of a gauge."""
    exprs = {
        "a": "rate(bastion_order_to_ack_seconds_bucket[5m])",
        "b": "bastoin_pnl + bastion_pnl_bucket",
        "c": "increase(bastion_pnl[5m])",
    }
    assert unknown_metrics(exprs) == ["b: bastion_pnl_bucket", "b: bastoin_pnl"]
    assert rates_of_gauges(exprs) == ["c: increase(bastion_pnl)"]


# -- the dashboard ---------------------------------------------------------------------


def test_when_dashboard_read_then_every_metric_it_names_is_exposed() -> None:
    """Every series the dashboard's queries select is in the node's metric list."""
    exprs = dashboard_exprs(dashboard())
    assert len(exprs) > 50
    assert unknown_metrics(exprs) == []
    assert rates_of_gauges(exprs) == []


def test_when_dashboard_read_then_it_covers_every_area_of_the_node() -> None:
    """Panels for venues, orders, latency, risk, PnL, market data, journal and host; each
    latency histogram as quantiles over its _bucket series."""
    board = dashboard()
    rows = {panel["title"] for panel in panels(board) if panel["type"] == "row"}
    for area in ("Venues", "Orders", "Latency", "Risk", "PnL", "Market data", "Journal", "Host"):
        assert any(area in title for title in rows), area
    exprs = " ".join(dashboard_exprs(board).values())
    for histogram in ("tick_to_order", "order_to_ack", "order_to_fill"):
        assert re.search(
            rf"histogram_quantile\(0\.99, sum by \(le[^)]*\) "
            rf"\(rate\(bastion_{histogram}_seconds_bucket\{{",
            exprs,
        ), histogram


def test_when_dashboard_imported_then_datasource_and_node_are_variables() -> None:
    """A Prometheus data-source variable and a node (instance) variable; every query goes
    to the chosen data source and selects the chosen nodes."""
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    for panel in panels(board):
        for target in panel.get("targets", []):
            where = f"{panel['title']} {target['refId']}"
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert 'instance=~"$instance"' in target["expr"], where
    assert len({panel["id"] for panel in panels(board)}) == len(list(panels(board)))


# -- the alerting rules ----------------------------------------------------------------


def test_when_rules_read_then_every_metric_they_name_is_exposed() -> None:
    """Every series the rules select is in the node's metric list (or Prometheus's up)."""
    exprs = rule_exprs()
    assert unknown_metrics(exprs) == []
    assert rates_of_gauges(exprs) == []


def test_when_rules_read_then_each_has_severity_summary_and_an_existing_runbook() -> None:
    """Severity info, warning or critical; a summary; a runbook_url whose file exists."""
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        runbook = runbook_file(rule["annotations"]["runbook_url"])
        assert runbook.is_file(), f"{name}: {runbook} missing"
        assert runbook.stem == name, f"{name}: runbook {runbook.name}"


def test_when_rules_read_then_they_are_the_builtin_alerts_promql_can_express() -> None:
    """Each rule is a built-in alert of the same name (node-down excepted: a node that is
    down cannot raise it), and only the event-only alerts are missing."""
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) - set(BUILTIN_ALERTS) == {"node-down"}
    assert set(BUILTIN_ALERTS) - set(names) == {"reconciliation-mismatch", "dr-drill-failed"}


def test_when_scrape_config_read_then_node_down_matches_its_job() -> None:
    """The example prometheus.yml loads the rules file and scrapes the job node-down
    watches, at the node's default listen address."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "bastion"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    (node_down,) = (rule for rule in rules() if rule["alert"] == "node-down")
    assert 'job="bastion"' in node_down["expr"]


# -- runbooks --------------------------------------------------------------------------


@pytest.mark.parametrize("alert", BUILTIN_ALERTS)
def test_when_a_builtin_alert_fires_then_its_runbook_exists(alert: str) -> None:
    """docs/runbooks/<alert>.md exists, says what to check and which commands to run,
    and is listed in the runbooks' index."""
    runbook = RUNBOOKS / f"{alert}.md"
    assert runbook.is_file(), runbook
    text = runbook.read_text(encoding="utf-8")
    assert text.startswith(f"# {alert}"), runbook
    for section in ("## What it means", "## Check first", "## Escalate"):
        assert section in text, f"{runbook.name}: no {section!r}"
    assert "bastion " in text, runbook.name
    assert f"({alert}.md)" in (RUNBOOKS / "README.md").read_text(encoding="utf-8")


def test_when_runbooks_name_commands_then_each_is_a_bastion_command() -> None:
    """Every `bastion COMMAND` a runbook names is a command of the CLI, so a runbook
    never sends an operator to a command that is not there."""
    from bastion.cli.main import build_parser

    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if action.dest == "command" and action.choices
    )
    commands = set(subparsers.choices or {})
    for runbook in sorted(RUNBOOKS.glob("*.md")):
        text = runbook.read_text(encoding="utf-8")
        for match in re.finditer(r"(?:^|`)bastion ([a-z][a-z-]*)", text, re.MULTILINE):
            assert match.group(1) in commands, f"{runbook.name}: bastion {match.group(1)}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces
    as hyphens."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    }


def test_when_incident_docs_link_somewhere_then_the_file_and_heading_exist() -> None:
    """Every relative link of the runbooks, monitoring.md and incident-response.md names
    a file that exists, and a heading of it when it names one."""
    pages = [*sorted(RUNBOOKS.glob("*.md")), REPO / "docs" / "monitoring.md"]
    pages.append(REPO / "docs" / "incident-response.md")
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked.read_text(encoding="utf-8")), (
                    f"{page.name}: {target}"
                )

"""``[[alerts]]`` and ``[[alert_routes]]`` from TOML: the built-in rules adjusted, turned
off or joined by others; every mistake named by its key; route URLs only as vault
references."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.monitor.alerts.rules import EventMatch, Threshold

BASE = """
strategies = []
[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
[feed]
instrument = "XYZ.SIM"
[monitoring]
"""


def config(tmp_path: Path, text: str, *, base: str = BASE) -> PaperConfig:
    path = tmp_path / "paper.toml"
    path.write_text(base + text, encoding="utf-8")
    return load_config(path, PaperConfig)


def error(tmp_path: Path, text: str, *, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, text, base=base)
    return str(caught.value)


def test_when_no_alerts_are_configured_then_the_builtin_rules_run(tmp_path: Path) -> None:
    """Every built-in but pnl-drop (no daily loss limit) runs with its runbook."""
    rules = config(tmp_path, "").alert_rules()
    assert [r.name for r in rules] == [
        "venue-disconnected",
        "order-rejected",
        "kill-switch",
        "reconciliation-mismatch",
        "strategy-failed",
        "instrument-paused",
        "feed-failover",
        "no-healthy-feed",
        "stale-market-data",
        "journal-lag",
        "disk-nearly-full",
        "clock-offset",
        "node-not-ready",
        "notifier-failing",
        "ha-takeover",
        "ha-step-down",
        "ha-standby-lagging",
        "ha-standby-lost",
        "ha-no-standby",
        "backup-failed",
        "dr-drill-failed",
    ]
    assert all(r.runbook == f"docs/runbooks/{r.name}.md" for r in rules)


def test_when_a_daily_loss_limit_is_set_then_pnl_drop_takes_half_of_it(tmp_path: Path) -> None:
    """pnl-drop: half of max_daily_loss_node (else max_daily_loss) within 15 minutes."""
    loaded = config(tmp_path, '[risk]\nmax_daily_loss_node = "2000"\nmax_daily_loss = "500"\n')
    (rule,) = [r for r in loaded.alert_rules() if r.name == "pnl-drop"]
    assert (rule.condition.drop, rule.condition.window_s) == (1000.0, 900.0)  # type: ignore[union-attr]
    strategies_only = config(tmp_path, '[risk]\nmax_daily_loss = "500"\n')
    (rule,) = [r for r in strategies_only.alert_rules() if r.name == "pnl-drop"]
    assert rule.condition.drop == 250.0  # type: ignore[union-attr]


def test_when_a_table_names_a_builtin_then_it_changes_only_the_keys_given(tmp_path: Path) -> None:
    """journal-lag with for_s = 10: its metric, threshold and severity stay."""
    loaded = config(
        tmp_path,
        '[[alerts]]\nname = "journal-lag"\nfor_s = 10\nrepeat_s = 60\nlabels = {team = "desk"}\n',
    )
    (rule,) = [r for r in loaded.alert_rules() if r.name == "journal-lag"]
    assert isinstance(rule.condition, Threshold)
    assert (rule.condition.for_s, rule.condition.threshold, rule.severity) == (10, 1.0, "critical")
    assert (rule.repeat_s, rule.labels) == (60, {"team": "desk"})


def test_when_a_builtin_is_disabled_then_it_does_not_run(tmp_path: Path) -> None:
    """enabled = false turns a built-in off."""
    loaded = config(tmp_path, '[[alerts]]\nname = "clock-offset"\nenabled = false\n')
    assert "clock-offset" not in [r.name for r in loaded.alert_rules()]


def test_when_a_builtin_gets_another_condition_then_the_old_one_is_gone(tmp_path: Path) -> None:
    """A table naming a built-in with ``event`` replaces its metric condition whole."""
    loaded = config(
        tmp_path,
        '[[alerts]]\nname = "node-not-ready"\nevent = "VenueHalted"\ngroup_by = ["venue"]\n'
        'resolve_event = "VenueResumed"\n',
    )
    (rule,) = [r for r in loaded.alert_rules() if r.name == "node-not-ready"]
    assert isinstance(rule.condition, EventMatch)
    assert rule.severity == "critical"


def test_when_own_rules_are_added_then_they_run_after_the_builtins(tmp_path: Path) -> None:
    """A threshold rule with match labels, an event rule with match values."""
    loaded = config(
        tmp_path,
        """
[[alerts]]
name = "big-position"
severity = "info"
metric = "bastion_position"
match = {instrument = ["XYZ.SIM", "ABC.SIM"]}
op = ">="
threshold = 100
summary = "{strategy} holds {value} of {instrument}"
runbook = "https://wiki.example/positions"

[[alerts]]
name = "denied-venue"
event = "VenueHalted"
match = {who = "node"}
group_by = ["venue"]
resolve_after_s = 600
""",
    )
    rules = {r.name: r for r in loaded.alert_rules()}
    position = rules["big-position"]
    assert isinstance(position.condition, Threshold)
    assert position.condition.match == {"instrument": frozenset({"XYZ.SIM", "ABC.SIM"})}
    assert position.runbook == "https://wiki.example/positions"
    assert rules["denied-venue"].runbook == ""


def test_when_routes_are_configured_then_their_urls_are_secret_references(tmp_path: Path) -> None:
    """Route URLs are listed with the config's other secrets, by key."""
    loaded = config(
        tmp_path,
        """
[[alert_routes]]
name = "ops"
urls = ["secret:notify/slack", "secret:notify/mail"]
escalate_after_s = 300
escalate_to = "pager"

[[alert_routes]]
name = "pager"
severities = ["critical"]
urls = ["secret:notify/pagerduty"]
""",
    )
    assert loaded.secret_refs()[-3:] == [
        ("alert_routes[0].urls[0]", "notify/slack"),
        ("alert_routes[0].urls[1]", "notify/mail"),
        ("alert_routes[1].urls[0]", "notify/pagerduty"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["json://hooks.example/T0K3N"]\n',
            "key 'alert_routes[0].urls[0]': holds a secret and takes a reference",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:notify/a"]\nescalate_after_s = 60\n'
            'escalate_to = "nobody"\n',
            "key 'alert_routes[0].escalate_to': unknown route 'nobody'",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:notify/a"]\nescalate_after_s = 60\n',
            "key 'alert_routes[0].escalate_to': escalation takes both",
        ),
        (
            '[[alert_routes]]\nname = "a"\nurls = ["secret:n/a"]\nescalate_after_s = 1\n'
            'escalate_to = "b"\n[[alert_routes]]\nname = "b"\nurls = ["secret:n/b"]\n'
            'escalate_after_s = 1\nescalate_to = "a"\n',
            "escalation goes round in a circle: a -> b -> a",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:n/a"]\n'
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:n/b"]\n',
            "key 'alert_routes[1].name': duplicate route name 'ops' (also alert_routes[0])",
        ),
        (
            '[[alert_routes]]\nname = "log"\nurls = ["secret:n/a"]\n',
            "key 'alert_routes[0].name': 'log' is the built-in route",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = []\n',
            "key 'alert_routes[0].urls': give at least one URL",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:n/a"]\nseverities = ["fatal"]\n',
            "alert_routes[0].severities[0]",
        ),
        (
            '[[alert_routes]]\nname = "ops"\nurls = ["secret:n/a"]\nattempts = 0\n',
            "key 'alert_routes[0].attempts': must be a positive number",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnll"\nthreshold = 1\n',
            "key 'alerts[0].metric': unknown metric 'bastion_pnll' (did you mean 'bastion_pnl'?)",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "VenueDown"\nresolve_after_s = 1\n',
            "key 'alerts[0].event': unknown event type 'VenueDown'",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "AlertFired"\nresolve_after_s = 1\n',
            "key 'alerts[0].event': unknown event type 'AlertFired'",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = 1\n'
            '[[alerts]]\nname = "x"\nmetric = "bastion_cash"\nthreshold = 1\n',
            "key 'alerts[1].name': duplicate alert name 'x' (also alerts[0])",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\ntreshold = 1\n',
            "unknown key 'alerts[0].treshold' (did you mean 'threshold'?)",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\n',
            "key 'alerts[0].threshold': a metric rule takes a threshold",
        ),
        (
            '[[alerts]]\nname = "x"\n',
            "key 'alerts[0]': give what the rule watches",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = 1\ndrop = 5\n',
            "key 'alerts[0].drop': does not apply to a threshold rule",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nevent = "OrderRejected"\n',
            "key 'alerts[0].event': a rule watches a metric or events, not both",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "OrderRejected"\nfor_s = 5\nresolve_after_s = 1\n',
            "key 'alerts[0].for_s': does not apply to an event rule",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "OrderRejected"\n',
            "key 'alerts[0].resolve_event': say what ends the alert",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "OrderRejected"\ngroup_by = ["venue"]\n'
            "resolve_after_s = 1\n",
            "key 'alerts[0].group_by': OrderRejected has no field 'venue'",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "VenueHalted"\ngroup_by = ["venue"]\n'
            'resolve_event = "TradingStateChanged"\n',
            "key 'alerts[0].resolve_event': TradingStateChanged has no field 'venue'",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_position"\nmatch = {symbol = "X"}\n'
            "threshold = 1\n",
            "key 'alerts[0].match.symbol': no such label",
        ),
        (
            '[[alerts]]\nname = "x"\nevent = "OrderRejected"\nmatch = {venue = "X"}\n'
            "resolve_after_s = 1\n",
            "key 'alerts[0].match.venue': no such field",
        ),
        (
            '[[alerts]]\nname = "Bad Name"\nmetric = "bastion_pnl"\nthreshold = 1\n',
            "key 'alerts[0].name': lowercase letters",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = 1\nrepeat_s = 0\n',
            "key 'alerts[0].repeat_s': must be a positive number",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = nan\n',
            "key 'alerts[0].threshold': must be a finite number",
        ),
        (
            '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = 1\nop = "=>"\n',
            "alerts[0].op",
        ),
        (
            '[[alerts]]\nname = "pnl-drop"\nwindow_s = 60\n',
            "key 'alerts[0].drop': pnl-drop needs the loss that sets it off",
        ),
    ],
)
def test_when_alerting_config_is_wrong_then_the_error_names_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Unknown metric, event, route or key; duplicates; a literal URL; a rule whose keys
    do not go together."""
    message = error(tmp_path, text)
    assert expected in message
    assert "T0K3N" not in message  # a URL given literally is never echoed


@pytest.mark.parametrize(
    "summary",
    [
        "{0.__class__}",
        "{value.__class__.__mro__}",
        "{labels[0]}",
        "{value!r}",
        "{value:>999999999}",
        "{}",
        "{0}",
        "unbalanced {",
    ],
)
def test_when_a_summary_template_has_format_tricks_then_it_is_refused(
    tmp_path: Path, summary: str
) -> None:
    """Only plain {name} placeholders: no attribute, index, conversion or format spec."""
    rule = '[[alerts]]\nname = "x"\nmetric = "bastion_pnl"\nthreshold = 1\n'
    text = f'{rule}summary = """{summary}"""\n'
    assert "key 'alerts[0].summary'" in error(tmp_path, text)


def test_when_a_summary_names_an_unknown_placeholder_then_it_is_refused(tmp_path: Path) -> None:
    """A typo in a placeholder is caught at load, with the close name."""
    text = (
        '[[alerts]]\nname = "x"\nevent = "VenueSessionLost"\nresolve_after_s = 5\n'
        'summary = "venue {venu} lost"\n'
    )
    assert "unknown placeholder {venu} (did you mean 'venue'?)" in error(tmp_path, text)


def test_when_alerts_are_given_without_monitoring_then_the_config_is_refused(
    tmp_path: Path,
) -> None:
    """Alerts run with the node's monitoring."""
    base = BASE.replace("[monitoring]\n", "")
    text = '[[alerts]]\nname = "clock-offset"\nenabled = false\n'
    assert "key 'alerts': alerts run with the node's monitoring" in error(tmp_path, text, base=base)

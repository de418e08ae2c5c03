"""``bastion alerts``: the running node's alerts (``list``, ``ack``, ``silence``, over its
control socket, each journaled with who and why), and ``test``, a drill that sends a
test alert through every route of a config and reports which arrived (no node needed).
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any, Final

import msgspec

from bastion.cli.common import usage, wall_clock
from bastion.cli.control import duration_s, send
from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError, OperationalError
from bastion.monitor.alerts.node import route_urls
from bastion.monitor.notify import Notification, Notifier
from bastion.vault.config import load_secrets
from bastion.vault.refs import Secret

TEST_TIMEOUT_S: Final = 60.0

_EPILOG: Final = """\
list, ack and silence talk to the node running with CONFIG over its control socket.
An acknowledged alert is no longer repeated nor escalated; a silenced one notifies
nobody until the silence runs out (at most 7 days). Both are journaled with who and
why. `test` needs no node: it reads CONFIG's routes and their URLs from its vault, sends
one test alert through each URL (with the route's retries) and prints, as JSON, which
arrived; exit 1 if one did not.

examples:
  bastion alerts list mydesk/paper.toml
  bastion alerts ack mydesk/paper.toml 3.7 --why "venue restarting, on it"
  bastion alerts silence mydesk/paper.toml stale-market-data --label instrument=XYZ.SIM \\
      --for 2h --why "exchange holiday"
  bastion alerts test mydesk/paper.toml
"""


def cmd_list(args: argparse.Namespace) -> int:
    return send(args.config, {"cmd": "alerts_list"})


def cmd_ack(args: argparse.Namespace) -> int:
    req = {"cmd": "alert_ack", "id": args.id, "why": args.why}
    return send(args.config, req)


def cmd_silence(args: argparse.Namespace) -> int:
    req = {
        "cmd": "alert_silence",
        "alert": args.alert,
        "labels": dict(args.labels or []),
        "for_s": args.for_s,
        "why": args.why,
    }
    return send(args.config, req)


def cmd_test(args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    config = load_config(config_path, PaperConfig)
    if not config.alert_routes:
        raise ConfigError(
            f"{config_path}: key 'alert_routes': no routes: alerts go to the node's log only"
        )
    base_dir = config_path.resolve().parent
    refs = [
        ref
        for n, r in enumerate(config.alert_routes)
        for ref in r.secret_refs(f"alert_routes[{n}]")
    ]
    try:
        secrets = load_secrets(
            refs,
            vault=config.vault,
            base_dir=base_dir,
            scope="live" if config.node.mode == "live" else "paper",
            clock=wall_clock(),
        )
        urls = route_urls(config, secrets)
    except ConfigError as error:
        raise type(error)(f"{config_path}: {error}") from None
    report = drill(config, urls, timeout_s=args.timeout_s)
    print(msgspec.json.encode(report).decode(), flush=True)
    failed = [
        f"{route}[{u['url']}]"
        for route, outcome in report["routes"].items()
        for u in outcome
        if not u["delivered"]
    ]
    if failed:
        raise OperationalError(f"the test alert did not arrive through {', '.join(failed)}")
    return 0


def drill(
    config: PaperConfig, urls: dict[str, list[Secret]], *, timeout_s: float
) -> dict[str, Any]:
    """Send one test notification through every URL of every route; what happened."""
    outcomes: dict[tuple[str, int], tuple[bool, float]] = {}
    lock = threading.Lock()
    done = threading.Event()
    expected = sum(len(u) for u in urls.values())
    clock = wall_clock()
    started = clock.monotonic_s()

    def on_outcome(route: str, index: int, notification: Notification, delivered: bool) -> None:
        with lock:
            outcomes[(route, index)] = (delivered, clock.monotonic_s() - started)
            if len(outcomes) == expected:
                done.set()

    notifier = Notifier(config.alert_routes, urls, on_outcome=on_outcome)
    notifier.start()
    try:
        ts_ns = clock.timestamp_ns()
        for route in config.alert_routes:
            notifier.send(
                route.name,
                Notification(
                    alert_id="test",
                    alert="test",
                    severity=route.severities[-1],
                    status="test",
                    summary=f"bastion alerts test: route {route.name} works (no action needed)",
                    labels={"route": route.name},
                    value=0.0,
                    runbook="",
                    node=config.node.id,
                    ts_ns=ts_ns,
                ),
            )
        done.wait(timeout_s)
    finally:
        notifier.close(drain_s=0.0)
    routes: dict[str, list[dict[str, object]]] = {}
    for route in config.alert_routes:
        routes[route.name] = []
        for index in range(len(urls[route.name])):
            delivered, after_s = outcomes.get((route.name, index), (False, timeout_s))
            entry: dict[str, object] = {"url": index, "delivered": delivered}
            if (route.name, index) in outcomes:
                entry["seconds"] = round(after_s, 3)
            else:
                entry["error"] = f"no outcome within {timeout_s:g} s"
            routes[route.name].append(entry)
    return {"routes": routes}


def _label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_alerts_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="the running node's alerts: list, acknowledge, silence; test the routes",
        description="bastion alerts: list, acknowledge and silence alerts; test the routes.",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    sub = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND", title="commands")
    alerts.set_defaults(handler=lambda _args: usage(alerts))

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, epilog=_EPILOG, formatter_class=formatter)
        parser.add_argument("config", metavar="CONFIG", help="the node's config file (TOML)")
        return parser

    command("list", "the active alerts and silences").set_defaults(handler=cmd_list)
    ack = command("ack", "acknowledge an alert: no more repeats nor escalation")
    ack.add_argument("id", metavar="ID", help="the alert's id (bastion alerts list)")
    ack.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    ack.set_defaults(handler=cmd_ack)
    silence = command("silence", "notify nobody about an alert rule's alerts for a while")
    silence.add_argument("alert", metavar="ALERT", help="the rule's name, e.g. stale-market-data")
    silence.add_argument(
        "--label",
        dest="labels",
        metavar="NAME=VALUE",
        type=_label,
        action="append",
        help="only its alerts with this label (repeatable)",
    )
    silence.add_argument(
        "--for",
        dest="for_s",
        metavar="DURATION",
        type=duration_s,
        required=True,
        help="how long: 90s, 30m, 4h, 1d (at most 7d)",
    )
    silence.add_argument("--why", metavar="TEXT", required=True, help="reason, journaled")
    silence.set_defaults(handler=cmd_silence)
    test = command("test", "send a test alert through every route and report which arrived")
    test.add_argument(
        "--timeout",
        dest="timeout_s",
        metavar="SECONDS",
        type=float,
        default=TEST_TIMEOUT_S,
        help=f"how long to wait for the deliveries (default {TEST_TIMEOUT_S:g})",
    )
    test.set_defaults(handler=cmd_test)

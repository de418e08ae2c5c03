"""Alerts from a real node: a FIX paper node trading on the venue simulator (both
processes) notifies a local HTTP receiver through apprise when the simulator is killed
(venue-disconnected, within a second) and when it is back (the resolution), while a
route whose receiver is down is retried and counted and trading goes on; the
operator lists, acknowledges and silences alerts with `bastion alerts`; `bastion alerts
test` drills every route of a config."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from kit.alert_desk import add_alerting, bastion, one, route_toml, start_node
from kit.chaos_harness import (
    alive,
    kill,
    node_fill_count,
    start_venue,
    wait_reconciled,
    write_desk,
)
from kit.journal_reading import peek_journal
from kit.net import free_tcp_port
from kit.node_process import terminate
from kit.receivers import hanging_peer, http_receiver, smtp_receiver
from kit.waiting import eventually

ALERT_DEADLINE_S = 1.0  # the target: a condition to its notification


@pytest.mark.timeout(180)
def test_when_the_venue_simulator_dies_then_the_alert_arrives_within_a_second_and_resolves(
    tmp_path: Path,
) -> None:
    """Kill -9 the simulator: venue-disconnected reaches the HTTP receiver within a
    second, though another route's receiver is down (retried, counted, logged) and a
    third's accepts and never answers; list,
    ack and silence over the CLI; restart the simulator: the resolution arrives, the
    node trades on, and the journal holds the session and alert events."""
    desk = write_desk(tmp_path, seed=7)
    dead_port = free_tcp_port()
    with http_receiver() as receiver, hanging_peer() as hung:
        key = add_alerting(
            desk,
            {
                "ops": receiver.url(),
                "down": f"json://127.0.0.1:{dead_port}/hook",
                "hung": hung.url(),
            },
            route_toml("ops"),
            route_toml("down", attempts=3),
            route_toml("hung"),
        )
        venue = start_venue(desk)
        node = start_node(desk, key)
        node_log = desk.log("node")
        try:
            wait_reconciled(desk, node, 1)
            eventually(lambda: alive(node, node_log) and node_fill_count(desk.journal) >= 2, 30)
            killed_at = time.monotonic()
            kill(venue)
            firing = eventually(lambda: one(receiver, "venue-disconnected", "firing"))
            assert firing.at - killed_at < ALERT_DEADLINE_S
            assert "venue FIXSIM: no session (session dropped)" in firing.body
            # the dead route: retried and counted, and it held nothing up
            eventually(lambda: node_log.read_text().count('"route": "down"') >= 3)
            eventually(lambda: "notification_given_up" in node_log.read_text())
            assert hung.connections >= 1

            listed = bastion(desk, key, "alerts", "list", str(desk.node_config))
            assert listed.returncode == 0, listed.stderr
            # with the venue gone its quotes go stale and the node is not ready: those
            # rules read the samples and fire too
            (alert,) = [
                a for a in json.loads(listed.stdout)["alerts"] if a["alert"] == "venue-disconnected"
            ]
            assert (alert["alert"], alert["labels"]) == ("venue-disconnected", {"venue": "FIXSIM"})
            assert alert["id"] == firing.alert_id
            acked = bastion(
                desk, key, "alerts", "ack", str(desk.node_config), alert["id"], "--why", "drill"
            )
            assert acked.returncode == 0, acked.stderr
            silenced = bastion(
                desk,
                key,
                "alerts",
                "silence",
                str(desk.node_config),
                "order-rejected",
                "--label",
                "strategy_id=trader",
                "--for",
                "10m",
                "--why",
                "venue restart drill",
            )
            assert silenced.returncode == 0, silenced.stderr
            assert json.loads(silenced.stdout)["labels"] == {"strategy_id": "trader"}

            restarted_at = time.monotonic()
            venue = start_venue(desk)
            resolved = eventually(
                lambda: one(receiver, "venue-disconnected", "resolved"), timeout_s=30
            )
            assert resolved.alert_id == firing.alert_id
            assert resolved.at > restarted_at
            fills = node_fill_count(desk.journal)
            eventually(lambda: alive(node, node_log) and node_fill_count(desk.journal) > fills, 30)
            assert terminate(node) == 0, node_log.read_text()[-4000:]
        finally:
            if node.poll() is None:
                kill(node)
            kill(venue)
    events = [e for _, e in peek_journal(desk.journal)]
    kinds = [type(e) for e in events]
    assert ev.VenueSessionLost in kinds and kinds.count(ev.VenueLoggedOn) >= 2
    fired = [e for e in events if isinstance(e, ev.AlertFired)]
    assert [e.alert for e in fired if e.alert == "venue-disconnected"] == ["venue-disconnected"]
    (ack,) = [e for e in events if isinstance(e, ev.AlertAcknowledged)]
    assert (ack.alert_id, ack.why) == (firing.alert_id, "drill")
    (silence,) = [e for e in events if isinstance(e, ev.AlertSilenced)]
    assert silence.alert == "order-rejected" and silence.why == "venue restart drill"
    resolutions = [e for e in events if isinstance(e, ev.AlertResolved)]
    assert [(e.alert_id, e.how) for e in resolutions if e.alert_id == firing.alert_id] == [
        (firing.alert_id, "VenueLoggedOn")
    ]


@pytest.mark.timeout(120)
def test_when_alerts_test_runs_then_it_reports_which_routes_delivered(tmp_path: Path) -> None:
    """`bastion alerts test`: a test alert through every route (webhook, e-mail, and
    one whose receiver is down), exit 1 naming the one that failed; no node needed."""
    desk = write_desk(tmp_path, seed=3)
    dead_port = free_tcp_port()
    with http_receiver() as receiver, smtp_receiver() as mail:
        key = add_alerting(
            desk,
            {
                "ops": receiver.url(),
                "mail": mail.url(),
                "down": f"json://127.0.0.1:{dead_port}/hook",
            },
            route_toml("ops"),
            route_toml("mail", extra="min_interval_s = 0\n"),
            route_toml("down", attempts=2),
        )
        done = bastion(desk, key, "alerts", "test", str(desk.node_config), "--timeout", "30")
        assert done.returncode == 1, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        assert {
            name: [u["delivered"] for u in urls] for name, urls in report["routes"].items()
        } == {
            "ops": [True],
            "mail": [True],
            "down": [False],
        }
        assert "did not arrive through down[0]" in done.stderr
        (webhook,) = receiver.about("test", "test")
        assert "route ops works" in webhook.body
        (mailed,) = mail.about("test", "test")
        assert mailed.extra["to"] == ["ops@desk.example"]
    assert str(dead_port) not in done.stdout + done.stderr

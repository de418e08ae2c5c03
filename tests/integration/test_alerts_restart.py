"""Alerts across a node's restart, end to end: a FIX paper node trading on the venue
simulator (both processes) notifies a local HTTP receiver through apprise. Across a
SIGTERM restart, the kill switch (the node is still HALTED) is paged once and keeps its
id; the venue session lost before the stop, back while the node was down, is resolved
(same id) once the restarted node logs on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.model import events as ev
from kit.alert_desk import add_alerting, bastion, one, route_toml, start_node
from kit.chaos_harness import kill, log_tail, start_venue, wait_reconciled, write_desk
from kit.journal_reading import peek_journal
from kit.node_process import status, terminate
from kit.receivers import http_receiver
from kit.waiting import eventually


@pytest.mark.timeout(240)
def test_when_the_node_restarts_then_a_standing_alert_pages_once_and_a_cleared_one_resolves(
    tmp_path: Path,
) -> None:
    """Run 1: `bastion kill` (kill-switch paged), then the simulator dies
    (venue-disconnected paged); SIGTERM. The simulator comes back, then run 2: still
    HALTED, the kill switch is not paged again and is listed under its id; the venue
    alert resolves on the new logon; `bastion resume` resolves the kill switch."""
    desk = write_desk(tmp_path, seed=11)
    node_log = desk.log("node")
    with http_receiver() as receiver:
        key = add_alerting(desk, {"ops": receiver.url()}, route_toml("ops"))
        venue = start_venue(desk)
        node = start_node(desk, key)
        try:
            wait_reconciled(desk, node, 1)
            killed = bastion(desk, key, "kill", str(desk.node_config), "--why", "restart drill")
            assert killed.returncode == 0, killed.stderr
            halted = eventually(lambda: one(receiver, "kill-switch", "firing"))
            eventually(lambda: status(desk.journal)["open_orders"] == 0)
            kill(venue)
            lost = eventually(lambda: one(receiver, "venue-disconnected", "firing"))
            assert terminate(node) == 0, log_tail(node_log)

            venue = start_venue(desk)  # back while the node is down
            node = start_node(desk, key)
            wait_reconciled(desk, node, 2)
            resolved = eventually(
                lambda: one(receiver, "venue-disconnected", "resolved"), timeout_s=30
            )
            assert resolved.alert_id == lost.alert_id
            listed = bastion(desk, key, "alerts", "list", str(desk.node_config))
            assert listed.returncode == 0, listed.stderr
            alerts = {a["alert"]: a for a in json.loads(listed.stdout)["alerts"]}
            assert alerts["kill-switch"]["id"] == halted.alert_id
            assert "venue-disconnected" not in alerts

            resumed = bastion(desk, key, "resume", str(desk.node_config), "--why", "drill over")
            assert resumed.returncode == 0, resumed.stderr
            ended = eventually(lambda: one(receiver, "kill-switch", "resolved"))
            assert ended.alert_id == halted.alert_id
            assert len(receiver.about("kill-switch", "firing")) == 1
            assert len(receiver.about("venue-disconnected", "firing")) == 1
            assert terminate(node) == 0, log_tail(node_log)
        finally:
            kill(node)
            kill(venue)
    events = [e for _, e in peek_journal(desk.journal)]
    second_run = next(
        n for n, e in enumerate(events) if isinstance(e, ev.RunManifest) and e.epoch == 2
    )
    fired = [(e.alert, e.alert_id) for e in events if isinstance(e, ev.AlertFired)]
    assert fired.count(("kill-switch", halted.alert_id)) == 1
    assert [a for a, _ in fired].count("kill-switch") == 1
    ends = [
        (n, e.how)
        for n, e in enumerate(events)
        if isinstance(e, ev.AlertResolved) and e.alert_id == lost.alert_id
    ]
    assert len(ends) == 1 and ends[0][0] > second_run
    assert ends[0][1] == "VenueLoggedOn"

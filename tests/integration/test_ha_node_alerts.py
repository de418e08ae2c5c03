"""An HA group's monitoring from real members (processes, the venue simulator, a real
PostgreSQL, a real HTTP notification receiver): a standby serves its own metrics and
health on its monitoring port while it follows, and a takeover is journaled by the new
leader (``LeaderTookOver``) and notified (``ha-takeover``), a group's first start not."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from kit.ha_desk import (
    HaDesk,
    alive,
    journal_events,
    member_logs,
    processes,
    role,
    start_member,
    start_venue,
    venue_fills,
    write_desk,
)
from kit.receivers import http_receiver
from kit.scrape import get, metrics, value
from kit.waiting import eventually

LEAD_TIMEOUT_S = 45.0  # interpreter start, logon, reconciliation on a shared 2-core box
MONITORING = """
[monitoring]
listen = "127.0.0.1:0"
sample_interval_ms = 100

[[alert_routes]]
name = "ops"
urls = ["secret:notify/ops"]
attempts = 5
backoff_initial_ms = 50
backoff_max_ms = 200
"""


def _url(desk: HaDesk, member: str) -> str:
    """``member``'s monitoring listener (its latest ``monitoring_listening`` line)."""
    listening = member_logs(desk, member, "monitoring_listening")
    assert listening, f"{member}: monitoring_listening not logged yet"
    return f"http://127.0.0.1:{listening[-1]['port']}"


def _took_over(desk: HaDesk) -> list[ev.LeaderTookOver]:
    return [e for _, e in journal_events(desk) if isinstance(e, ev.LeaderTookOver)]


def _standby_scraped(desk: HaDesk) -> dict[str, Any]:
    """b's metrics, /healthz and /readyz as a standby (AssertionError until it applied)."""
    base = _url(desk, "b")
    scraped = metrics(base)
    assert value(scraped, "bastion_ha_role", role="standby") == 1.0
    assert value(scraped, "bastion_ha_role", role="leader") == 0.0
    assert (value(scraped, "bastion_ha_applied_seq") or 0) > 0
    health, _ = get(f"{base}/healthz")
    ready, body = get(f"{base}/readyz")
    return {"scraped": scraped, "health": health, "ready": ready, "body": json.loads(body)}


@pytest.mark.timeout(240)
def test_when_leader_dies_then_standby_metrics_were_served_and_takeover_is_journaled_and_alerted(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A standby serves bastion_ha_* (its role, its applied seq and lag), /healthz alive
    and /readyz not ready (standby); SIGKILL the leader: the standby journals
    LeaderTookOver (lease expired, from a at epoch 1, its wait) and ha-takeover reaches
    the receiver; the first start was journaled too, and not notified."""
    with http_receiver() as receiver:
        desk = write_desk(
            tmp_path, pg_dsn, extra_toml=MONITORING, secrets={"notify__ops": receiver.url()}
        )
        with processes(desk) as procs:
            start_venue(desk, procs)
            start_member(desk, procs, "a")
            eventually(
                lambda: alive(desk, procs, "a") and role(desk, "a", "leader"), LEAD_TIMEOUT_S
            )
            (first,) = eventually(lambda: _took_over(desk), LEAD_TIMEOUT_S, interval_s=0.2)
            assert (first.member, first.epoch, first.reason) == ("a", 1, "first start")
            assert (first.previous_epoch, first.previous_holder) == (0, "")
            start_member(desk, procs, "b")
            standby = eventually(
                lambda: alive(desk, procs, "b") and _standby_scraped(desk), LEAD_TIMEOUT_S
            )
            assert standby["health"] == 200
            assert standby["ready"] == 503
            assert any("standby" in reason for reason in standby["body"]["reasons"])
            assert value(standby["scraped"], "bastion_ha_lag_events") is not None
            assert value(standby["scraped"], "bastion_node_ready") == 0.0
            eventually(lambda: len(venue_fills(desk)) >= 4, LEAD_TIMEOUT_S)

            procs["a"].send_signal(signal.SIGKILL)
            procs["a"].wait(timeout=10)
            eventually(
                lambda: alive(desk, procs, "b") and role(desk, "b", "leader"), LEAD_TIMEOUT_S
            )
            took = eventually(
                lambda: [e for e in _took_over(desk) if e.member == "b"], 30, interval_s=0.2
            )
            assert len(took) == 1
            (event,) = took
            assert (event.epoch, event.previous_epoch, event.previous_holder) == (2, 1, "a")
            assert event.reason == "lease expired"
            assert 0 <= event.wait_ms < 30_000
            firing = eventually(lambda: receiver.about("ha-takeover", "firing"), 30)
            assert len(firing) == 1
            assert "b took over at epoch 2 (lease expired) from a (epoch 1)" in firing[0].body
            leader = metrics(_url(desk, "b"))
            assert value(leader, "bastion_ha_role", role="leader") == 1.0
            assert value(leader, "bastion_ha_epoch") == 2.0
            assert value(leader, "bastion_ha_takeovers_total", reason="failover") == 1.0

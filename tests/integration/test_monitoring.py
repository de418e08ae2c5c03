"""Monitoring end to end: real node processes (and the venue simulator) scraped over HTTP
as Prometheus and a load balancer would. Metrics present and moving, /healthz and
/readyz following the venue's session, a clear refusal when the listener cannot be
bound, and hostile HTTP clients that do not slow trading down. Waits use ``eventually``.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from bastion.model import events as ev
from kit.fix_node_desk import process, started_venue, write_desk
from kit.journal_reading import peek_journal
from kit.net import free_tcp_port
from kit.node_process import (
    START_TIMEOUT_S,
    run_to_end,
    running_node,
    status,
    still_running,
    terminate,
)
from kit.promql import (
    PROMETHEUS_SERIES,
    dashboard,
    dashboard_exprs,
    metric_of,
    rule_exprs,
    series_names,
)
from kit.scrape import get, get_json, listening_url, metrics, names, value
from kit.strategies import HOARDER
from kit.waiting import eventually

NOT_EXPOSED_HERE = {
    # this container's host reports no clock synchronisation (no chrony, no timesyncd)
    "bastion_clock_offset_seconds",
    "bastion_clock_synchronized",
    # this desk configures no dead-man's switch, no alert route and no risk limit
    "bastion_deadman_failures_total",
    "bastion_deadman_pings_total",
    "bastion_notifications_failed_total",
    "bastion_notifications_sent_total",
    "bastion_risk_limit_utilisation",
    # a labelled counter has its first series at its first event: none happened yet
    "bastion_md_rejects_total",
    "bastion_orders_canceled_total",
    "bastion_orders_denied_total",
    "bastion_orders_rejected_total",
    # the first heartbeat round trip is timed 5 s after the logon
    "bastion_venue_heartbeat_rtt_seconds",
    # one feed per instrument here: no arbiter, whose failover the rules watch
    "bastion_feed_failed_over",
    "bastion_feed_healthy",
    # a node on its own: the HA series exist on members of an HA group only
    "bastion_ha_standby_heartbeat_age_seconds",
    "bastion_ha_standby_lag_events",
    "bastion_ha_standby_lag_seconds",
    "bastion_ha_standbys",
    "bastion_ha_step_downs_total",
    "bastion_ha_takeovers_total",
    # no [backup] shipping configured: its failures counter is the shipper's
    "bastion_backup_failures_total",
}
"""What the dashboard and the rules name that this test's first scrape cannot show, and
why; everything else they name, the node exposes."""

MONITORING = """
[monitoring]
listen = "{listen}"
sample_interval_ms = 100
quote_stale_s = 2
"""

PAPER = """
[node]
id = "mon-1"
isolation = "inline"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 5

[risk]
max_order_quantity = "100"
max_order_notional = "1000000"

[venue]
latency_ms = 1

[feed]
instrument = "XYZ.SIM"
interval_ms = 10

[journal]
path = "journal.sqlite"
"""


def paper_desk(root: Path, monitoring: str = MONITORING.format(listen="127.0.0.1:0")) -> Path:
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "paper.toml"
    config.write_text(PAPER + monitoring, encoding="utf-8")
    return config


def submitted(journal: Path) -> int:
    return sum(1 for _, e in peek_journal(journal) if isinstance(e, ev.OrderSubmitted))


@pytest.mark.timeout(180)
def test_when_fix_node_scraped_then_metrics_move_and_readiness_follows_the_venue(
    tmp_path: Path,
) -> None:
    """A node trading with the venue simulator over FIX, both monitored on free ports: the
    node's URL is in `bastion status`; it is ready once reconciled with fresh quotes;
    orders, fills, positions and quotes are counted and keep moving; the simulator
    serves its own metrics. The simulator killed: the node stays alive but is not ready,
    naming the venue's session and the stale feed."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, venue_port=port)
    listen = MONITORING.format(listen="127.0.0.1:0")
    for config in (venue_cfg, node_cfg):
        config.write_text(config.read_text() + listen)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        started_venue(venue, venue_log, port)
        venue_url = eventually(lambda: listening_url(venue_log), START_TIMEOUT_S)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            answer = eventually(
                lambda: still_running(node, node_log) and status(journal), START_TIMEOUT_S
            )
            url = answer["monitoring"]["listen"]
            assert url == listening_url(node_log)
            assert answer["monitoring"]["metrics"] == f"{url}/metrics"
            assert get_json(f"{url}/healthz") == (200, {"alive": True})
            eventually(lambda: get_json(f"{url}/readyz") == (200, {"ready": True}), 20)

            def trading() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
                scraped = metrics(url)
                orders = value(
                    scraped, "bastion_orders_submitted_total", strategy="hoarder", venue="FIXSIM"
                )
                assert orders is not None and orders >= 3, orders
                fills = value(scraped, "bastion_fills_total", strategy="hoarder", venue="FIXSIM")
                assert fills is not None and fills >= 1, fills
                # its resting sell can fill too: long once more market buys filled
                position = value(
                    scraped, "bastion_position", strategy="hoarder", instrument="XYZ.SIM"
                )
                assert position is not None and position >= 1, position
                return scraped

            first = eventually(trading, 20)
            dashboards_and_rules = {
                metric_of(name)
                for expr in (*dashboard_exprs(dashboard()).values(), *rule_exprs().values())
                for name in series_names(expr)
            }
            exposed = {metric_of(name) for name in names(first)} | PROMETHEUS_SERIES
            assert dashboards_and_rules - exposed == NOT_EXPOSED_HERE
            assert value(first, "bastion_venue_connected", venue="FIXSIM") == 1.0
            assert value(first, "bastion_venue_reconciled", venue="FIXSIM") == 1.0
            assert value(first, "bastion_node_ready") == 1.0
            assert (
                value(
                    first,
                    "bastion_node_info",
                    node="killfix",
                    mode="paper",
                    version="0.1.0",
                    epoch="1",
                )
                == 1.0
            )
            assert "bastion_tick_to_order_seconds_bucket" in names(first)
            quotes = value(first, "bastion_quotes_total", instrument="XYZ.SIM") or 0

            def moved() -> bool:
                later = metrics(url)
                assert (value(later, "bastion_quotes_total", instrument="XYZ.SIM") or 0) > quotes
                assert (
                    value(
                        later, "bastion_orders_submitted_total", strategy="hoarder", venue="FIXSIM"
                    )
                    or 0
                ) > (
                    value(
                        first, "bastion_orders_submitted_total", strategy="hoarder", venue="FIXSIM"
                    )
                    or 0
                )
                return True

            eventually(moved, 10)
            assert get(f"{url}/nope")[0] == 404

            sim = metrics(venue_url)
            assert value(sim, "bastion_venuesim_sessions", state="logged_on") == 1.0
            assert (value(sim, "bastion_venuesim_orders_total") or 0) >= 3
            assert (value(sim, "bastion_venuesim_fills_total") or 0) >= 1
            assert get_json(f"{venue_url}/readyz") == (200, {"ready": True})

            venue.send_signal(signal.SIGKILL)
            venue.wait(timeout=10)

            def not_ready() -> list[str]:
                code, body = get_json(f"{url}/readyz")
                assert code == 503 and body["ready"] is False, body
                reasons: list[str] = body["reasons"]
                assert "venue FIXSIM: session not logged on" in reasons, reasons
                assert any(r.startswith("feed FIXSIM: no quote for XYZ.SIM") for r in reasons)
                return reasons

            eventually(not_ready, 20)
            assert get_json(f"{url}/healthz") == (200, {"alive": True})
            down = metrics(url)
            assert value(down, "bastion_venue_connected", venue="FIXSIM") == 0.0
            assert value(down, "bastion_venue_disconnects_total", venue="FIXSIM") == 1.0
            assert value(down, "bastion_node_ready") == 0.0
            assert terminate(node) in (0, 1)  # orders at a dead venue may stay open


def test_when_listen_unusable_then_node_refuses_to_start_naming_monitoring_listen(
    tmp_path: Path,
) -> None:
    """A listen address that is not HOST:PORT, and a port another process holds: exit 2,
    the key named, and no journal written (nothing started)."""
    config = paper_desk(tmp_path, MONITORING.format(listen="127.0.0.1:99999"))
    bad = run_to_end("run", config.name, "--duration-s", "5", cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "monitoring.listen" in bad.stderr and "HOST:PORT" in bad.stderr
    with closing(socket.create_server(("127.0.0.1", 0))) as held:
        port = held.getsockname()[1]
        config = paper_desk(tmp_path, MONITORING.format(listen=f"127.0.0.1:{port}"))
        taken = run_to_end("run", config.name, "--duration-s", "5", cwd=tmp_path)
    assert taken.returncode == 2, taken.stderr
    assert f"key 'monitoring.listen': cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "Traceback" not in taken.stderr
    assert not (tmp_path / "journal.sqlite").exists()


def test_when_no_monitoring_section_then_node_trades_unmonitored_and_says_so_once(
    tmp_path: Path,
) -> None:
    """Without [monitoring] a paper node runs as before, logging ``monitoring_off`` once."""
    config = paper_desk(tmp_path, monitoring="")
    done = run_to_end("run", config.name, "--duration-s", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("monitoring_off") == 1
    assert "monitoring_listening" not in done.stderr


def test_when_embedded_default_node_runs_then_it_serves_its_metrics(tmp_path: Path) -> None:
    """`bastion run` with no config (the README's first command) monitors itself on a
    port it can bind and answers a scrape."""
    with running_node("run", "--duration-s", "30", cwd=tmp_path) as (node, log):
        url = eventually(lambda: still_running(node, log) and listening_url(log), START_TIMEOUT_S)
        assert get_json(f"{url}/healthz") == (200, {"alive": True})
        scraped = eventually(lambda: metrics(url), 5)
        assert (
            value(
                scraped,
                "bastion_node_info",
                node="node-1",
                mode="paper",
                version="0.1.0",
                epoch="1",
            )
            == 1.0
        )
        assert terminate(node) == 0, log.read_text()


# -- hostile HTTP clients ------------------------------------------------------------------
@contextmanager
def hammering(port: int, stop: threading.Event) -> Iterator[list[threading.Thread]]:
    """Clients that misbehave until ``stop``: connections held open and silent, one that
    trickles a request byte by byte, huge request lines, and scrapes in a tight loop."""

    def held_open() -> None:
        sockets = []
        try:
            while not stop.is_set() and len(sockets) < 64:
                try:
                    sockets.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                except OSError:
                    stop.wait(0.05)
            stop.wait()
        finally:
            for s in sockets:
                s.close()

    def trickle() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":
                        if stop.wait(0.2):
                            return
                        s.sendall(bytes([byte]))
            except OSError:
                stop.wait(0.05)

    def huge_lines() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"GET /" + b"A" * 100_000 + b" HTTP/1.1\r\n\r\n")
                    s.recv(64)
            except OSError:
                stop.wait(0.05)

    def scrape_loop() -> None:
        while not stop.is_set():
            try:
                get(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
            except OSError:
                stop.wait(0.05)

    workers: list[Callable[[], None]] = [held_open, trickle, huge_lines, scrape_loop, scrape_loop]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@pytest.mark.timeout(120)
def test_when_scrapers_are_hostile_then_orders_keep_flowing_and_listener_recovers(
    tmp_path: Path,
) -> None:
    """While clients hold connections, trickle, send 100 KB request lines and scrape in a
    loop, the node keeps sending orders at its pace; once they stop, a scrape answers."""
    config = paper_desk(tmp_path)
    journal = tmp_path / "journal.sqlite"
    with running_node("run", config.name, cwd=tmp_path) as (node, log):
        url = eventually(lambda: still_running(node, log) and listening_url(log), START_TIMEOUT_S)
        eventually(lambda: submitted(journal) >= 10, START_TIMEOUT_S)
        port = int(url.rsplit(":", 1)[1])
        stop = threading.Event()
        with hammering(port, stop):
            before = submitted(journal)
            # the strategy orders every 5th quote of 100 a second: 20 orders a second
            eventually(lambda: still_running(node, log) and submitted(journal) >= before + 60, 10)
        assert still_running(node, log)
        eventually(lambda: get_json(f"{url}/healthz") == (200, {"alive": True}), 10)
        assert metrics(url)
        assert terminate(node) == 0, log.read_text()

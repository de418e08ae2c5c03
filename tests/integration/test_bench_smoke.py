"""The benches run (``--quick``) and print their JSON line with the keys the docs name.

Smoke tests only: no figure is checked against a target here (a benchmark is not a
timed test); what must hold whatever the timing (no order accepted after the kill,
none left open) is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from kit.node_process import child_env
from kit.paths import REPO_ROOT


def _bench_lines(name: str, *args: str) -> list[dict[str, Any]]:
    """Every JSON line ``bench/NAME --quick ARGS`` prints."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / name), "--quick", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


def _bench(name: str, *args: str) -> dict[str, Any]:
    return _bench_lines(name, *args)[-1]


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_when_tick_to_order_runs_then_it_prints_latency_and_rate(isolation: str) -> None:
    """tick_to_order.py --quick prints p50/p99 and quotes/s for either isolation."""
    result = _bench("tick_to_order.py", "--isolation", isolation)
    assert result["isolation"] == isolation
    assert result["orders_timed"] > 0
    for key in ("p50_us", "p99_us", "quotes_per_s"):
        assert result[key] > 0, key


def test_when_tick_to_order_runs_monitored_then_it_says_so_and_scrapes_fail_none() -> None:
    """--monitoring runs the node's monitor and a scraper beside the timed path."""
    result = _bench("tick_to_order.py", "--monitoring", "--scrape-every-s", "0.01")
    assert result["monitoring"] is True
    assert result["scrape_failures"] == 0 and result["p99_us"] > 0


def test_when_tick_to_order_runs_isolated_then_it_times_the_round_trip_and_load() -> None:
    """The isolated run also prints the round trip and the latency under load."""
    result = _bench("tick_to_order.py", "--isolation", "process")
    for key in ("roundtrip_p50_us", "lockstep_quotes_per_s", "loaded_p50_us", "loaded_p99_us"):
        assert result[key] > 0, key


@pytest.mark.parametrize("variant", ["spin", "flood"])
def test_when_kill_runs_then_no_order_is_accepted_after_it_and_none_stays_open(
    variant: str,
) -> None:
    """kill.py --quick prints kill_all_ms; nothing passes the gate after the kill."""
    result = _bench("kill.py", "--variant", variant)
    assert result["variant"] == variant
    assert result["kill_all_ms"] > 0
    assert result["accepted_after_kill"] == 0
    assert result["open_after_kill"] == 0
    assert result["cancels_sent"] == result["resting_orders"] == result["open_at_kill"]
    if variant == "flood":
        assert result["orders_accepted_before_kill"] > 0  # it did flood
        assert result["denied_after_kill"] > 0  # and went on after the kill


def test_when_ipc_floor_runs_then_it_prints_each_shape() -> None:
    """ipc_floor.py --quick prints a round trip for each way of waiting."""
    result = _bench("ipc_floor.py")
    for shape in ("asyncio_poll", "blocking", "child_spins", "one_cpu"):
        assert 0 < result[shape]["p50_us"] <= result[shape]["p99_us"], shape


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_when_fix_roundtrip_runs_then_it_prints_latency_and_rate(tls: bool) -> None:
    """fix_roundtrip.py --quick (and --tls: the venue takes mutual TLS only, so a fill
    means the round trip went through it) prints p50/p99, orders/s and the mode."""
    result = _bench("fix_roundtrip.py", *(["--tls"] if tls else []))
    assert result["tls"] is tls
    assert result["orders"] == 300
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["orders_per_s"] > 0


def test_when_secrets_bench_runs_then_it_prints_each_cost() -> None:
    """secrets_at_rest.py --quick prints the unlock time and each plain/encrypted pair."""
    result = _bench("secrets_at_rest.py")
    for key in (
        "unlock_s",
        "journal_events_per_s_plain",
        "journal_events_per_s_encrypted",
        "tick_to_order_p99_us_plain",
        "tick_to_order_p99_us_encrypted",
        "tick_to_order_p99_ratio",
        "fix_roundtrip_p50_us_plain",
        "fix_roundtrip_p50_us_encrypted",
    ):
        assert result[key] > 0, key


def test_when_alerts_bench_runs_then_it_prints_webhook_and_smtp_latencies() -> None:
    """alerts.py --quick: each condition (venue session cut, quote gap, loss) set off,
    timed to the webhook and to the SMTP server."""
    result = _bench("alerts.py")
    assert result["alerts"] == 9
    for key in (
        "alert_p50_ms",
        "alert_p99_ms",
        "smtp_p50_ms",
        "smtp_p99_ms",
        "venue_p50_ms",
        "quote_gap_p50_ms",
        "loss_p50_ms",
    ):
        assert result[key] > 0, key
    assert result["alert_p50_ms"] <= result["alert_p99_ms"]


def test_when_console_bench_runs_then_it_prints_kill_and_streaming_figures() -> None:
    """console.py --quick: kills sent through the console's API timed to the venue's
    ledger, and tick-to-order alone and while the console's clients stream updates."""
    kill, streaming = _bench_lines("console.py")
    assert (kill["part"], kill["runs"]) == ("kill", 3)
    assert 0 < kill["kill_p50_ms"] <= kill["kill_p99_ms"]
    assert 0 < kill["reply_p50_ms"] <= kill["reply_p99_ms"]
    assert (streaming["part"], streaming["clients"]) == ("streaming", 50)
    for key in ("tick_p99_us_alone", "tick_p99_us_with_clients"):
        assert streaming[key] > 0, key
    assert isinstance(streaming["worse_pct"], float)
    assert streaming["views_served_alone"] == 0 < streaming["views_served_with_clients"]
    assert streaming["updates_per_client_min"] >= 1  # every stream read live updates


NATS_KEYS = (
    "nats_latency_p50_us",
    "nats_latency_p99_us",
    "nats_handler_quotes_per_s",
    "nats_node_quotes_per_s",
)


def test_when_the_nats_feed_bench_runs_then_it_prints_latency_and_rate() -> None:
    """nats_feed.py --quick: a real server, a handler process, every quote delivered."""
    result = _bench("nats_feed.py")
    assert result["nats_dropped"] == 0
    assert result["nats_burst_delivered"] == result["nats_burst"]
    for key in NATS_KEYS:
        assert result[key] > 0, key


def test_when_the_feeds_bench_runs_then_it_prints_every_figure_of_the_feed_path() -> None:
    """feeds.py --quick: validators, arbiter, recorder and failover, then the NATS part
    (latency handler -> node, a handler's and a node's quotes/s) on a second line."""
    path, nats = _bench_lines("feeds.py")
    assert (path["part"], nats["part"]) == ("path", "nats")
    for key in (
        "validator_us_per_quote",
        "arbiter_us_per_quote",
        "recorder_us_per_quote",
        "failover_p50_ms",
        "failover_p99_ms",
    ):
        assert path[key] > 0, key
    assert path["failover_p50_ms"] <= path["failover_p99_ms"]
    assert nats["nats_burst_delivered"] == nats["nats_burst"]
    for key in NATS_KEYS:
        assert nats[key] > 0, key


def test_when_failover_bench_runs_then_it_prints_rto_and_rpo() -> None:
    """failover.py --quick: two SIGKILLed leaders, each takeover timed to the venue's
    first order of the new epoch; the summary has the RTO percentiles and the RPO."""
    *takeovers, summary = _bench_lines("failover.py")
    assert [t["part"] for t in takeovers] == ["takeover", "takeover"]
    assert summary["takeovers"] == 2
    assert 0 < summary["rto_p50_s"] <= summary["rto_p99_s"]
    assert summary["rpo_events"] >= 0


RPO_BOUND_S = 5.0
"""--quick ships every 0.5 s: what a loss costs is that and one round, far under this."""


def test_when_dr_runs_then_it_prints_backup_restore_drill_rto_rpo_and_tick_to_order() -> None:
    """dr.py --quick: backup, restore, a passing drill with its RTO, the RPO of shipping,
    and tick-to-order p99 with and without a backup running."""
    result = _bench("dr.py")
    assert result["drill_ok"] is True and result["drill_reconciled"] is True
    for key in ("backup_s", "backup_bytes", "restore_s", "drill_rto_s"):
        assert result[key] > 0, key
    # 0 when the shipper's last round fell after the last event: the loss cost nothing
    assert 0 <= result["rpo_s"] <= RPO_BOUND_S, result["rpo_s"]
    assert result["tick_to_order_p99_us_idle"] > 0 and result["tick_to_order_p99_ratio"] > 0


def test_when_dr_runs_on_postgres_then_it_prints_backup_restore_drill_rto_and_rpo() -> None:
    """dr.py --quick --journal postgres: the same keys for a journal in PostgreSQL, the
    drill restoring into a database of its own on the kit's server."""
    result = _bench("dr.py", "--journal", "postgres")
    assert result["journal"] == "postgres"
    assert result["drill_ok"] is True and result["drill_reconciled"] is True
    assert result["drill_rpo_events"] == 0
    assert "load" in result["drill_phases_s"] and "scratch_db" in result["drill_phases_s"]
    for key in ("backup_s", "backup_bytes", "restore_s", "drill_rto_s"):
        assert result[key] > 0, key
    # 0 when the shipper's last round fell after the last event: the loss cost nothing
    assert 0 <= result["rpo_s"] <= RPO_BOUND_S, result["rpo_s"]

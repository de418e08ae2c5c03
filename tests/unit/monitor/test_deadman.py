"""The dead-man's switch: it pings its URL (an HTTP GET) from its own thread while the
loop turns, stops pinging when the loop wedges, counts pings and failures, and never
logs its URL."""

from __future__ import annotations

import logging

import pytest
import structlog

from bastion import logs
from bastion.errors import ConfigError
from bastion.logs import configure_logging
from bastion.monitor.deadman import STALL_S, DeadmanSwitch, check_ping_url
from bastion.monitor.sample import SampleBuilder
from bastion.vault.refs import Secret
from kit.net import free_tcp_port
from kit.receivers import http_receiver
from kit.waiting import eventually

TOKEN = "hc-8d1f0a5e7b"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def switch(url: str, monotonic: FakeMonotonic, interval_s: float = 30.0) -> DeadmanSwitch:
    return DeadmanSwitch(
        Secret("notify/deadman", url), interval_s=interval_s, timeout_s=2.0, monotonic=monotonic
    )


def test_when_the_loop_turns_then_each_round_pings_the_url() -> None:
    """A GET of the URL per round, counted."""
    clock = FakeMonotonic()
    with http_receiver() as receiver:
        deadman = switch(receiver.http_url(f"ping/{TOKEN}"), clock)
        for _ in range(3):
            clock.now += 1.0
            deadman.beat()
            assert deadman.ping_once()
        assert [(a.extra["method"], a.extra["path"]) for a in receiver.arrivals] == [
            ("GET", f"/ping/{TOKEN}")
        ] * 3
    builder = SampleBuilder()
    deadman.sources(builder)
    reading = builder.build(0, 0.0)
    assert reading.get("bastion_deadman_pings_total") == 3
    assert reading.get("bastion_deadman_failures_total") == 0


def test_when_the_loop_stops_beating_then_no_ping_goes_out() -> None:
    """A beat older than STALL_S: the ping is withheld, so the outside monitor notices."""
    clock = FakeMonotonic()
    with http_receiver() as receiver:
        deadman = switch(receiver.http_url(), clock)
        deadman.beat()
        clock.now += STALL_S
        assert deadman.ping_once()
        clock.now += 0.01
        assert not deadman.ping_once()
        assert (deadman.pings, deadman.skipped) == (1, 1)
        assert len(receiver.arrivals) == 1


def test_when_started_then_its_thread_pings_every_interval_until_the_loop_wedges() -> None:
    """On its own thread: pings while beaten, none once the beats stop."""
    clock = FakeMonotonic()
    with http_receiver() as receiver:
        deadman = switch(receiver.http_url(), clock, interval_s=0.02)
        deadman.beat()
        deadman.start()
        try:
            eventually(lambda: len(receiver.arrivals) >= 3)
            clock.now += STALL_S + 1  # the loop wedged
            eventually(lambda: deadman.skipped >= 2)
            pinged = len(receiver.arrivals)
            eventually(lambda: deadman.skipped >= 4)
            assert len(receiver.arrivals) == pinged
        finally:
            deadman.close()


def test_when_the_monitor_is_down_then_failures_are_counted_and_logged_without_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing listening, then an HTTP error: both failures, neither logs the URL."""
    configure_logging("info", "json")
    try:
        clock = FakeMonotonic()
        port = free_tcp_port()
        down = switch(f"http://127.0.0.1:{port}/ping/{TOKEN}", clock)
        down.beat()
        assert not down.ping_once()
        with http_receiver(status=404) as receiver:
            refusing = switch(receiver.http_url(f"ping/{TOKEN}"), clock)
            refusing.beat()
            assert not refusing.ping_once()
        assert (down.failures, refusing.failures) == (1, 1)
        err = capsys.readouterr().err
        assert err.count("deadman_ping_failed") == 2
        assert "HTTP 404" in err
        assert TOKEN not in err and str(port) not in err
    finally:
        structlog.reset_defaults()
        if logs._stdlib_handler is not None:
            logging.getLogger().removeHandler(logs._stdlib_handler)
            logs._stdlib_handler = None


@pytest.mark.parametrize("url", [f"json://hc.example/{TOKEN}", "not a url", "file:///etc/passwd"])
def test_when_the_ping_url_is_not_http_then_it_is_refused_without_echoing_it(url: str) -> None:
    """Only http(s) URLs; the error names the key and the secret, not the value."""
    with pytest.raises(ConfigError) as caught:
        check_ping_url(Secret("notify/deadman", url), "monitoring.deadman.url")
    message = str(caught.value)
    assert "key 'monitoring.deadman.url'" in message and "'notify/deadman'" in message
    assert url not in message

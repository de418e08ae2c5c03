"""Notifications through apprise to real receivers on loopback (an aiohttp HTTP
receiver, an aiosmtpd SMTP server): delivered off the caller's thread, retried with
backoff and counted when a receiver is down, never held up by a receiver that hangs,
dropped oldest-first when a queue is full, and never logging a URL."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog

from bastion import logs
from bastion.logs import configure_logging
from bastion.monitor.alerts.config import AlertRouteConfig
from bastion.monitor.notify import Notification, Notifier
from bastion.monitor.sample import SampleBuilder
from bastion.vault.refs import Secret
from kit.net import free_tcp_port
from kit.receivers import hanging_peer, http_receiver, smtp_receiver
from kit.waiting import eventually

TOKEN = "tok-3f9a77c1e2"  # a webhook token in a URL: never in a log line


def note(alert_id: str = "1.1", status: Any = "firing") -> Notification:
    return Notification(
        alert_id=alert_id,
        alert="venue-disconnected",
        severity="critical",
        status=status,
        summary="venue FIXSIM: no session (session dropped)",
        labels={"venue": "FIXSIM"},
        value=1.0,
        runbook="docs/runbooks/venue-disconnected.md",
        node="node-1",
        ts_ns=0,
    )


def route(name: str, **keys: Any) -> AlertRouteConfig:
    keys.setdefault("backoff_initial_ms", 10)
    keys.setdefault("backoff_max_ms", 40)
    return AlertRouteConfig(name=name, urls=[f"secret:notify/{name}"], **keys)


@contextmanager
def notifier(urls: dict[str, list[str]], routes: list[AlertRouteConfig]) -> Iterator[Notifier]:
    running = Notifier(
        routes, {name: [Secret(f"notify/{name}", u) for u in us] for name, us in urls.items()}
    )
    running.start()
    try:
        yield running
    finally:
        running.close(drain_s=0.0)


def series(n: Notifier) -> dict[str, Any]:
    builder = SampleBuilder()
    n.sources(builder)
    reading = builder.build(0, 0.0)
    return {
        name: {dict(labels).get("route", ""): value for labels, value in reading.series(name)}
        for name in reading.values
    }


def test_when_an_alert_is_sent_then_the_http_receiver_gets_it() -> None:
    """json:// through apprise: title and body of the notification, counted as sent."""
    with http_receiver() as receiver, notifier({"ops": [receiver.url()]}, [route("ops")]) as n:
        n.send("ops", note())
        (arrival,) = eventually(lambda: receiver.arrivals)
        assert arrival.title == "[CRITICAL] venue-disconnected firing on node-1"
        assert arrival.alert_id == "1.1"
        assert "venue FIXSIM: no session (session dropped)" in arrival.body
        assert "runbook: docs/runbooks/venue-disconnected.md" in arrival.body
        eventually(lambda: n.counts("ops") == (1, 0, 0))


def test_when_an_alert_is_mailed_then_the_smtp_server_gets_it() -> None:
    """mailto:// (plain SMTP) through apprise to aiosmtpd, subject and body."""
    with (
        smtp_receiver() as server,
        notifier({"mail": [server.url()]}, [route("mail", min_interval_s=0.0)]) as n,
    ):
        n.send("mail", note("1.1"))
        n.send("mail", note("1.1", "resolved"))
        first, second = eventually(lambda: len(server.arrivals) == 2 and server.arrivals)
        assert first.title == "[CRITICAL] venue-disconnected firing on node-1"
        assert second.title == "[CRITICAL] venue-disconnected resolved on node-1"
        assert first.alert_id == "1.1"
        assert first.extra["to"] == ["ops@desk.example"]


def test_when_the_receiver_is_down_then_delivery_is_retried_counted_and_resumes() -> None:
    """Nothing listening: each attempt fails and is counted, then given up; once the
    receiver is up on that port, the next notification arrives."""
    port = free_tcp_port()
    url = f"json://127.0.0.1:{port}/hook"
    with notifier({"ops": [url]}, [route("ops", attempts=3)]) as n:
        n.send("ops", note("1.1"))
        eventually(lambda: n.counts("ops") == (0, 3, 0) and n.idle())
        assert series(n)["bastion_notifications_failed_total"] == {"ops": 3.0}
        with http_receiver(port=port) as receiver:
            n.send("ops", note("1.2"))
            (arrival,) = eventually(lambda: receiver.arrivals)
            assert arrival.alert_id == "1.2"
            eventually(lambda: n.counts("ops") == (1, 3, 0))


def test_when_the_receiver_answers_an_error_then_it_counts_as_failed() -> None:
    """An HTTP 500 is a failed attempt, retried."""
    with (
        http_receiver(status=500) as receiver,
        notifier({"ops": [receiver.url()]}, [route("ops", attempts=2)]) as n,
    ):
        n.send("ops", note())
        eventually(lambda: n.counts("ops") == (0, 2, 0))
        assert receiver.requests == 2


def test_when_a_receiver_hangs_then_other_routes_and_the_caller_are_not_held_up() -> None:
    """A peer that accepts and never answers holds only its own queue: send() returns
    at once and another route's receiver gets the alert at once."""
    with (
        hanging_peer() as peer,
        http_receiver() as receiver,
        notifier(
            {"slow": [peer.url()], "fast": [receiver.url()]}, [route("slow"), route("fast")]
        ) as n,
    ):
        eventually(lambda: n.idle())
        started = time.monotonic()
        for i in range(50):
            n.send("slow", note(f"1.{i}"))
            n.send("fast", note(f"1.{i}"))
        assert time.monotonic() - started < 0.5  # 100 sends; the hang alone is 4 s per try
        eventually(lambda: len(receiver.arrivals) == 50, timeout_s=5.0)
        assert peer.connections >= 1
        assert n.counts("slow")[0] == 0


def test_when_a_queue_is_full_then_the_oldest_is_dropped_and_counted() -> None:
    """queue_size 2 behind a hanging receiver: one in flight, two waiting, the rest
    dropped oldest first (counted, and in the queue depth)."""
    with (
        hanging_peer() as peer,
        notifier({"slow": [peer.url()]}, [route("slow", queue_size=2)]) as n,
    ):
        n.send("slow", note("1.0"))
        eventually(lambda: peer.connections == 1)  # 1.0 is in flight
        for i in range(1, 6):
            n.send("slow", note(f"1.{i}"))
        assert n.counts("slow")[2] == 3
        assert [q.alert_id for w in n._workers["slow"] for q in w.queue] == ["1.4", "1.5"]
        values = series(n)
        assert values["bastion_notifications_dropped_total"] == {"": 3.0}
        assert values["bastion_notification_queue_depth"] == {"": 2.0}


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """The test configures logging (capsys swaps stderr after a fixture's setup)."""
    yield
    structlog.reset_defaults()
    if logs._stdlib_handler is not None:
        logging.getLogger().removeHandler(logs._stdlib_handler)
        logs._stdlib_handler = None


@pytest.mark.usefixtures("debug_logs")
def test_when_deliveries_fail_then_no_log_line_holds_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At debug level, with apprise failing and warning: the token in the URL's path
    and query, and its host and port, appear in no log line."""
    configure_logging("debug", "json")
    port = free_tcp_port()
    with http_receiver(status=503) as receiver:
        urls = {
            "down": [f"json://127.0.0.1:{port}/{TOKEN}?token={TOKEN}"],
            "err": [f"json://127.0.0.1:{receiver.port}/{TOKEN}?token={TOKEN}"],
        }
        with notifier(urls, [route("down", attempts=2), route("err", attempts=2)]) as n:
            n.send("down", note())
            n.send("err", note())
            eventually(lambda: n.counts("down")[1] == 2 and n.counts("err")[1] == 2)
            eventually(lambda: n.idle())
    err = capsys.readouterr().err
    assert "notification_failed" in err and "notification_given_up" in err
    assert TOKEN not in err
    assert f"127.0.0.1:{port}" not in err

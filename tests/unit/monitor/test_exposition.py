"""The HTTP listener: /metrics, /healthz and /readyz answers, 404 elsewhere, a clear error
when it cannot listen, and hostile clients (many connections, a silent one, a huge
request line) that do not keep it from answering the next scrape."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest
from prometheus_client import CollectorRegistry

from bastion.errors import ConfigError
from bastion.monitor.exposition import (
    MAX_CONNECTIONS,
    Histograms,
    MonitorServer,
    SampleCollector,
    monitor_app,
)
from bastion.monitor.sample import Sample, SampleBuilder
from kit.scrape import get, get_json, metrics, value
from kit.waiting import eventually

CLIENT_TIMEOUT_S = 0.5  # the server's, shortened for the test


class Health:
    """What the app is told: the process's health problem and readiness reasons."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.reasons: list[str] = []


def sample() -> Sample:
    builder = SampleBuilder()
    builder.set("bastion_venue_connected", True, venue="SIM")
    builder.set("bastion_orders_submitted_total", 3, strategy="ema", venue="SIM")
    builder.set("bastion_cash", 1_000_000)
    return builder.build(1, 1.0)


@contextmanager
def serving(listen: str = "127.0.0.1:0") -> Iterator[tuple[str, Health, MonitorServer]]:
    health = Health()
    registry = CollectorRegistry(auto_describe=False)
    current = sample()
    registry.register(SampleCollector(lambda: current))
    histograms = Histograms(registry)
    histograms.observe([1_500, 2_000_000], [("SIM", 3_000_000)], [], [0.002])
    server = MonitorServer(
        listen,
        monitor_app(registry, health=lambda: health.problem, readiness=lambda: health.reasons),
        client_timeout_s=CLIENT_TIMEOUT_S,
    )
    server.start()
    address = server.address
    assert address is not None
    try:
        yield f"http://127.0.0.1:{address[1]}", health, server
    finally:
        server.stop()


def test_when_metrics_scraped_then_sample_and_histograms_in_prometheus_text() -> None:
    """Gauges, counters (``_total``) and histograms with their buckets, by their labels."""
    with serving() as (url, _, _):
        scraped = metrics(url)
    assert value(scraped, "bastion_venue_connected", venue="SIM") == 1.0
    assert value(scraped, "bastion_orders_submitted_total", strategy="ema", venue="SIM") == 3.0
    assert value(scraped, "bastion_tick_to_order_seconds_count") == 2.0
    assert value(scraped, "bastion_tick_to_order_seconds_bucket", le="1e-05") == 1.0
    assert value(scraped, "bastion_order_to_ack_seconds_sum", venue="SIM") == 0.003
    assert not any(name.endswith("_created") for name, _ in scraped)


def test_when_health_asked_then_200_alive_or_503_with_the_problem() -> None:
    """/healthz follows ``health``: None is alive."""
    with serving() as (url, health, _):
        assert get_json(f"{url}/healthz") == (200, {"alive": True})
        health.problem = "the event loop has not sampled for 3.0 s: it is stalled"
        assert get_json(f"{url}/healthz") == (503, {"alive": False, "problem": health.problem})


def test_when_readiness_asked_then_200_or_503_with_reasons_as_json() -> None:
    """/readyz: ready with no reason; otherwise 503 and every reason."""
    with serving() as (url, health, _):
        assert get_json(f"{url}/readyz") == (200, {"ready": True})
        health.reasons = ["venue FIXV: session not logged on", "journal j: not writable"]
        assert get_json(f"{url}/readyz") == (503, {"ready": False, "reasons": health.reasons})


def test_when_unknown_path_or_method_then_404_or_405() -> None:
    """Any other path is 404; a POST to /readyz is 405."""
    with serving() as (url, _, _):
        assert get(f"{url}/")[0] == 404
        assert get(f"{url}/metrics/../admin")[0] == 404
        assert get(f"{url}/readyz", method="POST")[0] == 405


def test_when_port_in_use_then_error_names_the_key_and_the_address() -> None:
    """Binding a port another socket holds: ConfigError naming monitoring.listen."""
    with closing(socket.create_server(("127.0.0.1", 0))) as held:
        port = held.getsockname()[1]
        server = MonitorServer(f"127.0.0.1:{port}", monitor_app(
            CollectorRegistry(), health=lambda: None, readiness=list
        ))  # fmt: skip
        with pytest.raises(ConfigError, match=rf"monitoring.listen.*127.0.0.1:{port}.*in use"):
            server.bind()


def test_when_port_zero_then_bound_to_a_free_port_it_reports() -> None:
    """Port 0: the OS picks one; ``address`` says which."""
    with serving("127.0.0.1:0") as (url, _, server):
        address = server.address
        assert address is not None and address[0] == "127.0.0.1" and address[1] > 0
        assert get(f"{url}/healthz")[0] == 200


def test_when_request_line_huge_then_414_and_next_scrape_answered() -> None:
    """A request line beyond 64 KiB is refused by the standard handler."""
    with serving() as (url, _, server):
        port = server.address[1]  # type: ignore[index]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.0 414")
        assert get(f"{url}/metrics")[0] == 200


def test_when_clients_hold_every_connection_then_more_refused_and_scrape_served_after() -> None:
    """Silent clients fill the connection slots: one more is closed unanswered (not queued
    behind them); once they go, a scrape is answered at once."""
    with serving() as (url, _, server):
        port = server.address[1]  # type: ignore[index]
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
        try:
            eventually(lambda: server.active == MAX_CONNECTIONS, what="every slot taken")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
                extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                assert extra.recv(64) == b""  # closed without an answer
            assert server.refused >= 1
        finally:
            for s in silent:
                s.close()
        eventually(lambda: get(f"{url}/healthz")[0] == 200, what="a scrape answered")


def test_when_client_sends_slowly_then_it_is_dropped_and_others_answered_meanwhile() -> None:
    """A client that sends half a request and waits does not hold others up; it is dropped
    after the client timeout."""
    with serving() as (url, _, server):
        port = server.address[1]  # type: ignore[index]
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"GET /metr")
            started = time.monotonic()
            assert get(f"{url}/metrics")[0] == 200
            assert time.monotonic() - started < 1.0
            slow.settimeout(CLIENT_TIMEOUT_S + 5)
            assert slow.recv(64) == b""  # the server gave up on it

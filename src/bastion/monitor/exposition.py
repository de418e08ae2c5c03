"""The HTTP listener of a bastion process: ``/metrics`` (Prometheus text), ``/healthz``
and ``/readyz``, served on threads of their own by the standard library's WSGI server.

``/metrics`` is ``prometheus_client.make_wsgi_app`` over a registry holding a
``SampleCollector`` (the latest ``Sample``, as the catalogue describes each metric) and
the histograms. ``/healthz``: 200 while the process's loop samples itself, 503 with
the problem when it stopped (wedged). ``/readyz``: 200 ``{"ready": true}``, or 503
``{"ready": false, "reasons": [...]}``. Any other path is 404.

The server reads only the latest sample and the histograms: nothing here waits on the
trading loop or makes it wait. Against hostile clients: at most ``MAX_CONNECTIONS``
are served at once (more are closed unanswered), each socket read times out after
``CLIENT_TIMEOUT_S``, and a request line beyond 64 KiB is answered 414 by the
standard handler without being read further.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import json
import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import TCPServer, ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bastion.errors import ConfigError
from bastion.monitor.catalogue import GC_BUCKETS_S, LATENCY_BUCKETS_S, METRICS
from bastion.monitor.config import parse_listen
from bastion.monitor.sample import Sample

log = structlog.get_logger("bastion.monitor")

MAX_CONNECTIONS: Final = 16
CLIENT_TIMEOUT_S: Final = 5.0
THREAD_NAME: Final = "bastion-monitor-http"
NOT_FOUND: Final = "no such path: /metrics, /healthz and /readyz are served"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SampleCollector(Collector):
    """The latest sample as Prometheus metric families (gauges and counters named in the
    catalogue; a series of a metric the catalogue does not know is left out, logged once)."""

    def __init__(self, latest: Callable[[], Sample | None]) -> None:
        self._latest = latest
        self._unknown: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        sample = self._latest()
        if sample is None:
            return
        for name, series in sample.values.items():
            metric = METRICS.get(name)
            if metric is None or metric.kind == "histogram":
                if name not in self._unknown:
                    self._unknown.add(name)
                    log.warning("monitor_metric_unknown", metric=name)
                continue
            family: GaugeMetricFamily | CounterMetricFamily
            if metric.kind == "counter":
                family = CounterMetricFamily(name, metric.help, labels=metric.labels)
            else:
                family = GaugeMetricFamily(name, metric.help, labels=metric.labels)
            names = metric.labels
            for labels, value in series.items():
                given = dict(labels)
                family.add_metric([given.get(label, "") for label in names], value)
            yield family


class Histogram(Collector):
    """A histogram of the catalogue, observed on the loop by the sampler and collected by
    the listener's threads (a lock keeps a scrape from reading half an observation)."""

    def __init__(self, name: str, buckets: tuple[float, ...]) -> None:
        self.metric = METRICS[name]
        self._bounds = (*buckets, math.inf)
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, values: Iterable[float], *label_values: str) -> None:
        """Count each of ``values`` (seconds) in the series of ``label_values``."""
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                series = self._series[label_values] = ([0] * len(self._bounds), [0.0])
            counts, total = series
            bounds = self._bounds
            for value in values:
                counts[bisect.bisect_left(bounds, value)] += 1
                total[0] += value

    def collect(self) -> Iterator[Metric]:
        metric = self.metric
        family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
        with self._lock:
            series = [
                (labels, list(counts), total[0]) for labels, (counts, total) in self._series.items()
            ]
        for labels, counts, total in series:
            cumulative = list(itertools.accumulate(counts))
            buckets = [
                (_le(bound), float(n)) for bound, n in zip(self._bounds, cumulative, strict=True)
            ]
            family.add_metric(list(labels), buckets, total)
        yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


class Histograms:
    """The latency and GC-pause histograms of a node."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tick_to_order = Histogram("bastion_tick_to_order_seconds", LATENCY_BUCKETS_S)
        self.order_to_ack = Histogram("bastion_order_to_ack_seconds", LATENCY_BUCKETS_S)
        self.order_to_fill = Histogram("bastion_order_to_fill_seconds", LATENCY_BUCKETS_S)
        self.gc_pause = Histogram("bastion_gc_pause_seconds", GC_BUCKETS_S)
        for histogram in (self.tick_to_order, self.order_to_ack, self.order_to_fill, self.gc_pause):
            registry.register(histogram)

    def observe(
        self,
        tick_to_order_ns: list[int],
        order_to_ack_ns: list[tuple[str, int]],
        order_to_fill_ns: list[tuple[str, int]],
        gc_pauses_s: list[float],
    ) -> None:
        if tick_to_order_ns:
            self.tick_to_order.observe([ns / 1e9 for ns in tick_to_order_ns])
        for histogram, pairs in (
            (self.order_to_ack, order_to_ack_ns),
            (self.order_to_fill, order_to_fill_ns),
        ):
            by_venue: dict[str, list[float]] = {}
            for venue, ns in pairs:
                by_venue.setdefault(venue, []).append(ns / 1e9)
            for venue, values in by_venue.items():
                histogram.observe(values, venue)
        if gc_pauses_s:
            self.gc_pause.observe(gc_pauses_s)


def monitor_app(
    registry: CollectorRegistry,
    *,
    health: Callable[[], str | None],
    readiness: Callable[[], list[str]],
) -> WsgiApp:
    """The WSGI application: ``health`` returns why the process is not alive (None: it
    is), ``readiness`` why it is not ready (empty: it is)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path not in ("/healthz", "/readyz"):
            return _answer(start_response, "404 Not Found", {"error": NOT_FOUND})
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", {"error": "use GET"})
        if path == "/healthz":
            problem = health()
            if problem is None:
                return _answer(start_response, "200 OK", {"alive": True})
            return _answer(
                start_response, "503 Service Unavailable", {"alive": False, "problem": problem}
            )
        reasons = readiness()
        if not reasons:
            return _answer(start_response, "200 OK", {"ready": True})
        return _answer(
            start_response, "503 Service Unavailable", {"ready": False, "reasons": reasons}
        )

    return app


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode() + b"\n"
    start_response(
        status,
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
    )
    return [data]


class _Handler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S  # each socket read: a silent client is dropped

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (a scraper every few seconds would flood the log)."""


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per connection, at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._count_lock = threading.Lock()
        self.active = 0
        self.refused = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            full = self.active >= MAX_CONNECTIONS
            if full:
                self.refused += 1
            else:
                self.active += 1
        if full:
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self.active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("monitor_http_client_error", client=str(client_address))

    def server_bind(self) -> None:
        """As ``WSGIServer``'s, without ``HTTPServer``'s reverse DNS lookup of the host."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class MonitorServer:
    """The listener: ``bind`` (at start, so a bad address stops the process), then
    ``start`` (its thread) and ``stop``."""

    def __init__(
        self,
        listen: str,
        app: WsgiApp,
        *,
        key: str = "monitoring.listen",
        client_timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self.listen = listen
        self._key = key
        self._app = app
        self._handler = type("_TimedHandler", (_Handler,), {"timeout": client_timeout_s})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port), once bound."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def refused(self) -> int:
        """Connections closed unanswered because ``MAX_CONNECTIONS`` were busy."""
        return 0 if self._server is None else self._server.refused

    @property
    def active(self) -> int:
        """Connections being served now."""
        return 0 if self._server is None else self._server.active

    def bind(self) -> tuple[str, int]:
        """Listen on ``listen``; ``ConfigError`` naming the key if that is not possible."""
        if self._server is None:
            host, port = parse_listen(self.listen, self._key)
            server_class = _server_class(host)
            try:
                self._server = make_server(
                    host, port, self._app, server_class=server_class, handler_class=self._handler
                )
            except OSError as error:
                raise ConfigError(
                    f"key '{self._key}': cannot listen on {self.listen}: "
                    f"{error.strerror or error} (another process may hold the port; choose "
                    "another, or port 0 for a free one)"
                ) from None
            bound_host, bound_port = self._server.server_address[:2]
            log.info(
                "monitoring_listening",
                listen=self.listen,
                host=str(bound_host),
                port=int(bound_port),
                paths=["/metrics", "/healthz", "/readyz"],
            )
        address = self.address
        assert address is not None
        return address

    def start(self) -> None:
        server = self._server
        if server is None:
            self.bind()
            server = self._server
            assert server is not None
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=THREAD_NAME,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        server.server_close()


def _server_class(host: str) -> type[_Server]:
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:  # localhost
        is_v6 = False
    return _Server6 if is_v6 else _Server

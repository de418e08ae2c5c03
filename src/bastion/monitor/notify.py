"""Alert delivery off the trading loop: one thread per route URL, fed by a bounded queue.

``Notifier.send`` (called on the loop) appends to each of the route's queues and returns:
it never blocks; a full queue drops its oldest notification (counted). Each URL's
thread delivers through its ``Transport`` (apprise by default: Slack, e-mail, webhooks,
PagerDuty, ...), retrying a failure ``attempts`` times with exponential backoff, so a
receiver that is down or hangs holds up its own queue only: never the loop, nor
another route or URL. Sent, failed (each failed attempt) and dropped notifications are
counted per route (``sources``) and every failure is logged by route and URL number.

A URL is a secret (it carries a token): it is kept as a ``Secret``, registered with the
log redaction, and the logging of apprise and the HTTP libraries under it is kept out
of the node's log but for their warnings, which are passed on with every part of every
URL masked (``_DeliveryLogBridge``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import msgspec
import structlog

from bastion.monitor.alerts.config import AlertRouteConfig, Severity
from bastion.monitor.sample import SampleBuilder
from bastion.vault import redact
from bastion.vault.refs import Secret

log = structlog.get_logger("bastion.monitor.notify")

Status = Literal["firing", "repeat", "escalated", "resolved", "test"]
STOP_DRAIN_S: Final = 2.0  # close(): how long queued notifications may still go out


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message about one alert, as every route gets it."""

    alert_id: str
    alert: str
    severity: Severity
    status: Status
    summary: str
    labels: dict[str, str]
    value: float
    runbook: str
    node: str
    ts_ns: int
    """When the alert's state changed (fired, repeated, escalated, resolved)."""

    def title(self) -> str:
        return f"[{self.severity.upper()}] {self.alert} {self.status} on {self.node}"

    def body(self) -> str:
        lines = [self.summary]
        if self.labels:
            lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in self.labels.items()))
        lines.append(f"alert id: {self.alert_id}")
        if self.runbook:
            lines.append(f"runbook: {self.runbook}")
        return "\n".join(lines)


class Transport(Protocol):
    """Delivers notifications to one URL, on the URL's own thread (one transport per
    thread, made there)."""

    def prepare(self, url: str) -> None:
        """Get ready to send to ``url`` (parse it, load what it needs), before the first
        notification; raises if it cannot take the URL."""
        ...

    def send(self, url: str, notification: Notification) -> bool:
        """True once the receiver took ``notification``; may raise (a failure)."""
        ...


class AppriseTransport:
    """Delivery through apprise (``https://github.com/caronc/apprise/wiki``): no plugin
    directories scanned, nothing stored on disk, one URL at a time.

    ``min_interval_s``: the least time between two sends to one URL; None keeps
    apprise's pace for the service (none for webhooks, 1.2 s for Slack, 5.5 s for
    e-mail and most others: it sleeps on this thread until then)."""

    def __init__(self, min_interval_s: float | None = None) -> None:
        quiet_delivery_logs()  # before the import: apprise logs as it loads
        import apprise

        self._min_interval_s = min_interval_s
        self._apprise = apprise
        self._asset = apprise.AppriseAsset(plugin_paths=[], storage_mode="memory")
        self._asset.async_mode = False
        self._clients: dict[str, apprise.Apprise] = {}

    def prepare(self, url: str) -> None:
        if url in self._clients:
            return
        client = self._apprise.Apprise(asset=self._asset)
        if not client.add(url):
            raise ValueError("apprise does not take this URL (unknown scheme or bad form)")
        if self._min_interval_s is not None:
            for service in client:
                service.request_rate_per_sec = self._min_interval_s
        self._clients[url] = client

    @classmethod
    def for_route(cls, route: AlertRouteConfig) -> AppriseTransport:
        return cls(route.min_interval_s)

    def send(self, url: str, notification: Notification) -> bool:
        apprise = self._apprise
        self.prepare(url)
        if notification.status == "resolved":
            kind = apprise.NotifyType.SUCCESS
        elif notification.severity == "critical":
            kind = apprise.NotifyType.FAILURE
        elif notification.severity == "warning":
            kind = apprise.NotifyType.WARNING
        else:
            kind = apprise.NotifyType.INFO
        return bool(
            self._clients[url].notify(
                title=notification.title(), body=notification.body(), notify_type=kind
            )
        )


Outcome = Callable[[str, int, Notification, bool], None]
"""``(route, URL number, notification, delivered)`` once a notification is done with."""


@dataclass
class _Counts:
    sent: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass
class _Worker:
    """One URL of one route: its queue and the thread that empties it."""

    route: AlertRouteConfig
    index: int
    url: Secret
    make_transport: Callable[[AlertRouteConfig], Transport]
    stop: threading.Event
    on_outcome: Outcome | None
    counts: _Counts = field(default_factory=_Counts)
    queue: deque[Notification] = field(default_factory=deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    busy: bool = False
    thread: threading.Thread | None = None

    def put(self, notification: Notification) -> None:
        with self.cond:
            if len(self.queue) >= self.route.queue_size:
                self.queue.popleft()
                self.counts.dropped += 1
                log.warning(
                    "notification_dropped", route=self.route.name, url=self.index, queue_full=True
                )
            self.queue.append(notification)
            self.cond.notify()

    def idle(self) -> bool:
        return not self.queue and not self.busy

    def run(self) -> None:
        transport = self.make_transport(self.route)
        try:
            transport.prepare(self.url.reveal())
        except Exception as exc:  # sending fails the same way: counted then
            log.error("notifier_url_refused", route=self.route.name, url=self.index, error=str(exc))
        while True:
            with self.cond:
                while not self.queue and not self.stop.is_set():
                    self.cond.wait()
                if self.stop.is_set():
                    return
                notification = self.queue.popleft()
                self.busy = True
            try:
                delivered = self._deliver(transport, notification)
                if self.on_outcome is not None:
                    self.on_outcome(self.route.name, self.index, notification, delivered)
            finally:
                self.busy = False

    def _deliver(self, transport: Transport, notification: Notification) -> bool:
        route = self.route
        delay_s = route.backoff_initial_ms / 1000
        for attempt in range(1, route.attempts + 1):
            try:
                if transport.send(self.url.reveal(), notification):
                    self.counts.sent += 1
                    return True
                error = "the receiver did not take it"
            except Exception as exc:  # a transport's own error: counted, never raised
                error = type(exc).__name__
            self.counts.failed += 1
            log.warning(
                "notification_failed",
                route=route.name,
                url=self.index,
                alert_id=notification.alert_id,
                attempt=attempt,
                of=route.attempts,
                error=error,
            )
            if attempt < route.attempts:
                if self.stop.wait(delay_s):
                    return False
                delay_s = min(delay_s * 2, route.backoff_max_ms / 1000)
        log.error(
            "notification_given_up",
            route=route.name,
            url=self.index,
            alert_id=notification.alert_id,
            attempts=route.attempts,
        )
        return False


class Notifier:
    """The routes' URLs, each with its queue and delivery thread."""

    def __init__(
        self,
        routes: Iterable[AlertRouteConfig],
        urls: Mapping[str, list[Secret]],
        *,
        transport: Callable[[AlertRouteConfig], Transport] | None = None,
        on_outcome: Outcome | None = None,
    ) -> None:
        """``urls``: each route's URLs (by route name), resolved from the vault;
        ``transport`` makes each delivery thread's transport for its route (apprise's by
        default)."""
        self._stop = threading.Event()
        make = transport if transport is not None else AppriseTransport.for_route
        self.routes = {route.name: route for route in routes}
        self._workers: dict[str, list[_Worker]] = {}
        for name, route in self.routes.items():
            secrets = urls[name]
            for secret in secrets:
                redact.register(secret.reveal())
                _DeliveryLogBridge.mask(secret.reveal())
            self._workers[name] = [
                _Worker(route, i, secret, make, self._stop, on_outcome)
                for i, secret in enumerate(secrets)
            ]
        self._started = False

    def start(self) -> None:
        """Start the delivery threads (each loads what its URL needs first)."""
        if self._started:
            return
        self._started = True
        for workers in self._workers.values():
            for worker in workers:
                worker.thread = threading.Thread(
                    target=worker.run,
                    name=f"notify-{worker.route.name}-{worker.index}",
                    daemon=True,  # one stuck in a receiver never holds the process
                )
                worker.thread.start()

    def send(self, route: str, notification: Notification) -> None:
        """Queue ``notification`` for every URL of ``route``; never blocks."""
        for worker in self._workers[route]:
            worker.put(notification)

    def idle(self) -> bool:
        """Nothing queued nor being delivered."""
        return all(w.idle() for ws in self._workers.values() for w in ws)

    def counts(self, route: str) -> tuple[int, int, int]:
        """(sent, failed attempts, dropped) of ``route``'s URLs."""
        workers = self._workers[route]
        return (
            sum(w.counts.sent for w in workers),
            sum(w.counts.failed for w in workers),
            sum(w.counts.dropped for w in workers),
        )

    def sources(self, builder: SampleBuilder) -> None:
        depth = dropped = 0
        for name, workers in self._workers.items():
            sent, failed, lost = self.counts(name)
            builder.set("bastion_notifications_sent_total", sent, route=name)
            builder.set("bastion_notifications_failed_total", failed, route=name)
            dropped += lost
            depth += sum(len(w.queue) for w in workers)
        builder.set("bastion_notification_queue_depth", depth)
        builder.set("bastion_notifications_dropped_total", dropped)

    def close(self, drain_s: float = STOP_DRAIN_S) -> None:
        """Let what is queued go out for up to ``drain_s``, then stop every thread (one
        stuck in a receiver is left behind: it is a daemon)."""
        deadline = threading.Event()
        waited = 0.0
        while not self.idle() and waited < drain_s and self._started:
            deadline.wait(0.02)
            waited += 0.02
        self._stop.set()
        workers = [w for ws in self._workers.values() for w in ws]
        for worker in workers:
            with worker.cond:
                worker.cond.notify_all()
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(timeout=0.5)


# -- apprise's logging --------------------------------------------------------------------


_masked_pieces: set[str] = set()
_masked_lock = threading.Lock()


class _DeliveryLogBridge(logging.Handler):
    """The delivery libraries' warnings and errors into the node's log, with every part
    of every notifier URL (user, password, host, path segments, query values) masked;
    their debug and info lines, which print URLs whole, are dropped."""

    @staticmethod
    def mask(url: str) -> None:
        parts = urlsplit(url)
        pieces = {url, parts.netloc, parts.username or "", parts.password or ""}
        pieces.add(parts.hostname or "")
        pieces.update(s for s in parts.path.split("/"))
        pieces.update(v for _, v in parse_qsl(parts.query))
        pieces.add(parts.fragment)
        with _masked_lock:
            _masked_pieces.update(p for p in pieces if len(p) >= redact.MIN_LENGTH)

    @staticmethod
    def masked(text: str) -> str:
        with _masked_lock:
            pieces = sorted(_masked_pieces, key=len, reverse=True)
        for piece in pieces:
            text = text.replace(piece, redact.MASK)
        return text

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format from the library: nothing worth passing on
            message = str(record.msg)
        log.warning(
            "notifier_library",
            library=record.name,
            level=record.levelname,
            message=self.masked(message),
        )


_bridge = _DeliveryLogBridge(level=logging.WARNING)


DELIVERY_LOGGERS: Final = ("apprise", "requests", "urllib3")
"""The libraries a delivery goes through, which log URLs whole at debug level (urllib3:
the request line, with a webhook's token in its path)."""


def quiet_delivery_logs() -> None:
    """Keep ``DELIVERY_LOGGERS`` to the bridge: their warnings masked, the rest dropped."""
    for name in DELIVERY_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        logger.handlers = [_bridge]

"""The dead-man's switch: a ping to an outside monitor every ``interval_s`` seconds,
from its own thread, while the trading loop turns.

The loop proves it turns by setting a heartbeat (``beat``, a few times a second); a
ping goes out only if the last beat is recent (``STALL_S``), so a wedged loop, a dead
process or a dead host all fall silent and the outside monitor (healthchecks.io, Dead
Man's Snitch, a Prometheus blackbox probe, ...) raises the alarm. A ping is an HTTP GET
of the configured URL with a timeout; pings and failures are counted (``sources``),
failures logged without the URL (it is a secret: it carries the monitor's token).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import structlog

from bastion.errors import ConfigError
from bastion.monitor.sample import SampleBuilder
from bastion.vault import redact
from bastion.vault.refs import Secret

log = structlog.get_logger("bastion.monitor.deadman")

STALL_S: Final = 2.0
"""A loop whose last beat is older than this is not turning: no ping."""


def check_ping_url(url: Secret, key: str) -> None:
    """``ConfigError`` naming ``key`` (never the URL) unless it is an http(s) URL."""
    parts = urlsplit(url.reveal())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"key '{key}': the secret {url.name!r} must hold an http:// or https:// URL "
            "(the outside monitor's ping address)"
        )


def http_get(url: str, timeout_s: float) -> None:
    """GET ``url``; raises unless the answer is 2xx."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "bastion"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read(1024)


class DeadmanSwitch:
    """Pings ``url`` every ``interval_s`` while ``beat`` was called within ``STALL_S``."""

    def __init__(
        self,
        url: Secret,
        *,
        interval_s: float,
        timeout_s: float,
        monotonic: Callable[[], float],
        ping: Callable[[str, float], None] = http_get,
    ) -> None:
        """``monotonic``: the node's clock (``Clock.monotonic_s``), read by the loop's
        beats and by this thread alike."""
        redact.register(url.reveal())
        self._url = url
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._ping = ping
        self._monotonic = monotonic
        self._last_beat = monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.failures = 0
        self.skipped = 0
        """Pings not sent: the loop was not turning."""

    def beat(self) -> None:
        """The trading loop is turning (called from it)."""
        self._last_beat = self._monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="deadman", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout_s + 1.0)

    def ping_once(self) -> bool:
        """One round: ping if the loop turns; True if a ping went out and was answered."""
        stalled_s = self._monotonic() - self._last_beat
        if stalled_s > STALL_S:
            self.skipped += 1
            log.error("deadman_loop_stalled", stalled_s=round(stalled_s, 3), ping="withheld")
            return False
        try:
            self._ping(self._url.reveal(), self._timeout_s)
        except Exception as error:  # urllib's, a socket's: counted, logged without the URL
            self.failures += 1
            log.warning("deadman_ping_failed", error=_describe(error))
            return False
        self.pings += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ping_once()
            self._stop.wait(self._interval_s)

    def sources(self, builder: SampleBuilder) -> None:
        builder.set("bastion_deadman_pings_total", self.pings)
        builder.set("bastion_deadman_failures_total", self.failures)


def _describe(error: Exception) -> str:
    """What went wrong, without the URL (an ``HTTPError`` carries it)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {redact.redact(str(error.reason))}"
    return type(error).__name__

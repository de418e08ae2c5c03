"""The venue simulator's own metrics and health (``[monitoring]`` in its config), served
the same way as a node's (``bastion.monitor.exposition``), under ``bastion_venuesim_*``
names: its sessions (the accounts' and the read-only ones) by state, orders received,
fills made, orders resting, quotes produced, the FIX acceptor's unsent bytes and the
connections it dropped for not reading them (slow consumers), and the host's process
readings.
``/readyz`` is 200 once the FIX acceptor listens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry

from bastion.clock import Clock
from bastion.fix.session import SessionState
from bastion.fix.transport import FixAcceptor
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.exposition import MonitorServer, SampleCollector, monitor_app
from bastion.monitor.host import HostWatch
from bastion.monitor.sample import Sample, SampleBuilder
from bastion.monitor.sampler import Sampler
from bastion.tasks import spawn

_STATES: Final = {
    SessionState.ACTIVE: "logged_on",
    SessionState.AWAITING_LOGON: "connected",
    SessionState.LOGGING_OUT: "connected",
    SessionState.DISCONNECTED: "disconnected",
}
NOT_LISTENING: Final = "the FIX acceptor is not listening yet"


class VenueSimMonitor:
    """Metrics and health of one venue simulator process."""

    def __init__(
        self,
        config: MonitoringConfig,
        *,
        clock: Clock,
        sessions: Callable[[], Iterable[SessionState]],
        counters: Mapping[str, int],
        resting: Callable[[], int | None],
        acceptor: FixAcceptor | None = None,
    ) -> None:
        """``sessions``: the state of each session (accounts' and read-only); ``counters``: the
        simulator's (``orders_received``, ``fills``, ``quotes``); ``resting``: orders
        resting in its books (None before its engine runs); ``acceptor``: its FIX
        acceptor (unsent bytes, slow consumers dropped)."""
        self.config = config
        self._clock = clock
        self._sessions = sessions
        self._counters = counters
        self._resting = resting
        self._acceptor = acceptor
        self.latest: Sample | None = None
        self.listening = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SampleCollector(lambda: self.latest))
        self._http = MonitorServer(
            config.listen, monitor_app(self.registry, health=self.health, readiness=self.readiness)
        )
        self._interval_s = config.sample_interval_ms / 1000
        self._sampler = Sampler(clock=clock, interval_s=self._interval_s, on_sample=self._took)
        self._sampler.sources.append(self._read)
        self._host = HostWatch(disk_path=None)
        self._started_s = clock.monotonic_s()
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        return self._http.address

    def bind(self) -> tuple[str, int]:
        return self._http.bind()

    def sample_now(self) -> Sample:
        """Take a sample now, besides the periodic ones."""
        return self._sampler.sample()

    def readiness(self) -> list[str]:
        return [] if self.listening else [NOT_LISTENING]

    def health(self) -> str | None:
        latest = self.latest
        if latest is None:
            return "the event loop has not sampled yet"
        age = self._clock.monotonic_s() - latest.monotonic_s
        if age > max(2.0, 10 * self._interval_s):
            return f"the event loop has not sampled for {age:.1f} s: it is stalled"
        return None

    def start(self) -> None:
        self.bind()
        self._host.start()
        self._sampler.sample()
        self._http.start()
        self._task = spawn("venuesim-monitor-sampler", self._sampler.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._http.stop()
        self._host.stop()

    def _took(self, sample: Sample) -> None:
        self.latest = sample

    def _read(self, b: SampleBuilder) -> None:
        states = dict.fromkeys(("logged_on", "connected", "disconnected"), 0)
        for state in self._sessions():
            states[_STATES[state]] += 1
        for name, n in states.items():
            b.set("bastion_venuesim_sessions", n, state=name)
        counters = self._counters
        b.set("bastion_venuesim_orders_total", counters.get("orders_received", 0))
        b.set("bastion_venuesim_fills_total", counters.get("fills", 0))
        b.set("bastion_venuesim_quotes_total", counters.get("quotes", 0))
        acceptor = self._acceptor
        if acceptor is not None:
            b.set("bastion_venuesim_unsent_bytes", acceptor.unsent_bytes())
            b.set("bastion_venuesim_slow_consumers_total", acceptor.counters["slow_consumers"])
        resting = self._resting()
        if resting is not None:
            b.set("bastion_venuesim_resting_orders", resting)
        b.set("bastion_venuesim_up_seconds", self._clock.monotonic_s() - self._started_s)
        host = self._host.latest
        if host is not None:
            b.set("bastion_process_cpu_percent", host.cpu_percent)
            b.set("bastion_process_memory_rss_bytes", host.rss_bytes)
            b.set("bastion_process_open_fds", host.open_fds)

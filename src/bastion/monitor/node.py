"""``NodeMonitor``: a trading node's metrics and health, built by the node's runner when
``[monitoring]`` is set and enabled.

Threads: the sampler runs on the node's event loop (``bastion.monitor.sampler``) every
``monitoring.sample_interval_ms`` and swaps the new ``Sample`` into ``latest``; the HTTP
listener (``bastion.monitor.exposition``) and the host readings
(``bastion.monitor.host``) run on threads of their own and read only ``latest``, the
histograms and ``readiness()``. Bus subscriptions are on order and trading-state
events only (``bastion.monitor.orders``).

The API other parts of the observability plane use (the alert engine, notifiers):

- ``add_source(fn)``: ``fn(builder: SampleBuilder) -> None`` adds series to every
  sample (their names must be in ``bastion.monitor.catalogue``);
- ``add_listener(fn)``: ``fn(sample: Sample) -> None`` is called on the loop after each
  sample (it must not block: hand slow work to a thread);
- ``latest``: the last sample (None before the first); ``sample_now()``: one more, now;
  ``readiness()``: why the node is not ready (empty: ready); ``health()``: why it is
  not alive (None: alive); ``address`` / ``url``: where it listens;
- ``bind()`` (at start, so a bad address stops the node), ``attach(kernel, ...)``,
  ``start()`` (on the running loop), ``trading_started()``, ``await stop()``.

An HA standby (``standing_by()``) is served before it has a kernel: its own series
(the HA readings it adds as a source, the process's), ``/healthz`` as for any node and
``/readyz`` not ready (``STANDBY``); when it leads, ``attach`` and ``start`` again
serve it as any node.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry

from bastion import __version__
from bastion.clock import Clock
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.exposition import Histograms, MonitorServer, SampleCollector, monitor_app
from bastion.monitor.host import GcWatch, HostWatch
from bastion.monitor.orders import OrderStats
from bastion.monitor.sample import Sample, SampleBuilder
from bastion.monitor.sampler import Listener, Sampler, Source
from bastion.monitor.trading import TradingReadings
from bastion.tasks import spawn

if TYPE_CHECKING:
    from bastion.journal.base import Journal
    from bastion.node.kernel import Kernel

RTT_PROBE_S: Final = 5.0
"""Each venue session measures its round trip at least this often."""
WEDGED_AFTER_SAMPLES: Final = 10
"""``/healthz`` fails once the loop has not sampled for this many intervals (2 s at least)."""
NOT_RECOVERED: Final = "not reconciled: the node is still recovering and reconciling its venues"
STANDBY: Final = "standby: an HA member that does not lead (it trades once it wins the lease)"


class NodeMonitor:
    """Metrics, health and readiness of one trading node."""

    def __init__(self, config: MonitoringConfig, *, node_id: str, mode: str, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.node_id = node_id
        self.mode = mode
        self.latest: Sample | None = None
        """The last sample (a reference swapped on the loop; read from any thread)."""
        self._reasons: tuple[str, ...] = (NOT_RECOVERED,)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SampleCollector(lambda: self.latest))
        self.histograms = Histograms(self.registry)
        self._server = MonitorServer(
            config.listen,
            monitor_app(self.registry, health=self.health, readiness=self.readiness),
        )
        interval_s = config.sample_interval_ms / 1000
        self._sampler = Sampler(clock=self.clock, interval_s=interval_s, on_sample=self._took)
        self._sampler.sources.append(self._read_node)
        self._wedged_after_s = max(2.0, WEDGED_AFTER_SAMPLES * interval_s)
        self._started_s = self.clock.monotonic_s()
        self._kernel: Kernel | None = None
        self._journal: Journal | None = None
        self._trading: TradingReadings | None = None
        self._host: HostWatch | None = None
        self._gc = GcWatch(self.clock.monotonic_s)
        self._epoch = 0
        self._recovered = False
        self._standby = False
        self._served = False
        self._task: asyncio.Task[None] | None = None

    # -- the API ------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int] | None:
        """The (host, port) the listener is bound to (None before ``bind``)."""
        return self._server.address

    @property
    def url(self) -> str | None:
        address = self.address
        if address is None:
            return None
        host, port = address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def add_source(self, fn: Source) -> None:
        """``fn(builder)`` adds series to every sample, after the node's own."""
        self._sampler.sources.append(fn)

    def add_listener(self, fn: Listener) -> None:
        """``fn(sample)`` is called on the loop with every new sample."""
        self._sampler.listeners.append(fn)

    def sample_now(self) -> Sample:
        """Take a sample now, on the loop, besides the periodic ones (a drill, a test)."""
        return self._sampler.sample()

    def readiness(self) -> list[str]:
        """Why the node is not ready, as of the last sample (empty: ready)."""
        return list(self._reasons)

    def health(self) -> str | None:
        """Why the node is not alive (None: its loop sampled recently)."""
        latest = self.latest
        if latest is None:
            return "the event loop has not sampled yet"
        age = self.clock.monotonic_s() - latest.monotonic_s
        if age > self._wedged_after_s:
            return f"the event loop has not sampled for {age:.1f} s: it is stalled"
        return None

    # -- lifecycle ----------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Listen on ``monitoring.listen`` now (``ConfigError`` naming it otherwise);
        nothing is served before ``start``."""
        return self._server.bind()

    def standing_by(self) -> None:
        """An HA standby: served (``start``) without a kernel, never ready."""
        self._standby = True

    def attach(self, kernel: Kernel, *, journal: Journal | None, epoch: int) -> None:
        """Watch this kernel (its bus's order events from now on) and its journal."""
        self._standby = False
        orders = OrderStats(
            bus=kernel.bus,
            order=kernel.execution.order,
            orders_after=kernel.execution.orders_after,
            last_quotes=kernel.last_quotes,
            started_ns=self.clock.timestamp_ns(),
        )
        self._kernel = kernel
        self._journal = journal
        self._epoch = epoch
        self._trading = TradingReadings(kernel=kernel, journal=journal, orders=orders)
        self._host = HostWatch(disk_path=None if journal is None else journal.path.parent)

    def start(self) -> None:
        """Sample once, then serve and sample every interval (on the running loop); again
        after an ``attach`` (a standby that now leads): the new kernel's parts start."""
        self.bind()
        if self._kernel is not None:
            for venue in self._kernel.venues.values():
                venue.probe_round_trip(RTT_PROBE_S)
        if self._host is not None:  # made by attach, which comes once
            self._host.start()
        self._gc.install()
        self._sampler.sample()
        if not self._served:
            self._served = True
            self._server.start()
            self._task = spawn("monitor-sampler", self._sampler.run())

    def trading_started(self) -> None:
        """Recovery and the first reconciliation are done (readiness then looks at the
        venues, feeds and journal only)."""
        self._recovered = True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._server.stop()
        if self._host is not None:
            self._host.stop()
        self._gc.uninstall()

    # -- sampling (on the loop) ---------------------------------------------------------
    def _took(self, sample: Sample) -> None:
        self.latest = sample

    def _read_node(self, b: SampleBuilder) -> None:
        trading = self._trading
        if trading is not None:
            trading.all(b)
            self.histograms.observe(*trading.orders.take_latencies(), self._gc.take())
        host = None if self._host is None else self._host.latest
        if host is not None:
            b.set("bastion_process_cpu_percent", host.cpu_percent)
            b.set("bastion_process_memory_rss_bytes", host.rss_bytes)
            b.set("bastion_process_open_fds", host.open_fds)
            if host.disk_free_bytes is not None:
                b.set("bastion_disk_free_bytes", host.disk_free_bytes)
            if host.disk_free_ratio is not None:
                b.set("bastion_disk_free_ratio", host.disk_free_ratio)
            clock = host.clock
            if clock is not None:
                b.set("bastion_clock_synchronized", clock.synchronized)
                if clock.offset_s is not None:
                    b.set("bastion_clock_offset_seconds", clock.offset_s)
        reasons = tuple(self._not_ready())
        self._reasons = reasons
        b.set("bastion_node_ready", not reasons)
        b.set(
            "bastion_node_info",
            1,
            node=self.node_id,
            mode=self.mode,
            version=__version__,
            epoch=str(self._epoch),
        )
        b.set("bastion_node_up_seconds", self.clock.monotonic_s() - self._started_s)

    def _not_ready(self) -> list[str]:
        kernel = self._kernel
        if kernel is None:
            return [STANDBY if self._standby else NOT_RECOVERED]
        reasons = [] if self._recovered else [NOT_RECOVERED]
        for name, venue in kernel.venues.items():
            if not venue.connected:
                reasons.append(f"venue {name}: session not logged on")
            elif not venue.reconciled:
                reasons.append(f"venue {name}: not reconciled since its last logon")
        stale_s = self.config.quote_stale_s
        now_ns = kernel.clock.timestamp_ns()
        for feed in kernel.feeds:
            for iid in sorted(feed.instruments):
                quote = kernel.last_quotes.get(iid)
                if quote is None:
                    reasons.append(f"feed {feed.name}: no quote for {iid} yet")
                    continue
                age_s = (now_ns - quote.ts_ns) / 1e9
                if age_s > stale_s:
                    reasons.append(
                        f"feed {feed.name}: no quote for {iid} for {age_s:.1f} s "
                        f"(monitoring.quote_stale_s {stale_s:g})"
                    )
        journal = self._journal
        if journal is not None and not journal.stats().writable:
            reasons.append(f"journal {journal.path}: not writable (a write failed, or closed)")
        return reasons

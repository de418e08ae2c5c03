"""The sampler: a task on the process's event loop that reads the process's state into
an immutable ``Sample`` every ``interval_s``, hands it over (a reference swap), then
calls the listeners with it.

Sources are ``fn(builder)`` callables that add series; a source that raises is logged
(once per source) and the sample goes on without it. The loop's lag is the sampler's
own wake-up overshoot: how late the loop let it run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import structlog

from bastion.clock import Clock
from bastion.monitor.sample import Sample, SampleBuilder

log = structlog.get_logger("bastion.monitor")

Source = Callable[[SampleBuilder], None]
"""Adds series to a sample being built (``NodeMonitor.add_source``)."""
Listener = Callable[[Sample], None]
"""Called on the loop with each new sample (``NodeMonitor.add_listener``)."""

LOOP_LAG: Final = "bastion_event_loop_lag_seconds"


class Sampler:
    """Samples every ``interval_s`` on the running loop (``run``), or once (``sample``)."""

    def __init__(self, *, clock: Clock, interval_s: float, on_sample: Listener) -> None:
        self._clock = clock
        self.interval_s = interval_s
        self._on_sample = on_sample
        self.sources: list[Source] = []
        self.listeners: list[Listener] = []
        self._failing: set[int] = set()  # sources and listeners already logged as failing
        self.lag_s = 0.0

    def sample(self) -> Sample:
        """Build one sample from every source now, hand it over, tell the listeners."""
        clock = self._clock
        builder = SampleBuilder()
        builder.set(LOOP_LAG, self.lag_s)
        for source in self.sources:
            try:
                source(builder)
            except Exception as error:
                self._failed("monitor_source_failed", source, error)
        sample = builder.build(clock.timestamp_ns(), clock.monotonic_s())
        self._on_sample(sample)
        for listener in self.listeners:
            try:
                listener(sample)
            except Exception as error:
                self._failed("monitor_listener_failed", listener, error)
        return sample

    async def run(self) -> None:
        clock = self._clock
        interval = self.interval_s
        due = clock.monotonic_s()
        while True:
            self.sample()
            due += interval
            delay = due - clock.monotonic_s()
            await asyncio.sleep(max(0.0, delay))
            late = clock.monotonic_s() - due
            self.lag_s = max(0.0, late)
            if late > interval:  # the loop was stalled: start afresh rather than catch up
                due = clock.monotonic_s()

    def _failed(self, event: str, what: object, error: Exception) -> None:
        if id(what) in self._failing:
            return
        self._failing.add(id(what))
        name = getattr(what, "__qualname__", repr(what))
        log.error(event, what=name, error=repr(error))

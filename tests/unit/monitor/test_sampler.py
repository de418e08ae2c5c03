"""The sampler on the loop: a sample per interval handed over, the loop's lag measured
as the sampler's own late wake-up, a failing source logged once and skipped."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from bastion.clock import SimClock
from bastion.monitor.sample import Sample, SampleBuilder
from bastion.monitor.sampler import LOOP_LAG, Sampler
from kit.waiting import until

T0 = 1_704_205_800_000_000_000


def test_when_loop_held_up_then_next_sample_reports_the_lag() -> None:
    """The clock jumps 0.3 s while the sampler waits 0.01 s: it woke 0.29 s late."""

    async def main() -> list[Sample]:
        clock = SimClock(T0)
        samples: list[Sample] = []
        sampler = Sampler(clock=clock, interval_s=0.01, on_sample=samples.append)
        task = asyncio.create_task(sampler.run())
        try:
            await until(lambda: samples, what="the first sample")
            clock.advance_to(T0 + 300_000_000)
            await until(lambda: (samples[-1].get(LOOP_LAG) or 0) > 0, what="a late sample")
            return samples
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    samples = asyncio.run(main())
    assert samples[0].get(LOOP_LAG) == 0.0
    assert samples[-1].get(LOOP_LAG) == pytest.approx(0.29)


def test_when_a_source_fails_then_logged_once_and_the_others_still_sampled() -> None:
    """Three samples: the broken source is logged the first time only; the good one's
    series is in every sample."""
    clock = SimClock(T0)
    samples: list[Sample] = []
    sampler = Sampler(clock=clock, interval_s=1.0, on_sample=samples.append)

    def broken(builder: SampleBuilder) -> None:
        raise ValueError("boom")

    sampler.sources += [broken, lambda b: b.set("bastion_cash", 5)]
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            sampler.sample()
    assert [e["event"] for e in logs] == ["monitor_source_failed"]
    assert [s.get("bastion_cash") for s in samples] == [5.0, 5.0, 5.0]

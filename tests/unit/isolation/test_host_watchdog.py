"""The strategy watchdog against stalls of the core's own event loop (a long callback,
a pause of the whole process): the stall is reported as loop lag and is not counted
against a strategy process, whose answer may have waited unread meanwhile; a process
that really stays silent still fails once its own ``max_handler_ms`` is up.

The process is the host's view of one (its channel a socket pair, the test playing the
strategy's end); the stall is the test blocking the loop with ``time.sleep``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.clock import LiveClock
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.isolation import protocol as p
from bastion.isolation.host import ProcessStrategyHost, StrategyProcess
from bastion.model.events import StrategyFailed
from bastion.strategy.config import ProcessLimits, StrategyConfig
from kit.risk_node import Node
from kit.strategies import IDLE_STRATEGY
from kit.waiting import until

STALL_S = 0.3


@pytest.fixture
def channel() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A strategy process's channel: (the core's end, the strategy's end), closed after."""
    core_end, strategy_end = socket.socketpair()
    yield core_end, strategy_end
    core_end.close()
    strategy_end.close()


def watched(
    tmp_path: Path, channel: tuple[socket.socket, socket.socket], max_handler_ms: int
) -> tuple[ProcessStrategyHost, StrategyProcess, list[StrategyFailed]]:
    """A host with one running process ``s1`` on ``channel`` that has one input
    unhandled since now: (host, its process, the failures published)."""
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY, encoding="utf-8")
    node = Node()
    config = StrategyConfig(
        name="s1",
        path="idle.py",
        class_name="Idle",
        limits=ProcessLimits(max_handler_ms=max_handler_ms),
    )
    clock = LiveClock()
    host = ProcessStrategyHost(
        configs=[config],
        base_dir=tmp_path,
        bus=node.bus,
        clock=clock,
        portfolio=node.portfolio,
        execution=node.execution,
        risk=node.gate,
        ids=ClientOrderIdGenerator("node", 1),
        instruments=[],
        last_quotes={},
        flush=lambda: None,
    )
    failed: list[StrategyFailed] = []
    node.bus.subscribe(StrategyFailed, failed.append)
    core_end = channel[0]
    core_end.setblocking(False)
    proc = host.processes["s1"]
    proc.sock = core_end
    proc.state = "running"
    host.running.add("s1")
    proc.sent = 1
    proc.busy_since = proc.last_input = clock.monotonic_s()
    return host, proc, failed


def test_when_the_core_stalls_with_the_answer_waiting_then_the_process_is_not_failed(
    tmp_path: Path, channel: tuple[socket.socket, socket.socket]
) -> None:
    """The process answers during a 300 ms stall of the core (max_handler_ms 200): the
    watchdog reads the answer instead of failing it, and reports the stall as lag."""
    host, proc, failed = watched(tmp_path, channel, max_handler_ms=200)

    async def main() -> None:
        watch = asyncio.create_task(host._watch())
        await asyncio.sleep(0)  # the watchdog takes its first look at the time
        channel[1].sendall(p.frame(p.Done(1)))  # the strategy's answer
        time.sleep(STALL_S)  # the core's loop stalls (this is the stall, not a wait)
        try:
            await until(lambda: proc.acked == 1, timeout_s=2, what="the answer read")
        finally:
            watch.cancel()

    asyncio.run(main())
    assert (proc.state, failed) == ("running", [])
    assert host.loop_lag_max_ms >= STALL_S * 1000 - 15


def test_when_a_process_stays_silent_after_a_core_stall_then_it_fails_on_its_own_time(
    tmp_path: Path, channel: tuple[socket.socket, socket.socket]
) -> None:
    """A process that does not answer: the 300 ms the core stalled do not count, so it
    fails 200 ms (its max_handler_ms) after the stall, as unresponsive."""
    host, proc, failed = watched(tmp_path, channel, max_handler_ms=200)

    async def main() -> float:
        watch = asyncio.create_task(host._watch())
        await asyncio.sleep(0)
        time.sleep(STALL_S)  # the stall itself
        stall_ended = time.monotonic()
        try:
            await until(lambda: failed, timeout_s=2, what="the failure")
        finally:
            watch.cancel()
        return time.monotonic() - stall_ended

    after_s = asyncio.run(main())
    assert proc.state == "failed"
    (failure,) = failed
    assert failure.error.startswith("unresponsive: 1 inputs unhandled for ")
    assert 0.2 - 0.02 <= after_s <= 0.2 + 0.2, after_s


def test_when_max_handler_ms_is_long_then_loop_lag_is_still_measured_finely(
    tmp_path: Path, channel: tuple[socket.socket, socket.socket]
) -> None:
    """With a 60 s max_handler_ms the watchdog still looks every few ms: a 300 ms stall
    shows in the loop lag at once (not once a 15 s tick is over), nearly in full."""
    host, proc, failed = watched(tmp_path, channel, max_handler_ms=60_000)

    async def main() -> None:
        watch = asyncio.create_task(host._watch())
        await asyncio.sleep(0)
        time.sleep(STALL_S)  # the stall itself
        try:
            await until(lambda: host.loop_lag_max_ms > 0, timeout_s=1, what="the lag")
        finally:
            watch.cancel()

    asyncio.run(main())
    assert host.loop_lag_max_ms >= STALL_S * 1000 - 15, host.loop_lag_max_ms
    assert (proc.state, failed) == ("running", [])

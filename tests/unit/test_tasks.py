"""The task helper: every background task is named and tracked, a crash is logged and
reported by name, and a bounded wait for the first of several leaves nothing running."""

from __future__ import annotations

import asyncio

import pytest

from bastion.clock import LiveClock, SimClock
from bastion.tasks import TaskManager, spawn, wait_first


async def _fail() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("feed broke")


def test_when_a_spawned_task_crashes_then_its_name_and_error_are_reported() -> None:
    """``spawn`` names the task and reports its crash (nothing is fire-and-forget)."""
    crashes: list[tuple[str, str]] = []

    async def scenario() -> None:
        task = spawn("feed", _fail(), on_crash=lambda name, e: crashes.append((name, str(e))))
        assert task.get_name() == "feed"
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop turn

    asyncio.run(scenario())
    assert crashes == [("feed", "feed broke")]


def test_when_a_managed_task_crashes_then_reported_and_forgotten() -> None:
    """The manager tracks tasks by name, reports a crash, and cancels the rest on stop."""
    crashes: list[str] = []

    async def scenario() -> list[str]:
        tasks = TaskManager(on_crash=lambda name, _e: crashes.append(name))
        tasks.spawn("idle", asyncio.Event().wait())
        crashing = tasks.spawn("crash", _fail())
        with pytest.raises(ValueError, match="already running"):
            tasks.spawn("idle", asyncio.Event().wait())
        await asyncio.gather(crashing, return_exceptions=True)
        await asyncio.sleep(0)
        names = tasks.names
        await tasks.cancel_all()
        return names

    assert asyncio.run(scenario()) == ["idle"]
    assert crashes == ["crash"]


def test_when_waiting_for_the_first_then_the_others_are_canceled() -> None:
    """``wait_first`` returns at the first done awaitable and cancels the others."""

    async def scenario() -> tuple[bool, bool]:
        first, never = asyncio.Event(), asyncio.Event()
        first.set()
        waiting = asyncio.ensure_future(never.wait())
        await wait_first(first.wait(), waiting, timeout_s=5)
        return waiting.cancelled(), never.is_set()

    assert asyncio.run(scenario()) == (True, False)


def test_when_nothing_finishes_then_wait_first_returns_after_the_timeout() -> None:
    """The wait is bounded: nothing done, it returns after ``timeout_s``."""

    async def scenario() -> float:
        clock = LiveClock()
        started = clock.monotonic_s()
        await wait_first(asyncio.Event().wait(), timeout_s=0.05)
        return clock.monotonic_s() - started

    assert 0.04 <= asyncio.run(scenario()) < 5


def test_when_simulated_then_monotonic_time_is_the_simulated_time() -> None:
    """Deadlines on a simulated clock move with simulated time only."""
    clock = SimClock(2_000_000_000)
    assert clock.monotonic_s() == 2.0
    clock.advance_to(3_500_000_000)
    assert clock.monotonic_s() == 3.5

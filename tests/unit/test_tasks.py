"""The task helper: every background task is named and tracked, a crash is logged and
reported by name."""

from __future__ import annotations

import asyncio

import pytest

from bastion.clock import SimClock
from bastion.tasks import TaskManager, spawn


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


def test_when_simulated_then_monotonic_time_is_the_simulated_time() -> None:
    """Deadlines on a simulated clock move with simulated time only."""
    clock = SimClock(2_000_000_000)
    assert clock.monotonic_s() == 2.0
    clock.advance_to(3_500_000_000)
    assert clock.monotonic_s() == 3.5

"""The one way to start a background task: named, tracked, and canceled on stop.

A task that dies with an exception is logged by name and reported to
``on_crash`` (the node halts on it); nothing is fire-and-forget.

- ``TaskManager``: a component's set of tasks, canceled together on stop.
- ``spawn``: one task whose owner keeps it and cancels it itself (a FIX session's
  connection loop, a timer ticking one connection); a crash is logged all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger("bastion.tasks")

CrashHandler = Callable[[str, BaseException], None]

_detached: set[asyncio.Task[Any]] = set()
"""Tasks started by ``spawn``: the loop keeps only weak references to its tasks."""


def spawn(
    name: str, coro: Coroutine[Any, Any, Any], *, on_crash: CrashHandler | None = None
) -> asyncio.Task[Any]:
    """Start ``coro`` as a task named ``name``, for an owner that keeps it and cancels it.

    If it dies with an exception, the crash is logged and reported to ``on_crash``."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _detached.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        _detached.discard(task)
        _report(task, on_crash)

    task.add_done_callback(done)
    return task


def _report(task: asyncio.Task[Any], on_crash: CrashHandler | None) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("task_crashed", task=task.get_name(), error=repr(error))
        if on_crash is not None:
            on_crash(task.get_name(), error)


class TaskManager:
    def __init__(self, on_crash: CrashHandler | None = None) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._on_crash = on_crash

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        if name in self._tasks:
            coro.close()
            raise ValueError(f"a task named {name!r} is already running")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task.get_name(), None)
        _report(task, self._on_crash)

    @property
    def names(self) -> list[str]:
        return sorted(self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The one way tests wait: poll a condition until it holds or a deadline passes.

``eventually`` polls from plain code (a node in a subprocess, a thread); ``until`` is
the same loop for a coroutine, yielding to the event loop between polls. Both return
the predicate's first truthy value; an ``AssertionError`` raised by the predicate counts
as "not yet". At the deadline they fail with an ``AssertionError`` naming what was
awaited (``what``, or the predicate's name) and the last assertion that failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal, NoReturn, TypeVar

T = TypeVar("T")
# What a predicate returns: a value, or a falsy "not yet" (never returned by the helpers).
Predicate = Callable[[], T | Literal[False] | None]

DEFAULT_TIMEOUT_S = 10.0


def eventually(
    predicate: Predicate[T],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    what: str | None = None,
    interval_s: float = 0.02,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        result, error = _poll(predicate)
        if result:
            return result
        if time.monotonic() >= deadline:
            _timed_out(predicate, what, timeout_s, error)
        time.sleep(interval_s)


async def until(
    predicate: Predicate[T],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    what: str | None = None,
    interval_s: float = 0.01,
) -> T:
    """``eventually`` for a coroutine: the event loop runs between polls."""
    deadline = time.monotonic() + timeout_s
    while True:
        result, error = _poll(predicate)
        if result:
            return result
        if time.monotonic() >= deadline:
            _timed_out(predicate, what, timeout_s, error)
        await asyncio.sleep(interval_s)


def _poll(predicate: Predicate[T]) -> tuple[T | Literal[False] | None, AssertionError | None]:
    try:
        return predicate(), None
    except AssertionError as e:
        return None, e


def _timed_out(
    predicate: Callable[[], object],
    what: str | None,
    timeout_s: float,
    error: AssertionError | None,
) -> NoReturn:
    awaited = what or getattr(predicate, "__name__", repr(predicate))
    message = f"timed out after {timeout_s}s waiting for {awaited}"
    if error is not None:
        raise AssertionError(f"{message}: {error}") from error
    raise AssertionError(message)

"""The kit's polling helpers: the first truthy value, "not yet" assertions, the deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kit.waiting import eventually, until


def counting(ready_at: int) -> tuple[Callable[[], int | None], list[int]]:
    """A predicate that is falsy for ``ready_at - 1`` polls, then returns the poll number."""
    polls: list[int] = []

    def predicate() -> int | None:
        polls.append(len(polls) + 1)
        return polls[-1] if polls[-1] >= ready_at else None

    return predicate, polls


def test_when_predicate_turns_truthy_then_eventually_returns_its_value() -> None:
    """The third poll is truthy: eventually returns 3 after exactly three polls."""
    predicate, polls = counting(3)
    assert eventually(predicate, interval_s=0) == 3
    assert polls == [1, 2, 3]


def test_when_predicate_turns_truthy_then_until_returns_its_value() -> None:
    """The async form polls the same way between turns of the event loop."""
    predicate, polls = counting(3)
    assert asyncio.run(until(predicate, interval_s=0)) == 3
    assert polls == [1, 2, 3]


def test_when_predicate_asserts_then_it_is_polled_again() -> None:
    """An AssertionError from the predicate means "not yet", not a failure."""
    polls: list[int] = []

    def ready() -> bool:
        polls.append(1)
        assert len(polls) >= 2, "first poll"
        return True

    assert eventually(ready, interval_s=0) is True
    assert len(polls) == 2


def test_when_deadline_passes_then_failure_names_what_was_awaited() -> None:
    """At the deadline: an AssertionError naming ``what`` (or the predicate)."""

    def never_ready() -> bool:
        return False

    with pytest.raises(AssertionError, match="waiting for the fill"):
        eventually(never_ready, timeout_s=0.01, what="the fill", interval_s=0)
    with pytest.raises(AssertionError, match="waiting for never_ready"):
        asyncio.run(until(never_ready, timeout_s=0.01, interval_s=0))


def test_when_deadline_passes_after_assertions_then_the_last_one_is_reported() -> None:
    """The failure carries the last assertion the predicate raised."""

    def position() -> bool:
        raise AssertionError("position is 3, want 5")

    with pytest.raises(AssertionError, match=r"waiting for position: position is 3, want 5"):
        eventually(position, timeout_s=0.01, interval_s=0)

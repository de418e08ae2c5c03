"""The message bus: publish order and isolation, command endpoints, and the kernel's bus."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.model.enums import TradingState
from bastion.model.events import TradingStateChanged
from bastion.node.kernel import Kernel


class Ping(msgspec.Struct, frozen=True):
    n: int


class LoudPing(Ping, frozen=True):
    pass


class Reset(msgspec.Struct, frozen=True):
    reason: str


def test_when_published_then_subscribers_called_in_subscription_order() -> None:
    """Subscribers of a type run in the order they subscribed, each once per publish."""
    bus = MessageBus()
    calls: list[tuple[str, int]] = []
    for name in ("c", "a", "b"):
        bus.subscribe(Ping, lambda e, name=name: calls.append((name, e.n)))
    bus.publish(Ping(1))
    bus.publish(Ping(2))
    assert calls == [("c", 1), ("a", 1), ("b", 1), ("c", 2), ("a", 2), ("b", 2)]


def test_when_published_then_dispatch_is_by_exact_type() -> None:
    """A subclass instance does not reach subscribers of its base type, and vice versa."""
    bus = MessageBus()
    base: list[object] = []
    loud: list[object] = []
    bus.subscribe(Ping, base.append)
    bus.subscribe(LoudPing, loud.append)
    bus.publish(LoudPing(1))
    bus.publish(Ping(2))
    assert base == [Ping(2)]
    assert loud == [LoudPing(1)]


def test_when_nobody_subscribed_then_publish_is_a_no_op() -> None:
    """Publishing a type with no subscribers does nothing and raises nothing."""
    bus = MessageBus()
    bus.publish(Ping(1))
    assert bus.subscribers(Ping) == ()


def test_when_subscriber_raises_then_error_handler_called_and_others_still_run() -> None:
    """A raising subscriber is reported to on_handler_error; the subscribers after it still run."""
    errors: list[tuple[object, object, str]] = []
    bus = MessageBus(on_handler_error=lambda h, m, e: errors.append((h, m, repr(e))))
    seen: list[int] = []

    def broken(event: Ping) -> None:
        raise RuntimeError(f"broken on {event.n}")

    bus.subscribe(Ping, seen.append)
    bus.subscribe(Ping, broken)
    bus.subscribe(Ping, lambda e: seen.append(e.n * 10))
    bus.publish(Ping(3))
    assert seen == [Ping(3), 30]
    assert errors == [(broken, Ping(3), "RuntimeError('broken on 3')")]


def test_when_no_error_handler_given_then_subscriber_error_propagates() -> None:
    """Without on_handler_error, a subscriber's exception reaches the publisher."""
    bus = MessageBus()

    def broken(event: Ping) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Ping, broken)
    with pytest.raises(RuntimeError, match="boom"):
        bus.publish(Ping(1))


def test_when_unsubscribed_then_handler_no_longer_called() -> None:
    """unsubscribe removes exactly that handler; the others keep their order."""
    bus = MessageBus()
    calls: list[str] = []

    def first(e: Ping) -> None:
        calls.append("first")

    def second(e: Ping) -> None:
        calls.append("second")

    bus.subscribe(Ping, first)
    bus.subscribe(Ping, second)
    bus.unsubscribe(Ping, first)
    bus.publish(Ping(1))
    assert calls == ["second"]
    assert bus.subscribers(Ping) == (second,)


def test_when_a_subscriber_is_replaced_then_the_new_one_runs_in_its_place() -> None:
    """replace swaps one handler for another at the same place in the order; replacing
    one that is not subscribed is a lookup error."""
    bus = MessageBus()
    calls: list[str] = []
    handlers = {name: (lambda e, name=name: calls.append(name)) for name in "abcd"}
    for name in "abc":
        bus.subscribe(Ping, handlers[name])
    bus.replace(Ping, handlers["b"], handlers["d"])
    bus.publish(Ping(1))
    assert calls == ["a", "d", "c"]
    with pytest.raises(LookupError, match="not subscribed to Ping"):
        bus.replace(Ping, handlers["b"], handlers["a"])


def test_when_command_executed_then_its_one_handler_runs() -> None:
    """execute sends a command to the handler registered for its type."""
    bus = MessageBus()
    handled: list[Reset] = []
    bus.register(Reset, handled.append)
    bus.execute(Reset("operator"))
    assert handled == [Reset("operator")]


def test_when_command_has_no_handler_then_lookup_error_names_it() -> None:
    """Executing a command nobody registered is a LookupError naming the type."""
    bus = MessageBus()
    with pytest.raises(LookupError, match="no handler registered for Reset"):
        bus.execute(Reset("x"))


def test_when_command_type_registered_twice_then_value_error() -> None:
    """A command type has exactly one handler: a second register raises ValueError."""
    bus = MessageBus()
    first: list[Reset] = []
    bus.register(Reset, first.append)
    with pytest.raises(ValueError, match="Reset already has a handler"):
        bus.register(Reset, lambda c: None)
    bus.execute(Reset("still first"))
    assert first == [Reset("still first")]


def test_when_kernel_subscriber_raises_then_counted_and_others_still_run(tmp_path: Path) -> None:
    """The kernel's bus isolates a failing subscriber: handler_errors counts it, others run."""
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="quotes.csv", instrument="XYZ.SIM")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=1)
    seen: list[TradingStateChanged] = []

    def broken(event: TradingStateChanged) -> None:
        raise RuntimeError("subscriber bug")

    kernel.bus.subscribe(TradingStateChanged, broken)
    kernel.bus.subscribe(TradingStateChanged, seen.append)
    kernel.risk.set_trading_state(TradingState.HALTED, "test")
    assert kernel.handler_errors == 1
    assert [e.state for e in seen] == [TradingState.HALTED]

"""The in-process message bus: commands go one way, events come back.

- ``register(command_type, handler)`` / ``execute(command)``: each command type
  has exactly one handler (the component that owns it); sending a command nobody
  owns is a programming error.
- ``subscribe(event_type, handler)`` / ``publish(event)``: any number of
  subscribers per exact event type, called in subscription order, synchronously;
  ``replace`` swaps one for another in the same place.

Dispatch is by exact type through a dict: no string topics, no pattern matching,
so a publish costs one lookup and a loop. A subscriber that raises is isolated:
the error is passed to ``on_handler_error`` and the other subscribers still run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Handler = Callable[[Any], None]


def _reraise(handler: Handler, message: object, error: BaseException) -> None:
    raise error


class MessageBus:
    """Typed synchronous message bus."""

    def __init__(
        self, on_handler_error: Callable[[Handler, object, BaseException], None] = _reraise
    ) -> None:
        self._subscribers: dict[type, tuple[Handler, ...]] = {}
        self._endpoints: dict[type, Handler] = {}
        self._on_handler_error = on_handler_error

    # -- events ---------------------------------------------------------------
    def subscribe(self, event_type: type[T], handler: Callable[[T], None]) -> None:
        self._subscribers[event_type] = (*self._subscribers.get(event_type, ()), handler)

    def replace(
        self, event_type: type[T], old: Callable[[T], None], new: Callable[[T], None]
    ) -> None:
        """Put ``new`` in ``old``'s place: it runs where ``old`` ran in the order."""
        handlers = list(self._subscribers.get(event_type, ()))
        try:
            handlers[handlers.index(old)] = new
        except ValueError:
            raise LookupError(f"{old!r} is not subscribed to {event_type.__name__}") from None
        self._subscribers[event_type] = tuple(handlers)

    def unsubscribe(self, event_type: type[T], handler: Callable[[T], None]) -> None:
        handlers = self._subscribers.get(event_type, ())
        self._subscribers[event_type] = tuple(h for h in handlers if h != handler)

    def subscribers(self, event_type: type) -> tuple[Handler, ...]:
        return self._subscribers.get(event_type, ())

    def publish(self, event: object) -> None:
        for handler in self._subscribers.get(type(event), ()):
            try:
                handler(event)
            except Exception as error:  # isolate subscribers from each other
                self._on_handler_error(handler, event, error)

    # -- commands -------------------------------------------------------------
    def register(self, command_type: type[T], handler: Callable[[T], None]) -> None:
        if command_type in self._endpoints:
            raise ValueError(f"{command_type.__name__} already has a handler")
        self._endpoints[command_type] = handler

    def execute(self, command: object) -> None:
        try:
            handler = self._endpoints[type(command)]
        except KeyError:
            raise LookupError(f"no handler registered for {type(command).__name__}") from None
        handler(command)

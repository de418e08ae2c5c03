"""What the console knows of each node: one ``view`` call per node every
``poll_interval_ms``, however many browsers watch, and the changes fanned out to them.

- ``EquitySeries``: ``pnl.total`` over time, in bounded memory: when full, every other
  point is dropped and the spacing between points doubles (older history coarser).
- ``Hub``: the live-update subscribers. Each holds at most the latest state of each
  node, never a queue of every change: a slow client skips to the newest state, and a
  bounded number of clients may subscribe at once (``TooManyClients``).
- ``Poller``: one task per node (``bastion.tasks.TaskManager``) calling ``view``,
  caching the answer (``NodeState``) and publishing it when it changed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
import structlog

from bastion.console.client import NodeClient, NodeUnreachable
from bastion.tasks import TaskManager

__all__ = ["EquitySeries", "Hub", "NodeState", "Poller", "Subscriber", "TooManyClients"]

log = structlog.get_logger("bastion.console.poller")

_encoder: Final = msgspec.json.Encoder()


class TooManyClients(Exception):
    """The live-update stream has as many clients as the config allows."""


@dataclass(frozen=True, slots=True)
class NodeState:
    """The console's latest knowledge of one node (the API's node object)."""

    name: str
    reachable: bool = False
    error: str | None = "not polled yet"
    view: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reachable": self.reachable,
            "error": self.error,
            "view": self.view,
        }


class EquitySeries:
    """At most ``max_points`` ``(ts_ms, equity)`` points; older ones coarser."""

    def __init__(self, max_points: int) -> None:
        self._max = max(max_points, 2)
        self._points: list[tuple[int, str]] = []
        self._spacing_ms = 0

    def add(self, ts_ms: int, equity: str) -> None:
        if self._points and ts_ms < self._points[-1][0] + self._spacing_ms:
            return
        if self._points and ts_ms <= self._points[-1][0]:
            return  # the same view again, or a clock that went back
        self._points.append((ts_ms, equity))
        if len(self._points) > self._max:
            self._points = self._points[::2]
            span = self._points[-1][0] - self._points[0][0]
            self._spacing_ms = max(2 * self._spacing_ms, span // self._max, 1)

    def points(self) -> list[dict[str, Any]]:
        return [{"ts_ms": ts, "equity": equity} for ts, equity in self._points]

    def __len__(self) -> int:
        return len(self._points)


@dataclass(slots=True, eq=False)
class Subscriber:
    """One live-update client (of ``operator``): the newest unsent state of each node."""

    operator: str = ""
    pending: dict[str, bytes] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, name: str, data: bytes) -> None:
        self.pending.pop(name, None)  # re-inserted last: states go out in change order
        self.pending[name] = data
        self.ready.set()

    def take(self) -> list[tuple[str, bytes]]:
        taken = list(self.pending.items())
        self.pending.clear()
        self.ready.clear()
        return taken


class Hub:
    """The live-update subscribers: at most ``max_clients``, and at most
    ``max_per_operator`` of one operator (so one signed-in account cannot take every
    slot and keep the others' consoles from updating)."""

    def __init__(self, max_clients: int, max_per_operator: int | None = None) -> None:
        self._max = max_clients
        self._max_per_operator = min(max_clients, max_per_operator or max_clients)
        self._subscribers: set[Subscriber] = set()
        self._per_operator: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, operator: str = "") -> Subscriber:
        if len(self._subscribers) >= self._max:
            raise TooManyClients(f"at most {self._max} live-update clients")
        if self._per_operator[operator] >= self._max_per_operator:
            raise TooManyClients(
                f"at most {self._max_per_operator} live-update clients per operator"
            )
        subscriber = Subscriber(operator=operator)
        self._subscribers.add(subscriber)
        self._per_operator[operator] += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Idempotent: the stream's end and its background task both call it."""
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self._per_operator[subscriber.operator] -= 1
            if self._per_operator[subscriber.operator] <= 0:
                del self._per_operator[subscriber.operator]

    def publish(self, state: NodeState) -> None:
        data = _encoder.encode(state.to_json())
        for subscriber in self._subscribers:
            subscriber.put(state.name, data)

    def publish_to(self, subscriber: Subscriber, state: NodeState) -> None:
        """``state`` to one subscriber (a new one: what every node looks like now)."""
        subscriber.put(state.name, _encoder.encode(state.to_json()))


class Poller:
    """The nodes' states, refreshed by one task per node."""

    def __init__(
        self,
        clients: Mapping[str, NodeClient],
        *,
        interval_s: float,
        equity_points: int,
        hub: Hub,
    ) -> None:
        self._clients = dict(clients)
        self._interval_s = interval_s
        self._hub = hub
        self._tasks = TaskManager()
        self.states: dict[str, NodeState] = {name: NodeState(name) for name in self._clients}
        self.equity: dict[str, EquitySeries] = {
            name: EquitySeries(equity_points) for name in self._clients
        }
        self.polls = 0

    def start(self) -> None:
        for name in self._clients:
            self._tasks.spawn(f"console-poll-{name}", self._run(name))

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    async def poll_once(self, name: str) -> NodeState:
        """Ask node ``name`` for its view once; update the cache and tell the hub."""
        client = self._clients[name]
        try:
            answer = await client.request({"cmd": "view"})
        except NodeUnreachable as e:
            state = NodeState(name, reachable=False, error=str(e))
            if self.states[name].error != state.error:  # the detail is the log's alone
                log.warning("console_node_unreachable", node=name, detail=e.detail)
        else:
            view = answer.get("view")
            if answer.get("ok") is True and isinstance(view, dict):
                state = NodeState(name, reachable=True, error=None, view=view)
                self._record_equity(name, view)
            else:
                state = NodeState(
                    name,
                    reachable=True,
                    error=f"node {name}: answered without a view (why: the console's log)",
                )
                if self.states[name].error != state.error:  # the node's reason may name paths
                    log.warning("console_node_no_view", node=name, detail=str(answer.get("error")))
        self.polls += 1
        if state != self.states[name]:
            if state.reachable != self.states[name].reachable:
                log.info("console_node_reachable", node=name, reachable=state.reachable)
            self.states[name] = state
            self._hub.publish(state)
        return state

    def _record_equity(self, name: str, view: Mapping[str, Any]) -> None:
        pnl = view.get("pnl")
        ts_ms = view.get("ts_ms")
        total = pnl.get("total") if isinstance(pnl, dict) else None
        if not isinstance(ts_ms, int) or not isinstance(total, str):
            return
        try:
            Decimal(total)
        except InvalidOperation:
            return
        self.equity[name].add(ts_ms, total)

    async def _run(self, name: str) -> None:
        while True:
            await self.poll_once(name)
            await asyncio.sleep(self._interval_s)

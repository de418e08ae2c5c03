"""The alert engine on a test clock: config tables in, its journaled events and the
notifications it hands over recorded (``Bench``); ``restarted`` starts another engine,
after the node was down a while, on what the first one journaled (an ``AlertBook``);
``sample`` builds a node reading by hand and ``sample_node`` reads a kernel the way the
node's sampler does for the metrics the alert tests need (quote ages, PnL, readiness)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.model.enums import TradingState
from bastion.model.events import Event
from bastion.monitor.alerts.book import AlertBook
from bastion.monitor.alerts.config import AlertRouteConfig, AlertRuleConfig, check_routes
from bastion.monitor.alerts.engine import AlertEngine
from bastion.monitor.alerts.known import ALERT_EVENTS
from bastion.monitor.alerts.rules import alert_rules
from bastion.monitor.notify import Notification
from bastion.monitor.sample import Sample, SampleBuilder
from bastion.node.kernel import Kernel

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000


class RecordingNotifier:
    """The engine's ``Deliver`` seam, recording ``(route, notification)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Notification]] = []
        self._lock = threading.Lock()

    def send(self, route: str, notification: Notification) -> None:
        with self._lock:
            self.sent.append((route, notification))

    def to(self, route: str) -> list[Notification]:
        return [n for r, n in self.sent if r == route]

    def statuses(self, route: str, alert: str | None = None) -> list[str]:
        return [n.status for n in self.to(route) if alert is None or n.alert == alert]


def route(name: str, **keys: Any) -> AlertRouteConfig:
    """A route with one URL reference (``secret:notify/<name>``) unless ``urls`` given."""
    return AlertRouteConfig(name=name, urls=keys.pop("urls", [f"secret:notify/{name}"]), **keys)


@dataclass
class Bench:
    """An ``AlertEngine`` on a ``SimClock`` with its bus, recorded."""

    clock: SimClock
    bus: MessageBus
    engine: AlertEngine
    notifier: RecordingNotifier
    journaled: list[Event] = field(default_factory=list)

    def advance_s(self, seconds: float) -> None:
        """Move the clock on and let the engine look (``tick``)."""
        self.clock.advance_to(self.clock.timestamp_ns() + round(seconds * S))
        self.engine.tick()

    def read(self, values: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]]) -> None:
        """Hand the engine a sample taken now with ``values``."""
        self.engine.on_sample(sample(self.clock, values))

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def alert_events(self, kind: type[Event] | None = None) -> list[Any]:
        return [e for e in self.journaled if kind is None or type(e) is kind]

    def active(self) -> list[str]:
        return sorted(a.rule.name for a in self.engine.active.values())

    def now_ns(self) -> int:
        return self.clock.timestamp_ns()


def bench(
    alerts: Iterable[AlertRuleConfig] = (),
    routes: Iterable[AlertRouteConfig] = (route("ops"),),
    *,
    quote_stale_s: float = 5.0,
    daily_loss: Decimal | None = None,
    only: Iterable[str] | None = None,
    clock: SimClock | None = None,
    bus: MessageBus | None = None,
    id_prefix: str = "1.",
) -> Bench:
    """An engine running the built-in rules with ``alerts`` over them (``only``: just
    these rules), notifying ``routes``; on ``clock`` and ``bus`` if given (a kernel's),
    else its own (starting at ``T0``)."""
    routes = list(routes)
    check_routes(routes)
    rules = alert_rules(list(alerts), quote_stale_s=quote_stale_s, daily_loss=daily_loss)
    if only is not None:
        keep = set(only)
        rules = [r for r in rules if r.name in keep]
    clock = SimClock(T0) if clock is None else clock
    bus = MessageBus() if bus is None else bus
    notifier = RecordingNotifier()
    engine = AlertEngine(
        bus=bus,
        clock=clock,
        rules=rules,
        routes=routes,
        notifier=notifier,
        node="node-1",
        id_prefix=id_prefix,
    )
    recorded = Bench(clock=clock, bus=bus, engine=engine, notifier=notifier)
    for kind in ALERT_EVENTS:
        bus.subscribe(kind, recorded.journaled.append)
    return recorded


def journaled_book(events: Iterable[Event]) -> AlertBook:
    """The ``AlertBook`` recovery rebuilds from ``events`` (a run's journaled ones)."""
    book = AlertBook()
    for event in events:
        book.apply(event)
    return book


def restarted(
    before: Bench,
    *,
    down_s: float,
    alerts: Iterable[AlertRuleConfig] = (),
    routes: Iterable[AlertRouteConfig] = (route("ops"),),
    **keys: Any,
) -> Bench:
    """The node's next run, ``down_s`` after ``before`` stopped: a new engine (ids
    ``2.``, ``bench`` ``keys``) that took over what ``before`` journaled; nothing
    evaluated yet."""
    after = bench(
        alerts,
        routes,
        clock=SimClock(before.now_ns() + round(down_s * S)),
        id_prefix="2.",
        **keys,
    )
    after.engine.take_over(journaled_book(before.journaled))
    return after


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def sample(
    clock: SimClock, values: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]]
) -> Sample:
    """A reading taken now holding ``values`` (metric -> labels -> value)."""
    builder = SampleBuilder()
    for name, series in values.items():
        for series_labels, value in series.items():
            builder.set(name, value, **dict(series_labels))
    return builder.build(clock.timestamp_ns(), clock.monotonic_s())


def sample_node(kernel: Kernel) -> Sample:
    """The metrics the alert rules read, from a kernel, as the node's sampler reads them:
    each instrument's quote age, the node's PnL, its trading state and readiness."""
    clock = kernel.clock
    now_ns = clock.timestamp_ns()
    builder = SampleBuilder()
    for iid in kernel.instruments:
        quote = kernel.last_quotes.get(iid)
        if quote is not None:
            age_s = (now_ns - quote.ts_ns) / S
            builder.set("bastion_quote_age_seconds", age_s, instrument=iid)
    portfolio = kernel.portfolio
    pnl = portfolio.realized_pnl() + portfolio.unrealized_pnl() - portfolio.fees
    builder.set("bastion_pnl", float(pnl))
    for state in TradingState:
        builder.set("bastion_trading_state", float(kernel.risk.state is state), state=state.value)
    ready = all(v.connected and v.reconciled for v in kernel.venues.values())
    builder.set("bastion_node_ready", float(ready))
    return builder.build(now_ns, clock.monotonic_s())


def with_fields(event: Event, **changes: Any) -> Event:
    return msgspec.structs.replace(event, **changes)

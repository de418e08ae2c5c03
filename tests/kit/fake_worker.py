"""A node's core with its strategy processes played by the test.

``IsolatedCore`` wires what a live node's core has around strategy isolation (bus, live
clock, OMS, portfolio, the risk gate, a ``ProcessStrategyHost``, optionally a
journal), in front of two ``RecordingVenue`` s: ``SIM`` (``XYZ.SIM``) and ``OTHER``
(``ABC.OTHER``). The host reaches the gate through a ``CountingGate``, which records
the orders the gate let through, so a test compares them with what the venues got.
The host starts its processes through ``FakeLaunch`` (``ProcessStrategyHost.launch``,
the host's one test seam): each keeps its channel's other end as a ``FakeWorker`` and
starts a stand-in process (``sleep``) that the host watches and kills as it would a
strategy process. The test, on the host's event loop, reads what the host sends and
writes what a strategy process would, or would never.

Two processes by default: ``g1`` runs strategy ``s1``, ``g2`` runs ``s2``; their
limits are wide, so the watchdog never steps in unasked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from bastion.bus import MessageBus
from bastion.clock import LiveClock
from bastion.config import InstrumentConfig
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.isolation import protocol as p
from bastion.isolation.host import ProcessStrategyHost, StrategyProcess
from bastion.isolation.sandbox import Confinement
from bastion.journal.sqlite import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce, TradingState
from bastion.model.events import BUS_JOURNALED_EVENT_TYPES, OrderEvent, StrategyFailed
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.gate import RiskGate
from bastion.strategy.config import ProcessLimits, StrategyConfig
from bastion.venues.base import VenueAdapter
from kit.strategies import IDLE_STRATEGY
from kit.venues import RecordingVenue
from kit.waiting import until

IID, OTHER_IID = "XYZ.SIM", "ABC.OTHER"
MAX_LOTS = 100
"""``max_order_quantity`` (one lot is one raw unit on both instruments)."""
BID, ASK = 10_000, 10_002
CONFINED = Confinement(
    rlimits=True,
    no_new_privs=True,
    capabilities_dropped=True,
    landlock_abi=7,
    network_denied=True,
    signals_scoped=True,
    processes_denied=True,
)
WIDE = ProcessLimits(max_handler_ms=600_000, max_backlog=10_000_000)
"""Limits the watchdog never reaches in a test (it steps in only when a test asks)."""


class CountingGate:
    """The risk gate as the host sees it: every call goes to ``gate``; the client order
    ids of the orders it let through (``passed``) and of the amends it sent
    (``amended``) are recorded, in order. Anything that reached a venue and is not here
    went around the gate."""

    def __init__(self, gate: RiskGate) -> None:
        self.gate = gate
        self.passed: list[str] = []
        self.amended: list[str] = []

    def submit_order(self, order: Order) -> bool:
        sent = self.gate.submit_order(order)
        if sent:
            self.passed.append(order.client_order_id)
        return sent

    def modify_order(self, order: Order, quantity: int, price: int | None) -> bool:
        sent = self.gate.modify_order(order, quantity, price)
        if sent:
            self.amended.append(order.client_order_id)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gate, name)


class FakeWorker:
    """The strategy process's end of one channel; non-blocking, on the test's loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.buffer = p.FrameBuffer(p.MAX_CORE_FRAME)
        self.received: list[p.CoreMessage] = []
        self.closed = False
        """The host hung up (or this end was closed)."""
        self.start_msg: p.Start | None = None
        self._next = 0

    def read(self) -> list[p.CoreMessage]:
        """What the host sent since the last read (never waits)."""
        while not self.closed:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            self.buffer.feed(data)
        new = []
        while (payload := self.buffer.next()) is not None:
            new.append(p.CORE_DECODER.decode(payload))
        self.received += new
        return new

    def events(self) -> list[OrderEvent]:
        """The order events the host sent so far."""
        self.read()
        return [
            m.event
            for m in self.received
            if isinstance(m, p.EventMsg) and isinstance(m.event, OrderEvent)
        ]

    async def start(self) -> p.Start:
        """Take the host's ``Start`` and answer ``Ready``, as a confined worker does."""

        def started() -> p.Start | None:
            self.read()
            return next((m for m in self.received if isinstance(m, p.Start)), None)

        start = await until(started, timeout_s=5, what="the host's Start")
        self.start_msg = start
        self._next = start.ids[0]
        await self.send(p.Ready(CONFINED))
        return start

    def next_id(self) -> str:
        """The next client order id of the range the host granted first."""
        assert self.start_msg is not None, "not started"
        last = self.start_msg.ids[1]
        assert self._next <= last, "the first granted range is used up"
        coid = f"{self.start_msg.id_prefix}{self._next}"
        self._next += 1
        return coid

    async def send(self, *messages: p.WorkerMessage) -> None:
        await self.send_raw(b"".join(p.frame(m) for m in messages))

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` on the channel; a host that hung up meanwhile ends it quietly
        (``closed``)."""
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class FakeLaunch:
    """``ProcessStrategyHost.launch`` for tests: the channel's other end becomes a
    ``FakeWorker``; the process is a stand-in (``sleep``) in a session of its own."""

    def __init__(self) -> None:
        self.workers: list[FakeWorker] = []
        self.envs: list[dict[str, str]] = []
        self.standins: list[subprocess.Popen[bytes]] = []

    def __call__(
        self, channel: socket.socket, output_fd: int, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        standin = subprocess.Popen(
            ["sleep", "600"],
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=output_fd,
            start_new_session=True,
        )
        self.standins.append(standin)
        self.envs.append(env)
        self.workers.append(FakeWorker(channel.dup()))
        return standin

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for standin in self.standins:
            if standin.poll() is None:
                standin.kill()
            standin.wait()


def submit(
    strategy_id: str,
    client_order_id: str,
    quantity: int = 1,
    *,
    instrument_id: str = IID,
    venue: str = "SIM",
    side: OrderSide = OrderSide.BUY,
    price: int | None = BID - 100,
) -> p.Submit:
    """An order command; a limit order far under the market unless ``price`` is None."""
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return p.Submit(
        strategy_id,
        client_order_id,
        instrument_id,
        venue,
        side,
        order_type,
        quantity,
        price,
        TimeInForce.GTC,
        False,
    )


class IsolatedCore:
    """The core around a ``ProcessStrategyHost`` whose processes the test plays."""

    def __init__(
        self,
        base: Path,
        *,
        groups: dict[str, list[str]] | None = None,
        journal: bool = False,
        limits: ProcessLimits = WIDE,
    ) -> None:
        (base / "idle.py").write_text(IDLE_STRATEGY)
        groups = groups or {"g1": ["s1"], "g2": ["s2"]}
        configs = [
            StrategyConfig(name=sid, path="idle.py", class_name="Idle", group=g, limits=limits)
            for g, sids in groups.items()
            for sid in sids
        ]
        instruments = [
            InstrumentConfig(id=IID, venue="SIM", tick_size=Decimal("0.01")),
            InstrumentConfig(id=OTHER_IID, venue="OTHER", tick_size=Decimal("0.01")),
        ]
        self.bus = MessageBus()
        self.clock = LiveClock()
        self.journal = SqliteJournal(base / "journal.sqlite") if journal else None
        self.venues = {"SIM": RecordingVenue(), "OTHER": RecordingVenue("OTHER")}
        venues: dict[str, VenueAdapter] = dict(self.venues)
        self.last_quotes = {
            iid: QuoteTick(iid, self.clock.timestamp_ns(), BID, ASK, 500, 500)
            for iid in (IID, OTHER_IID)
        }
        models = {i.id: i.to_instrument() for i in instruments}
        self.instruments = models
        self.portfolio = Portfolio(
            instruments=models,
            last_quotes=self.last_quotes,
            currency="USD",
            starting_cash=Decimal(1_000_000),
        )
        self.ids = ClientOrderIdGenerator("core", 1)
        append = self.journal.append if self.journal is not None else None
        self.execution = ExecutionEngine(
            bus=self.bus, clock=self.clock, ids=self.ids, venues=venues, journal=append
        )
        self.gate = RiskGate(
            config=RiskConfig(max_order_quantity=Decimal(MAX_LOTS)),
            bus=self.bus,
            clock=self.clock,
            execution=self.execution,
            portfolio=self.portfolio,
            instruments=models,
            last_quotes=self.last_quotes,
            venues=set(venues),
            strategies=[c.name for c in configs],
            last_trades={},
        )
        self.counted = CountingGate(self.gate)
        if self.journal is not None:
            for event_type in BUS_JOURNALED_EVENT_TYPES:
                self.bus.subscribe(event_type, self.journal.append)
        self.failed: list[StrategyFailed] = []
        self.bus.subscribe(StrategyFailed, self.failed.append)
        self.host = ProcessStrategyHost(
            configs=configs,
            base_dir=base,
            bus=self.bus,
            clock=self.clock,
            portfolio=self.portfolio,
            execution=self.execution,
            risk=cast(RiskGate, self.counted),
            ids=self.ids,
            instruments=instruments,
            last_quotes=self.last_quotes,
            flush=lambda: None,  # the recording venues send at once
        )
        self.launch = FakeLaunch()
        self.host.launch = self.launch
        self.workers: dict[str, FakeWorker] = {}

    async def start(self) -> dict[str, FakeWorker]:
        """Start the host (on the running loop); each fake worker takes its ``Start`` and
        answers ``Ready``. Returns them by process group."""
        self.host.start_all()
        self.workers = dict(zip(self.host.processes, self.launch.workers, strict=True))
        for worker in self.workers.values():
            await worker.start()
        return self.workers

    def process(self, group: str) -> StrategyProcess:
        return self.host.processes[group]

    def at_venues(self) -> list[str]:
        """Client order ids the venues got (``SIM``'s, then ``OTHER``'s)."""
        return [coid for venue in self.venues.values() for coid in venue.submitted]

    def kill(self, reason: str = "test kill") -> int:
        """What ``Kernel.kill`` does: HALTED, then every open order canceled; how many."""
        self.gate.set_trading_state(TradingState.HALTED, reason)
        orders = self.execution.open_orders()
        self.gate.cancel_orders(orders)
        return len(orders)

    async def failed_with(self, group: str) -> str:
        """Wait until process ``group`` is failed; its cause."""
        proc = self.process(group)
        await until(lambda: proc.state == "failed", timeout_s=5, what=f"{group} failed")
        return proc.failure

    def assert_nothing_around_the_gate(self) -> None:
        """Every order and amend at a venue is one the gate let through, and back; each
        order is within ``max_order_quantity`` and at its instrument's venue."""
        assert Counter(self.at_venues()) == Counter(self.counted.passed)
        modified = [m for venue in self.venues.values() for m in venue.modified]
        assert Counter(coid for coid, _, _ in modified) == Counter(self.counted.amended)
        for coid in self.at_venues():
            order = self.execution.order(coid)
            assert order is not None and 0 < order.quantity <= MAX_LOTS
            assert self.instruments[order.instrument_id].venue == order.venue
        for _, quantity, price in modified:
            assert 0 < quantity <= MAX_LOTS and (price is None or price > 0)

    async def close(self) -> None:
        """Stop everything: the stand-ins die, the channels close, the host stops."""
        self.launch.close()
        with contextlib.suppress(AssertionError):
            await until(
                lambda: all(
                    proc.state not in ("starting", "running", "exiting")
                    for proc in self.host.processes.values()
                ),
                timeout_s=2,
            )
        self.host.stop_all()
        if self.journal is not None:
            self.journal.close()

"""What the host writes to a strategy process, and when: the events of its orders."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from bastion.clock import LiveClock
from bastion.config import InstrumentConfig, NodeSection, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.isolation import protocol as p
from bastion.isolation.host import ProcessStrategyHost, StrategyProcess
from bastion.model.data import QuoteTick
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.strategy.config import StrategyConfig
from kit.waiting import until

IID = "XYZ.SIM"

ONE_ORDER = """
from bastion.model.enums import OrderSide
from bastion.strategy import Strategy


class OneOrder(Strategy):
    def on_start(self):
        self.seen = []
        self.subscribe_quotes("XYZ.SIM")

    def on_quote(self, quote):
        if not self.seen:
            self.seen.append("ordered")
            self.submit(OrderSide.BUY, "XYZ.SIM", self.instrument("XYZ.SIM").lot_raw)

    def on_order_event(self, event):
        self.seen.append(type(event).__name__)

    def on_save(self):
        return {"seen": self.seen}
"""

THREE_RESTING = """
from bastion.model.enums import OrderSide
from bastion.strategy import Strategy


class ThreeResting(Strategy):
    def on_start(self):
        self.placed = False
        self.subscribe_quotes("XYZ.SIM")

    def on_quote(self, quote):
        if not self.placed:
            self.placed = True
            for i in range(3):
                self.submit(OrderSide.BUY, "XYZ.SIM", 1, quote.bid - 100 - i)
"""
PINGS = [["Ping"]]  # the watchdog's, on a machine slow enough


class CountingSocket:
    """A strategy process's channel, as the host holds it, keeping each write."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.writes: list[list[str]] = []
        """Per write, the messages it held (their type names)."""

    def send(self, data: bytes) -> int:
        sent = self._sock.send(data)
        buffer = p.FrameBuffer(p.MAX_CORE_FRAME)
        buffer.feed(bytes(data[:sent]))
        messages = []
        while (payload := buffer.next()) is not None:
            message = p.CORE_DECODER.decode(payload)
            event = getattr(message, "event", None)
            messages.append(type(event or message).__name__)
        self.writes.append(messages)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _node(tmp_path: Path, source: str, class_name: str) -> Kernel:
    (tmp_path / "strategy.py").write_text(source)
    config = PaperConfig(
        node=NodeSection(isolation="process"),
        instruments=[InstrumentConfig(id=IID, tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="s", path="strategy.py", class_name=class_name)],
        feed=SyntheticFeedConfig(instrument=IID),
    )
    return Kernel(config=config, base_dir=tmp_path, clock=LiveClock(), epoch=1)


async def _started(kernel: Kernel) -> tuple[ProcessStrategyHost, StrategyProcess]:
    host = kernel.strategies
    assert isinstance(host, ProcessStrategyHost)
    (proc,) = host.processes.values()
    kernel.start()
    await until(lambda: proc.state == "running" and host.quote_subscribers.get(IID))
    return host, proc


def _quote(kernel: Kernel) -> QuoteTick:
    return QuoteTick(IID, kernel.clock.timestamp_ns(), 10_000, 10_001, 100, 100)


def _watch(proc: StrategyProcess) -> CountingSocket:
    assert proc.sock is not None
    channel = CountingSocket(proc.sock)
    proc.sock = channel  # type: ignore[assignment]
    return channel


def test_when_a_process_orders_then_its_order_events_follow_in_one_write_after_the_order(
    tmp_path: Path,
) -> None:
    """The events of an order the host handles for a process (initialized to filled)
    go to it in one write, once its messages are handled: none ahead of the order on
    its way to the venue. The process gets them in order and answers each."""
    kernel = _node(tmp_path, ONE_ORDER, "OneOrder")

    async def scenario() -> tuple[list[list[str]], int, list[str], tuple[int, int]]:
        host, proc = await _started(kernel)
        try:
            channel = _watch(proc)
            writes_at_venue: list[int] = []
            venue_submit = kernel.venue.submit

            def submit(order: Order) -> None:
                writes_at_venue.append(len(channel.writes))
                venue_submit(order)

            kernel.venue.submit = submit  # type: ignore[method-assign]
            kernel.on_quote(_quote(kernel))
            await until(lambda: [o for o in kernel.execution.orders() if o.filled_qty])
            await until(lambda: proc.sent == proc.acked, what="every input answered")
            counts = (proc.sent, proc.acked)
            await host.refresh_states(10.0)
            state = msgspec.msgpack.decode(host.restored_states["s"])
        finally:
            kernel.stop_strategies()
        return channel.writes, writes_at_venue[0], state["seen"], counts

    writes, writes_at_venue, seen, (sent, acked) = asyncio.run(scenario())
    events = ["OrderInitialized", "OrderSubmitted", "OrderAccepted", "OrderFilled"]
    assert [w for w in writes if w not in PINGS][:3] == [["Quote"], events, ["Save"]]
    assert writes_at_venue == 1  # the quote only
    assert seen == ["ordered", *events]
    assert acked == sent


def test_when_the_node_is_killed_then_a_process_gets_its_cancels_in_one_write(
    tmp_path: Path,
) -> None:
    """The kill's events for a process's resting orders (pending cancel, canceled)
    go to it in one write after the kill, in order, and it answers them."""
    kernel = _node(tmp_path, THREE_RESTING, "ThreeResting")

    async def scenario() -> tuple[list[list[str]], bool]:
        _, proc = await _started(kernel)
        try:
            kernel.on_quote(_quote(kernel))
            await until(lambda: len([o for o in kernel.execution.orders() if o.is_open]) == 3)
            await until(lambda: proc.sent == proc.acked, what="every input answered")
            channel = _watch(proc)
            kernel.kill("test")
            written_in_kill = bool(channel.writes)
            await until(lambda: not kernel.execution.open_orders())
            await until(lambda: proc.sent == proc.acked, what="every input answered")
        finally:
            kernel.stop_strategies()
        return channel.writes, written_in_kill

    writes, written_in_kill = asyncio.run(scenario())
    assert not written_in_kill
    cancels = 3 * ["OrderPendingCancel"] + 3 * ["OrderCanceled"]
    assert next(w for w in writes if w not in PINGS) == cancels

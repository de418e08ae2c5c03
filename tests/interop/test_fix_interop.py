"""bastion's FIX 4.4 venue adapter against a QuickFIX acceptor (a FIX engine bastion did not write).

Each test runs bastion's side (``FixVenueAdapter`` behind the real execution engine)
on an asyncio loop in this process and drives the QuickFIX peer process through its
control channel.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.bus import MessageBus
from bastion.clock import LiveClock
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.fix.session import SessionSettings
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from bastion.model.events import OrderEvent, OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.fix.adapter import FixVenueAdapter
from kit.quickfix import QfPeer
from kit.waiting import until

VENUE = "QF"
SYMBOL = "XYZ"


class Desk:
    """bastion's side: the OMS and a FIX venue adapter, wired as the kernel wires them."""

    def __init__(self, peer: QfPeer, tmp_path: Path, *, password: str = "s3cret-pw") -> None:
        self.clock = LiveClock()
        self.instrument = Instrument(
            id=SYMBOL,
            venue=VENUE,
            tick_size=Decimal("0.01"),
            lot_size=Decimal(1),
            quote_currency="USD",
        )
        settings = SessionSettings(
            sender_comp_id="BASTION",
            target_comp_id="QFVENUE",
            heartbeat_s=1,
            username="trader",
            password=password,
            logon_timeout_s=3.0,
        )
        self.adapter = FixVenueAdapter(
            name=VENUE,
            epoch=1,
            settings=settings,
            store_path=tmp_path / "bastion-fix.sqlite",
            host="127.0.0.1",
            port=peer.port,
            clock=self.clock,
            instruments={SYMBOL: self.instrument},
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
        )
        self.bus = MessageBus()
        self.events: list[OrderEvent] = []
        self.quotes: list[QuoteTick] = []
        self.adapter.on_quote_sink = self.quotes.append
        self.oms = ExecutionEngine(
            bus=self.bus,
            clock=self.clock,
            ids=ClientOrderIdGenerator("interop", 1),
            venues={VENUE: self.adapter},
        )
        for event_type in OrderEvent.__subclasses__():
            self.bus.subscribe(event_type, self.events.append)
        self.peer = peer

    @property
    def session_counters(self) -> dict[str, int]:
        return dict(self.adapter.session.counters)

    def limit(self, side: OrderSide, qty: int, px: str) -> Order:
        order = self.oms.create_order(
            strategy_id="s1",
            instrument_id=SYMBOL,
            venue=VENUE,
            side=side,
            order_type=OrderType.LIMIT,
            quantity=qty,
            price=self.instrument.price_raw(Decimal(px)),
            time_in_force=TimeInForce.GTC,
        )
        self.oms.submit(order)
        return order

    async def peer_command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        reply = await asyncio.to_thread(self.peer.command, cmd, **fields)
        assert reply.get("ok", True) is not False, reply
        return reply

    def fills(self, order: Order) -> list[OrderFilled]:
        return [
            e
            for e in self.events
            if isinstance(e, OrderFilled) and e.client_order_id == order.client_order_id
        ]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _started(desk: Desk) -> None:
    await desk.adapter.connect()
    assert await desk.adapter.wait_logged_on(10), "bastion did not log on to QuickFIX"
    desk.adapter.reconciled_logon = desk.adapter.logons  # as the node's reconciliation does


def test_order_flow_with_partial_fills_and_cancel_replace_when_against_quickfix(
    qf_peer: QfPeer, tmp_path: Path
) -> None:
    """Market data, a limit order partly filled, replaced, filled again, then canceled."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path)
        await _started(desk)
        await desk.peer_command(
            "quote", symbol=SYMBOL, bid="99.99", ask="100.01", bid_size="50", ask_size="70"
        )
        await until(lambda: desk.quotes, what="a quote over FIX market data")
        quote = desk.quotes[-1]
        assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (9999, 10001, 50, 70)

        order = desk.limit(OrderSide.BUY, 10, "100.00")
        await until(lambda: order.status is OrderStatus.ACCEPTED, what="the order accepted")
        assert await desk.adapter.open_order_ids() == {order.client_order_id}

        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="4", px="100.00")
        await until(lambda: order.filled_qty == 4, what="the first partial fill")
        assert order.status is OrderStatus.PARTIALLY_FILLED

        desk.oms.modify(order, 12, desk.instrument.price_raw(Decimal("100.02")))
        await until(lambda: order.quantity == 12, what="the replace confirmed")
        assert order.price == 10002
        peer_order = (await desk.peer_command("status"))["orders"][order.client_order_id]
        assert Decimal(peer_order["qty"]) == 12 and Decimal(peer_order["price"]) == Decimal(
            "100.02"
        )

        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="3", px="100.02")
        await until(lambda: order.filled_qty == 7, what="the fill after the replace")
        desk.oms.cancel(order)
        await until(lambda: order.status is OrderStatus.CANCELED, what="the cancel confirmed")
        assert order.filled_qty == 7
        assert [(f.last_qty, f.last_px) for f in desk.fills(order)] == [(4, 10000), (3, 10002)]
        assert await desk.adapter.open_order_ids() == set()
        assert desk.oms.refused_transitions == 0
        await desk.adapter.disconnect()

    run(scenario)


def test_fills_during_a_dropped_connection_arrive_by_resend_when_reconnected(
    qf_peer: QfPeer, tmp_path: Path
) -> None:
    """The TCP connection drops mid-flow; fills made meanwhile come back through resend."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path)
        await _started(desk)
        order = desk.limit(OrderSide.SELL, 10, "101.00")
        await until(lambda: order.status is OrderStatus.ACCEPTED, what="the order accepted")
        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="2", px="101.00")
        await until(lambda: order.filled_qty == 2, what="the fill before the drop")

        await desk.peer_command("disconnect")
        await until(lambda: not desk.adapter.session.logged_on, what="bastion seeing the drop")
        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="3", px="101.00")
        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="5", px="101.00")

        await until(
            lambda: order.status is OrderStatus.FILLED,
            what="the fills made while down",
            timeout_s=20,
        )
        assert [f.last_qty for f in desk.fills(order)] == [2, 3, 5]
        counters = desk.session_counters
        assert counters["resend_requests_sent"] >= 1
        assert counters["logons"] >= 2
        received = (await desk.peer_command("status"))["received"]
        assert any(m["msg_type"] == "2" for m in received), "QuickFIX saw no ResendRequest"
        await desk.adapter.disconnect()

    run(scenario)


def test_inbound_sequence_gap_is_recovered_by_resend_request(
    qf_peer: QfPeer, tmp_path: Path
) -> None:
    """QuickFIX skips sequence numbers; bastion asks for them and QuickFIX gap-fills."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path)
        await _started(desk)
        order = desk.limit(OrderSide.BUY, 5, "99.00")
        await until(lambda: order.status is OrderStatus.ACCEPTED, what="the order accepted")
        await desk.peer_command("skip_seq", n=5)
        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="5", px="99.00")
        await until(lambda: order.status is OrderStatus.FILLED, what="the fill after the gap")
        counters = desk.session_counters
        assert counters["gaps_detected"] == 1
        assert counters["resend_requests_sent"] == 1
        assert counters["gap_fills_received"] >= 1
        assert len(desk.fills(order)) == 1
        status = await desk.peer_command("status")
        resend = [m for m in status["received"] if m["msg_type"] == "2"]
        assert resend, "QuickFIX saw no ResendRequest"
        # after the gap the node also asks for a market data snapshot (the last V); the
        # peer's answer to it may still be on its way: the two ends agree once it lands
        assert [m["msg_type"] for m in status["received"]][-2:] == ["2", "V"]
        await until(
            lambda: desk.adapter.session.store.next_target_seq == status["next_sender_seq"],
            what="the node's inbound sequence in step with QuickFIX's outbound",
        )
        await desk.adapter.disconnect()

    run(scenario)


def test_possdup_resend_of_an_applied_execution_is_not_applied_twice(
    qf_peer: QfPeer, tmp_path: Path
) -> None:
    """QuickFIX repeats an ExecutionReport with PossDupFlag=Y; the fill counts once."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path)
        await _started(desk)
        order = desk.limit(OrderSide.BUY, 10, "100.00")
        await until(lambda: order.status is OrderStatus.ACCEPTED, what="the order accepted")
        fill = await desk.peer_command(
            "fill", cl_ord_id=order.client_order_id, qty="4", px="100.00"
        )
        await until(lambda: order.filled_qty == 4, what="the fill")
        received_before = desk.session_counters["received"]
        await desk.peer_command("resend_exec", exec_id=fill["exec_id"])
        await until(
            lambda: desk.session_counters["received"] > received_before, what="the PossDup resend"
        )
        await desk.peer_command("fill", cl_ord_id=order.client_order_id, qty="1", px="100.00")
        await until(lambda: order.filled_qty == 5, what="the next fill")
        assert [f.last_qty for f in desk.fills(order)] == [4, 1]
        assert desk.adapter.counters["duplicate_exec_ids"] == 1
        await desk.adapter.disconnect()

    run(scenario)


def test_heartbeat_timeout_sends_test_request_then_disconnects(
    qf_peer: QfPeer, tmp_path: Path
) -> None:
    """A frozen counterparty: TestRequest after 1.2 heartbeats, disconnect after another."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path)
        await _started(desk)
        os.kill(qf_peer.pid, signal.SIGSTOP)
        try:
            await until(
                lambda: desk.session_counters.get("heartbeat_timeouts", 0) == 1,
                what="the heartbeat timeout",
                timeout_s=15,
            )
            assert desk.session_counters["test_requests_sent"] >= 1
            assert not desk.adapter.session.logged_on
            assert "heartbeat timeout" in desk.adapter.session.disconnect_reason
        finally:
            os.kill(qf_peer.pid, signal.SIGCONT)
        await until(
            lambda: desk.adapter.session.logged_on, what="the reconnect after SIGCONT", timeout_s=20
        )
        await desk.adapter.disconnect()

    run(scenario)


def test_logon_with_wrong_password_is_refused(qf_peer: QfPeer, tmp_path: Path) -> None:
    """QuickFIX refuses the Logon; bastion never logs on and says why."""

    async def scenario() -> None:
        desk = Desk(qf_peer, tmp_path, password="wrong-password")
        await desk.adapter.connect()
        await until(
            lambda: desk.session_counters.get("logout_before_logon", 0) >= 1,
            what="the refused logon",
        )
        assert not desk.adapter.session.logged_on
        assert "logon refused" in desk.adapter.session.disconnect_reason
        status = await desk.peer_command("status")
        assert status["rejected_logons"] >= 1 and status["logons"] == 0
        await desk.adapter.disconnect()

    run(scenario)

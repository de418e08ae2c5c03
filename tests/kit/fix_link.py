"""A ``FixVenueAdapter`` wired to a venue-side acceptor ``FixSession`` through in-memory
byte queues (``Link``), and the orders and execution reports the adapter tests send
through it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.fix.codec import (
    FixMessage,
    FixParser,
    Garbled,
)
from bastion.fix.session import (
    FixSession,
    SessionSettings,
)
from bastion.fix.store import SqliteSessionStore
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.events import (
    OrderEvent,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.venues.fix.adapter import FixVenueAdapter

T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
VENUE = "FIXV"
IID = "XYZ.FIXV"
PASSWORD = "pw-7d1e-adapter"
INSTRUMENT = Instrument(
    id=IID, venue=VENUE, tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), quote_currency="USD"
)


ELSEWHERE = Instrument(
    id="ABC.SIM", venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


BUY, SELL = OrderSide.BUY, OrderSide.SELL


class VenueApp:
    """The venue side: accepts our password, records what it receives, may answer."""

    def __init__(self) -> None:
        self.messages: list[FixMessage] = []
        self.answer: Callable[[FixSession, FixMessage], None] | None = None

    def on_logon(self, session: FixSession) -> None:
        pass

    def on_logout(self, session: FixSession, reason: str) -> None:
        pass

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        self.messages.append(message)
        if self.answer is not None:
            self.answer(session, message)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None if logon.get(554) == PASSWORD else "bad password"

    def last(self, msg_type: str) -> FixMessage:
        return [m for m in self.messages if m.msg_type == msg_type][-1]


class Link:
    """A FixVenueAdapter and a venue acceptor session, connected through in-memory pipes."""

    def __init__(
        self, tmp_path: Path, adapter: FixVenueAdapter | None = None, *, epoch: int = 1
    ) -> None:
        """``adapter``: a node's own FIX venue (a kernel's, already bound to its OMS; its
        settings must be ``NODE`` -> ``EXCH`` with ``PASSWORD``); by default a new one, of
        the run ``epoch`` (``order`` makes epoch 1's client order ids)."""
        self.events: list[OrderEvent] = []
        self.quotes: list[QuoteTick] = []
        self.trades: list[TradeTick] = []
        if adapter is not None:
            assert isinstance(adapter.clock, SimClock)
            self.clock = adapter.clock
            self.adapter = adapter
        else:
            self.clock = SimClock(T0)
            self.adapter = FixVenueAdapter(
                name=VENUE,
                epoch=epoch,
                settings=SessionSettings(
                    sender_comp_id="NODE",
                    target_comp_id="EXCH",
                    username="trader",
                    password=PASSWORD,
                ),
                store_path=tmp_path / "node.sqlite",
                host="127.0.0.1",
                port=1,
                clock=self.clock,
                instruments={IID: INSTRUMENT, ELSEWHERE.id: ELSEWHERE},
                account="ACC-1",
            )
            self.adapter.bind(self.events.append)
            self.adapter.on_quote_sink = self.quotes.append
            self.adapter.on_trade_sink = self.trades.append
        venue_settings = SessionSettings(sender_comp_id="EXCH", target_comp_id="NODE")
        self.venue_store = SqliteSessionStore(
            tmp_path / "venue.sqlite", venue_settings.key, now_ns=T0
        )
        self.venue_app = VenueApp()
        self.venue = FixSession(venue_settings, self.venue_store, self.venue_app, clock=self.clock)
        self.to_venue: list[bytes] = []
        self.to_node: list[bytes] = []
        self.node_wire: list[bytes] = []  # everything the venue wrote to the node

    @property
    def session(self) -> FixSession:
        return self.adapter.session

    def connect(self, *, reconciled: bool = True) -> None:
        """Log on; ``reconciled``: as if the node had reconciled the venue on this logon
        (the adapter takes new orders only then)."""
        self.to_venue.clear()
        self.to_node.clear()
        self.venue.connection_made(self._to_node, lambda: None, initiator=False)
        self.session.connection_made(self.to_venue.append, lambda: None, initiator=True)
        self.pump()
        assert self.session.logged_on and self.venue.logged_on
        if reconciled:
            self.adapter.reconciled_logon = self.adapter.logons

    def _to_node(self, data: bytes) -> None:
        self.to_node.append(data)
        self.node_wire.append(data)

    def pump(self) -> None:
        for _ in range(50):
            if not (self.to_venue or self.to_node):
                return
            if self.to_venue:
                data = b"".join(self.to_venue)
                self.to_venue.clear()
                self.venue.data_received(data)
            if self.to_node:
                data = b"".join(self.to_node)
                self.to_node.clear()
                self.session.data_received(data)
        raise AssertionError("link kept talking")

    def send(self, msg: FixMessage) -> None:
        """The venue sends ``msg``; it is delivered and any answer goes back."""
        self.venue.send(msg)
        self.pump()

    def node_messages(self) -> list[FixMessage]:
        parser = FixParser()
        parser.feed(b"".join(self.node_wire))
        return [m for m in parser.messages() if not isinstance(m, Garbled)]

    def close(self) -> None:
        self.session.disconnect("test over")
        self.venue.disconnect("test over")
        self.adapter.store.close()
        self.venue_store.close()


_seq = iter(range(1, 1_000_000))


def order(
    side: OrderSide = BUY,
    qty: int = 1_500,
    price: int | None = 10_125,
    tif: TimeInForce = TimeInForce.GTC,
    instrument_id: str = IID,
) -> Order:
    """A new order on the FIX venue (a limit unless ``price`` is None), fresh client id."""
    return Order(
        client_order_id=f"node-1-{next(_seq)}",
        strategy_id="s1",
        instrument_id=instrument_id,
        venue=VENUE,
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=qty,
        price=price,
        time_in_force=tif,
    )


def execution(
    cl_ord_id: str,
    exec_type: str,
    exec_id: str,
    *extra: tuple[int, object],
    status: str = "0",
    side: str = "1",
) -> FixMessage:
    """An ExecutionReport with every tag the adapter requires."""
    return FixMessage.of(
        "8",
        (37, "V-1"),
        (11, cl_ord_id),
        (17, exec_id),
        (150, exec_type),
        (39, status),
        (55, IID),
        (54, side),
        (151, "1.5"),
        (14, "0"),
        (6, "0"),
        *extra,
    )

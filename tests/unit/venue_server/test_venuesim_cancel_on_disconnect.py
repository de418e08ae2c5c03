"""Cancel on disconnect at the venue simulator: venue-wide (``cancel_on_disconnect``) or
asked for by one session's Logon (CancelOrdersOnDisconnect, 8013=Y). A node-side
``FixSession`` talks to the server's account session through in-memory pipes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from venuesim_desk import SYM, T0

from bastion.config import InstrumentConfig
from bastion.fix.codec import FixMessage, FixParser, Garbled
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.model.data import QuoteTick
from bastion.venue_server.config import AccountConfig, VenueSimConfig
from bastion.venue_server.server import VenueSimServer

PASSWORD = "pw-cod-5c1e"


class NodeApp:
    """The node side: records what the venue sends."""

    def __init__(self) -> None:
        self.messages: list[FixMessage] = []

    def on_logon(self, session: FixSession) -> None:
        pass

    def on_logout(self, session: FixSession, reason: str) -> None:
        pass

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        self.messages.append(message)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None


class Wire:
    """The server's account session and a node session, connected on demand in memory."""

    def __init__(self, tmp_path: Path, *, venue_wide: bool = False) -> None:
        config = VenueSimConfig(
            comp_id="SIM",
            cancel_on_disconnect=venue_wide,
            accounts=[AccountConfig(name="acct", comp_id="NODE", username="u", password=PASSWORD)],
            instruments=[InstrumentConfig(id=SYM, tick_size=Decimal("0.01"))],
        )
        self.server = VenueSimServer(config, tmp_path)
        with self.server._committing():
            self.server._start_engine()
        self.server.on_quote(QuoteTick(SYM, T0, 9_999, 10_001, 100, 100))
        self.app = self.server.apps["acct"]
        venue_session = self.app.session
        assert venue_session is not None
        self.venue = venue_session
        self.node_app = NodeApp()
        self.tmp_path = tmp_path
        self.node: FixSession | None = None
        self.to_venue: list[bytes] = []
        self.to_node: list[bytes] = []
        self._stores: list[SqliteSessionStore] = []
        self._n = 0

    def logon(self, *fields: tuple[int, str]) -> FixSession:
        """A new connection; the node's Logon carries ``fields`` after its credentials."""
        settings = SessionSettings(
            sender_comp_id="NODE",
            target_comp_id="SIM",
            username="u",
            password=PASSWORD,
            logon_fields=fields,
        )
        if self.node is None:
            store = SqliteSessionStore(self.tmp_path / "node.sqlite", settings.key, now_ns=T0)
            self._stores.append(store)
            self.node = FixSession(settings, store, self.node_app)
        else:  # same store, new settings: what a reconfigured node would send
            self.node = FixSession(settings, self.node.store, self.node_app)
        self.venue.connection_made(self.to_node.append, lambda: None, initiator=False)
        self.node.connection_made(self.to_venue.append, lambda: None, initiator=True)
        self.pump()
        return self.node

    def pump(self) -> None:
        assert self.node is not None
        for _ in range(50):
            if not (self.to_venue or self.to_node):
                return
            if self.to_venue:
                data = b"".join(self.to_venue)
                self.to_venue.clear()
                if self.venue.connected:
                    self.venue.data_received(data)
            if self.to_node:
                data = b"".join(self.to_node)
                self.to_node.clear()
                if self.node.connected:
                    self.node.data_received(data)
        raise AssertionError("kept talking")

    def rest(self, cl_ord_id: str) -> None:
        """A limit order far under the market, sent by the node."""
        assert self.node is not None
        self.node.send(
            FixMessage.of(
                "D",
                (11, cl_ord_id),
                (55, SYM),
                (54, "1"),
                (60, "20240102-14:30:00.000"),
                (38, "3"),
                (40, "2"),
                (44, "90.00"),
                (59, "1"),
            )
        )
        self.pump()

    def drop(self) -> None:
        """The connection fails under both sides."""
        assert self.node is not None
        self.to_venue.clear()
        self.to_node.clear()
        self.venue.connection_lost("network failure")
        self.node.connection_lost("network failure")

    def open_ids(self) -> list[str]:
        return sorted(o.cl_ord_id for o in self.server.ledger.open_orders("acct"))

    def stored_cancels(self) -> list[str]:
        """ClOrdIDs of the Canceled reports the venue stored for the node to collect."""
        raws = [raw for _, raw in self.venue.store.sent_messages(1, 10_000)]
        parser = FixParser()
        parser.feed(b"".join(raws))
        return sorted(
            m.get(11) or ""
            for m in parser.messages()
            if not isinstance(m, Garbled) and m.msg_type == "8" and m.get(150) == "4"
        )

    def close(self) -> None:
        for session in (self.venue, self.node):
            if session is not None:
                session.disconnect("test over")
        for store in self._stores:
            store.close()
        self.venue.store.close()
        self.server.ledger.close()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    w = Wire(tmp_path)
    yield w
    w.close()


def test_when_logon_asks_8013_y_and_session_drops_then_account_orders_canceled(
    wire: Wire,
) -> None:
    """8013=Y on the Logon: the drop cancels the account's orders; the reports wait for
    the node's ResendRequest."""
    assert wire.logon((8013, "Y")).logged_on
    wire.rest("c1")
    wire.rest("c2")
    assert wire.open_ids() == ["c1", "c2"]
    wire.drop()
    assert wire.open_ids() == []
    assert wire.stored_cancels() == ["c1", "c2"]
    assert wire.server.counters["canceled_on_disconnect"] == 2
    statuses = {o.cl_ord_id: o.status for o in wire.server.ledger.orders("acct")}
    assert statuses == {"c1": "4", "c2": "4"}  # OrdStatus Canceled


def test_when_logon_asks_8013_s_then_treated_as_y(wire: Wire) -> None:
    """8013=S (this session's orders) is the account's orders here: one session each."""
    wire.logon((8013, "S"))
    wire.rest("c1")
    wire.drop()
    assert wire.open_ids() == []


@pytest.mark.parametrize("fields", [(), ((8013, "N"),)])
def test_when_logon_does_not_ask_then_orders_survive_the_drop(
    wire: Wire, fields: tuple[tuple[int, str], ...]
) -> None:
    """Without 8013=Y (and the venue-wide setting off) resting orders keep working."""
    wire.logon(*fields)
    wire.rest("c1")
    wire.drop()
    assert wire.open_ids() == ["c1"]
    assert wire.stored_cancels() == []


def test_when_8013_value_invalid_then_logon_refused_naming_the_tag(wire: Wire) -> None:
    """A value other than Y, S or N refuses the Logon: a protection asked for but not
    understood must not be silently dropped."""
    node = wire.logon((8013, "maybe"))
    assert not node.logged_on and not wire.venue.logged_on
    assert "CancelOrdersOnDisconnect (8013) must be Y, S or N" in node.disconnect_reason


def test_when_next_logon_does_not_ask_then_flag_not_carried_over(wire: Wire) -> None:
    """The request lasts one connection: a later Logon without 8013 leaves orders alone."""
    wire.logon((8013, "Y"))
    wire.rest("c1")
    wire.drop()
    wire.logon()
    wire.rest("c2")
    wire.drop()
    assert wire.open_ids() == ["c2"]


def test_when_venue_wide_setting_on_then_canceled_without_8013(tmp_path: Path) -> None:
    """``cancel_on_disconnect = true`` in the simulator config covers every session."""
    w = Wire(tmp_path, venue_wide=True)
    try:
        w.logon()
        w.rest("c1")
        w.drop()
        assert w.open_ids() == []
    finally:
        w.close()

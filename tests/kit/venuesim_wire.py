"""A venue simulator server's account session and a node-side ``FixSession``, connected on
demand through in-memory pipes (``Wire``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.config import InstrumentConfig
from bastion.fix.codec import FixMessage, FixParser, Garbled
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.model.data import QuoteTick
from bastion.vault import MemorySecrets
from bastion.venue_server.config import AccountConfig, VenueSimConfig
from bastion.venue_server.server import VenueSimServer
from kit.venuesim_desk import SYM, T0

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
            accounts=[
                AccountConfig(name="acct", comp_id="NODE", username="u", password="secret:fix/acct")
            ],
            instruments=[InstrumentConfig(id=SYM, tick_size=Decimal("0.01"))],
        )
        secrets = MemorySecrets({"fix/acct": PASSWORD})
        self.server = VenueSimServer(config, tmp_path, secrets=secrets)
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
            self.node = FixSession(settings, store, self.node_app, clock=self.server.clock)
        else:  # same store, new settings: what a reconfigured node would send
            self.node = FixSession(
                settings, self.node.store, self.node_app, clock=self.server.clock
            )
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

"""What the FIX applications of the simulator's sessions share, an account's and a
read-only one: the Logon's credential check, and market data requests (V) with the
subscriptions the server publishes to."""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

from bastion.clock import Clock
from bastion.fix.codec import REQUIRED_TAG_MISSING, VALUE_INCORRECT, FixMessage
from bastion.fix.rejects import RejectMessage
from bastion.fix.session import FixSession
from bastion.model.instruments import Instrument
from bastion.vault.refs import Secret
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.fencing import VenueFence
from bastion.venue_server.fixmap import market_data_snapshot
from bastion.venue_server.messages import QuoteUpdate, TradeUpdate

__all__ = ["SessionApp", "SessionHost"]


class SessionHost(Protocol):
    """What a session's application uses of the simulator (``VenueSimServer``)."""

    @property
    def config(self) -> VenueSimConfig: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def engine(self) -> VenueSimEngine: ...

    @property
    def fence(self) -> VenueFence: ...

    @property
    def counters(self) -> Counter[str]: ...

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    @property
    def last_quotes(self) -> Mapping[str, QuoteUpdate]: ...

    @property
    def last_trades(self) -> Mapping[str, TradeUpdate]: ...

    def replying_to(self, account: str, session: FixSession) -> AbstractContextManager[None]:
        """The engine's reports for ``account`` made inside go to ``session``."""
        ...


class SessionApp:
    """The common part of a session's application; ``session`` is set by the server."""

    def __init__(self, server: SessionHost, username: str, password: Secret) -> None:
        self.server = server
        self._username = username.encode()
        self._password = password.reveal().encode()
        self.subscriptions: dict[str, str] = {}  # symbol -> MDReqID
        self.trade_subscriptions: set[str] = set()  # symbols whose V asked for 269=2
        self.session: FixSession | None = None

    @property
    def publishing(self) -> bool:
        """Whether market data may be sent to it now (logged on)."""
        return self.session is not None and self.session.logged_on

    def credentials_refusal(self, logon: FixMessage) -> str | None:
        """Why the Logon's Username (553) and Password (554) are refused, or ``None``;
        both compared in constant time, and the text never says which one failed."""
        username = (logon.get(553) or "").encode()
        password = (logon.get(554) or "").encode()
        ok_user = hmac.compare_digest(username, self._username)
        ok_password = hmac.compare_digest(password, self._password)
        return None if ok_user and ok_password else "invalid username or password"

    def clear_subscriptions(self) -> None:
        self.subscriptions.clear()
        self.trade_subscriptions.clear()

    def on_market_data_request(self, session: FixSession, message: FixMessage) -> None:
        """A MarketDataRequest (V): a snapshot (W) per symbol, and with 263=1 a
        subscription to its changes (X); 263=2 unsubscribes."""
        req_id = message.get(262)
        if req_id is None:
            raise RejectMessage(REQUIRED_TAG_MISSING, 262, "Required tag missing: 262")
        kind = message.get(263)
        if kind not in ("0", "1", "2"):
            raise RejectMessage(VALUE_INCORRECT, 263, "SubscriptionRequestType must be 0, 1 or 2")
        symbols = message.get_all(55)
        unknown = [s for s in symbols if s not in self.server.instruments]
        if not symbols or unknown:
            session.send(
                FixMessage.of(
                    "Y", (262, req_id), (281, "0"), (58, f"unknown symbol(s): {unknown or '-'}")
                )
            )
            return
        trades = "2" in message.get_all(269)
        for symbol in symbols:
            if kind == "2":
                self.subscriptions.pop(symbol, None)
                self.trade_subscriptions.discard(symbol)
                continue
            last = self.server.last_quotes.get(symbol)
            if last is not None:
                trade = self.server.last_trades.get(symbol) if trades else None
                session.send(market_data_snapshot(req_id, last, trade))
            if kind == "1":
                self.subscriptions[symbol] = req_id
                if trades:
                    self.trade_subscriptions.add(symbol)
                else:
                    self.trade_subscriptions.discard(symbol)

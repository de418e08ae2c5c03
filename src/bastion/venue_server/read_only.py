"""A read-only session's FIX application (``[[read_only_sessions]]``): a disaster-recovery
drill's recover-only node, or a reconciliation tool, reads an account's orders, fills and
positions on a session of its own, without touching the account's trading session.

- Logon: its own CompID, Username (553) and Password (554), checked as an account's.
  CancelOrdersOnDisconnect (8013) Y or S is refused (it has no orders to cancel); N or
  absent is fine. FencingEpoch (8014) is ignored: the fence guards only the accounts'
  sessions (``VenueFence.guards``), so a read-only Logon never moves the account's
  epoch, never takes the account's session over and is never taken over by it; a second
  Logon of the same read-only session is refused, as for any session.
- OrderStatusRequest (H), OrderMassStatusRequest (AF) and RequestForPositions (AN) are
  answered from the account's ledger exactly as the account's own session would be, on
  this session only (``VenueSimServer.replying_to``: the engine answers them before it
  returns, whatever its latency). AN's Account (1) may name the account or this
  session's CompID; another account is "not authorized", as on the account's session.
- NewOrderSingle (D) gets a rejected ExecutionReport (OrdRejReason 99), an
  OrderCancelRequest (F) or OrderCancelReplaceRequest (G) an OrderCancelReject, both with
  "read-only session: ..." as text; any other message that would trade gets a
  BusinessMessageReject (not authorized). Nothing reaches the account's orders or its
  session; each is counted (``read_only_refused``) and logged as a warning. A message too
  malformed to read is rejected by the session layer first, as on any session.
- MarketDataRequest (V) is served as for an account.
- Its budget (``max_reports_per_s``, ``max_reports_burst``): each message it sends is
  charged what it made the simulator send it (one report per open order for a mass
  status, at least one); a message that comes when the budget is spent gets a
  BusinessMessageReject and nothing else is done for it (counted,
  ``read_only_throttled``). Without it, a few hundred kilobytes of mass status requests
  on an account with open orders kept the event loop, and so the account's session,
  busy for seconds per request burst.

The account's own reports (fills, cancels, replaces) are not copied here: this is a query
session, not a drop copy. In echo mode it is served the same way (nothing is reflected).
"""

from __future__ import annotations

from typing import Final

import structlog

from bastion.fix.codec import FixMessage
from bastion.fix.rejects import BusinessReject
from bastion.fix.session import FixSession
from bastion.vault.refs import Secret
from bastion.venue_server._session_app import SessionApp, SessionHost
from bastion.venue_server.config import ReadOnlySessionConfig
from bastion.venue_server.fixmap import parse_request
from bastion.venue_server.messages import (
    REJ_OTHER,
    CancelRequest,
    MassStatusRequest,
    NewOrderRequest,
    PositionsRequest,
    ReplaceRequest,
    StatusRequest,
)
from bastion.venues.fix.config import CANCEL_ORDERS_ON_DISCONNECT

__all__ = ["QUERY_MSG_TYPES", "REFUSED_MSG_TYPES", "ReadOnlySession"]

log = structlog.get_logger("bastion.venue_server")

QUERY_MSG_TYPES: Final = frozenset({"H", "AF", "AN"})
"""What a read-only session is answered: status, mass status, positions."""
REFUSED_MSG_TYPES: Final = {
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
}
"""The venue's order messages, refused with the report the account's session would get."""
_OTHER_TRADING: Final = frozenset({"q", "E", "AB", "AC", "s", "t", "u"})
"""FIX 4.4 order entry the venue does not serve at all (mass cancel, lists, multileg,
crosses): refused on a read-only session as trading, not as merely unsupported."""
_NOT_AUTHORIZED: Final = 6  # BusinessRejectReason (380)
_OTHER: Final = 0  # BusinessRejectReason (380)
_QUERIES: Final = (StatusRequest, MassStatusRequest, PositionsRequest)


class ReadOnlySession(SessionApp):
    """The FIX application of one read-only session on ``config.account``."""

    def __init__(
        self, server: SessionHost, config: ReadOnlySessionConfig, password: Secret
    ) -> None:
        super().__init__(server, config.username, password)
        self.config = config
        self._budget = _Budget(
            config.max_reports_per_s, config.max_reports_burst, server.clock.monotonic_s()
        )

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        """The credentials, and no CancelOrdersOnDisconnect (8013) but N."""
        refusal = self.credentials_refusal(logon)
        if refusal is not None:
            return refusal
        if (logon.get(CANCEL_ORDERS_ON_DISCONNECT) or "N") != "N":
            return (
                "CancelOrdersOnDisconnect (8013) must be N or absent on a read-only session "
                "(it has no orders)"
            )
        return None

    def on_logon(self, session: FixSession) -> None:
        log.info("read_only_logged_on", session=self.config.name, account=self.config.account)

    def on_logout(self, session: FixSession, reason: str) -> None:
        # nothing of the account's: its orders are the account's session's to cancel
        self.clear_subscriptions()
        log.info(
            "read_only_logged_out",
            session=self.config.name,
            account=self.config.account,
            reason=reason,
        )

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        if not self._budget.available(self.server.clock.monotonic_s()):
            self.server.counters["read_only_throttled"] += 1
            raise BusinessReject(
                _OTHER,
                f"read-only session: over {self.config.max_reports_per_s:g} reports a second "
                "(max_reports_per_s); ask again later",
            )
        sent = session.store.next_sender_seq
        try:
            self._handle(session, message)
        finally:  # what it made us send (a refused message: its reject)
            self._budget.charge(max(1, session.store.next_sender_seq - sent))

    def _handle(self, session: FixSession, message: FixMessage) -> None:
        msg_type = message.msg_type
        if msg_type in QUERY_MSG_TYPES:
            self._query(session, message)
        elif msg_type in REFUSED_MSG_TYPES:
            self._refuse(session, message)
        elif msg_type in _OTHER_TRADING:
            self._refused(msg_type, None)
            raise BusinessReject(_NOT_AUTHORIZED, f"read-only session: MsgType {msg_type} refused")
        elif msg_type == "V":
            self.on_market_data_request(session, message)
        elif msg_type in ("3", "j"):
            log.warning("read_only_reject_received", session=self.config.name, text=message.get(58))
        else:
            raise BusinessReject(3, f"unsupported message type {msg_type}")

    def _query(self, session: FixSession, message: FixMessage) -> None:
        account = self.config.account
        if message.msg_type == "AN" and message.get(1) == self.config.comp_id:
            message.set(1, account)  # its own CompID names the account it reads
        request = parse_request(message)
        assert isinstance(request, _QUERIES), request
        with self.server.replying_to(account, session):
            self.server.engine.handle(account, request)

    def _refuse(self, session: FixSession, message: FixMessage) -> None:
        request = parse_request(message)
        assert isinstance(request, NewOrderRequest | CancelRequest | ReplaceRequest), request
        name = REFUSED_MSG_TYPES[message.msg_type]
        text = f"read-only session: {name} refused, this session may not trade"
        self._refused(message.msg_type, request.cl_ord_id)
        account = self.config.account
        with self.server.replying_to(account, session):
            self.server.engine.refuse(account, request, text, ord_rej_reason=REJ_OTHER)

    def _refused(self, msg_type: str, cl_ord_id: str | None) -> None:
        self.server.counters["read_only_refused"] += 1
        log.warning(
            "read_only_refused",
            session=self.config.name,
            account=self.config.account,
            msg_type=msg_type,
            cl_ord_id=cl_ord_id,
        )


class _Budget:
    """A token bucket of messages sent: ``rate`` a second, at most ``burst`` saved. A
    message is served while the bucket is not empty, and may take it below zero (one
    mass status is answered whole); the next waits until it refills."""

    def __init__(self, rate: float, burst: int, now_s: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = now_s

    def available(self, now_s: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now_s - self._at) * self._rate)
        self._at = now_s
        return self._tokens >= 1

    def charge(self, sent: int) -> None:
        self._tokens -= sent

"""What the FIX session hands the venue adapter: its logon and logout, and each
application message by type: ExecutionReport (8) and OrderCancelReject (9)
(``bastion.venues.fix._executions``), the Reject (3) or BusinessMessageReject (j) of one
of our requests, market data (W, X, Y: ``bastion.venues.fix.marketdata``), and the
answers to a RequestForPositions (AO, AP: ``bastion.venues.fix.recovery``).

On logon a MarketDataRequest (V) subscribes to top of book and trades of every
instrument of the venue; after a sequence gap on the session a V asks for snapshots
of every book, since market data in the gap is lost (resent as stale, or gap-filled).
On logout the status queries still waiting fail.

A part of ``FixVenueAdapter`` (``bastion.venues.fix.adapter``), which sets the state
``SessionEvents`` declares.
"""

from __future__ import annotations

import asyncio

import structlog

from bastion.errors import VenueUnavailable
from bastion.fix.codec import FixMessage
from bastion.fix.rejects import BusinessReject
from bastion.fix.session import FixSession
from bastion.venues.fix import recovery
from bastion.venues.fix._executions import ExecutionReports
from bastion.venues.fix.marketdata import SNAPSHOT, SUBSCRIBE, TopOfBook, market_data_request

log = structlog.get_logger("bastion.venues.fix")


class SessionEvents(ExecutionReports):
    """The adapter as the application of its ``FixSession``."""

    # set by ``FixVenueAdapter``
    subscribe_market_data: bool
    submitted_since_logon: set[str]
    position_expected: dict[str, int]
    logged_on: asyncio.Event
    logged_off: asyncio.Event
    _book: TopOfBook
    _md_gaps: int
    _logons: int
    _track_submitted: bool

    def on_logon(self, session: FixSession) -> None:
        self._logons += 1  # new orders wait for this logon's reconciliation
        self.submitted_since_logon.clear()
        self._track_submitted = True
        self.logged_off.clear()
        self.logged_on.set()
        # a gap before this logon is not one in this subscription: it starts from snapshots
        self._md_gaps = session.counters["gaps_detected"]
        if self.subscribe_market_data and self.instruments:
            request = f"MD-{next(self._request_ids):x}"
            session.send(market_data_request(request, sorted(self.instruments), kind=SUBSCRIBE))

    def _on_gap(self, session: FixSession) -> None:
        """The session found a sequence gap: market data in it is lost (resent as stale, or
        gap-filled), so every book is refreshed from a snapshot."""
        if not (self.subscribe_market_data and self.instruments):
            return
        request = f"MD-{next(self._request_ids):x}"
        symbols = sorted(self.instruments)
        self.counters["market_data_snapshots_requested"] += 1
        log.warning("fix_market_data_gap", venue=self.name, request=request, symbols=symbols)
        session.send(market_data_request(request, symbols, kind=SNAPSHOT))

    def on_logout(self, session: FixSession, reason: str) -> None:
        self.logged_on.clear()
        self.logged_off.set()
        self._book.clear()
        error = VenueUnavailable(f"session closed: {reason}")
        for future, _ in self._mass_status.values():
            if not future.done():
                future.set_exception(error)
        for status in self._status.values():
            if not status.done():
                status.set_exception(error)

    def authenticate(self, session: FixSession, logon: FixMessage) -> str | None:
        return None  # initiator side: the venue authenticates us

    def on_message(self, session: FixSession, message: FixMessage) -> None:
        gaps = session.counters["gaps_detected"]
        if gaps != self._md_gaps:
            self._md_gaps = gaps
            self._on_gap(session)
        msg_type = message.msg_type
        if msg_type == "8":
            self._on_execution_report(message)
        elif msg_type == "9":
            self._on_cancel_reject(message)
        elif msg_type in ("W", "X"):
            if message.get(43) == "Y":
                self.counters["resent_market_data_ignored"] += 1  # stale: a resend
                return
            self._book.on_market_data(message, snapshot=msg_type == "W")
        elif msg_type == "3" or msg_type == "j":
            self._on_reject(message)
        elif msg_type == "AO" or msg_type == "AP":
            recovery.on_position_message(self, message)
        elif msg_type == "Y":
            self.counters["market_data_rejects"] += 1
            log.warning("fix_market_data_rejected", venue=self.name, text=message.get(58))
        else:
            raise BusinessReject(3, f"unsupported message type {msg_type}")

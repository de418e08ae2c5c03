"""The venue's fence against a deposed HA leader (DESIGN.md invariant 4; docs/ha.md "At
the venue").

A member of an HA group logs on with its fencing epoch in FencingEpoch (8014), and the
epoch is in every client order id it mints (``{node}-{epoch}-{seq}``,
``bastion.execution.ids``). ``VenueFence`` keeps, per session (the account's CompIDs),
the highest epoch that logged on, in the ledger so that a restart of the simulator
keeps it, and decides:

- a Logon (``admit``, through the acceptor's ``LogonGate`` seam): a lower epoch than the
  session's highest is refused with both epochs named; a malformed 8014 is refused with
  the reason; an admitted epoch becomes the session's highest before anything else
  happens, so a Logon racing it with an older epoch is refused;
- a second connection (``takes_over``): a fenced Logon replaces the live connection
  (dropped first, with cancel-on-disconnect as for any drop), an unfenced one is
  refused as before;
- an order, cancel or replace (``check``) on a fenced session: refused if its ClOrdID
  carries an older epoch than the session's highest.

The epoch of a request is its sender's: that of a ClOrdID it minted, or for bastion's
cancels and replaces, ``{order's ClOrdID}/{epoch}.{n}`` (``bastion.execution.ids.
amend_id``), the one after the ``/``; the order's epoch before it is not compared (a new
leader cancels its predecessor's orders). An older node version's ``{order's
ClOrdID}/{n}`` names only the order's epoch, which says nothing of who sent it: such a
"derived" id, and anything else that does not parse, carries no epoch and is passed on,
unless the mode is ``strict``.

Only the accounts' sessions are fenced (the ``accounts`` map): any other session the
acceptor serves, a read-only one (``bastion.venue_server.read_only``), passes the gate
with its 8014 ignored, whatever the mode; it never moves an account's recorded epoch,
never takes a session over and is never taken over by a Logon of its own.

Every order, cancel and replace is recorded with its epoch and arrival time, refused or
not (``VenueLedger.order_epochs``), so a test can check that no order of an epoch was
accepted after a newer epoch's first.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final, Literal

import structlog

from bastion.clock import Clock
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession
from bastion.venue_server.ledger import OrderEpochRow, VenueLedger
from bastion.venue_server.messages import CancelRequest, NewOrderRequest, ReplaceRequest
from bastion.venues.fix.config import FENCING_EPOCH

__all__ = [
    "FENCED_REQUESTS",
    "MAX_EPOCH",
    "FencingMode",
    "VenueFence",
    "cl_ord_id_epoch",
    "logon_epoch",
]

log = structlog.get_logger("bastion.venue_server")

FencingMode = Literal["off", "tag", "strict"]
MAX_EPOCH: Final = 2**63 - 1
"""The largest epoch taken (a signed 64-bit integer, as the lease and the ledger keep it)."""

# {node}-{epoch}-{seq}: the node id as ``bastion.execution.ids`` allows it; at most 18
# digits each, so a hostile id cannot make a huge integer
_MINTED: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}-(\d{1,18})-\d{1,18}")
# what follows the '/' of a cancel's or replace's ClOrdID: {sender's epoch}.{n in hex}
_AMEND_TAIL: Final = re.compile(r"(\d{1,18})\.[0-9a-f]{1,16}")

OrderRequest = NewOrderRequest | CancelRequest | ReplaceRequest
FENCED_REQUESTS: Final = (NewOrderRequest, CancelRequest, ReplaceRequest)
"""The requests ``VenueFence.check`` is asked about (status and positions only read)."""


def logon_epoch(logon: FixMessage) -> int | None:
    """The FencingEpoch (8014) of ``logon``, or ``None`` without the tag; ``ValueError``
    with the reason if it is not an integer from 0 to ``MAX_EPOCH``."""
    text = logon.get(FENCING_EPOCH)
    if text is None:
        return None
    shown = text if len(text) <= 24 else text[:24] + "..."
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"FencingEpoch (8014) must be a non-negative integer, got {shown!r}")
    if len(text) > 19 or int(text) > MAX_EPOCH:
        raise ValueError(f"FencingEpoch (8014) {shown} is above the largest taken ({MAX_EPOCH})")
    return int(text)


def cl_ord_id_epoch(cl_ord_id: str) -> tuple[int | None, bool]:
    """The epoch of the sender of a request with ``cl_ord_id`` (None if it names none),
    and whether the id is derived from an order's without one of its sender's (an older
    node's ``{node}-{epoch}-{seq}/{n}``, whose epoch is the order's: then the epoch is
    None). A cancel's or replace's ``{order's ClOrdID}/{epoch}.{n}`` names its sender's."""
    match = _MINTED.fullmatch(cl_ord_id)
    if match is not None:
        return int(match.group(1)), False
    base, slash, tail = cl_ord_id.partition("/")
    if not slash:
        return None, False
    sender = _AMEND_TAIL.fullmatch(tail)
    if sender is not None and base:
        return int(sender.group(1)), False
    return None, _MINTED.fullmatch(base) is not None


class VenueFence:
    """The simulator's fence: the acceptor's ``LogonGate`` and the order check.

    Counts in ``counters``: ``fence_logons_refused``, ``fence_takeovers``,
    ``fence_orders_refused``."""

    def __init__(
        self,
        mode: FencingMode,
        *,
        ledger: VenueLedger,
        clock: Clock,
        accounts: dict[str, str],
        counters: Counter[str],
    ) -> None:
        """``accounts``: the account name of each session key."""
        self.mode = mode
        self._ledger = ledger
        self._clock = clock
        self._accounts = accounts
        self.counters = counters
        self.highest: dict[str, int] = ledger.session_epochs()
        """The highest epoch that logged on, per session key (as the ledger keeps it)."""

    # -- logons (the acceptor's LogonGate) -----------------------------------------------
    def admit(self, session: FixSession, logon: FixMessage) -> str | None:
        """Why ``logon`` may not have ``session``, or ``None``; an admitted epoch becomes
        the session's highest (in the ledger) before this returns. A session that is not
        an account's passes, its 8014 ignored."""
        if self.mode == "off" or not self.guards(session):
            return None
        key = session.settings.key
        try:
            epoch = logon_epoch(logon)
        except ValueError as error:
            return self._refuse_logon(key, str(error))
        if epoch is None:
            if self.mode == "strict":
                return self._refuse_logon(key, "FencingEpoch (8014) required on this venue")
            return None
        highest = self.highest.get(key)
        if highest is not None and epoch < highest:
            return self._refuse_logon(
                key, f"fencing epoch {epoch} is older than the session's newest, {highest}"
            )
        if highest is None or epoch > highest:
            self._ledger.raise_session_epoch(
                key, self._accounts[key], epoch, self._clock.timestamp_ns()
            )
            self.highest[key] = epoch
            log.info("fence_epoch_raised", session=key, epoch=epoch, was=highest)
        return None

    def takes_over(self, session: FixSession, logon: FixMessage) -> str | None:
        """Why an admitted ``logon`` replaces the session's live connection, or ``None``
        (refused as a second connection, as without fencing, and always for a session
        that is not an account's)."""
        if self.mode == "off" or FENCING_EPOCH not in logon or not self.guards(session):
            return None
        self.counters["fence_takeovers"] += 1
        return f"session taken over by a Logon with fencing epoch {logon.get(FENCING_EPOCH)}"

    def guards(self, session: FixSession) -> bool:
        """Whether ``session`` is an account's, the only sessions fenced."""
        return session.settings.key in self._accounts

    def _refuse_logon(self, key: str, reason: str) -> str:
        self.counters["fence_logons_refused"] += 1
        log.warning("fence_logon_refused", session=key, reason=reason)
        return reason

    # -- orders -------------------------------------------------------------------------
    def check(self, session: FixSession, fenced: bool, request: OrderRequest) -> str | None:
        """Why ``request`` on ``session`` is refused, or ``None``; recorded either way.
        ``fenced``: the connection's Logon carried the tag."""
        key = session.settings.key
        epoch, derived = cl_ord_id_epoch(request.cl_ord_id)
        highest = self.highest.get(key) if fenced and self.mode != "off" else None
        refused: str | None = None
        if highest is not None:
            if epoch is not None and epoch < highest:
                refused = (
                    f"fenced: ClOrdID {request.cl_ord_id} carries epoch {epoch}, "
                    f"older than the session's newest, {highest}"
                )
            elif epoch is None and self.mode == "strict":
                refused = (
                    f"fenced: ClOrdID {request.cl_ord_id} carries its order's epoch, not its "
                    "sender's"
                    if derived
                    else f"fenced: ClOrdID {request.cl_ord_id} carries no epoch"
                )
        self._ledger.record_order_epoch(
            OrderEpochRow(
                account=self._accounts[key],
                msg_type=_MSG_TYPES[type(request)],
                cl_ord_id=request.cl_ord_id,
                epoch=epoch,
                session_epoch=highest,
                received_ns=self._clock.timestamp_ns(),
                refused=refused,
            )
        )
        if refused is not None:
            self.counters["fence_orders_refused"] += 1
            log.warning("fence_order_refused", session=key, reason=refused)
        return refused


_MSG_TYPES: Final[dict[type, str]] = {NewOrderRequest: "D", CancelRequest: "F", ReplaceRequest: "G"}

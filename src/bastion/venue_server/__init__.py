"""The venue simulator (``bastion venue sim``): bastion's matching engine as a FIX venue.

This package holds its network-free core: the request/report messages, the
persistent ledger and the engine that applies FIX 4.4 order handling over the
``SimVenue`` matching engine.
"""

from bastion.venue_server.engine import ReportSink, VenueSimEngine
from bastion.venue_server.ledger import FillRow, OrderRow, PositionRow, VenueLedger
from bastion.venue_server.messages import (
    CancelReject,
    CancelRequest,
    ExecReport,
    MassStatusRequest,
    NewOrderRequest,
    QuoteUpdate,
    ReplaceRequest,
    Report,
    Request,
    StatusRequest,
    TradeUpdate,
)

__all__ = [
    "CancelReject",
    "CancelRequest",
    "ExecReport",
    "FillRow",
    "MassStatusRequest",
    "NewOrderRequest",
    "OrderRow",
    "PositionRow",
    "QuoteUpdate",
    "ReplaceRequest",
    "Report",
    "ReportSink",
    "Request",
    "StatusRequest",
    "TradeUpdate",
    "VenueLedger",
    "VenueSimEngine",
]

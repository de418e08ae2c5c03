"""Cancel on disconnect at the venue simulator: venue-wide (``cancel_on_disconnect``) or
asked for by one session's Logon (CancelOrdersOnDisconnect, 8013=Y). A node-side
``FixSession`` talks to the server's account session through in-memory pipes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.venuesim_wire import Wire


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

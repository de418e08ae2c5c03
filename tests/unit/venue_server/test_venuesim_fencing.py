"""The venue fence's parsing (FencingEpoch on a Logon, the epoch in a ClOrdID) and the
HA oracle's reading of a ledger (``kit.ha_oracle.epoch_violations``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.fix.codec import FixMessage
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.venue_server.fencing import MAX_EPOCH, cl_ord_id_epoch, logon_epoch
from bastion.venue_server.ledger import OrderEpochRow, OrderRow, VenueLedger
from kit.ha_oracle import epoch_violations

T0 = 1_704_205_800_000_000_000


@pytest.mark.parametrize(
    ("cl_ord_id", "expected"),
    [
        ("desk-3-17", (3, False)),
        ("desk.a_b-c-12-4", (12, False)),  # a node id may hold '-'
        ("desk-3-17/5.1a2b", (5, False)),  # a cancel's: its sender's epoch after the '/'
        ("desk-3-17/0.0", (0, False)),
        ("desk-3-17/1a2b", (None, True)),  # an older node's: the order's epoch only
        ("desk-3-17/5.", (None, True)),
        ("desk-3-17/5.1A", (None, True)),  # the node writes n in lower-case hex
        ("desk-3-17/5.1/2", (None, True)),
        ("desk-3-17/" + "9" * 19 + ".1", (None, True)),  # no huge integers either
        ("desk-3-17/5." + "f" * 17, (None, True)),
        ("/5.1", (None, False)),
        ("desk-3", (None, False)),
        ("desk-x-1", (None, False)),
        ("-3-1", (None, False)),
        ("desk-" + "9" * 19 + "-1", (None, False)),  # no huge integers from a hostile id
        ("x" * 65 + "-1-1", (None, False)),
        ("", (None, False)),
        ("desk-3-17/", (None, True)),
        ("a/b/c", (None, False)),
    ],
)
def test_when_cl_ord_id_parsed_then_epoch_only_from_a_minted_id(
    cl_ord_id: str, expected: tuple[int | None, bool]
) -> None:
    """``{node}-{epoch}-{seq}`` and a cancel's ``{order}/{epoch}.{n}`` name their sender's
    epoch; an older node's ``{order}/{n}`` is derived; anything else carries none."""
    assert cl_ord_id_epoch(cl_ord_id) == expected


def test_when_logon_epoch_at_limits_then_taken_and_one_past_refused() -> None:
    """0 and 2**63-1 are epochs; absent is None; 2**63, signs and non-digits are refused."""
    assert logon_epoch(FixMessage.of("A")) is None
    assert logon_epoch(FixMessage.of("A", (8014, "0"))) == 0
    assert logon_epoch(FixMessage.of("A", (8014, str(MAX_EPOCH)))) == MAX_EPOCH
    for bad in (str(MAX_EPOCH + 1), "+1", "-1", " 1", "\u0661", ""):
        with pytest.raises(ValueError, match="8014"):
            logon_epoch(FixMessage.of("A", (8014, bad)))


def _order(order_id: str, cl_ord_id: str, status: str = "0") -> OrderRow:
    return OrderRow(
        account="acct",
        order_id=order_id,
        root_cl_ord_id=cl_ord_id,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=None,
        symbol="XYZ",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=Decimal(1),
        price=Decimal(1),
        cum_qty=Decimal(0),
        cum_notional=Decimal(0),
        status=status,  # type: ignore[arg-type]
        priority=0,
        created_ns=T0,
        updated_ns=T0,
    )


def _logged(
    cl_ord_id: str, epoch: int | None, refused: str | None = None, *, msg_type: str = "D"
) -> OrderEpochRow:
    return OrderEpochRow(
        account="acct",
        msg_type=msg_type,
        cl_ord_id=cl_ord_id,
        epoch=epoch,
        session_epoch=2,
        received_ns=T0,
        refused=refused,
    )


def test_when_older_epoch_accepted_after_newer_then_oracle_names_it(tmp_path: Path) -> None:
    """An order of epoch 1 taken after epoch 2's first is reported from both the fence's
    log and the books; refused or rejected ones, and an older node's cancels (no sender
    epoch), are not."""
    path = tmp_path / "ledger.sqlite"
    with VenueLedger(path) as ledger:
        assert epoch_violations(path) == []
        ledger.insert_order(_order("SIM-1", "desk-1-1"))
        ledger.record_order_epoch(_logged("desk-1-1", 1))
        ledger.insert_order(_order("SIM-2", "desk-2-1"))
        ledger.record_order_epoch(_logged("desk-2-1", 2))
        ledger.record_order_epoch(_logged("desk-1-2", 1, refused="fenced"))
        ledger.record_order_epoch(_logged("desk-1-1/5", None))
        ledger.insert_order(_order("SIM-3", "desk-1-3", status="8"))
        assert epoch_violations(path) == []
        ledger.insert_order(_order("SIM-4", "desk-1-4"))
        ledger.record_order_epoch(_logged("desk-1-4", 1))
        found = epoch_violations(path)
    assert len(found) == 2
    assert found[0].startswith("fence log: account acct: D desk-1-4 (epoch 1)")
    assert found[1].startswith("books: account acct: D desk-1-4 (epoch 1)")
    assert all("after epoch 2's first request desk-2-1" in f for f in found)


def test_when_older_senders_cancel_or_replace_accepted_after_newer_then_oracle_names_it(
    tmp_path: Path,
) -> None:
    """The oracle reads a cancel's or replace's epoch after the '/': epoch 2 cancelling
    epoch 1's order is fine, epoch 1's cancel or replace after epoch 2's cancel is not,
    nor a refused one."""
    path = tmp_path / "ledger.sqlite"
    with VenueLedger(path) as ledger:
        ledger.record_order_epoch(_logged("desk-1-1", 1))
        ledger.record_order_epoch(_logged("desk-1-1/1.a", 1, msg_type="G"))
        ledger.record_order_epoch(_logged("desk-1-1/2.b", 2, msg_type="F"))
        ledger.record_order_epoch(_logged("desk-1-2/1.c", 1, refused="fenced", msg_type="F"))
        assert epoch_violations(path) == []
        ledger.record_order_epoch(_logged("desk-1-2/1.d", 1, msg_type="G"))
        ledger.record_order_epoch(_logged("desk-1-2/1.e", 1, msg_type="F"))
        found = epoch_violations(path)
    assert found == [
        f"fence log: account acct: {kind} desk-1-2/1.{n} (epoch 1) accepted at {T0} after "
        f"epoch 2's first request desk-1-1/2.b at {T0}"
        for kind, n in (("G", "d"), ("F", "e"))
    ]

"""A node's encrypted, keyed journal through the real recovery path (``recover_node``, what
``bastion recover`` and a restart run): it recovers its orders with the keys, and refuses
to start from a journal an insider edited, naming what was forged."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig, resolve_path
from bastion.errors import IntegrityError, StorageKeyError
from bastion.feeds.config import SyntheticFeedEntry
from bastion.journal import SqliteJournal, export_jsonl, verify_journal
from bastion.journal.keys import JournalKeys
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderStatus
from bastion.node.kernel import Kernel
from bastion.node.runner import recover_node
from bastion.recovery.state import capture
from bastion.venues.sim.config import SimVenueEntry
from kit.journal_attacks import (
    CHAIN_KEY,
    ENCRYPTED,
    KEYED,
    OTHER_KEY,
    downgrade,
    drop_last_anchor_line,
    rechain_unkeyed,
)
from kit.journal_samples import execute
from kit.two_venues import T0, send


def config() -> PaperConfig:
    return PaperConfig(
        instruments=[InstrumentConfig(id="X.A", venue="SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        venues=[SimVenueEntry(name="SIM")],
        feeds=[SyntheticFeedEntry(name="house", instruments=["X.A"])],
        run_for_s=0.1,
    )


def node_journal(root: Path, keys: JournalKeys) -> tuple[Path, str]:
    """A node's journal with one order resting at SIM and a snapshot after it."""
    cfg = config()
    path = resolve_path(root, cfg.journal.path)
    journal = SqliteJournal(path, keys=keys)
    try:
        kernel = Kernel(config=cfg, base_dir=root, clock=SimClock(T0), epoch=1, journal=journal)
        kernel.on_quote(QuoteTick("X.A", T0, 10_000, 10_002, 500, 500))
        resting = send(kernel, "X.A")
        assert resting.status is OrderStatus.ACCEPTED
        journal.snapshot(capture(kernel, node_id="n", epoch=1), T0 + 1)
        send(kernel, "X.A")
    finally:
        journal.close()
    return path, resting.client_order_id


def test_when_encrypted_and_keyed_then_recovery_and_export_round_trip(tmp_path: Path) -> None:
    """Recovery with the keys finds the resting orders; export and verify read the file."""
    path, order_id = node_journal(tmp_path, ENCRYPTED)
    code, report = recover_node(config(), base_dir=tmp_path, keys=ENCRYPTED)
    assert code == 0 and report["open_orders"] == 2 and report["snapshot_seq"] is not None
    out = io.BytesIO()
    assert export_jsonl(path, out, keys=ENCRYPTED) > 4
    assert order_id.encode() in out.getvalue() and order_id.encode() not in path.read_bytes()
    assert verify_journal(path, keys=ENCRYPTED).ok


def test_when_started_without_the_keys_then_recovery_refuses(tmp_path: Path) -> None:
    """No keys, or the wrong chain key: a key error naming the journal, nothing replayed."""
    node_journal(tmp_path, ENCRYPTED)
    with pytest.raises(StorageKeyError, match="without its encryption key"):
        recover_node(config(), base_dir=tmp_path)
    wrong = JournalKeys(encryption=ENCRYPTED.encryption, chain=OTHER_KEY)
    with pytest.raises(StorageKeyError, match="wrong chain key"):
        recover_node(config(), base_dir=tmp_path, keys=wrong)


def _edit_price(path: Path) -> None:
    execute(path, "UPDATE events SET ts_ns = ts_ns + 1 WHERE seq = 2")


def _edit_snapshot(path: Path) -> None:
    execute(path, "UPDATE snapshots SET payload = CAST(payload || x'00' AS BLOB)")


ATTACKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "edit": (_edit_price, "first bad record seq 2"),
    "delete": (lambda p: execute(p, "DELETE FROM events WHERE seq = 3"), "first bad record seq 4"),
    "truncate": (lambda p: execute(p, "DELETE FROM events WHERE seq > 3"), "cut off"),
    "rechain": (rechain_unkeyed, "first bad record seq 1"),
    "downgrade": (downgrade, "downgraded"),
    "snapshot": (_edit_snapshot, "snapshot at seq"),
    "anchor deleted, journal cut": (
        lambda p: (drop_last_anchor_line(p), execute(p, "DELETE FROM events WHERE seq > 2")),
        "cut off",
    ),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_when_an_insider_edited_the_journal_then_the_node_refuses_to_start(
    tmp_path: Path, attack: str
) -> None:
    """Each edit of a keyed journal is named by verify and stops recovery with an
    IntegrityError that names it too."""
    path, _ = node_journal(tmp_path, KEYED)
    # a second run anchors the head again, so dropping the newest anchor leaves one
    SqliteJournal(path, keys=KEYED).close()
    tamper, named = ATTACKS[attack]
    tamper(path)
    result = verify_journal(path, keys=KEYED)
    assert not result.ok and result.problem is not None
    with pytest.raises(IntegrityError) as refused:
        recover_node(config(), base_dir=tmp_path, keys=KEYED)
    assert named in str(refused.value)
    assert str(path) in str(refused.value)


def test_when_the_chain_key_is_given_then_an_unkeyed_journal_is_never_trusted(
    tmp_path: Path,
) -> None:
    """An old unkeyed journal still recovers without keys; with a chain key it is refused
    (it might be a downgraded one)."""
    node_journal(tmp_path, JournalKeys())
    code, _ = recover_node(config(), base_dir=tmp_path)
    assert code == 0
    with pytest.raises(IntegrityError, match="unkeyed"):
        recover_node(config(), base_dir=tmp_path, keys=JournalKeys(chain=CHAIN_KEY))

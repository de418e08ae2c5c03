"""A FIX session's reserved outgoing numbers (``SenderSeqBlock``) over reservations
that answer as told: the next block is asked for in the background once half of the
current one is used, a number past the reservation waits a bounded time for it, and
once deposed (the reservation fenced by the epoch) nothing past the block is allowed.
The database side (fencing, a new leader above the old reservations) is in
``tests/integration/test_ha_fix_seqs.py``."""

from __future__ import annotations

import threading
import time

import pytest

from bastion.errors import FencedError, OperationalError
from bastion.ha.fix_seqs import SenderSeqBlock, SeqReservations, SequenceUnavailable
from kit.waiting import eventually

BLOCK = 10
WAIT_MS = 200


class Reservations(SeqReservations):
    """Blocks of ``BLOCK`` from ``from_seq``, recorded; ``gate`` (when cleared) holds a
    refill until set; ``fail`` is raised instead of reserving."""

    def __init__(self) -> None:
        super().__init__(url="postgresql://nowhere", password=None, group="desk", epoch=3)
        self.block = BLOCK
        self.asked: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def reserve(self, session_key: str, from_seq: int) -> tuple[int, int]:
        self.asked.append(from_seq)
        if len(self.asked) > 1:  # the first block (begin) is never held
            self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return from_seq, from_seq + self.block - 1


@pytest.fixture
def reservations() -> Reservations:
    return Reservations()


def _begun(reservations: Reservations, next_seq: int = 1) -> SenderSeqBlock:
    block = reservations.session("FIX.4.4:A->B", wait_ms=WAIT_MS)
    assert block.begin(next_seq) == next_seq
    return block


def test_when_half_the_block_is_used_then_the_next_is_reserved_in_the_background(
    reservations: Reservations,
) -> None:
    """1..5 pass without asking; 6 (past half) asks for 11..20 on the worker and returns
    at once; the numbers of the next block then pass without waiting."""
    block = _begun(reservations)
    try:
        for seq in range(1, 6):
            block.check(seq)
        assert reservations.asked == [1]
        block.check(6)
        eventually(lambda: block.through == 20, what="the next block")
        assert reservations.asked == [1, 11]
        started = time.monotonic()
        for seq in range(7, 16):
            block.check(seq)
        assert time.monotonic() - started < WAIT_MS / 1000
    finally:
        block.close()


def test_when_the_reservation_lags_then_a_number_past_it_waits_then_is_refused(
    reservations: Reservations,
) -> None:
    """The refill held: 11 waits WAIT_MS then SequenceUnavailable (nothing sent with it);
    released within the wait, the number passes."""
    block = _begun(reservations)
    reservations.gate.clear()
    try:
        started = time.monotonic()
        with pytest.raises(SequenceUnavailable, match="MsgSeqNum 11 is past the reserved 10"):
            block.check(11)
        waited_s = time.monotonic() - started
        assert WAIT_MS / 1000 <= waited_s < WAIT_MS / 1000 + 0.5
        threading.Timer(0.05, reservations.gate.set).start()
        block.check(11)
        assert block.through >= 20  # the waits asked again: a block more may follow
    finally:
        reservations.gate.set()
        block.close()


def test_when_a_refill_fails_then_it_is_counted_and_tried_again(
    reservations: Reservations,
) -> None:
    """A database failure is not a deposition: counted, retried, and the block comes."""
    block = _begun(reservations)
    reservations.fail = OperationalError("connection reset")
    try:
        block.check(6)
        eventually(lambda: block.failures >= 2, what="two failed refills")
        reservations.fail = None
        eventually(lambda: block.through == 20, what="the block after the failures")
    finally:
        block.close()


def test_when_deposed_then_no_number_past_the_block_and_no_more_reservations(
    reservations: Reservations,
) -> None:
    """The refill is fenced (another epoch leads): the worker stops for good and a number
    past the block is refused at once, without waiting out the bound."""
    block = _begun(reservations)
    reservations.fail = FencedError("epoch 3 is no longer the lease's (4)")
    try:
        block.check(6)
        eventually(lambda: block._stop.is_set(), what="the worker to stop")
        asked = len(reservations.asked)
        started = time.monotonic()
        with pytest.raises(SequenceUnavailable):
            block.check(11)
        assert time.monotonic() - started < WAIT_MS / 1000
        assert len(reservations.asked) == asked
    finally:
        block.close()


def test_when_begun_then_the_first_number_is_above_the_old_reservations_or_its_own() -> None:
    """begin returns max(the session's own next number, every number reserved + 1)."""

    class Above(Reservations):
        def reserve(self, session_key: str, from_seq: int) -> tuple[int, int]:
            first = max(from_seq, 10_001)
            return first, first + self.block - 1

    block = Above().session("FIX.4.4:A->B", wait_ms=WAIT_MS)
    try:
        assert block.begin(19) == 10_001
        assert block.through == 10_010
    finally:
        block.close()

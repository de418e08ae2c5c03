"""FIX sequence reservations in a real PostgreSQL (``bastion_fix_seqs``): each block is
fenced by the writer's epoch in the lease row, and a new leader starts above every
number an older one reserved."""

from __future__ import annotations

import pytest

from bastion.errors import FencedError
from bastion.ha.fix_seqs import SeqReservations, SequenceUnavailable
from kit.ha import split_dsn
from kit.pg_journal import set_lease
from kit.postgres import PostgresServer
from kit.waiting import eventually

GROUP = "desk"
SESSION = "FIX.4.4:DESK->BROKER"


def _reservations(dsn: str, epoch: int, *, block: int = 100) -> SeqReservations:
    url, password = split_dsn(dsn)
    return SeqReservations(url=url, password=password, group=GROUP, epoch=epoch, block=block)


def test_when_another_epoch_leads_then_the_old_leader_reserves_nothing_more(
    postgres: PostgresServer, pg_dsn: str
) -> None:
    """Epoch 1 reserves; the lease moves to epoch 2: epoch 1's next reservation is
    FencedError, and its session refuses every number past its block at once."""
    set_lease(postgres, pg_dsn, GROUP, 1)
    old = _reservations(pg_dsn, 1)
    block = old.session(SESSION, wait_ms=2_000)
    try:
        assert block.begin(1) == 1
        assert block.through == 100
        set_lease(postgres, pg_dsn, GROUP, 2)
        with pytest.raises(FencedError, match="epoch is 1 but the lease's is 2"):
            old.reserve(SESSION, 101)
        block.check(51)  # past half: the worker asks, and is fenced
        eventually(lambda: block._stop.is_set(), what="the refill fenced")
        with pytest.raises(SequenceUnavailable):
            block.check(101)
        assert block.through == 100
    finally:
        block.close()
        old.close()


def test_when_a_new_leader_begins_then_it_starts_at_reserved_through_plus_one(
    postgres: PostgresServer, pg_dsn: str
) -> None:
    """Epoch 1 reserved through 100 (and sent 19); epoch 2's session, whose own store
    says 5, begins at 101; a store already above the reservations keeps its number."""
    set_lease(postgres, pg_dsn, GROUP, 1)
    old = _reservations(pg_dsn, 1)
    try:
        assert old.reserve(SESSION, 1) == (1, 100)
    finally:
        old.close()
    set_lease(postgres, pg_dsn, GROUP, 2)
    new = _reservations(pg_dsn, 2)
    block = new.session(SESSION)
    try:
        assert block.begin(5) == 101
        assert block.through == 200
        assert new.reserve("FIX.4.4:DESK->OTHER", 7_000) == (7_000, 7_099)
        assert new.reserve(SESSION, 150) == (201, 300)  # never below what was reserved
    finally:
        block.close()
        new.close()

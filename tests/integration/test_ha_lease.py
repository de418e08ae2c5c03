"""The HA lease against a real PostgreSQL: one holder at a time, epochs that only
grow, takeover only after lease + margin on the server's clock, deposed leaders told
so, and a release that hands over at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from bastion.errors import ConfigError, Deposed
from bastion.ha.fence import Fence
from bastion.ha.lease import Lease, LeaseKeeper, wait_until_leader
from kit.ha import FAST, Lost, MakeMember, members
from kit.waiting import eventually


@pytest.fixture
def member(pg_dsn: str) -> Iterator[MakeMember]:
    """Members of the group ``desk`` on a fresh database (closed after the test)."""
    with members(pg_dsn) as make:
        yield make


def _race(leases: list[Lease]) -> list[tuple[Lease, Fence]]:
    """Every lease tries to acquire at the same moment; the winners and their fences."""
    barrier = threading.Barrier(len(leases))
    won: list[tuple[Lease, Fence]] = []
    lock = threading.Lock()

    def go(lease: Lease) -> None:
        barrier.wait()
        fence = lease.acquire()
        if fence is not None:
            with lock:
                won.append((lease, fence))

    threads = [threading.Thread(target=go, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_when_members_race_then_one_holds_and_epochs_strictly_increase(member: MakeMember) -> None:
    """Six members race for the lease five times (the winner releases it each time)."""
    leases = [member(f"m{n}") for n in range(6)]
    epochs = []
    for _ in range(5):
        won = _race(leases)
        assert len(won) == 1
        ((holder, fence),) = won
        epochs.append(fence.epoch)
        assert holder.release(fence)
    assert epochs == sorted(set(epochs)) and epochs[0] == 1


def test_when_leader_stops_renewing_then_standby_takes_over_after_lease_and_margin(
    member: MakeMember, pg_dsn: str
) -> None:
    """The takeover's renewed_at is at least lease + margin after the last renewal, both
    on the server's clock."""
    leader, standby = member("a"), member("b")
    fence = leader.acquire()
    assert fence is not None
    leader.renew(fence)
    with psycopg.connect(pg_dsn) as conn:
        (last_renewal,) = conn.execute("SELECT renewed_at FROM bastion_leases").fetchone() or ()
    assert standby.acquire() is None
    taken = eventually(standby.acquire, 5, interval_s=0.005)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT renewed_at, epoch, holder FROM bastion_leases").fetchone()
    assert row is not None
    took_at, epoch, holder = row
    waited_ms = (took_at - last_renewal).total_seconds() * 1000
    assert waited_ms >= FAST["lease_ms"] + FAST["margin_ms"]
    assert (epoch, holder) == (fence.epoch + 1, "b") and taken.epoch == epoch
    with pytest.raises(Deposed, match="no longer current"):
        leader.renew(fence)
    assert not fence.may_send() and fence.revoked is not None


def test_when_standby_waits_then_wait_until_leader_returns_the_new_fence(
    member: MakeMember,
) -> None:
    leader, standby = member("a"), member("b")
    first = leader.acquire()
    assert first is not None
    second = wait_until_leader(standby)
    assert second is not None and second.epoch == first.epoch + 1 and second.may_send()


def test_when_leader_renews_then_standby_never_takes_over(member: MakeMember) -> None:
    leader, standby = member("a"), member("b")
    fence = leader.acquire()
    assert fence is not None
    lost = Lost()
    keeper = LeaseKeeper(leader, fence, on_lost=lost)
    keeper.start()
    try:
        stop = threading.Event()
        timer = threading.Timer(3 * FAST["lease_ms"] / 1000, stop.set)
        timer.start()
        assert wait_until_leader(standby, stop) is None
        assert fence.may_send() and not lost.reasons and keeper.renewals >= 10
    finally:
        keeper.stop()


def test_when_released_then_standby_takes_over_at_once(member: MakeMember) -> None:
    leader, standby = member("a"), member("b")
    fence = leader.acquire()
    assert fence is not None
    assert leader.release(fence)
    assert not fence.may_send()
    status = standby.status()
    assert status is not None and status.released and status.free_in_ms == 0
    taken = standby.acquire()
    assert taken is not None and taken.epoch == fence.epoch + 1


def test_when_handed_to_a_member_then_only_that_member_takes_it(member: MakeMember) -> None:
    leader, other, named = member("a"), member("b"), member("c")
    fence = leader.acquire()
    assert fence is not None
    assert leader.release(fence, to="c")
    assert other.acquire() is None
    taken = named.acquire()
    assert taken is not None and taken.epoch == fence.epoch + 1


def test_when_leader_is_deposed_then_keeper_revokes_and_calls_on_lost(
    member: MakeMember, pg_dsn: str
) -> None:
    leader = member("a")
    fence = leader.acquire()
    assert fence is not None
    lost = Lost()
    keeper = LeaseKeeper(leader, fence, on_lost=lost)
    keeper.start()
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:  # an operator's takeover
            conn.execute("UPDATE bastion_leases SET epoch = epoch + 1, holder = 'z'")
        assert lost.event.wait(5)
        assert "deposed" in lost.reasons[0] and "holder 'z'" in lost.reasons[0]
        assert not fence.may_send() and len(lost.reasons) == 1
    finally:
        keeper.stop()


def test_status_names_holder_epoch_and_time_left(member: MakeMember) -> None:
    leader = member("a")
    assert leader.status() is None
    fence = leader.acquire()
    assert fence is not None
    status = leader.status()
    assert status is not None
    assert (status.group, status.holder, status.epoch, status.released) == ("desk", "a", 1, False)
    assert 0 < status.expires_in_ms <= FAST["lease_ms"]
    assert status.free_in_ms > status.expires_in_ms


def test_when_password_is_wrong_then_the_error_is_clear_and_hides_it(member: MakeMember) -> None:
    good = member("a")
    wrong = Lease(good.config, url=good._url, password="Wr0ng-but-secret-pass")
    with pytest.raises(ConfigError, match="password authentication failed") as raised:
        wrong.acquire()
    wrong.close()
    assert "Wr0ng-but-secret-pass" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__

"""Why a member won its epoch (``LeaseHistory.takeover``): the reason, the previous
epoch and holder of ``LeaderTookOver``, from the lease statuses a standby read and
whether the lease it took had been released."""

from __future__ import annotations

from bastion.ha.lease import LeaseStatus
from bastion.ha.node import FIRST_START, LEASE_EXPIRED, SWITCHOVER, LeaseHistory


def _status(epoch: int, holder: str, *, released: bool = False) -> LeaseStatus:
    return LeaseStatus(
        group="desk",
        epoch=epoch,
        holder=holder,
        expires_in_ms=-10 if released else 500,
        renewed_ms_ago=10,
        released=released,
        free_in_ms=0 if released else 751,
    )


def test_when_epoch_1_won_then_first_start_with_no_previous() -> None:
    """Epoch 1: the group's first leader, whatever was seen."""
    assert LeaseHistory().takeover(1, released=False) == (FIRST_START, 0, "")


def test_when_the_holder_stopped_renewing_then_lease_expired_from_it() -> None:
    """Last seen held by a at epoch 4 (not released): epoch 5 is a failover from a."""
    history = LeaseHistory()
    history.seen(_status(4, "a"))
    assert history.takeover(5, released=False) == (LEASE_EXPIRED, 4, "a")


def test_when_released_to_this_member_then_switchover_from_the_holder_seen_before() -> None:
    """The release names the target ("b"), so the previous holder is the one read
    before it."""
    history = LeaseHistory()
    history.seen(_status(4, "a"))
    history.seen(_status(4, "b", released=True))
    assert history.takeover(5, released=True) == (SWITCHOVER, 4, "a")


def test_when_nothing_seen_of_the_previous_epoch_then_lease_expired_holder_unknown() -> None:
    """Won on the first try after a gap (or another member led in between): the holder
    is not guessed."""
    history = LeaseHistory()
    history.seen(_status(2, "a"))
    assert history.takeover(5, released=False) == (LEASE_EXPIRED, 4, "")
    assert LeaseHistory().takeover(3, released=True) == (SWITCHOVER, 2, "")

"""A lease holder in a child process, for tests that SIGSTOP a member: it acquires,
keeps the lease, and every 5 ms writes one line ``S|R <epoch> <monotonic ns>``: S when
its fence lets it send, R when it refuses (and, once refused, it never sends again)."""

from __future__ import annotations

import sys
import threading
import time

from bastion.ha.fence import monotonic_ns
from bastion.ha.lease import LeaseKeeper, wait_until_leader
from kit.ha import member

_OUT = threading.Lock()


def emit(*words: object) -> None:
    """One whole line, written at once: the keeper's thread writes too."""
    line = " ".join(str(word) for word in words) + "\n"
    with _OUT:
        sys.stdout.write(line)
        sys.stdout.flush()


def main(dsn: str, name: str) -> None:
    lease = member(dsn, name)
    fence = wait_until_leader(lease)
    assert fence is not None
    keeper = LeaseKeeper(lease, fence, on_lost=lambda reason: emit("LOST", reason))
    keeper.start()
    emit("LEADER", fence.epoch)
    while True:
        mark = "S" if fence.may_send() else "R"
        emit(mark, fence.epoch, monotonic_ns())
        time.sleep(0.005)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""An HA pair trading with the venue simulator, PostgreSQL between its members, under at
least 30 faults injected at random moments: the leader SIGKILLed; the leader paused
(SIGSTOP) past its lease, then woken; the leader cut off from PostgreSQL (a relay that
blackholes or drops); PostgreSQL restarted; the standby SIGKILLed; both members
SIGKILLed. A supervisor restarts every member that exits (it comes back a standby).
Once in the run the leader is killed by the operator's kill switch before it is
SIGKILLed: the new leader takes over halted, sends nothing, and trades again after a
resume.

After each fault: no order of an older epoch accepted by the venue after a newer
epoch's first; every order and fill the venue had before the fault in the group's
journal, no ExecID journaled twice; the journal's chain verifies. While halted by the
kill switch and at the end (both members stopped): the oracle finds the journal equal
to the venue's ledger (orders, fills once each, positions, no ClOrdID used twice), and
``bastion journal verify`` passes. The counts are printed as one line.

The faults' kinds and moments come from a seeded RNG, so a failing run can be replayed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.errors import BastionError
from bastion.ha.node import EXIT_DEPOSED
from bastion.node.control import request
from kit.chaos_harness import chaos_pause
from kit.chaos_oracle import compare_books, epoch_of, read_ledger, summary
from kit.ha_chaos import MEMBERS, Group, ha_group
from kit.ha_desk import (
    NODE_ID,
    member_logs,
    run_cli,
    venue_fills,
    venue_orders,
    verify_journal,
)
from kit.ha_oracle import epoch_violations
from kit.node_process import STOP_TIMEOUT_S
from kit.waiting import eventually

SEED = 20_261_203
SCHEDULE = {
    "leader_kill": 7,
    "leader_pause": 5,
    "partition": 5,
    "pg_restart": 4,
    "standby_kill": 5,
    "both_kill": 4,
}
KILL_SWITCH_AT = 10  # the first leader_kill from this fault on is preceded by a kill switch
RECOVER_TIMEOUT_S = 40.0  # lease, interpreter start, logon, reconciliation on a busy box
BOOKS_TIMEOUT_S = 15.0


class Run:
    """One chaos run: the group, the RNG, the counts and what went wrong."""

    def __init__(self, group: Group, rng: random.Random) -> None:
        self.group = group
        self.desk = group.desk
        self.rng = rng
        self.faults: Counter[str] = Counter()
        self.recovery_s: dict[str, float] = {}
        self.problems: list[str] = []
        self.kill_switch_held = 0
        self.mark_ns = 0  # trading must be seen after this
        self.printed = False

    # -- waiting -------------------------------------------------------------------------
    def trading(self, min_epoch: int, after_ns: int) -> int:
        """The epoch of an order of ``min_epoch`` or later the venue accepted after
        ``after_ns`` (AssertionError until there is one)."""
        for coid, ts in reversed(venue_orders(self.desk)):
            if ts > after_ns and epoch_of(coid) >= min_epoch:
                return epoch_of(coid)
        raise AssertionError(f"no order of epoch >= {min_epoch} yet")

    def ready(self) -> tuple[str, int]:
        """Wait for a leader trading and a standby following; (leader, epoch)."""
        lease = eventually(self.group.lease, RECOVER_TIMEOUT_S, what="a lease")
        epoch = eventually(
            lambda: self.trading(lease.epoch, self.mark_ns), RECOVER_TIMEOUT_S, what="trading"
        )
        lease = eventually(self.group.lease, RECOVER_TIMEOUT_S)
        assert lease.epoch == epoch, (lease, epoch)
        standby = self.group.other(lease.holder)
        eventually(lambda: self.group.is_standby(standby), RECOVER_TIMEOUT_S, what="standby")
        return lease.holder, epoch

    def wait(self, kind: str, predicate: Callable[[], object], started: float) -> None:
        eventually(predicate, RECOVER_TIMEOUT_S, what=f"recovery from {kind}")
        took = time.monotonic() - started
        self.recovery_s[kind] = max(self.recovery_s.get(kind, 0.0), took)

    # -- the faults ----------------------------------------------------------------------
    def fault(self, n: int, kind: str) -> None:
        leader, epoch = self.ready()
        if kind == "leader_kill" and n >= KILL_SWITCH_AT and not self.kill_switch_held:
            self.kill_switch(leader, epoch)
            return
        chaos_pause(self.rng.uniform(0.05, 0.8))  # the fault's random moment
        fills, orders = set(venue_fills(self.desk)), {c for c, _ in venue_orders(self.desk)}
        started, t_ns = time.monotonic(), time.time_ns()
        newer = lambda: self.trading(epoch + 1, t_ns)  # noqa: E731
        standby = self.group.other(leader)
        old = self.group.procs[leader]
        if kind == "leader_kill":
            self.group.kill(leader)
            self.wait(kind, newer, started)
        elif kind == "both_kill":
            self.group.kill(leader)
            self.group.kill(standby)
            self.wait(kind, newer, started)
        elif kind == "standby_kill":
            self.group.kill(standby)
            self.wait(kind, lambda: self.group.is_standby(standby), started)
        elif kind == "leader_pause":
            self.group.pause(leader)
            chaos_pause(self.rng.uniform(1.3, 3.0))  # past the lease (1 s)
            woke_ns = time.time_ns()
            old.send_signal(signal.SIGCONT)
            self.wait(kind, newer, started)
            self.deposed(old, leader, kind)
            late = [c for c, ts in venue_orders(self.desk) if epoch_of(c) <= epoch and ts > woke_ns]
            if late:
                self.problems.append(f"fault {n}: the woken leader's orders accepted: {late}")
        elif kind == "partition":
            self.group.partition(leader, blackhole=self.rng.random() < 0.5)
            try:
                self.wait(kind, newer, started)
                self.deposed(old, leader, kind)
            finally:
                self.group.heal(leader)
        elif kind == "pg_restart":
            self.group.restart_postgres()
            restarted_ns = time.time_ns()
            self.wait(kind, lambda: self.trading(epoch, restarted_ns), started)
        self.faults[kind] += 1
        self.mark_ns = t_ns
        self.check_after(f"fault {n} ({kind})", fills, orders)

    def deposed(self, old: subprocess.Popen[bytes], member: str, kind: str) -> None:
        """The old leader's process exited with the deposed code (its lease lost, or its
        journal failed first: the supervisor counts that as ``journal_failed``)."""
        eventually(lambda: old.poll() is not None, STOP_TIMEOUT_S, what=f"{member} exits")
        if old.returncode != EXIT_DEPOSED:
            self.problems.append(f"{kind}: the old leader {member} exited {old.returncode}")

    def kill_switch(self, leader: str, epoch: int) -> None:
        """Kill on the leader, the books compared while halted, SIGKILL: the new leader
        takes over halted and sends nothing; resume, and it trades."""
        answer = request(self.desk.socket(leader), {"cmd": "kill", "why": "chaos"}, timeout_s=10)
        assert answer.get("ok") is True, answer
        eventually(self.no_open_orders, BOOKS_TIMEOUT_S, what="the kill's cancels")
        self.books("while halted")
        fills, orders = set(venue_fills(self.desk)), {c for c, _ in venue_orders(self.desk)}
        started, t_ns = time.monotonic(), time.time_ns()
        self.group.kill(leader)

        def took_over() -> str:  # either member: the killed one may be back first
            for member in MEMBERS:
                if any(r["epoch"] > epoch for r in member_logs(self.desk, member, "ha_took_over")):
                    return member
            raise AssertionError("no takeover yet")

        new = eventually(took_over, RECOVER_TIMEOUT_S, what="recovery from leader_kill")
        self.recovery_s["leader_kill"] = max(
            self.recovery_s.get("leader_kill", 0.0), time.monotonic() - started
        )
        status = request(self.desk.socket(new), {"cmd": "status"}, timeout_s=10)
        if status.get("state") != "HALTED":
            self.problems.append(f"kill switch lost at the takeover: {status}")
        chaos_pause(1.0)  # a halted leader sends nothing, however long it runs
        sent = [c for c, ts in venue_orders(self.desk) if ts > t_ns]
        if sent:
            self.problems.append(f"orders sent while halted after the takeover: {sent}")
        answer = request(self.desk.socket(new), {"cmd": "resume", "why": "chaos"}, timeout_s=10)
        if answer.get("ok") is not True:
            self.problems.append(f"resume refused: {answer}")
        eventually(lambda: self.trading(epoch + 1, t_ns), RECOVER_TIMEOUT_S, what="resumed")
        self.kill_switch_held += not sent and status.get("state") == "HALTED"
        self.faults["leader_kill"] += 1
        self.mark_ns = t_ns
        self.check_after("kill switch", fills, orders)

    # -- the checks ----------------------------------------------------------------------
    def no_open_orders(self) -> bool:
        open_orders = [o for o in read_ledger(self.desk.ledger).orders if o["status"] in "01"]
        assert not open_orders, f"{len(open_orders)} open at the venue"
        return True

    def check_after(self, when: str, fills: set[str], orders: set[str]) -> None:
        """No epoch overlap; nothing the venue had before the fault lost; no fill twice;
        the chain verifies."""
        self.problems += [f"{when}: {p}" for p in epoch_violations(self.desk.ledger)]

        def kept() -> bool:
            events = self.group.journal()
            exec_ids = [e["exec_id"] for _, t, e in events if t == "OrderFilled"]
            coids = {e["client_order_id"] for _, t, e in events if t == "OrderInitialized"}
            twice = [x for x, k in Counter(exec_ids).items() if k > 1]
            assert not twice, f"ExecIDs journaled twice: {twice}"
            assert fills <= set(exec_ids), f"fills lost: {sorted(fills - set(exec_ids))}"
            assert orders <= coids, f"orders lost: {sorted(orders - coids)}"
            return True

        try:
            eventually(kept, BOOKS_TIMEOUT_S)
        except AssertionError as error:
            self.problems.append(f"{when}: {error}")
        chain = verify_journal(self.desk)
        if not chain.ok:
            self.problems.append(f"{when}: journal seq {chain.broken_seq}: {chain.problem}")

    def books(self, when: str) -> None:
        """The oracle, once the books settle (the processes may still be applying)."""

        def agree() -> bool:
            books = compare_books(
                self.group.journal(), self.desk.ledger, self.group.duplicates(), node_id=NODE_ID
            )
            assert not books.mismatches, summary(books.mismatches)
            return True

        try:
            eventually(agree, BOOKS_TIMEOUT_S)
        except AssertionError as error:
            self.problems.append(f"{when}: {error}")

    def finish(self) -> None:
        """Both members stopped (the standby first, so the leader's stop hands over to
        nobody); the books, the epochs and ``bastion journal verify``."""
        self.group.stop_supervising()
        leader = eventually(self.group.lease, RECOVER_TIMEOUT_S).holder
        for member in (self.group.other(leader), leader):
            proc = self.group.procs[member]
            proc.send_signal(signal.SIGTERM)
            if (code := proc.wait(timeout=STOP_TIMEOUT_S)) != 0:
                self.problems.append(f"final: {member} exited {code} after SIGTERM")
        self.books("final")
        try:
            self.no_open_orders()
        except AssertionError as error:
            self.problems.append(f"final: {error}")
        self.problems += [f"final: {p}" for p in epoch_violations(self.desk.ledger)]
        verified = run_cli(self.desk, leader, "journal", "verify", "--config", "node.toml")
        if verified.returncode != 0:
            self.problems.append(f"final: journal verify: {verified.stdout}{verified.stderr}")


def _schedule(rng: random.Random) -> list[str]:
    kinds = [kind for kind, n in SCHEDULE.items() for _ in range(n)]
    rng.shuffle(kinds)
    return kinds


@pytest.mark.chaos
@pytest.mark.timeout(420)
def test_when_ha_pair_suffers_30_faults_then_one_epoch_sends_at_a_time_and_books_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """30 faults at random moments: no epoch overlap at the venue, nothing lost or
    doubled after each, the kill switch survives a takeover, the books agree at the end."""
    rng = random.Random(SEED)
    started = time.monotonic()
    run: Run | None = None
    try:
        with ha_group(tmp_path) as group:
            run = Run(group, rng)
            for n, kind in enumerate(_schedule(rng), start=1):
                try:
                    run.fault(n, kind)
                except (AssertionError, BastionError, OSError) as error:
                    run.problems.append(f"fault {n} ({kind}): {error}")
                if run.problems or group.problems:
                    break
            if not run.problems and not group.problems:
                run.finish()
            run.problems += group.problems
            _print_counts(run, time.monotonic() - started, capsys)  # the server still runs
    finally:
        if run is not None and not run.printed:
            _print_counts(run, time.monotonic() - started, capsys)
    assert run is not None
    assert not run.problems, summary(run.problems)
    assert sum(run.faults.values()) >= 30
    assert run.kill_switch_held == 1


def _print_counts(run: Run, elapsed_s: float, capsys: pytest.CaptureFixture[str]) -> None:
    run.printed = True
    try:
        orders, fills = len(venue_orders(run.desk)), len(venue_fills(run.desk))
        violations = len(epoch_violations(run.desk.ledger))
    except (AssertionError, BastionError, OSError) as error:
        orders, fills, violations = -1, -1, -1
        run.problems.append(f"counts: {error}")
    takeovers = [
        r for m in MEMBERS for r in member_logs(run.desk, m, "ha_took_over") if r["previous_epoch"]
    ]
    kinds = " ".join(f"{k}={v}" for k, v in sorted(run.faults.items()))
    exits = " ".join(f"{k}={v}" for k, v in sorted(run.group.exits.items()))
    slowest = " ".join(f"{k}={v:.1f}" for k, v in sorted(run.recovery_s.items()))
    with capsys.disabled():
        print(
            f"\nha chaos: faults={sum(run.faults.values())} {kinds} "
            f"takeovers={len(takeovers)} orders={orders} fills={fills} "
            f"violations={violations} kill_switch_held={run.kill_switch_held} "
            f"exits: {exits} restarts={run.group.restarts} problems={len(run.problems)} "
            f"slowest_recovery_s: {slowest} elapsed_s={elapsed_s:.0f}"
        )

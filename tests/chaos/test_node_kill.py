"""A node trading with the venue simulator over FIX, SIGKILLed at random moments 50 times.

Each cycle starts ``bastion run``, usually lets it reconcile and trade for a random
0.05-0.5 s (sometimes kills it at a random moment of its start-up instead), SIGKILLs
it, then runs ``bastion recover`` (sometimes SIGKILLed mid-way and run again) and
has the oracle compare the journal with the venue's ledger: zero mismatches, every
cycle. The journal's hash chain is checked every cycle, and by ``bastion journal
verify`` every few cycles. A last node is stopped with SIGTERM (its orderly shutdown
cancels its orders) and compared again. The counts are printed as one line.

The kill moments come from a seeded RNG, so a failing run can be replayed.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from bastion.journal.reader import verify_journal
from kit.chaos_harness import (
    Desk,
    alive,
    chaos_pause,
    journal_verify,
    kill,
    last_epoch,
    node_fill_count,
    node_logs,
    run_recover,
    start_node,
    start_recover,
    venue_process,
    wait_reconciled,
    write_desk,
)
from kit.chaos_oracle import compare, read_ledger, summary
from kit.node_process import terminate
from kit.waiting import eventually

SEED = 20_240_917
KILLS = 50
EARLY_KILL_SHARE = 0.2  # cycles killed at a random moment of the start-up
RECOVER_KILL_SHARE = 0.15  # cycles whose first `bastion recover` is SIGKILLed too
CLI_VERIFY_EVERY = 5
FINAL_FILLS = 2  # the last node trades this many fills before SIGTERM


def _cycle(desk: Desk, n: int, rng: random.Random, counts: Counter[str]) -> list[str]:
    """One kill, then recovery and the oracle; the mismatches found."""
    epoch = last_epoch(desk.journal) + 1
    node = start_node(desk)
    problems: list[str] = []
    try:
        if rng.random() < EARLY_KILL_SHARE:
            chaos_pause(rng.uniform(0.1, 2.0))  # a random moment of the start-up
            counts["early_kills"] += 1
        else:
            done = wait_reconciled(desk, node, epoch)
            problems += [f"cycle {n}, run {epoch} reconciled with: {m}" for m in done["mismatches"]]
            chaos_pause(rng.uniform(0.05, 0.5))
        alive(node, desk.log("node"))
    finally:
        kill(node)
    counts["kills"] += 1

    if rng.random() < RECOVER_KILL_SHARE:
        recover = start_recover(desk)
        chaos_pause(rng.uniform(0.1, 1.5))
        kill(recover)
        counts["recover_kills"] += 1
    recovery = run_recover(desk)
    problems += [f"cycle {n}: {p}" for p in recovery.problems()]
    if recovery.report is not None:
        if recovery.report.get("torn_tail") is not None:  # SQLite commits are atomic
            problems.append(f"cycle {n}: recover reports a torn tail after a SIGKILL")
        if recovery.report.get("snapshot_seq") is not None:
            counts["from_snapshot"] += 1
        found = recovery.report.get("reconciliation") or {}
        counts["adopted"] += int(found.get("adopted", 0))
        counts["resolved"] += int(found.get("resolved", 0))
    problems += [f"cycle {n}: {m}" for m in compare(desk).mismatches]

    chain = verify_journal(desk.journal)
    if not chain.ok:
        problems.append(f"cycle {n}: journal seq {chain.broken_seq}: {chain.problem}")
    if n % CLI_VERIFY_EVERY == 0:
        problems += _cli_verify(desk, f"cycle {n}")
    return problems


def _final_run(desk: Desk) -> list[str]:
    """A last node reconciles, trades a little and stops with SIGTERM: exit 0, no order
    left open at the venue."""
    epoch = last_epoch(desk.journal) + 1
    node = start_node(desk)
    try:
        done = wait_reconciled(desk, node, epoch)
        problems = [f"final run {epoch} reconciled with: {m}" for m in done["mismatches"]]
        before = node_fill_count(desk.journal)

        def traded() -> bool:
            alive(node, desk.log("node"))
            assert node_fill_count(desk.journal) >= before + FINAL_FILLS, "no new fills yet"
            return True

        eventually(traded, 30)
        code = terminate(node)
    finally:
        if node.poll() is None:
            kill(node)
    if code != 0:
        problems.append(f"final node exited {code} after SIGTERM")
    problems += [f"final: {m}" for m in compare(desk).mismatches]
    open_at_venue = [
        o["root_cl_ord_id"] for o in read_ledger(desk.ledger).orders if o["status"] in ("0", "1")
    ]
    if open_at_venue:
        problems.append(f"final: orders left open at the venue: {open_at_venue}")
    return problems + _cli_verify(desk, "final")


def _cli_verify(desk: Desk, when: str) -> list[str]:
    proc = journal_verify(desk)
    if proc.returncode == 0:
        return []
    return [f"{when}: journal verify exit {proc.returncode}: {proc.stdout}{proc.stderr}"]


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_when_node_is_sigkilled_50_times_then_journal_equals_venue_after_every_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """50 SIGKILLs at random moments: after each recovery and at the end, zero mismatches."""
    rng = random.Random(SEED)
    desk = write_desk(tmp_path, seed=SEED % 997, snapshot_every_events=50)
    counts: Counter[str] = Counter()
    problems: list[str] = []
    started = time.monotonic()
    try:
        with venue_process(desk) as venue:
            n = 0
            while counts["kills"] < KILLS and not problems:
                n += 1
                problems += _cycle(desk, n, rng, counts)
            if not problems:
                problems += _final_run(desk)
            alive(venue, desk.log("venue"))
            assert terminate(venue) == 0
    finally:  # the counts, even when a cycle fails
        books = compare(desk)
        restored = [log for log in node_logs(desk, "chaos_trader_started") if log.get("loaded")]
        with capsys.disabled():
            print(
                f"\nchaos: kills={counts['kills']} early_kills={counts['early_kills']} "
                f"recover_kills={counts['recover_kills']} orders={books.venue_orders} "
                f"fills={books.venue_fills} mismatches={len(problems)} "
                f"from_snapshot={counts['from_snapshot']} adopted={counts['adopted']} "
                f"resolved={counts['resolved']} not_known_at_venue={books.not_known_at_venue} "
                f"strategy_state_restored={len(restored)} "
                f"elapsed_s={time.monotonic() - started:.0f}"
            )
    assert not problems, summary(problems)
    assert counts["kills"] >= KILLS
    assert books.venue_fills > 0 and books.venue_orders > books.venue_fills  # it traded hard
    assert counts["from_snapshot"] > 0, "no recovery started from a snapshot"
    assert restored, "on_load never gave the strategy its saved state"

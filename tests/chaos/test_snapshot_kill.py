"""The node killed while it writes a snapshot.

A node's snapshot is one ``SqliteJournal.snapshot`` transaction on its journal. Here a
writer process appends events, stores a small snapshot, then starts a 200 MB one and
is SIGKILLed while that one is being written (its WAL growing): on reopen the
half-written snapshot is not there, the previous one is, nothing before it is lost,
and the chain verifies. (The 50-kill test in test_node_kill.py snapshots every 50
events, so its kills also land around snapshot writes, at random.)
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from bastion.journal import SqliteJournal, verify_journal
from kit.paths import REPO_ROOT, TESTS_DIR
from kit.waiting import eventually

_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from kit.journal_samples import fills
    from bastion.journal import SqliteJournal

    journal = SqliteJournal(Path({path!r}), durability="fsync_each")
    for event in fills(10):
        journal.append(event)
    journal.snapshot(b"small", 1)
    print("ready", flush=True)
    journal.snapshot(b"x" * (200 * 1024 * 1024), 2)  # a long write: killed during it
    print("done", flush=True)
    """
)


def test_when_killed_during_a_snapshot_write_then_previous_snapshot_and_chain_survive(
    tmp_path: Path,
) -> None:
    """SIGKILL while a 200 MB snapshot is being written (its WAL growing): on reopen the
    half-written snapshot is not there, the previous one is, and the chain verifies."""
    path = tmp_path / "j.sqlite"
    wal = path.with_name(path.name + "-wal")
    script = _WRITER.format(tests=str(TESTS_DIR), path=str(path))
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            size_ready = wal.stat().st_size
            eventually(lambda: wal.stat().st_size > size_ready + 8 * 1024 * 1024, timeout_s=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    journal = SqliteJournal(path)
    try:
        stored = journal.latest_snapshot()
        assert journal.torn_tail is None
        assert journal.last_seq == 10
    finally:
        journal.close()
    assert stored is not None and (stored.seq, stored.payload) == (10, b"small")
    assert verify_journal(path).ok
    assert _snapshot_seqs(path) == [10]


def _snapshot_seqs(path: Path) -> list[int]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT seq FROM snapshots ORDER BY seq")]
    finally:
        db.close()

"""An HA group under chaos: the venue simulator, two members and a PostgreSQL server of
their own, each member reaching the database through a ``Relay`` (to partition it), and
a supervisor thread that restarts a member whenever it exits, as systemd would
(``Restart=always``): it comes back as a standby.

``ha_group`` yields a ``Group``; the faults are its methods (``kill``, ``pause``,
``partition``, ``restart_postgres``), what the tests read is in ``kit.ha_desk``, and
the oracle is ``kit.chaos_oracle``. The supervisor records every exit with its code:
SIGKILL (by the test), 4 (deposed; counted as ``journal_failed`` when the member's
journal failed first, ``JOURNAL_FAILED``) and 0 (SIGTERM) are expected; any other is a
finding (``Group.problems``, with the member's log tail).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bastion.ha.node import EXIT_DEPOSED
from kit.chaos_oracle import Events, duplicates_in, epoch_of, pg_journal_events
from kit.ha_desk import GROUP, HaDesk, ha_status, start_member, start_venue, write_desk
from kit.net import Relay, relay
from kit.node_process import STOP_TIMEOUT_S
from kit.postgres import PostgresServer, postgres_server
from kit.waiting import eventually

MEMBERS = ("a", "b")
EXPECTED_EXITS = (0, EXIT_DEPOSED, -signal.SIGKILL)
LOG_TAIL_CHARS = 3000
SUPERVISE_EVERY_S = 0.05
JOURNAL_FAILED = "journal failed: "
"""In the ``ha_deposed`` line of a leader whose PostgreSQL connection broke (a partition,
a restart) before its lease ran out: its next journal write failed, and it stepped down
(exit 4)."""
LEAD_TIMEOUT_S = 45.0  # interpreter start, logon, reconciliation on a shared 2-core box


@dataclass
class Lease:
    """The group's lease row as stored."""

    epoch: int
    holder: str
    live: bool  # not expired on the server's clock


@dataclass
class Group:
    desk: HaDesk
    server: PostgresServer
    database: str
    relays: dict[str, Relay]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    exits: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    restarts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _supervising: bool = True

    # -- the supervisor ------------------------------------------------------------------
    def supervise(self, stop: threading.Event) -> None:
        """Restart each member that exited (a thread's loop, until ``stop``)."""
        while not stop.wait(SUPERVISE_EVERY_S):
            with self._lock:
                if not self._supervising:
                    continue
                for member in MEMBERS:
                    proc = self.procs.get(member)
                    if proc is None or proc.poll() is None:
                        continue
                    self._exited(member, proc.returncode)
                    start_member(self.desk, self.procs, member)
                    self.restarts += 1

    def _exited(self, member: str, code: int) -> None:
        tail = self.desk.log(member).read_text(encoding="utf-8", errors="replace")
        tail = tail[-LOG_TAIL_CHARS:]
        if code == EXIT_DEPOSED and JOURNAL_FAILED in tail:
            self.exits["journal_failed"] += 1  # a leader whose database went away
            return
        self.exits[_exit_name(code)] += 1
        if code not in EXPECTED_EXITS:
            self.problems.append(f"member {member} exited {code}:\n{tail}")

    def stop_supervising(self) -> None:
        with self._lock:
            self._supervising = False

    # -- who is who ----------------------------------------------------------------------
    def lease(self) -> Lease | None:
        """The lease row, read as the superuser over the server's Unix socket (no relay);
        None if there is none yet."""
        with self.server.superuser(self.database) as conn:
            exists = conn.execute("SELECT to_regclass('bastion_leases') IS NOT NULL").fetchone()
            if exists is None or not exists[0]:
                return None
            row = conn.execute(
                "SELECT epoch, holder, expires_at > clock_timestamp() FROM bastion_leases "
                "WHERE name = %s",
                (GROUP,),
            ).fetchone()
        return None if row is None else Lease(int(str(row[0])), str(row[1]), bool(row[2]))

    def other(self, member: str) -> str:
        return next(m for m in MEMBERS if m != member)

    def is_standby(self, member: str) -> bool:
        """``member`` runs and says it is a standby (AssertionError until then)."""
        proc = self.procs[member]
        assert proc.poll() is None, f"{member} exited"
        status = ha_status(self.desk, member)
        assert status["role"] == "standby", status
        return True

    # -- faults --------------------------------------------------------------------------
    def kill(self, member: str) -> None:
        """SIGKILL ``member`` (the supervisor restarts it)."""
        with self._lock:
            proc = self.procs[member]
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)

    def pause(self, member: str) -> subprocess.Popen[bytes]:
        """SIGSTOP ``member``; SIGCONT the process returned to wake it."""
        proc = self.procs[member]
        proc.send_signal(signal.SIGSTOP)
        return proc

    def partition(self, member: str, *, blackhole: bool) -> None:
        """Cut ``member`` off from PostgreSQL: its connections stay open and carry
        nothing (``blackhole``), or are dropped and new ones refused."""
        r = self.relays[member]
        if blackhole:
            r.blackholed = True
        else:
            r.refusing = True
            r.cut()

    def heal(self, member: str) -> None:
        """End ``member``'s partition (connections left from it are dropped)."""
        r = self.relays[member]
        r.blackholed = r.refusing = False
        r.cut()

    def restart_postgres(self) -> None:
        """A fast shutdown of the server, then a start (what was committed is kept)."""
        self.server.restart()

    # -- what happened -------------------------------------------------------------------
    def journal(self) -> Events:
        events, undecodable = pg_journal_events(
            self.desk.url, name=GROUP, password=self.desk.password
        )
        assert not undecodable, undecodable
        return events

    def duplicates(self) -> list[str]:
        stores = [self.desk.member_dir(m) / "fix" / "session.sqlite" for m in MEMBERS]
        return duplicates_in(self.desk.venue_dir / "venue" / "sessions.sqlite", stores)


def _holder(group: Group) -> str | None:
    lease = group.lease()
    return None if lease is None else lease.holder


def _exit_name(code: int) -> str:
    if code < 0:
        return signal.Signals(-code).name
    return {0: "clean", EXIT_DEPOSED: "deposed"}.get(code, f"exit_{code}")


@contextmanager
def ha_group(root: Path, *, every_quotes: int = 5, durability: str = "group") -> Iterator[Group]:
    """A PostgreSQL server, a relay per member, the venue and both members started
    (``a`` first, so it leads), the supervisor running; all stopped afterwards."""
    with ExitStack() as stack:
        server = stack.enter_context(postgres_server())
        database = server.create_database()
        relays = {m: stack.enter_context(relay(server.port)) for m in MEMBERS}
        desk = write_desk(
            root,
            server.dsn(database),
            members=MEMBERS,
            every_quotes=every_quotes,
            durability=durability,
            member_dsns={m: server.dsn(database, port=relays[m].port) for m in MEMBERS},
        )
        group = Group(desk=desk, server=server, database=database, relays=relays)
        stop = threading.Event()
        try:
            start_venue(desk, group.procs)
            start_member(desk, group.procs, "a")
            eventually(lambda: _holder(group) == "a", LEAD_TIMEOUT_S, what="a leads")
            start_member(desk, group.procs, "b")
            supervisor = threading.Thread(target=group.supervise, args=(stop,), daemon=True)
            supervisor.start()
            yield group
        finally:
            stop.set()
            group.stop_supervising()
            for proc in group.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)


def orders_of(desk_ledger_rows: list[tuple[str, int]], epoch: int, after_ns: int = 0) -> int:
    """How many of the venue's ``(ClOrdID, accepted ns)`` are of ``epoch``, after ``after_ns``."""
    return sum(1 for c, ts in desk_ledger_rows if epoch_of(c) == epoch and ts > after_ns)

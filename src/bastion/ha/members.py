"""Who is in an HA group, as the members say themselves: one row per member in
``bastion_ha_members`` (PostgreSQL, beside the lease), each written every
``ha.heartbeat_ms`` by its member and read by the leader and ``bastion ha status``.

- ``MemberHeartbeat``: a member's thread that upserts its row (role, applied seq, lag,
  pid, host; ``heartbeat_at`` on the server's clock) with one bounded statement per
  beat; a failure is counted and logged, never raised; ``stop()`` deletes the row (a
  member that stops cleanly has *left*, it is not *lost*);
- ``StandbyWatch``: the leader's thread that reads the group's rows as often and
  derives each standby's health (``standby_health``: lost, lagging or ok, against
  ``ha.standby_lost_s``, ``ha.max_lag_events``, ``ha.max_lag_ms``), publishing a
  ``StandbyStatus`` event whenever a standby's health changes;
- ``read_members``: the rows once (``bastion ha status``).

A standby never writes the journal: what is known of it is what its row says, and the
leader journals the changes it sees (``StandbyStatus``). Ages are on the server's clock
(``clock_timestamp() - heartbeat_at``), the one clock every member shares.
"""

from __future__ import annotations

import enum
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import psycopg
import structlog

from bastion.errors import ConfigError, LeaseUnavailable
from bastion.ha.config import HaConfig
from bastion.ha.pg import BoundedConnection, Connect
from bastion.ha.tail import TailStatus
from bastion.model.events import Event, StandbyStatus

log = structlog.get_logger("bastion.ha")

TABLE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bastion_ha_members (name text NOT NULL, member text NOT NULL, "
    "role text NOT NULL, applied_seq bigint, lag_events bigint, lag_ms bigint, "
    "heartbeat_at timestamptz NOT NULL, pid integer NOT NULL, host text NOT NULL, "
    "PRIMARY KEY (name, member))"
)
_BEAT: Final = """
INSERT INTO bastion_ha_members AS m
    (name, member, role, applied_seq, lag_events, lag_ms, heartbeat_at, pid, host)
VALUES (%(group)s, %(member)s, %(role)s, %(applied_seq)s, %(lag_events)s, %(lag_ms)s,
        clock_timestamp(), %(pid)s, %(host)s)
ON CONFLICT (name, member) DO UPDATE SET
    role = EXCLUDED.role, applied_seq = EXCLUDED.applied_seq,
    lag_events = EXCLUDED.lag_events, lag_ms = EXCLUDED.lag_ms,
    heartbeat_at = EXCLUDED.heartbeat_at, pid = EXCLUDED.pid, host = EXCLUDED.host
"""
_LEAVE: Final = """
DELETE FROM bastion_ha_members WHERE name = %(group)s AND member = %(member)s AND pid = %(pid)s
"""
_READ: Final = """
SELECT member, role, applied_seq, lag_events, lag_ms,
       (extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::bigint, pid, host
FROM bastion_ha_members WHERE name = %(group)s ORDER BY member
"""


class StandbyState(enum.StrEnum):
    """A standby's health as its leader sees it (``StandbyStatus.state``)."""

    OK = "ok"
    LAGGING = "lagging"
    LOST = "lost"
    LEFT = "left"


class MemberReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a member says of itself in its row."""

    role: str
    """``leader`` or ``standby``."""
    applied_seq: int | None = None
    lag_events: int | None = None
    lag_ms: int | None = None

    @classmethod
    def leader(cls, committed_seq: int | None = None) -> MemberReport:
        return cls(role="leader", applied_seq=committed_seq, lag_events=0, lag_ms=0)

    @classmethod
    def standby(cls, status: TailStatus) -> MemberReport:
        """A standby's report from its tail's status."""
        lag_ms = None if status.lag_s is None else round(status.lag_s * 1000)
        return cls(
            role="standby",
            applied_seq=status.applied_seq,
            lag_events=status.lag_events,
            lag_ms=lag_ms,
        )


class MemberRow(msgspec.Struct, frozen=True, kw_only=True):
    """One member's row as read, with its heartbeat's age on the server's clock."""

    member: str
    role: str
    applied_seq: int | None
    lag_events: int | None
    lag_ms: int | None
    heartbeat_age_ms: int
    pid: int
    host: str


def members_table(
    config: HaConfig, *, url: str, password: str | None, connect: Connect = psycopg.connect
) -> BoundedConnection:
    """A bounded connection to the group's members table (created if missing); each
    of a member's threads (heartbeat, watch) has its own."""
    return BoundedConnection(
        group=config.group,
        member=config.member,
        what="the members table",
        url=url,
        password=password,
        timeout_ms=config.statement_timeout_ms,
        ddl=TABLE_DDL,
        connect=connect,
    )


def read_members(db: BoundedConnection) -> list[MemberRow]:
    """Every member's row of the group, by name (``LeaseUnavailable`` if unreachable)."""
    return [
        MemberRow(
            member=str(member),
            role=str(role),
            applied_seq=None if applied is None else int(applied),
            lag_events=None if lag_events is None else int(lag_events),
            lag_ms=None if lag_ms is None else int(lag_ms),
            heartbeat_age_ms=max(0, int(age_ms)),
            pid=int(pid),
            host=str(host),
        )
        for member, role, applied, lag_events, lag_ms, age_ms, pid, host in db.all(
            _READ, {"group": db.group}
        )
    ]


# -- a member's heartbeat ----------------------------------------------------------------

MonotonicNs = Callable[[], int]


class MemberHeartbeat:
    """Writes this member's row every ``ha.heartbeat_ms`` on a thread of its own.

    ``report(MemberReport)`` (from any thread: a reference swap) says what the next
    beats write: the runner reports after each tail poll on a standby, and once as the
    leader after a takeover. A standby's ``lag_ms`` is written as reported plus the
    report's age, so a member whose loop stalls shows a growing lag, not a fresh one.
    Before the first report nothing is written. Failures are counted (``failures``) and
    logged once per run of failures; the thread never dies of one."""

    def __init__(
        self,
        db: BoundedConnection,
        config: HaConfig,
        *,
        monotonic_ns: MonotonicNs = time.monotonic_ns,
    ) -> None:
        self.db = db
        self.config = config
        self.beats = 0
        self.failures = 0
        self._now = monotonic_ns
        self._report: tuple[MemberReport, int] | None = None
        self._failing = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ha-{config.group}-heartbeat", daemon=True
        )
        self._params: dict[str, object] = {
            "group": config.group,
            "member": config.member,
            "pid": os.getpid(),
            "host": socket.gethostname()[:255],
        }

    def report(self, report: MemberReport) -> None:
        """What the next heartbeat writes; a change of role is written at once."""
        previous = self._report
        self._report = (report, self._now())
        if previous is None or previous[0].role != report.role:
            self._wake.set()

    @property
    def reported(self) -> MemberReport | None:
        """The last report (None before the first)."""
        current = self._report
        return None if current is None else current[0]

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop beating and delete this member's row (it left the group)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        try:
            self.db.one(_LEAVE, self._params)
        except (LeaseUnavailable, ConfigError) as error:
            log.warning("ha_member_leave_failed", group=self.config.group, error=str(error))
        self.db.close()

    def beat(self) -> bool:
        """Write the row once now (the thread's step): False if it failed or there is
        nothing to report yet."""
        current = self._report
        if current is None:
            return False
        report, at_ns = current
        lag_ms = report.lag_ms
        if report.role == "standby" and lag_ms is not None:
            lag_ms += max(0, self._now() - at_ns) // 1_000_000
        params = {
            **self._params,
            "role": report.role,
            "applied_seq": report.applied_seq,
            "lag_events": report.lag_events,
            "lag_ms": lag_ms,
        }
        try:
            self.db.one(_BEAT, params)
        except (LeaseUnavailable, ConfigError) as error:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning("ha_heartbeat_failed", group=self.config.group, error=str(error))
            return False
        if self._failing:
            self._failing = False
            log.info("ha_heartbeat_resumed", group=self.config.group, failures=self.failures)
        self.beats += 1
        return True

    def _run(self) -> None:
        interval_s = self.config.heartbeat_ms / 1000
        while not self._stop.is_set():
            self._wake.clear()
            self.beat()
            self._wake.wait(interval_s)


# -- the leader's view of its standbys ----------------------------------------------------


def standby_health(row: MemberRow, config: HaConfig) -> tuple[StandbyState, str]:
    """A standby's health from its row, and why in words: lost (no heartbeat for
    ``standby_lost_s``), else lagging (more than ``max_lag_events`` or ``max_lag_ms``
    behind), else ok."""
    age_s = row.heartbeat_age_ms / 1000
    if age_s > config.standby_lost_s:
        return (
            StandbyState.LOST,
            f"no heartbeat for {age_s:.1f} s (ha.standby_lost_s {config.standby_lost_s:g})",
        )
    if row.lag_events is not None and row.lag_events > config.max_lag_events:
        return (
            StandbyState.LAGGING,
            f"{row.lag_events} events behind (ha.max_lag_events {config.max_lag_events})",
        )
    if row.lag_ms is not None and row.lag_ms > config.max_lag_ms:
        return (
            StandbyState.LAGGING,
            f"{row.lag_ms / 1000:.1f} s behind (ha.max_lag_ms {config.max_lag_ms})",
        )
    return StandbyState.OK, "heartbeating and caught up"


@dataclass(frozen=True, slots=True)
class GroupView:
    """The standbys as last read (an immutable reading, handed across threads)."""

    standbys: tuple[MemberRow, ...]
    health: dict[str, StandbyState]

    @property
    def alive(self) -> int:
        """Standbys heartbeating (ok or lagging)."""
        return sum(state is not StandbyState.LOST for state in self.health.values())


class StandbyWatch:
    """The leader reads its group's rows every ``ha.heartbeat_ms`` on a thread of its
    own; ``view`` is the last reading (None before the first), ``failures`` counts the
    reads that failed (the view then stays as it was). Each change of a standby's
    health is published as a ``StandbyStatus`` through ``publish`` (from the watch's
    thread: hand it to the loop, ``loop.call_soon_threadsafe(bus.publish, event)``),
    the first reading included; ``now_ns`` stamps the events (wall clock)."""

    def __init__(
        self,
        db: BoundedConnection,
        config: HaConfig,
        *,
        publish: Callable[[Event], None],
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.config = config
        self.view: GroupView | None = None
        self.failures = 0
        self._publish = publish
        self._now_ns = now_ns
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"ha-{config.group}-standbys", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.db.close()

    def check(self) -> GroupView | None:
        """Read the rows once now and publish what changed (the thread's step)."""
        try:
            rows = read_members(self.db)
        except (LeaseUnavailable, ConfigError) as error:
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning("ha_members_read_failed", group=self.config.group, error=str(error))
            return self.view
        self._failing = False
        return self.seen(rows)

    def seen(self, rows: Sequence[MemberRow]) -> GroupView:
        """Take a reading of the rows: the new view, a ``StandbyStatus`` per change."""
        me = self.config.member
        standbys = tuple(r for r in rows if r.role == "standby" and r.member != me)
        before = {} if self.view is None else self.view.health
        health: dict[str, StandbyState] = {}
        for row in standbys:
            state, reason = standby_health(row, self.config)
            health[row.member] = state
            if before.get(row.member) is not state:
                self._tell(row.member, state, reason, row)
        for member in before.keys() - health.keys():
            known = next((r for r in rows if r.member == member), None)
            reason = (
                "its row is gone (it stopped)"
                if known is None
                else f"no longer a standby (role {known.role})"
            )
            self._tell(member, StandbyState.LEFT, reason, known)
        view = GroupView(standbys=standbys, health=health)
        self.view = view
        return view

    def _tell(self, member: str, state: StandbyState, reason: str, row: MemberRow | None) -> None:
        level = log.info if state in (StandbyState.OK, StandbyState.LEFT) else log.warning
        level("ha_standby_status", group=self.config.group, member=member, state=state.value)
        self._publish(
            StandbyStatus(
                ts_ns=self._now_ns(),
                group=self.config.group,
                member=member,
                state=state.value,
                reason=reason,
                lag_events=None if row is None else row.lag_events,
                lag_ms=None if row is None else row.lag_ms,
                heartbeat_age_ms=0 if row is None else row.heartbeat_age_ms,
            )
        )

    def _run(self) -> None:
        interval_s = self.config.heartbeat_ms / 1000
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as error:  # a bad publish must not end the watch
                log.error("ha_standby_watch_failed", group=self.config.group, error=repr(error))
            self._stop.wait(interval_s)

"""A warm standby's state: a kernel kept current by applying every committed journal
event, in order, as it is committed (``JournalTail``).

The kernel is a standby's: built without a journal (publishing on its bus journals
nothing: a standby never writes the journal), no venue connected, no strategy started,
no order sent. ``JournalTail.start`` loads the newest snapshot and the events after it;
``poll`` applies what was committed since. Each record is checked before it is applied
(``bastion.journal._codec.check_record``: seq consecutive, linked to the previous
record's hash, its own hash under the journal's chain, a payload that decodes); the
first that fails stops the tail (``StandbyTailBroken``, and ``status().error``), its
state as of the last good record. A newer snapshot, once the events it covers are
applied, gives the tail what no event carries (strategies' saved states, the post-trade
trading day, venue marks: ``adopt_unjournaled``).

On takeover ``promote`` hands the state over (``Handover``) to the normal start path:
``recover_state(kernel, journal, start=handover)`` restores it into the new leader's
kernel and replays only the events after ``handover.seq``.

The journal is read through ``TailSource`` (SQLite: ``bastion.ha.sqlite_source``; the
PostgreSQL journal's read-only tail implements the same).
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final, NamedTuple, NoReturn, Protocol

import msgspec
import structlog

from bastion.errors import OperationalError, StandbyTailBroken
from bastion.journal._codec import GENESIS_HASH, Chain, Row, check_record, new_decoder
from bastion.recovery.node import RecoverableNode
from bastion.recovery.replay import Handover, Replayer
from bastion.recovery.state import (
    SnapshotError,
    adopt_unjournaled,
    decode,
    restore,
    snapshot_of,
)

log = structlog.get_logger("bastion.ha.tail")

HASH_WINDOW: Final = 65_536
"""How many recent records' hashes the tail keeps, to check a newer snapshot's link."""


class ChainedSnapshot(NamedTuple):
    """A stored snapshot with what binds it to the chain: the hash of the record at its
    ``seq`` and its seal (``Chain.seal``); the tail checks both."""

    seq: int
    ts_ns: int
    payload: bytes
    event_hash: bytes
    digest: bytes


class TailSource(Protocol):
    """A read-only view of a journal's committed records (never a writer's queue)."""

    def read(self, after: int) -> Iterable[Row]:
        """The committed records with seq > ``after``, in seq order, as stored."""
        ...

    def latest_snapshot(self) -> ChainedSnapshot | None:
        """The newest stored snapshot (unchecked: the tail checks its seal), or None."""
        ...

    def committed_seq(self) -> int:
        """The seq of the last committed record (0: none)."""
        ...


class TailState(enum.Enum):
    FOLLOWING = "following"
    """Applying each committed event as it comes."""
    BROKEN = "broken"
    """Stopped at a record it must not apply (``status().error`` says which)."""
    PROMOTED = "promoted"
    """Its state was handed to the new leader's start; it applies nothing more."""


class TailStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a standby's tail stands (``bastion ha status``, the standby's metrics)."""

    state: TailState
    applied_seq: int
    """The last event applied: the state covers every event up to it."""
    committed_seq: int | None
    """The journal's last committed seq as last read (None: not read)."""
    lag_events: int | None
    lag_s: float | None
    """0 when caught up; else how long ago the last applied event happened (the state
    may miss anything since)."""
    applied_ts_ns: int | None
    snapshot_seq: int | None
    """The newest snapshot taken into the state."""
    applied_events: int
    """Events applied since the tail started (snapshot excluded)."""
    error: str | None = None


class JournalTail:
    """A kernel kept current from a journal (see the module docstring)."""

    def __init__(
        self,
        kernel: RecoverableNode,
        source: TailSource,
        *,
        chain: Chain,
        node_id: str,
    ) -> None:
        self.kernel = kernel
        self.source = source
        self.node_id = node_id
        self._chain = chain
        self._decode = new_decoder()
        self.state = TailState.FOLLOWING
        self.applied_seq = 0
        self.applied_ts_ns: int | None = None
        self.applied_events = 0
        self.snapshot_seq: int | None = None
        self.committed_seq: int | None = None
        self.error: str | None = None
        self._prev_hash = GENESIS_HASH
        self._hashes: OrderedDict[int, bytes] = OrderedDict()
        self._replayer: Replayer | None = None

    @classmethod
    def start(
        cls, kernel: RecoverableNode, source: TailSource, *, chain: Chain, node_id: str
    ) -> JournalTail:
        """A tail from the newest usable snapshot and every committed event after it."""
        tail = cls(kernel, source, chain=chain, node_id=node_id)
        tail._load_snapshot()
        tail.poll()
        return tail

    def _load_snapshot(self) -> None:
        halted: dict[str, str] = {}
        stored = self.source.latest_snapshot()
        if stored is not None:
            problem = self._snapshot_problem(stored)
            if problem is None:
                try:
                    snapshot = decode(stored.payload)
                except SnapshotError as error:
                    problem = str(error)
                else:
                    restore(self.kernel, snapshot)
                    halted = dict(snapshot.halted_venues)
                    self.applied_seq = self.snapshot_seq = stored.seq
                    self.applied_ts_ns = stored.ts_ns
                    self._prev_hash = stored.event_hash
            if problem is not None:  # the whole journal is replayed instead
                log.error("standby_snapshot_unusable", seq=stored.seq, problem=problem)
        self._replayer = Replayer(self.kernel, halted)

    def _snapshot_problem(self, stored: ChainedSnapshot) -> str | None:
        if stored.digest != self._chain.seal(stored.seq, stored.event_hash, stored.payload):
            return "its seal does not match"
        if stored.seq == 0 and stored.event_hash != GENESIS_HASH:
            return "it does not link to the chain"
        return None

    def poll(self, max_events: int | None = None) -> int:
        """Apply the events committed since the last poll (at most ``max_events``); return
        how many. ``StandbyTailBroken`` at the first record that fails its check (and on
        every poll after)."""
        if self.state is TailState.PROMOTED:
            raise RuntimeError("the tail was promoted: it applies nothing more")
        if self.state is TailState.BROKEN:
            raise StandbyTailBroken(self.error or "the tail is broken")
        applied = self._apply(self.source.read(self.applied_seq), max_events)
        self.committed_seq = self.source.committed_seq()
        newer = self.source.latest_snapshot()
        if (
            newer is not None
            and (self.snapshot_seq is None or newer.seq > self.snapshot_seq)
            and newer.seq <= self.applied_seq  # else at a later poll, once its events are
        ):
            self._adopt(newer)
        self.applied_events += applied
        return applied

    def _apply(self, rows: Iterable[Row], limit: int | None) -> int:
        replayer = self._replayer
        assert replayer is not None
        check, decoder, chain = check_record, self._decode, self._chain
        hashes = self._hashes
        seq, prev = self.applied_seq, self._prev_hash
        applied = 0
        try:
            for row in rows:
                if limit is not None and applied >= limit:
                    break
                event, problem = check(row, seq + 1, prev, decoder, chain)
                if event is None:
                    self._break(row[0] if row[0] == seq + 1 else seq + 1, problem)
                replayer.apply(event)
                seq, prev = row[0], row[6]
                hashes[seq] = prev
                self.applied_ts_ns = row[1]
                applied += 1
        finally:
            self.applied_seq, self._prev_hash = seq, prev
            while len(hashes) > HASH_WINDOW:
                hashes.popitem(last=False)
            if applied:
                replayer.settle()
        return applied

    def _break(self, seq: int, problem: str | None) -> NoReturn:
        self.state = TailState.BROKEN
        self.error = f"record {seq}: {problem}; the standby stopped at seq {self.applied_seq}"
        log.error("standby_tail_broken", seq=seq, problem=problem, applied_seq=self.applied_seq)
        raise StandbyTailBroken(self.error)

    def _adopt(self, stored: ChainedSnapshot) -> None:
        """Take a newer snapshot's unjournaled parts, if it belongs to the chain applied."""
        linked = self._hashes.get(stored.seq, GENESIS_HASH if stored.seq == 0 else None)
        problem = self._snapshot_problem(stored)
        if problem is None and linked != stored.event_hash:
            problem = "it does not link to the records applied"
        if problem is None:
            try:
                adopt_unjournaled(self.kernel, decode(stored.payload))
            except SnapshotError as error:
                problem = str(error)
        if problem is not None:
            log.error("standby_snapshot_unusable", seq=stored.seq, problem=problem)
        self.snapshot_seq = stored.seq  # a bad one is not tried again

    def status(self, now_ns: int | None = None) -> TailStatus:
        """Where the tail stands now (``now_ns``: wall time, for the lag in seconds); the
        journal's committed seq is read again (if it cannot be, the last one read is
        used and the error is left to the next ``poll``)."""
        now = time.time_ns() if now_ns is None else now_ns
        if self.state is TailState.FOLLOWING:
            with contextlib.suppress(OperationalError):
                self.committed_seq = self.source.committed_seq()
        lag = None if self.committed_seq is None else max(0, self.committed_seq - self.applied_seq)
        lag_s: float | None = None
        if lag == 0:
            lag_s = 0.0
        elif lag is not None and self.applied_ts_ns is not None:
            lag_s = max(0.0, (now - self.applied_ts_ns) / 1e9)
        return TailStatus(
            state=self.state,
            applied_seq=self.applied_seq,
            committed_seq=self.committed_seq,
            lag_events=lag,
            lag_s=lag_s,
            applied_ts_ns=self.applied_ts_ns,
            snapshot_seq=self.snapshot_seq,
            applied_events=self.applied_events,
            error=self.error,
        )

    def promote(self) -> Handover:
        """Stop following and hand the state over: ``recover_state(kernel, journal,
        start=handover)`` in the new leader's start replays only what follows it. A
        broken tail refuses (``StandbyTailBroken``): the new leader starts cold."""
        if self.state is TailState.BROKEN:
            raise StandbyTailBroken(self.error or "the tail is broken")
        if self.state is TailState.PROMOTED:
            raise RuntimeError("the tail was promoted already")
        kernel = self.kernel
        snapshot = snapshot_of(
            kernel,
            node_id=self.node_id,
            epoch=0,
            recent_orders=kernel.execution.n_orders,
            recent_exec_ids=len(kernel.execution.exec_ids),
        )
        self.state = TailState.PROMOTED
        log.warning("standby_promoted", applied_seq=self.applied_seq)
        return Handover(self.applied_seq, snapshot)

"""The control channel's seam for tests: a node that records the commands it receives
(``FakeNode``), a guard in front of it with injected peers (``guarded``), and a desk of
operators mapped to made-up uids (``desk_store``)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from bastion.clock import SimClock
from bastion.errors import CommandRefused
from bastion.model.events import DrDrillCompleted, Event
from bastion.node.approvals import Approvals
from bastion.node.authz import CommandGuard
from bastion.node.control import (
    RaiseCeilingRequest,
    Request,
    ResumeRequest,
    RiskSetRequest,
    handle_line,
)
from bastion.node.identity import Identities, PeerCredentials
from bastion.security.config import FourEyes
from bastion.security.store import UserStore
from kit.users import PASSWORD, enrolled, store
from kit.vaults import T0

UIDS: Final = {
    "vic": 2001,  # viewer
    "tom": 2002,  # trader, assigned ema
    "rita": 2003,  # risk_officer
    "rob": 2004,  # risk_officer
    "ada": 2005,  # admin
    "abe": 2006,  # admin
}
ROLES: Final = {
    "vic": ("viewer",),
    "tom": ("trader",),
    "rita": ("risk_officer",),
    "rob": ("risk_officer",),
    "ada": ("admin",),
    "abe": ("admin",),
}
STRANGER: Final = 2999
"""A uid mapped to no operator."""


def peer(uid: int, pid: int = 4242) -> PeerCredentials:
    """Peer credentials as the kernel would report them for ``uid``."""
    return PeerCredentials(pid=pid, uid=uid, gid=uid)


def me() -> PeerCredentials:
    """This process, as the kernel reports it to a node it connects to."""
    return PeerCredentials(pid=os.getpid(), uid=os.geteuid(), gid=os.getegid())


def desk_store(directory: Path, clock: SimClock) -> UserStore:
    """A store with one operator per role (two risk officers, two admins), each mapped
    to its uid in ``UIDS``; tom trades ``ema``."""
    users = store(directory, clock=clock)
    for name, uid in UIDS.items():
        _, confirmed = enrolled(name)
        strategies = ("ema",) if name == "tom" else ()
        users.add(
            name, PASSWORD, roles=ROLES[name], strategies=strategies, os_uid=uid, totp=confirmed
        )
    return users


class FakeNode:
    """Records the commands it receives (``calls``); ``fail`` makes every command raise;
    ``refuse`` makes it refuse as a node does (``CommandRefused``); ``halted`` and
    ``looser`` decide which requests are four-eyes ones."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail
        self.refuse = ""
        self.halted = False
        self.looser = False

    def _record(self, name: str, **fields: Any) -> None:
        self.calls.append((name, fields))
        if self.fail:
            raise RuntimeError("venue gone")
        if self.refuse:
            raise CommandRefused(self.refuse)

    async def kill(
        self, *, flatten: bool, who: str, why: str, venue: str | None = None
    ) -> dict[str, Any]:
        extra = {} if venue is None else {"venue": venue}
        self._record("kill", flatten=flatten, who=who, why=why, **extra)
        return {"state": "HALTED", "cancels_sent": 3}

    async def resume(
        self, *, who: str, why: str, instrument: str | None = None, venue: str | None = None
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if instrument is not None:
            extra["instrument"] = instrument
        if venue is not None:
            extra["venue"] = venue
        self._record("resume", who=who, why=why, **extra)
        return {"state": "ACTIVE"}

    async def status(self) -> dict[str, Any]:
        self._record("status")
        return {"state": "ACTIVE", "open_orders": 0}

    async def enable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        self._record("enable", strategy=strategy, who=who, why=why)
        return {"enabled": strategy}

    async def disable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        self._record("disable", strategy=strategy, who=who, why=why)
        return {"disabled": strategy}

    async def risk_set(
        self, *, path: str, value: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        self._record("risk_set", path=path, value=value, for_s=for_s, who=who, why=why)
        return {"id": "1"}

    async def risk_clear(self, *, override_id: str, who: str, why: str) -> dict[str, Any]:
        self._record("risk_clear", id=override_id, who=who, why=why)
        return {"cleared": override_id}

    async def risk_list(self) -> dict[str, Any]:
        self._record("risk_list")
        return {"overrides": []}

    async def raise_ceiling(self, *, path: str, value: str, who: str, why: str) -> dict[str, Any]:
        self._record("raise_ceiling", path=path, value=value, who=who, why=why)
        return {"path": path, "ceiling": value}

    async def alerts_list(self) -> dict[str, Any]:
        self._record("alerts_list")
        return {"alerts": [], "silences": []}

    async def alert_ack(self, *, alert_id: str, who: str, why: str) -> dict[str, Any]:
        self._record("alert_ack", id=alert_id, who=who, why=why)
        return {"acknowledged": alert_id}

    async def alert_silence(
        self, *, alert: str, labels: dict[str, str], for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        self._record("alert_silence", alert=alert, labels=labels, for_s=for_s, who=who, why=why)
        return {"silence": "1.s1"}

    async def view(self) -> dict[str, Any]:
        self._record("view")
        return {"view": {"node": "fake", "approvals": []}}

    async def audit(self, *, query: str, limit: int, before_seq: int | None) -> dict[str, Any]:
        self._record("audit", query=query, limit=limit, before_seq=before_seq)
        return {"records": [], "more": False, "next_before_seq": None}

    async def pause_instrument(
        self, *, instrument: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        self._record("pause_instrument", instrument=instrument, for_s=for_s, who=who, why=why)
        return {"instrument": instrument}

    async def strategy_start(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        self._record("strategy_start", strategy=strategy, who=who, why=why)
        return {"started": strategy}

    async def strategy_stop(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        self._record("strategy_stop", strategy=strategy, who=who, why=why)
        return {"stopped": strategy}

    async def ha_status(self) -> dict[str, Any]:
        self._record("ha_status")
        return {"ha": {"name": "a", "role": "leader", "epoch": 3}}

    async def ha_switchover(self, *, to: str | None, who: str, why: str) -> dict[str, Any]:
        self._record("ha_switchover", to=to, who=who, why=why)
        return {"to": to}

    async def record_drill(self, *, drill: DrDrillCompleted, who: str) -> dict[str, Any]:
        self._record("record_drill", ok=drill.ok, backup_id=drill.backup_id, who=who)
        return {"recorded": "DrDrillCompleted", "drill_ok": drill.ok}

    def four_eyes(self, req: Request) -> FourEyes | None:
        if isinstance(req, ResumeRequest):
            node_wide = req.instrument is None and req.venue is None
            return FourEyes.RESUME if node_wide and self.halted else None
        if isinstance(req, RiskSetRequest):
            return FourEyes.RAISE_LIMIT if self.looser else None
        if isinstance(req, RaiseCeilingRequest):
            return FourEyes.RAISE_CEILING
        return None


class Guarded:
    """A ``CommandGuard`` in front of a ``FakeNode``, with what it journaled (``events``)
    and a clock the test moves (``clock``)."""

    def __init__(
        self,
        node: FakeNode,
        identities: Identities,
        *,
        clock: SimClock,
        window_s: Callable[[FourEyes], float],
    ) -> None:
        self.node = node
        self.clock = clock
        self.events: list[Event] = []
        self.commits = 0

        async def commit() -> None:
            self.commits += 1

        self.guard = CommandGuard(
            commands=node,
            identities=identities,
            approvals=Approvals(clock=clock, id_prefix="7."),
            window_s=window_s,
            publish=self.events.append,
            commit=commit,
            clock=clock,
        )

    def ask(self, line: bytes | dict[str, Any], who: PeerCredentials) -> dict[str, Any]:
        """One request line (or object) from ``who``; the decoded response."""
        raw = line if isinstance(line, bytes) else json.dumps(line).encode()
        response = asyncio.run(handle_line(raw, self.guard, who))
        assert response.endswith(b"\n") and response.count(b"\n") == 1
        decoded: dict[str, Any] = json.loads(response)
        return decoded

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def guarded(
    node: FakeNode | None = None,
    *,
    identities: Identities | None = None,
    clock: SimClock | None = None,
    window_s: float = 0.0,
) -> Guarded:
    """A guard in front of ``node``: the owner alone (this process's uid) unless
    ``identities`` says otherwise; every four-eyes action's window ``window_s`` (0: off)."""
    clock = clock or SimClock(T0)
    return Guarded(
        node or FakeNode(),
        identities or Identities(None, owner_uid=os.geteuid(), now_ns=clock.timestamp_ns),
        clock=clock,
        window_s=lambda _action: window_s,
    )

"""Who may do what on the control socket: every request authorised, four-eyes commands
held for a second operator, and every decision journaled with the kernel's identity.

``required`` maps every request type to the ``bastion.security.Command`` it is (and the
strategy it acts on), the one place that says so; the role matrix
(``bastion.security.roles.MATRIX``) then decides. ``CommandGuard.handle`` is the path of
every parsed request:

1. the peer's uid to an operator (``bastion.node.identity``), or refused;
2. the operator's roles allow the command, or refused ("refused: alice (viewer) may not
   kill");
3. a four-eyes command (``ControlCommands.four_eyes``: a node-wide resume while HALTED,
   an override looser than the config, a raised ceiling), when its window
   (``[access.four_eyes]``) is on: held as pending (``ApprovalRequested``) and answered
   ``{"ok": true, "pending": ID, "expires_ns": ...}``;
4. otherwise run as that operator (``OperatorCommand`` journaled before its effects).

``approve`` runs a pending command once a second operator approves it within its window
(``ApprovalGranted``): one who may approve (``may_approve``: the ``approve`` right and
the right to give the command), is not the requester, and while the requester may still
give it. Every refusal is journaled (``OperatorRefused``) with the identity, the
command, what it acted on, the reason given and why it was refused. Reads (``status``,
``risk_list``, ``alerts_list``, ``approvals_list``) are not journaled when allowed.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec
import structlog

from bastion.clock import Clock
from bastion.errors import CommandRefused
from bastion.model.events import (
    ApprovalGranted,
    ApprovalRequested,
    Event,
    OperatorAuth,
    OperatorCommand,
    OperatorRefused,
)
from bastion.node.approvals import Approvals, Pending
from bastion.node.control import (
    AlertAckRequest,
    AlertSilenceRequest,
    AlertsListRequest,
    ApprovalsListRequest,
    ApproveRequest,
    AuditRequest,
    ControlCommands,
    DisableRequest,
    EnableRequest,
    HaStatusRequest,
    HaSwitchoverRequest,
    KillRequest,
    PauseInstrumentRequest,
    RaiseCeilingRequest,
    RecordAuthRequest,
    RecordDrillRequest,
    Request,
    ResumeRequest,
    RiskClearRequest,
    RiskListRequest,
    RiskSetRequest,
    StatusRequest,
    StrategyStartRequest,
    StrategyStopRequest,
    ViewRequest,
    dispatch,
)
from bastion.node.identity import SOURCE_LOCAL, Identities, Operator, PeerCredentials
from bastion.security.config import FourEyes
from bastion.security.roles import Command, may_approve

__all__ = ["CommandGuard", "Need", "required"]

log = structlog.get_logger("bastion.node.authz")


class Need(NamedTuple):
    """The command a request is, and the strategy it acts on (for ``assigned``)."""

    command: Command
    strategy: str | None = None


def required(req: Request) -> Need:
    """The security command ``req`` is: every request type has exactly one answer
    (mypy checks that none is left out; a test walks them all against the matrix)."""
    if isinstance(req, KillRequest):
        return Need(Command.FLATTEN if req.flatten else Command.KILL)
    if isinstance(req, ResumeRequest):
        return Need(Command.RESUME if req.instrument is None else Command.RESUME_INSTRUMENT)
    if isinstance(req, EnableRequest):
        return Need(Command.STRATEGY_ENABLE, req.strategy)
    if isinstance(req, DisableRequest):
        return Need(Command.STRATEGY_DISABLE, req.strategy)
    if isinstance(req, RiskSetRequest):
        return Need(Command.RISK_SET)
    if isinstance(req, RiskClearRequest):
        return Need(Command.RISK_CLEAR)
    if isinstance(req, RaiseCeilingRequest):
        return Need(Command.RAISE_CEILING)
    if isinstance(req, AlertAckRequest):
        return Need(Command.ALERT_ACK)
    if isinstance(req, AlertSilenceRequest):
        return Need(Command.ALERT_SILENCE)
    if isinstance(req, ApproveRequest):
        return Need(Command.APPROVE)
    if isinstance(req, PauseInstrumentRequest):
        return Need(Command.PAUSE_INSTRUMENT)
    if isinstance(req, StrategyStartRequest):
        return Need(Command.STRATEGY_START, req.strategy)
    if isinstance(req, StrategyStopRequest):
        return Need(Command.STRATEGY_STOP, req.strategy)
    if isinstance(req, HaSwitchoverRequest):
        return Need(Command.HA_SWITCHOVER)
    if isinstance(req, RecordDrillRequest):
        return Need(Command.RECORD_DRILL)
    if isinstance(
        req,
        StatusRequest
        | HaStatusRequest
        | RiskListRequest
        | AlertsListRequest
        | ApprovalsListRequest
        | ViewRequest
        | AuditRequest,
    ):
        return Need(Command.READ)
    if isinstance(req, RecordAuthRequest):
        # no operator's command: the console's account is its gate (``CommandGuard``)
        return Need(Command.READ)
    typing.assert_never(req)


def detail(req: Request) -> str:
    """What ``req`` acts on, for the journal: its fields but the command, the reason and
    those left unset, as canonical JSON."""
    fields = msgspec.to_builtins(req)
    assert isinstance(fields, dict)
    kept = {
        k: v for k, v in fields.items() if k not in ("cmd", "why", "on_behalf") and v is not None
    }
    return msgspec.json.encode(dict(sorted(kept.items()))).decode()


class CommandGuard:
    """The control socket's ``RequestHandler`` for one node.

    ``commands``: what the node does (``NodeOperator``); ``identities``: peers to
    operators; ``window_s``: the approval window of a four-eyes action (0: off);
    ``publish``: where the audit events go (the bus, which journals them); ``commit``:
    returns once what was published is on disk."""

    def __init__(
        self,
        *,
        commands: ControlCommands,
        identities: Identities,
        approvals: Approvals,
        window_s: Callable[[FourEyes], float],
        publish: Callable[[Event], None],
        commit: Callable[[], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self.commands = commands
        self.identities = identities
        self.approvals = approvals
        self._window_s = window_s
        self._publish = publish
        self._commit = commit
        self._clock = clock

    async def handle(self, req: Request, peer: PeerCredentials) -> dict[str, Any]:
        """``req`` from ``peer``, authorised, held or run; the response (with ``ok``)."""
        need = required(req)
        why = getattr(req, "why", "")
        if isinstance(req, RecordAuthRequest):
            return await self._record_auth(req, peer)
        on_behalf = req.on_behalf
        if on_behalf is None:
            found = self.identities.identify(peer)
        else:
            found = self.identities.identify_delegated(peer, on_behalf.operator, on_behalf.source)
        if isinstance(found, str):
            source = None if on_behalf is None else f"console {on_behalf.source} (uid {peer.uid})"
            return await self._refuse(
                None, peer, need.command, detail(req), why, found, source=source
            )
        operator = found
        if not operator.may(need.command, strategy=need.strategy):
            target = "" if need.strategy is None else f" {need.strategy}"
            reason = f"{operator.describe()} may not {need.command.value}{target}"
            return await self._refuse(operator, peer, need.command, detail(req), why, reason)
        if isinstance(req, ApprovalsListRequest):
            return {"ok": True, "approvals": self.approvals.listing()}
        if isinstance(req, ApproveRequest):
            return await self._approve(operator, req)
        try:
            action = self.commands.four_eyes(req)
        except CommandRefused as error:
            reason = f"command failed: {error}"
            return await self._refuse(operator, peer, need.command, detail(req), why, reason)
        if action is not None:
            window_s = self._window_s(action)
            if window_s > 0:
                return await self._hold(operator, req, need, action, window_s)
        return await self._run(operator, req, need, who=operator.name, audit=True)

    # -- running -------------------------------------------------------------------------

    async def _run(
        self, operator: Operator, req: Request, need: Need, *, who: str, audit: bool
    ) -> dict[str, Any]:
        why = getattr(req, "why", "")
        mutating = need.command is not Command.READ
        if audit and mutating:
            self._publish(
                OperatorCommand(
                    ts_ns=self._clock.timestamp_ns(),
                    operator=operator.name,
                    roles=operator.role_names,
                    uid=operator.uid,
                    pid=operator.pid,
                    source=operator.source,
                    command=need.command.value,
                    detail=detail(req),
                    why=why,
                )
            )
        try:
            fields = await dispatch(req, self.commands, who=who)
        except CommandRefused as error:
            peer = PeerCredentials(pid=operator.pid, uid=operator.uid, gid=-1)
            reason = f"command failed: {error}"
            return await self._refuse(operator, peer, need.command, detail(req), why, reason)
        except Exception as error:
            log.error("control_command_failed", cmd=need.command.value, error=repr(error))
            peer = PeerCredentials(pid=operator.pid, uid=operator.uid, gid=-1)
            reason = f"command failed: {error}"
            return await self._refuse(operator, peer, need.command, detail(req), why, reason)
        if isinstance(req, StatusRequest):
            fields = {**fields, "you": operator.whoami(), "access": self._access()}
        if isinstance(req, ViewRequest):
            fields["view"]["approvals"] = self._approvals_view()
        return {"ok": True, **fields}

    def _approvals_view(self) -> list[dict[str, Any]]:
        """The pending four-eyes requests as the console's VIEW lists them."""
        return [
            {
                "id": p["id"],
                "command": p["command"],
                "summary": _summary(p["command"], p["detail"], p["why"]),
                "requested_by": p["requested_by"],
                "expires": p["expires"],
                "expires_ms": p["expires_ns"] // 1_000_000,
            }
            for p in self.approvals.listing()
        ]

    # -- console sign-ins ----------------------------------------------------------------

    async def _record_auth(self, req: RecordAuthRequest, peer: PeerCredentials) -> dict[str, Any]:
        """Journal a console's sign-in event (``OperatorAuth``); refused (and journaled)
        from anyone but a console's account."""
        if not self.identities.is_console(peer):
            reason = f"uid {peer.uid} is not a console ([access] consoles): it may not record_auth"
            return await self._refuse(None, peer, "record_auth", detail(req), req.why, reason)
        self._publish(
            OperatorAuth(
                ts_ns=self._clock.timestamp_ns(),
                operator=req.operator,
                source=f"console {req.source} (uid {peer.uid})",
                kind=req.kind,
                outcome=req.outcome,
                why=req.why,
                uid=peer.uid,
                pid=peer.pid,
            )
        )
        await self._commit()
        return {"ok": True, "recorded": req.kind}

    def _access(self) -> dict[str, Any]:
        return {
            "operators": self.identities.mode,
            "four_eyes_s": {action.value: self._window_s(action) for action in FourEyes},
            "pending_approvals": len(self.approvals.pending),
        }

    # -- four-eyes ----------------------------------------------------------------------

    async def _hold(
        self, operator: Operator, req: Request, need: Need, action: FourEyes, window_s: float
    ) -> dict[str, Any]:
        why = getattr(req, "why", "")
        opened = self.approvals.open(
            action=action,
            command=need.command,
            strategy=need.strategy,
            request=req,
            detail=detail(req),
            requester=operator,
            why=why,
            window_s=window_s,
        )
        if isinstance(opened, str):
            peer = PeerCredentials(pid=operator.pid, uid=operator.uid, gid=-1)
            return await self._refuse(operator, peer, need.command, detail(req), why, opened)
        pending = opened
        self._publish(
            ApprovalRequested(
                ts_ns=pending.created_ns,
                approval_id=pending.id,
                command=need.command.value,
                detail=pending.detail,
                operator=operator.name,
                roles=operator.role_names,
                uid=operator.uid,
                pid=operator.pid,
                source=operator.source,
                why=why,
                expires_ns=pending.expires_ns,
            )
        )
        await self._commit()
        log.warning(
            "approval_requested",
            id=pending.id,
            command=need.command.value,
            operator=operator.name,
            expires_ns=pending.expires_ns,
        )
        return {
            "ok": True,
            "pending": pending.id,
            "action": action.value,
            "expires_ns": pending.expires_ns,
            "expires": pending.listing()["expires"],
            "note": (
                f"{action.value} needs a second operator: another operator allowed to "
                f"approve it runs `bastion approve CONFIG {pending.id} --why TEXT` within "
                f"{window_s:g} s"
            ),
        }

    async def _approve(self, approver: Operator, req: ApproveRequest) -> dict[str, Any]:
        peer = PeerCredentials(pid=approver.pid, uid=approver.uid, gid=-1)
        asked = detail(req)
        if not req.why.strip():
            reason = "an approval needs a reason (why)"
            return await self._refuse(approver, peer, Command.APPROVE, asked, req.why, reason)
        taken = self.approvals.take(req.id, approver)
        if isinstance(taken, str):
            return await self._refuse(approver, peer, Command.APPROVE, asked, req.why, taken)
        pending: Pending = taken
        if not may_approve(
            approver.roles,
            pending.command,
            strategy=pending.strategy,
            assigned=approver.strategies,
        ):
            reason = f"{approver.describe()} may not approve {pending.command.value}"
            return await self._refuse(approver, peer, Command.APPROVE, asked, req.why, reason)
        requester = self.identities.current(pending.requester)
        if isinstance(requester, str) or not requester.may(
            pending.command, strategy=pending.strategy
        ):
            why_not = requester if isinstance(requester, str) else "their roles changed"
            self.approvals.close(pending.id, f"withdrawn ({why_not})")
            reason = (
                f"{pending.requester.name} may no longer {pending.command.value} "
                f"({why_not}): {pending.id} is withdrawn"
            )
            return await self._refuse(approver, peer, Command.APPROVE, asked, req.why, reason)
        self.approvals.close(pending.id, f"granted by {approver.name}")
        self._publish(
            ApprovalGranted(
                ts_ns=self._clock.timestamp_ns(),
                approval_id=pending.id,
                command=pending.command.value,
                detail=pending.detail,
                requested_by=pending.requester.name,
                operator=approver.name,
                roles=approver.role_names,
                uid=approver.uid,
                pid=approver.pid,
                source=approver.source,
                why=req.why,
            )
        )
        log.warning(
            "approval_granted",
            id=pending.id,
            command=pending.command.value,
            requested_by=pending.requester.name,
            approved_by=approver.name,
        )
        need = Need(pending.command, pending.strategy)
        who = f"{pending.requester.name}, approved by {approver.name}"
        answer = await self._run(pending.requester, pending.request, need, who=who, audit=False)
        await self._commit()  # the grant, also when the command then failed
        return {**answer, "approved": pending.id, "command": pending.command.value}

    # -- refusals -----------------------------------------------------------------------

    async def _refuse(
        self,
        operator: Operator | None,
        peer: PeerCredentials,
        command: Command | str,
        acted_on: str,
        why: str,
        reason: str,
        *,
        source: str | None = None,
    ) -> dict[str, Any]:
        if source is None:
            source = SOURCE_LOCAL if operator is None else operator.source
        command = str(command)
        self._publish(
            OperatorRefused(
                ts_ns=self._clock.timestamp_ns(),
                operator="" if operator is None else operator.name,
                roles=[] if operator is None else operator.role_names,
                uid=peer.uid,
                pid=peer.pid,
                source=source,
                command=command,
                detail=acted_on,
                why=why,
                reason=reason,
            )
        )
        await self._commit()
        log.warning(
            "control_command_refused",
            operator=None if operator is None else operator.name,
            uid=peer.uid,
            pid=peer.pid,
            command=command,
            reason=reason,
        )
        if reason.startswith("command failed: "):
            return {"ok": False, "error": reason}
        return {"ok": False, "error": f"refused: {reason}"}


def _summary(command: str, detail: str, why: str) -> str:
    """A pending request in words: ``risk_set path=max_order_quantity value=20: more``
    (the request's fields, not their JSON; a resume of the whole node has none)."""
    try:
        fields = json.loads(detail)
    except ValueError:
        fields = detail
    if isinstance(fields, dict):
        shown = " ".join(f"{key}={value}" for key, value in fields.items())
    else:
        shown = str(fields)
    said = f"{command} {shown}".rstrip()
    return f"{said}: {why}" if why else said

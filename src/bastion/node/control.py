"""The node's local control channel: operator commands over a Unix domain socket.

The socket lives next to the journal (``<journal path>.sock``), mode 0600 (0660 with
``[access] socket = "group"``: the node's group may connect). The protocol is one JSON
object per line each way: a request ``{"cmd": "kill", "flatten": bool, "why": str}``,
``{"cmd": "resume", "why": str}`` (either with ``"venue": str``: that venue only;
resume with ``"instrument": str``: end that instrument's pause), ``{"cmd": "status"}``,
``{"cmd": "enable" | "disable", "strategy": str, "why": str}``, ``{"cmd": "risk_set",
"path": str, "value": str, "for_s": float, "why": str}`` (a temporary limit override),
``{"cmd": "risk_clear", "id": str, "why": str}``, ``{"cmd": "risk_list"}``,
``{"cmd": "raise_ceiling", "path": str, "value": str, "why": str}``,
``{"cmd": "alerts_list"}``, ``{"cmd": "alert_ack", "id": str, "why": str}``,
``{"cmd": "alert_silence", "alert": str, "labels": {str: str}, "for_s": float, "why":
str}``, ``{"cmd": "approvals_list"}``, ``{"cmd": "approve", "id": str, "why": str}``,
``{"cmd": "view"}`` (everything a console shows: ``bastion.node.view``), ``{"cmd":
"audit", "query": str, "limit": int, "before_seq": int | null}`` (the audit trail,
newest first: ``bastion.node.audit``), ``{"cmd": "pause_instrument", "instrument": str,
"for_s": float, "why": str}``, ``{"cmd": "strategy_start" | "strategy_stop",
"strategy": str, "why": str}``, ``{"cmd": "ha_status"}``, ``{"cmd": "ha_switchover",
"to": str | null, "why": str}`` (``bastion.ha.standby``), ``{"cmd": "record_drill",
"ok": bool, "backup_id": str, "rto_s": float, "rto_target_s": float, "rpo_events": int
| null, "rpo_s": float | null, "reconciled": bool | null, "mismatches": [str],
"report": str}`` (a DR drill's result, journaled as ``DrDrillCompleted``) or
``{"cmd": "record_auth",
"operator": str, "source": str, "kind": str, "outcome": str, "why": str}`` (a
console's sign-in event; from a console's account only) gets one response ``{"ok":
true, ...}`` (``{"ok": true, "pending": ID, ...}`` for a command that waits for a
second operator), or ``{"ok": false, "error": "..."}`` for a request that is not JSON,
names an unknown command, has a field of the wrong type or is longer than
``MAX_REQUEST_BYTES``, or that the node refuses. A bad request never reaches the node.

Who asks is the kernel's to say (``SO_PEERCRED``, ``bastion.node.identity``): a request
naming its own ``who`` is refused. Any request may carry ``"on_behalf": {"operator":
str, "source": str}`` (``OnBehalf``): accepted only from a console's account
(``[access] consoles``), it is then that store operator's request. What each operator
may do, four-eyes approval and the audit records are ``bastion.node.authz``'s (the
``RequestHandler`` here).

``serve_control`` owns the socket file: a stale one left by a crashed node is
replaced, a live one (another node answering) is refused, and the file is removed
when the server stops. ``request`` is the client side, used by ``bastion kill``: it
speaks only to a process running as the owner of the journal it meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import typing
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec
import structlog

from bastion.errors import BastionError, OperationalError
from bastion.isolation.sandbox import is_descendant, process_exists
from bastion.model.events import DrDrillCompleted
from bastion.node.identity import PeerCredentials, account_name, peer_credentials
from bastion.security.config import OPERATOR_NAME_PATTERN, FourEyes
from bastion.vault.files import ensure_safe_parent

__all__ = [
    "MAX_REQUEST_BYTES",
    "REQUEST_TYPES",
    "AlertAckRequest",
    "AlertSilenceRequest",
    "AlertsListRequest",
    "ApprovalsListRequest",
    "ApproveRequest",
    "AuditRequest",
    "ControlCommands",
    "DisableRequest",
    "EnableRequest",
    "ImpostorSocket",
    "KillRequest",
    "NoNodeListening",
    "OnBehalf",
    "PauseInstrumentRequest",
    "RaiseCeilingRequest",
    "RecordAuthRequest",
    "Request",
    "RequestHandler",
    "ResumeRequest",
    "RiskClearRequest",
    "RiskListRequest",
    "RiskSetRequest",
    "StatusRequest",
    "StrategyStartRequest",
    "StrategyStopRequest",
    "ViewRequest",
    "dispatch",
    "handle_line",
    "journal_owner",
    "open_control_socket",
    "request",
    "serve_control",
    "socket_path",
]

log = structlog.get_logger("bastion.node.control")

MAX_REQUEST_BYTES: Final = 64 * 1024
SOCKET_MODE: Final = 0o600
SOCKET_MODES: Final = frozenset({0o600, 0o660})
# sockaddr_un.sun_path holds 108 bytes on Linux, including the terminating NUL
MAX_SOCKET_PATH_BYTES: Final = 107
MAX_AUDIT_LIMIT: Final = 500
MAX_PAUSE_S: Final = 86_400.0
_PRINTABLE: Final = r"^[ -~]*\Z"  # printable ASCII: no control character reaches a log


class OnBehalf(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whom a console asks for (``on_behalf``): the store's operator ``operator``, signed
    in at the console from ``source`` (the browser's address). Accepted only from a
    console's account (``[access] consoles``; ``bastion.node.identity``)."""

    operator: Annotated[str, msgspec.Meta(max_length=64, pattern=rf"^{OPERATOR_NAME_PATTERN}\Z")]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_PRINTABLE)]


class _Request(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="cmd"
):
    """What every request may carry: ``on_behalf``, from a console only."""

    on_behalf: OnBehalf | None = None


class KillRequest(_Request, tag="kill", frozen=True, kw_only=True):
    """HALT, cancel every open order, and with ``flatten`` close every position; with
    ``venue``: halt that venue only and cancel its open orders."""

    why: str = ""
    flatten: bool = False
    venue: str | None = None


class ResumeRequest(_Request, tag="resume", frozen=True, kw_only=True):
    """Back to ACTIVE; with ``instrument``: end that instrument's pause instead; with
    ``venue``: that venue takes orders again instead."""

    why: str = ""
    instrument: str | None = None
    venue: str | None = None


class StatusRequest(_Request, tag="status", frozen=True, kw_only=True):
    """Trading state, open orders and positions."""


class EnableRequest(_Request, tag="enable", frozen=True, kw_only=True):
    """Re-enable a strategy the risk gate (or an operator) disabled."""

    strategy: str
    why: str = ""


class DisableRequest(_Request, tag="disable", frozen=True, kw_only=True):
    """Disable a strategy: its new orders and amends are denied (with
    ``risk.cancel_on_disable`` its open orders are canceled) until it is enabled."""

    strategy: str
    why: str


class RiskSetRequest(_Request, tag="risk_set", frozen=True, kw_only=True):
    """Override one risk limit for ``for_s`` seconds."""

    path: str
    value: str
    for_s: float
    why: str


class RiskClearRequest(_Request, tag="risk_clear", frozen=True, kw_only=True):
    """End an override before it expires."""

    id: str
    why: str = ""


class RaiseCeilingRequest(_Request, tag="raise_ceiling", frozen=True, kw_only=True):
    """Let overrides of one limit reach ``value`` (beyond ``max_override_factor`` times
    its configured value) while the node runs."""

    path: str
    value: str
    why: str


class RiskListRequest(_Request, tag="risk_list", frozen=True, kw_only=True):
    """The active overrides."""


class AlertsListRequest(_Request, tag="alerts_list", frozen=True, kw_only=True):
    """The active alerts and silences."""


class AlertAckRequest(_Request, tag="alert_ack", frozen=True, kw_only=True):
    """Take an active alert on: no more repeats nor escalation."""

    id: str
    why: str = ""


class AlertSilenceRequest(_Request, tag="alert_silence", frozen=True, kw_only=True):
    """Notify nobody about rule ``alert``'s alerts whose labels include ``labels`` for
    ``for_s`` seconds."""

    alert: str
    labels: dict[str, str] = {}
    for_s: float
    why: str


class ApprovalsListRequest(_Request, tag="approvals_list", frozen=True, kw_only=True):
    """The four-eyes requests waiting for a second operator."""


class ApproveRequest(_Request, tag="approve", frozen=True, kw_only=True):
    """Approve another operator's four-eyes request ``id``: it runs now."""

    id: str
    why: str


class ViewRequest(_Request, tag="view", frozen=True, kw_only=True):
    """Everything a console shows of the node, in one answer (``bastion.node.view``)."""


class AuditRequest(_Request, tag="audit", frozen=True, kw_only=True):
    """The audit trail from the journal, newest first: records whose type, operator,
    source or summary holds ``query`` (any case), at most ``limit``, older than
    ``before_seq`` (None: from the newest)."""

    query: Annotated[str, msgspec.Meta(max_length=256)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_AUDIT_LIMIT)] = 100
    before_seq: Annotated[int, msgspec.Meta(ge=1)] | None = None


class PauseInstrumentRequest(_Request, tag="pause_instrument", frozen=True, kw_only=True):
    """No new orders (nor amends that add or reprice) on ``instrument`` for ``for_s``
    seconds; ``resume`` with ``instrument`` ends it early."""

    instrument: str
    for_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_PAUSE_S)]
    why: str


class StrategyStartRequest(_Request, tag="strategy_start", frozen=True, kw_only=True):
    """Run a stopped strategy again (``on_start``, its events again)."""

    strategy: str
    why: str = ""


class StrategyStopRequest(_Request, tag="strategy_stop", frozen=True, kw_only=True):
    """Stop a strategy: no more events for it (``on_stop``), its open orders canceled."""

    strategy: str
    why: str


class RecordAuthRequest(_Request, tag="record_auth", frozen=True, kw_only=True):
    """A console journals a sign-in event (``OperatorAuth``); from a console's account
    only. ``operator`` is kept as typed (maybe nobody's name)."""

    operator: Annotated[str, msgspec.Meta(max_length=64, pattern=_PRINTABLE)]
    source: Annotated[str, msgspec.Meta(max_length=128, pattern=_PRINTABLE)]
    kind: Literal["login", "step_up", "logout", "expired", "lockout"]
    outcome: Annotated[str, msgspec.Meta(max_length=128, pattern=_PRINTABLE)]
    why: Annotated[str, msgspec.Meta(max_length=512)] = ""


class HaStatusRequest(_Request, tag="ha_status", frozen=True, kw_only=True):
    """This node's role in its HA group, its epoch or (a standby) its lag."""


class HaSwitchoverRequest(_Request, tag="ha_switchover", frozen=True, kw_only=True):
    """The leader hands the lead over (to member ``to``, or the first standby to take
    it): a planned switchover."""

    to: Annotated[str, msgspec.Meta(max_length=64, pattern=_PRINTABLE)] | None = None
    why: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class RecordDrillRequest(_Request, tag="record_drill", frozen=True, kw_only=True):
    """Journal a disaster-recovery drill's result (``DrDrillCompleted``): what ``bastion
    dr drill`` measured on this node's backups."""

    ok: bool
    backup_id: Annotated[str, msgspec.Meta(max_length=128, pattern=_PRINTABLE)]
    rto_s: Annotated[float, msgspec.Meta(ge=0)]
    rto_target_s: Annotated[float, msgspec.Meta(gt=0)]
    rpo_events: Annotated[int, msgspec.Meta(ge=0)] | None = None
    rpo_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    reconciled: bool | None = None
    mismatches: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=256, pattern=_PRINTABLE)]],
        msgspec.Meta(max_length=100),
    ] = []
    report: Annotated[str, msgspec.Meta(max_length=1024, pattern=_PRINTABLE)] = ""
    why: Annotated[str, msgspec.Meta(max_length=512)] = ""


Request = (
    KillRequest
    | ResumeRequest
    | StatusRequest
    | EnableRequest
    | RiskSetRequest
    | RiskClearRequest
    | RiskListRequest
    | AlertsListRequest
    | AlertAckRequest
    | AlertSilenceRequest
    | DisableRequest
    | RaiseCeilingRequest
    | ApprovalsListRequest
    | ApproveRequest
    | ViewRequest
    | AuditRequest
    | PauseInstrumentRequest
    | StrategyStartRequest
    | StrategyStopRequest
    | RecordAuthRequest
    | HaStatusRequest
    | HaSwitchoverRequest
    | RecordDrillRequest
)
REQUEST_TYPES: Final[tuple[type[Request], ...]] = typing.get_args(Request)
"""Every request type, from the one union: what the authorisation test walks."""
COMMANDS: Final = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)

_decoder = msgspec.json.Decoder(Request)
_encoder = msgspec.json.Encoder()


class ControlCommands(Protocol):
    """What the node does for each command; each returns the response's fields. ``who``
    is the authenticated operator's name (``bastion.node.authz``)."""

    async def kill(
        self, *, flatten: bool, who: str, why: str, venue: str | None = None
    ) -> dict[str, Any]: ...

    async def resume(
        self, *, who: str, why: str, instrument: str | None = None, venue: str | None = None
    ) -> dict[str, Any]: ...

    async def status(self) -> dict[str, Any]: ...

    async def enable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]: ...

    async def disable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]: ...

    async def risk_set(
        self, *, path: str, value: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]: ...

    async def risk_clear(self, *, override_id: str, who: str, why: str) -> dict[str, Any]: ...

    async def risk_list(self) -> dict[str, Any]: ...

    async def raise_ceiling(
        self, *, path: str, value: str, who: str, why: str
    ) -> dict[str, Any]: ...

    async def alerts_list(self) -> dict[str, Any]: ...

    async def alert_ack(self, *, alert_id: str, who: str, why: str) -> dict[str, Any]: ...

    async def alert_silence(
        self, *, alert: str, labels: dict[str, str], for_s: float, who: str, why: str
    ) -> dict[str, Any]: ...

    async def view(self) -> dict[str, Any]:
        """``{"view": VIEW}`` (the guard adds the pending approvals)."""
        ...

    async def audit(self, *, query: str, limit: int, before_seq: int | None) -> dict[str, Any]: ...

    async def pause_instrument(
        self, *, instrument: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]: ...

    async def strategy_start(self, *, strategy: str, who: str, why: str) -> dict[str, Any]: ...

    async def strategy_stop(self, *, strategy: str, who: str, why: str) -> dict[str, Any]: ...

    async def ha_status(self) -> dict[str, Any]:
        """``{"ha": MEMBER}`` (``bastion.ha.standby.MemberStatus``)."""
        ...

    async def ha_switchover(self, *, to: str | None, who: str, why: str) -> dict[str, Any]: ...

    async def record_drill(self, *, drill: DrDrillCompleted, who: str) -> dict[str, Any]: ...

    def four_eyes(self, req: Request) -> FourEyes | None:
        """The four-eyes action ``req`` is on the node as it is now (a node-wide resume
        while HALTED, an override looser than the config, a raised ceiling), or None.
        ``CommandRefused`` when it could not be done at all (a bad key, a value beyond
        its ceiling): refused before any second operator is asked."""
        ...


class RequestHandler(Protocol):
    """Who may do what (``bastion.node.authz.CommandGuard``): a parsed request from the
    process ``peer`` to the response's fields (with ``ok``); never raises."""

    async def handle(self, req: Request, peer: PeerCredentials) -> dict[str, Any]: ...


class NoNodeListening(BastionError):
    """Nothing answers on the control socket (no node running on that journal)."""


def socket_path(journal_path: Path) -> Path:
    """Where the node for ``journal_path`` listens."""
    return journal_path.with_name(journal_path.name + ".sock")


# -- server side -----------------------------------------------------------------------


def parse_request(line: bytes) -> Request | str:
    """The request on ``line``, or why it is refused."""
    if len(line) > MAX_REQUEST_BYTES:
        return f"request longer than {MAX_REQUEST_BYTES} bytes"
    try:
        req: Request = _decoder.decode(line)
        return req
    except msgspec.ValidationError as error:
        try:
            raw = msgspec.json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raw = None
        if isinstance(raw, dict) and raw.get("cmd") not in COMMANDS:
            return f"unknown cmd {raw.get('cmd')!r}; expected one of {', '.join(COMMANDS)}"
        if isinstance(raw, dict) and "who" in raw:
            return (
                "bad request: a request does not say who sends it (`who`): the node takes "
                "the operator from the kernel (the socket's peer uid)"
            )
        return f"bad request: {error}"
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        return f"not JSON: {error}"


async def dispatch(req: Request, commands: ControlCommands, *, who: str) -> dict[str, Any]:
    """Run one parsed, authorised request as the operator ``who``; the response's fields.
    ``approve``, ``approvals_list`` and ``record_auth`` are the guard's own
    (``bastion.node.authz``)."""
    if isinstance(req, KillRequest):
        if req.venue is None:
            return await commands.kill(flatten=req.flatten, who=who, why=req.why)
        return await commands.kill(flatten=req.flatten, who=who, why=req.why, venue=req.venue)
    if isinstance(req, ResumeRequest):
        if req.venue is None:
            return await commands.resume(who=who, why=req.why, instrument=req.instrument)
        return await commands.resume(
            who=who, why=req.why, instrument=req.instrument, venue=req.venue
        )
    if isinstance(req, StatusRequest):
        return await commands.status()
    if isinstance(req, EnableRequest):
        return await commands.enable(strategy=req.strategy, who=who, why=req.why)
    if isinstance(req, DisableRequest):
        return await commands.disable(strategy=req.strategy, who=who, why=req.why)
    if isinstance(req, RiskSetRequest):
        return await commands.risk_set(
            path=req.path, value=req.value, for_s=req.for_s, who=who, why=req.why
        )
    if isinstance(req, RiskClearRequest):
        return await commands.risk_clear(override_id=req.id, who=who, why=req.why)
    if isinstance(req, RiskListRequest):
        return await commands.risk_list()
    if isinstance(req, RaiseCeilingRequest):
        return await commands.raise_ceiling(path=req.path, value=req.value, who=who, why=req.why)
    if isinstance(req, AlertsListRequest):
        return await commands.alerts_list()
    if isinstance(req, AlertAckRequest):
        return await commands.alert_ack(alert_id=req.id, who=who, why=req.why)
    if isinstance(req, AlertSilenceRequest):
        return await commands.alert_silence(
            alert=req.alert, labels=req.labels, for_s=req.for_s, who=who, why=req.why
        )
    if isinstance(req, ViewRequest):
        return await commands.view()
    if isinstance(req, AuditRequest):
        return await commands.audit(query=req.query, limit=req.limit, before_seq=req.before_seq)
    if isinstance(req, PauseInstrumentRequest):
        return await commands.pause_instrument(
            instrument=req.instrument, for_s=req.for_s, who=who, why=req.why
        )
    if isinstance(req, StrategyStartRequest):
        return await commands.strategy_start(strategy=req.strategy, who=who, why=req.why)
    if isinstance(req, StrategyStopRequest):
        return await commands.strategy_stop(strategy=req.strategy, who=who, why=req.why)
    if isinstance(req, HaStatusRequest):
        return await commands.ha_status()
    if isinstance(req, HaSwitchoverRequest):
        return await commands.ha_switchover(to=req.to, who=who, why=req.why)
    if isinstance(req, RecordDrillRequest):
        return await commands.record_drill(drill=drill_event(req), who=who)
    if isinstance(req, ApprovalsListRequest | ApproveRequest | RecordAuthRequest):
        raise TypeError(f"{req.__struct_config__.tag} is answered by the guard, not the node")
    typing.assert_never(req)


def drill_event(req: RecordDrillRequest) -> DrDrillCompleted:
    """The event a ``record_drill`` request journals (stamped by the node)."""
    fields = msgspec.structs.asdict(req)
    for key in ("on_behalf", "why"):
        fields.pop(key)
    return DrDrillCompleted(ts_ns=0, **fields)


async def handle_line(line: bytes, handler: RequestHandler, peer: PeerCredentials) -> bytes:
    """One request line from ``peer`` to one response line; never raises (but for
    cancellation)."""
    parsed = parse_request(line.strip())
    if isinstance(parsed, str):
        log.warning("control_request_refused", error=parsed, uid=peer.uid, pid=peer.pid)
        return _response({"ok": False, "error": parsed})
    try:
        response = await handler.handle(parsed, peer)
    except Exception as error:  # the guard answers refusals itself; this is a bug
        log.error("control_command_failed", cmd=type(parsed).__name__, error=repr(error))
        response = {"ok": False, "error": f"command failed: {error}"}
    return _response(response)


def _response(fields: dict[str, Any]) -> bytes:
    return _encoder.encode(fields) + b"\n"


def open_control_socket(path: Path, *, mode: int = SOCKET_MODE) -> socket.socket:
    """A listening socket at ``path``, ``mode`` 0600 (or 0660, for the node's group);
    a stale socket file is replaced.

    Raises ``OperationalError`` if the path is too long, is not a socket, or another
    node answers on it.
    """
    if mode not in SOCKET_MODES:
        raise ValueError(f"a control socket is mode 0600 or 0660, not {mode:04o}")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise OperationalError(
            f"control socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} bytes; "
            "use a shorter journal path"
        )
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise OperationalError(
                f"{path} exists and is not a socket; remove it or move the journal"
            )
        if _is_listening(path):
            raise OperationalError(f"another node is already listening on {path}")
        log.warning("control_stale_socket_replaced", socket=str(path))
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # created 0600: there is no moment at which another user could connect
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        sock.listen(16)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise OperationalError(f"cannot listen on {path}: {error}") from error
    return sock


async def serve_control(sock: socket.socket, path: Path, handler: RequestHandler) -> None:
    """Serve requests on ``sock`` (from ``open_control_socket``) through ``handler``
    until canceled.

    On the way out the server and every client connection are closed and the socket
    file at ``path`` is removed.
    """
    clients: set[asyncio.Task[Any]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        clients.add(task)
        try:
            await _serve_client(reader, writer, handler)
        finally:
            clients.discard(task)

    try:
        server = await asyncio.start_unix_server(on_client, sock=sock, limit=MAX_REQUEST_BYTES + 1)
    except BaseException:
        sock.close()
        _unlink(path)
        raise
    log.info("control_listening", socket=str(path))
    try:
        await server.serve_forever()
    finally:
        server.close()
        _unlink(path)
        pending = list(clients)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("control_closed", socket=str(path))


def _is_listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _refusal(peer: PeerCredentials | None) -> tuple[str, str] | None:
    """(log event, error) when the process that connected (``peer``, None: the kernel
    does not say) may not command the node, or None.

    A strategy process, or any process it started, never commands the node: the code
    the controls guard must not be able to lift them. A process that has exited by now
    cannot be told from one of those (a strategy's child can connect, hand the
    connection to its parent and exit), so it is refused too; the operator's ``bastion``
    commands wait for their answer. Which operator asks is the handler's to decide.
    """
    if peer is None or peer.pid == 0:
        return "control_refused_unknown_peer", "the kernel does not say which process asks"
    if is_descendant(peer.pid, os.getpid()):
        return "control_refused_own_descendant", "the node's own processes may not command it"
    if not process_exists(peer.pid):  # after the walk: gone before or during it
        return "control_refused_unknown_peer", "the process that connected has exited"
    return None


async def _serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: RequestHandler
) -> None:
    peer = peer_credentials(writer.get_extra_info("socket"))
    refusal = _refusal(peer)
    if refusal is not None:
        event, error = refusal
        log.error(event, pid=None if peer is None else peer.pid)
        writer.write(_response({"ok": False, "error": f"refused: {error}"}))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        writer.close()
        return
    assert peer is not None
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as eof:
                line = eof.partial  # a last request without its newline still counts
                if not line.strip():
                    return
            except asyncio.LimitOverrunError:
                # the stream cannot be resynchronised: answer, then hang up
                writer.write(
                    _response(
                        {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}
                    )
                )
                await writer.drain()
                return
            if line.strip():
                writer.write(await handle_line(line, handler, peer))
                await writer.drain()
            if not line.endswith(b"\n"):
                return
    except (ConnectionError, OSError) as error:
        log.info("control_client_dropped", error=repr(error))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


# -- client side -----------------------------------------------------------------------


class ImpostorSocket(OperationalError):
    """The process answering on a node's socket does not run as the journal's owner:
    not the node (a socket another user planted). Nothing was sent to it."""


def journal_of(path: Path) -> Path:
    """The journal whose node listens at the socket ``path`` (``socket_path``'s inverse)."""
    return path.with_name(path.name.removesuffix(".sock"))


def journal_owner(path: Path) -> int:
    """The uid the node at socket ``path`` must run as: its journal's owner. The
    journal's directory must not let other users replace it (``ensure_safe_parent``)."""
    journal = journal_of(path)
    try:
        owner = journal.stat().st_uid
    except FileNotFoundError:
        raise NoNodeListening(
            f"no journal at {journal}, so no node to talk to on {path}; is the node running "
            "with this config?"
        ) from None
    except OSError as error:
        raise NoNodeListening(f"cannot read {journal}: {error.strerror or error}") from None
    ensure_safe_parent(journal, "journal")
    return owner


def request(
    path: Path,
    req: dict[str, Any],
    *,
    timeout_s: float = 30.0,
    expected_uid: int | None = None,
) -> dict[str, Any]:
    """Send one request to the node listening at ``path``; return its response.

    Before anything is sent, the process answering must run as ``expected_uid`` (by
    default the owner of the journal the socket belongs to, ``journal_owner``), as the
    kernel reports it (``SO_PEERCRED``): a socket another local user planted there
    cannot take the request nor answer it (``ImpostorSocket``).

    Raises ``NoNodeListening`` when nothing answers there, ``OperationalError`` when
    the node hangs up or answers something that is not a JSON object.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise NoNodeListening(f"control socket path {path} is too long to be a node's socket")
    owner = journal_owner(path) if expected_uid is None else expected_uid
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise NoNodeListening(
                f"no node is listening on {path} ({error.strerror or error}); "
                "is the node running with this config?"
            ) from None
        except OSError as error:
            raise NoNodeListening(f"cannot connect to {path}: {error.strerror or error}") from None
        server = peer_credentials(sock)
        if server is None or server.uid != owner:
            who = (
                "an unknown account"
                if server is None
                else (f"uid {server.uid} ({account_name(server.uid)})")
            )
            raise ImpostorSocket(
                f"the process answering on {path} runs as {who}, not as uid {owner} "
                f"({account_name(owner)}), the owner of the node's journal: it is not the "
                "node (a socket planted by another user?); nothing was sent"
            )
        try:
            sock.sendall(_encoder.encode(req) + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            raise OperationalError(f"control socket {path}: {error}") from error
    finally:
        sock.close()
    try:
        response = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise OperationalError(f"the node at {path} sent no valid response: {data!r}") from None
    if not isinstance(response, dict):
        raise OperationalError(f"the node at {path} sent no valid response: {data!r}")
    return response


def operator_name() -> str:
    """Who is asking: the OS user name (the uid when it has none)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"

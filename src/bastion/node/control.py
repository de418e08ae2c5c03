"""The node's local control channel: operator commands over a Unix domain socket.

The socket lives next to the journal (``<journal path>.sock``), mode 0600, so only
the node's OS user can talk to it. The protocol is one JSON object per line each
way: a request ``{"cmd": "kill", "flatten": bool, "who": str, "why": str}``,
``{"cmd": "resume", "who": str, "why": str}`` (either with ``"venue": str``: that venue
only), ``{"cmd": "status"}``,
``{"cmd": "enable", "strategy": str, "who": str, "why": str}`` (a strategy the
risk gate disabled), ``{"cmd": "risk_set", "path": str, "value": str, "for_s": float,
"who": str, "why": str}`` (a temporary limit override), ``{"cmd": "risk_clear",
"id": str, "who": str, "why": str}``, ``{"cmd": "risk_list"}``, ``{"cmd": "alerts_list"}``
(active alerts and silences), ``{"cmd": "alert_ack", "id": str, "who": str, "why": str}``
or ``{"cmd": "alert_silence", "alert": str, "labels": {str: str}, "for_s": float,
"who": str, "why": str}`` gets one
response ``{"ok": true, ...}``, or ``{"ok": false, "error": "..."}`` for a request
that is not JSON, names an unknown command, has a field of the wrong type or is
longer than ``MAX_REQUEST_BYTES``. A bad request never reaches the node.

``serve_control`` owns the socket file: a stale one left by a crashed node is
replaced, a live one (another node answering) is refused, and the file is removed
when the server stops. ``request`` is the client side, used by ``bastion kill``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
import structlog

from bastion.errors import BastionError, CommandRefused, OperationalError
from bastion.isolation.sandbox import is_descendant, peer_pid, process_exists

__all__ = [
    "MAX_REQUEST_BYTES",
    "AlertAckRequest",
    "AlertSilenceRequest",
    "AlertsListRequest",
    "ControlCommands",
    "EnableRequest",
    "KillRequest",
    "NoNodeListening",
    "ResumeRequest",
    "RiskClearRequest",
    "RiskListRequest",
    "RiskSetRequest",
    "StatusRequest",
    "dispatch",
    "handle_line",
    "open_control_socket",
    "request",
    "serve_control",
    "socket_path",
]

log = structlog.get_logger("bastion.node.control")

MAX_REQUEST_BYTES: Final = 64 * 1024
SOCKET_MODE: Final = 0o600
# sockaddr_un.sun_path holds 108 bytes on Linux, including the terminating NUL
MAX_SOCKET_PATH_BYTES: Final = 107


class KillRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="kill",
    tag_field="cmd",
):
    """HALT, cancel every open order, and with ``flatten`` close every position; with
    ``venue``: halt that venue only and cancel its open orders."""

    who: str
    why: str = ""
    flatten: bool = False
    venue: str | None = None


class ResumeRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="resume",
    tag_field="cmd",
):
    """Back to ACTIVE; with ``instrument``: end that instrument's pause instead; with
    ``venue``: that venue takes orders again instead."""

    who: str
    why: str = ""
    instrument: str | None = None
    venue: str | None = None


class StatusRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="status",
    tag_field="cmd",
):
    """Trading state, open orders and positions."""


class EnableRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="enable",
    tag_field="cmd",
):
    """Re-enable a strategy the risk gate disabled (repeated executions, loss limits)."""

    strategy: str
    who: str
    why: str = ""


class RiskSetRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="risk_set",
    tag_field="cmd",
):
    """Override one risk limit for ``for_s`` seconds."""

    path: str
    value: str
    for_s: float
    who: str
    why: str


class RiskClearRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="risk_clear",
    tag_field="cmd",
):
    """End an override before it expires."""

    id: str
    who: str
    why: str = ""


class RiskListRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="risk_list",
    tag_field="cmd",
):
    """The active overrides."""


class AlertsListRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="alerts_list",
    tag_field="cmd",
):
    """The active alerts and silences."""


class AlertAckRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="alert_ack",
    tag_field="cmd",
):
    """Take an active alert on: no more repeats nor escalation."""

    id: str
    who: str
    why: str = ""


class AlertSilenceRequest(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="alert_silence",
    tag_field="cmd",
):
    """Notify nobody about rule ``alert``'s alerts whose labels include ``labels`` for
    ``for_s`` seconds."""

    alert: str
    labels: dict[str, str] = {}
    for_s: float
    who: str
    why: str


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
)
COMMANDS: Final = (
    "kill",
    "resume",
    "status",
    "enable",
    "risk_set",
    "risk_clear",
    "risk_list",
    "alerts_list",
    "alert_ack",
    "alert_silence",
)

_decoder = msgspec.json.Decoder(Request)
_encoder = msgspec.json.Encoder()


class ControlCommands(Protocol):
    """What the node does for each command; each returns the response's fields."""

    async def kill(
        self, *, flatten: bool, who: str, why: str, venue: str | None = None
    ) -> dict[str, Any]: ...

    async def resume(
        self, *, who: str, why: str, instrument: str | None = None, venue: str | None = None
    ) -> dict[str, Any]: ...

    async def status(self) -> dict[str, Any]: ...

    async def enable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]: ...

    async def risk_set(
        self, *, path: str, value: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]: ...

    async def risk_clear(self, *, override_id: str, who: str, why: str) -> dict[str, Any]: ...

    async def risk_list(self) -> dict[str, Any]: ...

    async def alerts_list(self) -> dict[str, Any]: ...

    async def alert_ack(self, *, alert_id: str, who: str, why: str) -> dict[str, Any]: ...

    async def alert_silence(
        self, *, alert: str, labels: dict[str, str], for_s: float, who: str, why: str
    ) -> dict[str, Any]: ...


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
        except msgspec.DecodeError:
            raw = None
        if isinstance(raw, dict) and raw.get("cmd") not in COMMANDS:
            return f"unknown cmd {raw.get('cmd')!r}; expected one of {', '.join(COMMANDS)}"
        return f"bad request: {error}"
    except msgspec.DecodeError as error:
        return f"not JSON: {error}"


async def dispatch(req: Request, commands: ControlCommands) -> dict[str, Any]:
    """Run one parsed request; the response always has ``ok``."""
    if type(req) is KillRequest:
        if req.venue is None:
            fields = await commands.kill(flatten=req.flatten, who=req.who, why=req.why)
        else:
            fields = await commands.kill(
                flatten=req.flatten, who=req.who, why=req.why, venue=req.venue
            )
    elif type(req) is ResumeRequest:
        if req.venue is None:
            fields = await commands.resume(who=req.who, why=req.why, instrument=req.instrument)
        else:
            fields = await commands.resume(
                who=req.who, why=req.why, instrument=req.instrument, venue=req.venue
            )
    elif type(req) is EnableRequest:
        fields = await commands.enable(strategy=req.strategy, who=req.who, why=req.why)
    elif type(req) is RiskSetRequest:
        fields = await commands.risk_set(
            path=req.path, value=req.value, for_s=req.for_s, who=req.who, why=req.why
        )
    elif type(req) is RiskClearRequest:
        fields = await commands.risk_clear(override_id=req.id, who=req.who, why=req.why)
    elif type(req) is RiskListRequest:
        fields = await commands.risk_list()
    elif type(req) is AlertsListRequest:
        fields = await commands.alerts_list()
    elif type(req) is AlertAckRequest:
        fields = await commands.alert_ack(alert_id=req.id, who=req.who, why=req.why)
    elif type(req) is AlertSilenceRequest:
        fields = await commands.alert_silence(
            alert=req.alert, labels=req.labels, for_s=req.for_s, who=req.who, why=req.why
        )
    else:
        fields = await commands.status()
    return {"ok": True, **fields}


async def handle_line(line: bytes, commands: ControlCommands) -> bytes:
    """One request line to one response line; never raises (but for cancellation)."""
    parsed = parse_request(line.strip())
    if isinstance(parsed, str):
        log.warning("control_request_refused", error=parsed)
        return _response({"ok": False, "error": parsed})
    try:
        response = await dispatch(parsed, commands)
    except CommandRefused as error:
        log.warning("control_command_refused", cmd=type(parsed).__name__, error=str(error))
        response = {"ok": False, "error": f"command failed: {error}"}
    except Exception as error:
        log.error("control_command_failed", cmd=type(parsed).__name__, error=repr(error))
        response = {"ok": False, "error": f"command failed: {error}"}
    return _response(response)


def _response(fields: dict[str, Any]) -> bytes:
    return _encoder.encode(fields) + b"\n"


def open_control_socket(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600; a stale socket file is replaced.

    Raises ``OperationalError`` if the path is too long, is not a socket, or another
    node answers on it.
    """
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
        os.chmod(path, SOCKET_MODE)
        sock.listen(16)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise OperationalError(f"cannot listen on {path}: {error}") from error
    return sock


async def serve_control(sock: socket.socket, path: Path, commands: ControlCommands) -> None:
    """Serve ``commands`` on ``sock`` (from ``open_control_socket``) until canceled.

    On the way out the server and every client connection are closed and the socket
    file at ``path`` is removed.
    """
    clients: set[asyncio.Task[Any]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        clients.add(task)
        try:
            await _serve_client(reader, writer, commands)
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


def _refusal(pid: int) -> tuple[str, str] | None:
    """(log event, error) when the process that connected (``pid``, 0: unknown) may not
    command the node, or None.

    A strategy process, or any process it started, never commands the node: the code
    the controls guard must not be able to lift them. A process that has exited by now
    cannot be told from one of those (a strategy's child can connect, hand the
    connection to its parent and exit), so it is refused too; the operator's ``bastion``
    commands wait for their answer.
    """
    if pid == 0:
        return "control_refused_unknown_peer", "the kernel does not say which process asks"
    if is_descendant(pid, os.getpid()):
        return "control_refused_own_descendant", "the node's own processes may not command it"
    if not process_exists(pid):  # after the walk: gone before or during it
        return "control_refused_unknown_peer", "the process that connected has exited"
    return None


async def _serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, commands: ControlCommands
) -> None:
    pid = peer_pid(writer.get_extra_info("socket"))
    refusal = _refusal(pid)
    if refusal is not None:
        event, error = refusal
        log.error(event, pid=pid)
        writer.write(_response({"ok": False, "error": f"refused: {error}"}))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        writer.close()
        return
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
                writer.write(await handle_line(line, commands))
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


def request(path: Path, req: dict[str, Any], *, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one request to the node listening at ``path``; return its response.

    Raises ``NoNodeListening`` when nothing answers there, ``OperationalError`` when
    the node hangs up or answers something that is not a JSON object.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise NoNodeListening(f"control socket path {path} is too long to be a node's socket")
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
    except msgspec.DecodeError:
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

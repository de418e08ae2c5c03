"""The control channel's protocol: bad requests answered ``ok: false`` (never raised),
commands dispatched to the node, and the socket file's lifecycle, on a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import OperationalError
from bastion.node.control import (
    MAX_REQUEST_BYTES,
    NoNodeListening,
    handle_line,
    open_control_socket,
    request,
    serve_control,
    socket_path,
)


class FakeNode:
    """Records the commands it receives; ``fail`` makes every command raise."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def kill(self, *, flatten: bool, who: str, why: str) -> dict[str, Any]:
        self.calls.append(("kill", {"flatten": flatten, "who": who, "why": why}))
        if self.fail:
            raise RuntimeError("venue gone")
        return {"state": "HALTED", "cancels_sent": 3}

    async def resume(self, *, who: str, why: str, instrument: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"who": who, "why": why}
        if instrument is not None:
            call["instrument"] = instrument
        self.calls.append(("resume", call))
        return {"state": "ACTIVE"}

    async def status(self) -> dict[str, Any]:
        self.calls.append(("status", {}))
        return {"state": "ACTIVE", "open_orders": 0}

    async def enable(self, *, strategy: str, who: str, why: str) -> dict[str, Any]:
        self.calls.append(("enable", {"strategy": strategy, "who": who, "why": why}))
        return {"enabled": strategy}

    async def risk_set(
        self, *, path: str, value: str, for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        self.calls.append(
            ("risk_set", {"path": path, "value": value, "for_s": for_s, "who": who, "why": why})
        )
        return {"id": "1"}

    async def risk_clear(self, *, override_id: str, who: str, why: str) -> dict[str, Any]:
        self.calls.append(("risk_clear", {"id": override_id, "who": who, "why": why}))
        return {"cleared": override_id}

    async def risk_list(self) -> dict[str, Any]:
        self.calls.append(("risk_list", {}))
        return {"overrides": []}

    async def alerts_list(self) -> dict[str, Any]:
        self.calls.append(("alerts_list", {}))
        return {"alerts": [], "silences": []}

    async def alert_ack(self, *, alert_id: str, who: str, why: str) -> dict[str, Any]:
        self.calls.append(("alert_ack", {"id": alert_id, "who": who, "why": why}))
        return {"acknowledged": alert_id}

    async def alert_silence(
        self, *, alert: str, labels: dict[str, str], for_s: float, who: str, why: str
    ) -> dict[str, Any]:
        call = {"alert": alert, "labels": labels, "for_s": for_s, "who": who, "why": why}
        self.calls.append(("alert_silence", call))
        return {"silence": "1.s1"}


def answer(line: bytes, node: FakeNode | None = None) -> dict[str, Any]:
    response = asyncio.run(handle_line(line, node or FakeNode()))
    assert response.endswith(b"\n") and response.count(b"\n") == 1
    decoded: dict[str, Any] = json.loads(response)
    return decoded


@asynccontextmanager
async def serving(path: Path, node: FakeNode) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(serve_control(open_control_socket(path), path, node))
    await asyncio.sleep(0)  # let the server start
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def raw_exchange(path: Path, payload: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, half-close, read every response line until the node hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


# -- parsing and dispatch ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2]", "bad request"),
        (b'"kill"', "bad request"),
        (b"null", "bad request"),
        (b"{}", "unknown cmd None"),
        (b'{"cmd": "launch"}', "unknown cmd 'launch'"),
        (b'{"cmd": 7}', "unknown cmd 7"),
        (b'{"cmd": "kill"}', "missing required field `who`"),
        (b'{"cmd": "kill", "who": 1}', "Expected `str`, got `int` - at `$.who`"),
        (b'{"cmd": "kill", "who": "a", "flatten": "yes"}', "Expected `bool`"),
        (b'{"cmd": "kill", "who": "a", "flatten": 1}', "Expected `bool`"),
        (b'{"cmd": "resume", "who": "a", "why": null}', "Expected `str`, got `null`"),
        (b'{"cmd": "status", "extra": 1}', "unknown field `extra`"),
        (b"\xff\xfe", "not JSON"),
        (b'{"cmd": "status", "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}', "longer than"),
    ],
)
def test_when_request_is_bad_then_ok_false_with_reason_and_no_command_runs(
    line: bytes, error: str
) -> None:
    """Bad input gets ``ok: false`` naming the problem; the node is not called."""
    node = FakeNode()
    response = answer(line, node)
    assert response["ok"] is False
    assert error in response["error"]
    assert node.calls == []


def test_when_kill_request_then_kill_called_with_its_fields() -> None:
    """A kill request reaches ``kill`` with flatten, who and why; its fields are returned."""
    node = FakeNode()
    response = answer(b'{"cmd":"kill","flatten":true,"who":"ops","why":"runaway"}', node)
    assert response == {"ok": True, "state": "HALTED", "cancels_sent": 3}
    assert node.calls == [("kill", {"flatten": True, "who": "ops", "why": "runaway"})]


def test_when_optional_fields_omitted_then_defaults() -> None:
    """flatten defaults to false and why to empty; resume and status dispatch too."""
    node = FakeNode()
    assert answer(b'{"cmd":"kill","who":"ops"}', node)["ok"] is True
    assert answer(b'{"cmd":"resume","who":"ops"}\n', node) == {"ok": True, "state": "ACTIVE"}
    assert answer(b'  {"cmd":"status"}  \r\n', node)["open_orders"] == 0
    assert node.calls == [
        ("kill", {"flatten": False, "who": "ops", "why": ""}),
        ("resume", {"who": "ops", "why": ""}),
        ("status", {}),
    ]


def test_when_command_raises_then_ok_false_not_raised() -> None:
    """A failing command is reported as ``ok: false``; handle_line does not raise."""
    response = answer(b'{"cmd":"kill","who":"ops"}', FakeNode(fail=True))
    assert response == {"ok": False, "error": "command failed: venue gone"}


def test_when_journal_path_then_socket_next_to_it() -> None:
    """The socket is ``<journal path>.sock``."""
    assert socket_path(Path("/x/j/paper.sqlite")) == Path("/x/j/paper.sqlite.sock")


# -- the socket ------------------------------------------------------------------------


def test_when_serving_then_mode_0600_requests_answered_and_file_removed_on_stop(
    tmp_path: Path,
) -> None:
    """A real socket: mode 0600, one response line per request line, removed on cancel."""
    path = tmp_path / "j.sock"
    node = FakeNode()

    async def scenario() -> None:
        async with serving(path, node):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_ISSOCK(path.stat().st_mode)
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status == {"ok": True, "state": "ACTIVE", "open_orders": 0}
            many = await asyncio.to_thread(
                raw_exchange, path, b'{"cmd":"status"}\ngarbage\n\n{"cmd":"resume","who":"a"}'
            )
            assert [r["ok"] for r in many] == [True, False, True]
        assert not path.exists()

    asyncio.run(scenario())
    assert [c[0] for c in node.calls] == ["status", "status", "resume"]


def test_when_request_oversized_then_ok_false_and_node_keeps_serving(tmp_path: Path) -> None:
    """More than 64 KiB without a newline: ``ok: false``, hang up, next client served."""
    path = tmp_path / "j.sock"

    async def scenario() -> None:
        async with serving(path, FakeNode()) as task:
            big = b'{"cmd":"status","x":"' + b"a" * (2 * MAX_REQUEST_BYTES) + b'"}\n'
            responses = await asyncio.to_thread(raw_exchange, path, big)
            assert len(responses) == 1
            assert responses[0]["ok"] is False
            assert "longer than 65536 bytes" in responses[0]["error"]
            assert not task.done()
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status["ok"] is True

    asyncio.run(scenario())


def test_when_client_hangs_up_mid_request_then_node_keeps_serving(tmp_path: Path) -> None:
    """A client that connects and leaves (or sends half a line) does not hurt the server."""
    path = tmp_path / "j.sock"

    async def scenario() -> None:
        async with serving(path, FakeNode()) as task:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                sock.sendall(b'{"cmd":"sta')
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status["ok"] is True
            assert not task.done()

    asyncio.run(scenario())


CHILD_KILL = """
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
try:
    sock.sendall(b'{"cmd":"kill","who":"child"}\\n')
except BrokenPipeError:
    pass  # the node answered and hung up before reading it
print(sock.makefile("rb").readline().decode(), end="")
"""


def test_when_a_child_of_the_node_asks_then_refused_and_no_command_runs(tmp_path: Path) -> None:
    """A process the node started (a strategy process, its children) never commands it:
    ``ok: false``, and the node is not called."""
    path = tmp_path / "j.sock"
    node = FakeNode()

    async def scenario() -> None:
        async with serving(path, node):
            child = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", CHILD_KILL, str(path)],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            assert json.loads(child.stdout) == {
                "ok": False,
                "error": "refused: the node's own processes may not command it",
            }
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status["ok"] is True  # this process is not its own descendant

    asyncio.run(scenario())
    assert node.calls == [("status", {})]


CHILD_HANDS_OVER = """
import socket, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(sys.argv[1])
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"x"], [conn.fileno()])
"""


def test_when_the_process_that_connected_has_exited_then_refused(tmp_path: Path) -> None:
    """A child connects, hands the connection to its parent and exits before the node
    looks: the node cannot tell it from its own processes, so the request is refused."""
    path = tmp_path / "j.sock"
    node = FakeNode()

    async def scenario() -> None:
        async with serving(path, node):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with ours, theirs:
                # run on the loop's thread: the node accepts only once the child is gone
                subprocess.run(
                    [sys.executable, "-c", CHILD_HANDS_OVER, str(path), str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    timeout=30,
                    check=True,
                )
                _, fds, _, _ = socket.recv_fds(ours, 1, 1)
            with socket.socket(fileno=fds[0]) as conn:
                conn.setblocking(False)
                loop = asyncio.get_running_loop()
                with contextlib.suppress(BrokenPipeError):  # it may answer and hang up first
                    await loop.sock_sendall(conn, b'{"cmd":"kill","who":"gone"}\n')
                answer = await loop.sock_recv(conn, 65536)
            assert json.loads(answer) == {
                "ok": False,
                "error": "refused: the process that connected has exited",
            }

    asyncio.run(scenario())
    assert node.calls == []


def test_when_stale_socket_file_then_replaced(tmp_path: Path) -> None:
    """A socket file left by a crashed node (nobody listening) is replaced."""
    path = tmp_path / "j.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing listens
    assert path.exists()

    async def scenario() -> None:
        async with serving(path, FakeNode()):
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status["ok"] is True

    asyncio.run(scenario())
    assert not path.exists()


def test_when_another_node_listens_then_refused(tmp_path: Path) -> None:
    """A second node on the same journal cannot take over a live socket."""
    path = tmp_path / "j.sock"

    async def scenario() -> None:
        async with serving(path, FakeNode()):
            with pytest.raises(OperationalError, match="already listening"):
                open_control_socket(path)
            assert (await asyncio.to_thread(request, path, {"cmd": "status"}))["ok"] is True

    asyncio.run(scenario())


def test_when_path_is_a_regular_file_then_refused_and_file_kept(tmp_path: Path) -> None:
    """A regular file where the socket should be is never deleted."""
    path = tmp_path / "j.sock"
    path.write_text("mine")
    with pytest.raises(OperationalError, match="not a socket"):
        open_control_socket(path)
    assert path.read_text() == "mine"


def test_when_path_too_long_then_clear_error(tmp_path: Path) -> None:
    """A socket path beyond the kernel's limit is refused with a message, not an OSError."""
    path = tmp_path / ("d" * 120) / "j.sock"
    with pytest.raises(OperationalError, match="longer than 107 bytes"):
        open_control_socket(path)


def test_when_no_node_listens_then_no_node_listening_naming_path(tmp_path: Path) -> None:
    """The client names the socket path when nothing is there."""
    path = tmp_path / "missing.sock"
    with pytest.raises(NoNodeListening, match=str(path)):
        request(path, {"cmd": "status"})


@pytest.mark.parametrize(
    ("line", "call"),
    [
        (
            b'{"cmd":"enable","strategy":"ema","who":"ops","why":"checked"}',
            ("enable", {"strategy": "ema", "who": "ops", "why": "checked"}),
        ),
        (
            b'{"cmd":"risk_set","path":"max_order_quantity","value":"5","for_s":60,'
            b'"who":"ops","why":"news"}',
            (
                "risk_set",
                {
                    "path": "max_order_quantity",
                    "value": "5",
                    "for_s": 60.0,
                    "who": "ops",
                    "why": "news",
                },
            ),
        ),
        (
            b'{"cmd":"risk_clear","id":"7","who":"ops"}',
            ("risk_clear", {"id": "7", "who": "ops", "why": ""}),
        ),
        (b'{"cmd":"risk_list"}', ("risk_list", {})),
        (b'{"cmd":"alerts_list"}', ("alerts_list", {})),
        (
            b'{"cmd":"alert_ack","id":"2.1","who":"ops","why":"on it"}',
            ("alert_ack", {"id": "2.1", "who": "ops", "why": "on it"}),
        ),
        (
            b'{"cmd":"alert_silence","alert":"stale-market-data",'
            b'"labels":{"instrument":"X"},"for_s":1800,"who":"ops","why":"holiday"}',
            (
                "alert_silence",
                {
                    "alert": "stale-market-data",
                    "labels": {"instrument": "X"},
                    "for_s": 1800.0,
                    "who": "ops",
                    "why": "holiday",
                },
            ),
        ),
        (
            b'{"cmd":"resume","who":"ops","instrument":"XYZ.SIM"}',
            ("resume", {"who": "ops", "why": "", "instrument": "XYZ.SIM"}),
        ),
    ],
)
def test_when_operator_risk_commands_arrive_then_they_reach_the_node(
    line: bytes, call: tuple[str, dict[str, Any]]
) -> None:
    node = FakeNode()
    assert answer(line, node)["ok"] is True
    assert node.calls == [call]


@pytest.mark.parametrize(
    "line",
    [
        b'{"cmd":"risk_set","path":"max_order_quantity","value":5,"for_s":60,"who":"o","why":""}',
        b'{"cmd":"risk_set","path":"max_order_quantity","value":"5","who":"o","why":""}',
        b'{"cmd":"enable","who":"ops"}',
        b'{"cmd":"risk_clear","id":7,"who":"ops"}',
        b'{"cmd":"alert_ack","who":"ops"}',
        b'{"cmd":"alert_silence","alert":"x","for_s":"1h","who":"o","why":""}',
        b'{"cmd":"alert_silence","alert":"x","labels":{"a":1},"for_s":60,"who":"o","why":""}',
    ],
)
def test_when_operator_risk_command_is_malformed_then_refused_before_the_node(
    line: bytes,
) -> None:
    node = FakeNode()
    response = answer(line, node)
    assert response["ok"] is False and "bad request" in response["error"]
    assert node.calls == []

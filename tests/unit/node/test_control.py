"""The control channel's protocol: bad requests answered ``ok: false`` (never raised),
commands dispatched to the node as the operator the kernel names, the socket file's
lifecycle on a real Unix socket, and the client that speaks only to the journal's
owner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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
    ImpostorSocket,
    NoNodeListening,
    open_control_socket,
    request,
    serve_control,
    socket_path,
)
from bastion.node.identity import account_name, peer_credentials
from kit.control import FakeNode, guarded, me

OWNER = account_name(os.geteuid())


def answer(line: bytes, node: FakeNode | None = None) -> dict[str, Any]:
    """``line`` from this process (the node's owner) to a guard in front of ``node``."""
    return guarded(node).ask(line, me())


@asynccontextmanager
async def serving(
    path: Path, node: FakeNode, *, mode: int = 0o600
) -> AsyncIterator[asyncio.Task[None]]:
    """``node`` behind its guard, served at ``path``; ``path`` minus ``.sock`` stands for
    the journal (this process owns it), as the client expects."""
    journal = path.with_name(path.name.removesuffix(".sock"))
    journal.touch(exist_ok=True)
    sock = open_control_socket(path, mode=mode)
    task = asyncio.create_task(serve_control(sock, path, guarded(node).guard))
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
        (b'{"cmd": "kill", "why": 1}', "Expected `str`, got `int` - at `$.why`"),
        (b'{"cmd": "kill", "flatten": "yes"}', "Expected `bool`"),
        (b'{"cmd": "kill", "flatten": 1}', "Expected `bool`"),
        (b'{"cmd": "resume", "why": null}', "Expected `str`, got `null`"),
        (b'{"cmd": "approve", "id": "7.a1"}', "missing required field `why`"),
        (b'{"cmd": "status", "extra": 1}', "unknown field `extra`"),
        (b"\xff\xfe", "not JSON"),
        (b'{"cmd": "kill", "why": "\x80"}', "not JSON"),  # a string not UTF-8
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


def test_when_kill_request_then_kill_called_as_the_kernels_operator() -> None:
    """A kill request reaches ``kill`` with flatten and why, and as ``who`` the operator
    the peer's uid is (here the node's owner); its fields are returned."""
    node = FakeNode()
    response = answer(b'{"cmd":"kill","flatten":true,"why":"runaway"}', node)
    assert response == {"ok": True, "state": "HALTED", "cancels_sent": 3}
    assert node.calls == [("kill", {"flatten": True, "who": OWNER, "why": "runaway"})]


def test_when_a_request_names_who_then_refused_and_nothing_runs() -> None:
    """A spoofed ``who`` is never believed: the request is refused, saying that the
    node takes the operator from the kernel; the node is not called."""
    node = FakeNode()
    for line in (
        b'{"cmd":"kill","who":"alice","why":"x"}',
        b'{"cmd":"resume","who":"' + OWNER.encode() + b'"}',
        b'{"cmd":"status","who":"bob"}',
    ):
        response = answer(line, node)
        assert response["ok"] is False
        assert "does not say who sends it" in response["error"]
        assert "from the kernel" in response["error"]
    assert node.calls == []


def test_when_optional_fields_omitted_then_defaults() -> None:
    """flatten defaults to false and why to empty; resume and status dispatch too."""
    node = FakeNode()
    assert answer(b'{"cmd":"kill"}', node)["ok"] is True
    assert answer(b'{"cmd":"resume"}\n', node) == {"ok": True, "state": "ACTIVE"}
    assert answer(b'  {"cmd":"status"}  \r\n', node)["open_orders"] == 0
    assert node.calls == [
        ("kill", {"flatten": False, "who": OWNER, "why": ""}),
        ("resume", {"who": OWNER, "why": ""}),
        ("status", {}),
    ]


def test_when_command_raises_then_ok_false_not_raised() -> None:
    """A failing command is reported as ``ok: false``; handle_line does not raise."""
    response = answer(b'{"cmd":"kill"}', FakeNode(fail=True))
    assert response == {"ok": False, "error": "command failed: venue gone"}


def test_when_journal_path_then_socket_next_to_it() -> None:
    """The socket is ``<journal path>.sock``."""
    assert socket_path(Path("/x/j/paper.sqlite")) == Path("/x/j/paper.sqlite.sock")


# -- the socket ------------------------------------------------------------------------


def test_when_serving_then_mode_0600_requests_answered_and_file_removed_on_stop(
    tmp_path: Path,
) -> None:
    """A real socket: mode 0600, one response line per request line, removed on cancel;
    the status says who the node takes the asker for (from the kernel: this process's
    uid, the node's owner)."""
    path = tmp_path / "j.sock"
    node = FakeNode()

    async def scenario() -> None:
        async with serving(path, node):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_ISSOCK(path.stat().st_mode)
            status = await asyncio.to_thread(request, path, {"cmd": "status"})
            assert status["ok"] is True and status["state"] == "ACTIVE"
            assert status["you"] == {
                "operator": OWNER,
                "roles": ["viewer", "trader", "risk_officer", "admin"],
                "strategies": [],
                "uid": os.geteuid(),
                "source": "local socket",
                "owner": True,
                "delegated": False,
            }
            assert status["access"]["operators"] == "owner only"
            many = await asyncio.to_thread(
                raw_exchange, path, b'{"cmd":"status"}\ngarbage\n\n{"cmd":"resume"}'
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
    sock.sendall(b'{"cmd":"kill"}\\n')
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
                    await loop.sock_sendall(conn, b'{"cmd":"kill"}\n')
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
    (tmp_path / "j").touch()
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
    """The client names the socket path when nothing is there (with or without a
    journal beside it)."""
    path = tmp_path / "missing.sock"
    with pytest.raises(NoNodeListening, match="no journal at"):
        request(path, {"cmd": "status"})
    (tmp_path / "missing").touch()
    with pytest.raises(NoNodeListening, match=str(path)):
        request(path, {"cmd": "status"})


PLANTED = """
import json, socket, sys
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(1)
print("listening", flush=True)
conn, _ = server.accept()
conn.settimeout(5)
got = b""
try:
    got = conn.recv(65536)
    conn.sendall(b'{"ok": true, "state": "ACTIVE"}\\n')
except OSError:
    pass  # the client hung up without a word
print(json.dumps(got.decode()), flush=True)
"""


def test_when_a_planted_socket_answers_then_the_client_sends_nothing(tmp_path: Path) -> None:
    """A process that does not run as the journal's owner answers on the node's socket
    path ("ok" to anything): the client checks the peer's uid first and refuses, naming
    both accounts; the planted server never receives the request. (Tests cannot switch
    uid: the journal's owner is given as another uid than this process's.)"""
    path = tmp_path / "j.sock"
    planted = subprocess.Popen(
        [sys.executable, "-c", PLANTED, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert planted.stdout is not None
        assert planted.stdout.readline().strip() == "listening"
        someone_else = os.geteuid() + 1
        with pytest.raises(ImpostorSocket, match="not the node") as refused:
            request(path, {"cmd": "kill", "why": "x"}, expected_uid=someone_else)
        assert f"runs as uid {os.geteuid()}" in str(refused.value)
        assert f"not as uid {someone_else}" in str(refused.value)
        assert "nothing was sent" in str(refused.value)
        out, _ = planted.communicate(timeout=30)
        assert json.loads(out) == ""  # it received nothing
    finally:
        planted.kill()
        planted.wait()


def test_when_the_journal_is_owned_by_the_server_then_the_client_talks(tmp_path: Path) -> None:
    """The same server, and the journal beside it owned by the uid it runs as (this
    process's): the client sends, and the peer's uid is the one the kernel reports."""
    path = tmp_path / "j.sock"
    (tmp_path / "j").touch()
    planted = subprocess.Popen(
        [sys.executable, "-c", PLANTED, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert planted.stdout is not None
        assert planted.stdout.readline().strip() == "listening"
        assert request(path, {"cmd": "status"}) == {"ok": True, "state": "ACTIVE"}
        out, _ = planted.communicate(timeout=30)
        assert json.loads(out) == '{"cmd":"status"}\n'
    finally:
        planted.kill()
        planted.wait()


def test_when_a_peer_connects_then_the_kernel_reports_its_own_uid_and_pid(
    tmp_path: Path,
) -> None:
    """SO_PEERCRED on a real socket: the server sees this process's uid, gid and pid."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with server:
        server.bind(str(tmp_path / "p.sock"))
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(tmp_path / "p.sock"))
            conn, _ = server.accept()
            with conn:
                seen = peer_credentials(conn)
                assert seen is not None
                assert (seen.uid, seen.gid, seen.pid) == (os.geteuid(), os.getegid(), os.getpid())
                server_side = peer_credentials(client)
                assert server_side is not None and server_side.uid == os.geteuid()
    assert peer_credentials(object()) is None


def test_when_the_socket_is_for_a_group_then_mode_0660(tmp_path: Path) -> None:
    """[access] socket = "group": the node's group may connect (the uid then decides);
    any other mode is refused."""
    path = tmp_path / "j.sock"

    async def scenario() -> None:
        async with serving(path, FakeNode(), mode=0o660):
            assert stat.S_IMODE(path.stat().st_mode) == 0o660

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="0600 or 0660"):
        open_control_socket(tmp_path / "k.sock", mode=0o666)


@pytest.mark.parametrize(
    ("line", "call"),
    [
        (
            b'{"cmd":"enable","strategy":"ema","why":"checked"}',
            ("enable", {"strategy": "ema", "who": OWNER, "why": "checked"}),
        ),
        (
            b'{"cmd":"disable","strategy":"ema","why":"runaway"}',
            ("disable", {"strategy": "ema", "who": OWNER, "why": "runaway"}),
        ),
        (
            b'{"cmd":"risk_set","path":"max_order_quantity","value":"5","for_s":60,"why":"news"}',
            (
                "risk_set",
                {
                    "path": "max_order_quantity",
                    "value": "5",
                    "for_s": 60.0,
                    "who": OWNER,
                    "why": "news",
                },
            ),
        ),
        (
            b'{"cmd":"risk_clear","id":"7"}',
            ("risk_clear", {"id": "7", "who": OWNER, "why": ""}),
        ),
        (b'{"cmd":"risk_list"}', ("risk_list", {})),
        (
            b'{"cmd":"raise_ceiling","path":"max_order_quantity","value":"50","why":"w"}',
            (
                "raise_ceiling",
                {"path": "max_order_quantity", "value": "50", "who": OWNER, "why": "w"},
            ),
        ),
        (b'{"cmd":"alerts_list"}', ("alerts_list", {})),
        (
            b'{"cmd":"alert_ack","id":"2.1","why":"on it"}',
            ("alert_ack", {"id": "2.1", "who": OWNER, "why": "on it"}),
        ),
        (
            b'{"cmd":"alert_silence","alert":"stale-market-data",'
            b'"labels":{"instrument":"X"},"for_s":1800,"why":"holiday"}',
            (
                "alert_silence",
                {
                    "alert": "stale-market-data",
                    "labels": {"instrument": "X"},
                    "for_s": 1800.0,
                    "who": OWNER,
                    "why": "holiday",
                },
            ),
        ),
        (
            b'{"cmd":"resume","instrument":"XYZ.SIM"}',
            ("resume", {"who": OWNER, "why": "", "instrument": "XYZ.SIM"}),
        ),
        (
            b'{"cmd":"kill","venue":"FIXSIM","why":"drill"}',
            ("kill", {"flatten": False, "who": OWNER, "why": "drill", "venue": "FIXSIM"}),
        ),
    ],
)
def test_when_operator_risk_commands_arrive_then_they_reach_the_node(
    line: bytes, call: tuple[str, dict[str, Any]]
) -> None:
    """Each command reaches the node with its fields, as the owner (four-eyes off)."""
    node = FakeNode()
    assert answer(line, node)["ok"] is True
    assert node.calls == [call]


@pytest.mark.parametrize(
    "line",
    [
        b'{"cmd":"risk_set","path":"max_order_quantity","value":5,"for_s":60,"why":""}',
        b'{"cmd":"risk_set","path":"max_order_quantity","value":"5","why":""}',
        b'{"cmd":"enable"}',
        b'{"cmd":"disable","strategy":"ema"}',
        b'{"cmd":"risk_clear","id":7}',
        b'{"cmd":"raise_ceiling","path":"max_order_quantity","value":"9"}',
        b'{"cmd":"alert_ack"}',
        b'{"cmd":"alert_silence","alert":"x","for_s":"1h","why":""}',
        b'{"cmd":"alert_silence","alert":"x","labels":{"a":1},"for_s":60,"why":""}',
        b'{"cmd":"approve","id":1,"why":"x"}',
    ],
)
def test_when_operator_risk_command_is_malformed_then_refused_before_the_node(
    line: bytes,
) -> None:
    """A field missing or of the wrong type: refused before the node is called."""
    node = FakeNode()
    response = answer(line, node)
    assert response["ok"] is False and "bad request" in response["error"]
    assert node.calls == []

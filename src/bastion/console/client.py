"""The console's side of a node's control socket: one asyncio request at a time.

Each request is a fresh connection (the node answers one JSON line per request line),
so a node that restarts or hangs costs one failed request, never a stuck stream. Before
anything is sent, the process answering must run as the owner of the node's journal
(``SO_PEERCRED``, as ``bastion kill`` checks): a socket planted by another user gets
nothing, not even the operator's name. Every request made on an operator's behalf
carries ``on_behalf`` (the node re-checks that operator's roles and journals them).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any, Final

import msgspec

from bastion.errors import BastionError
from bastion.node.control import MAX_REQUEST_BYTES, journal_owner
from bastion.node.identity import peer_credentials

__all__ = ["NodeClient", "NodeUnreachable", "OnBehalf"]

_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
_encoder = msgspec.json.Encoder()


class NodeUnreachable(BastionError):
    """The node did not answer (no socket, refused, timed out, hung up, not JSON, or
    not the journal's owner answering).

    ``str()`` is what every signed-in operator may see: the node's name and the kind of
    failure, never a path, an account or an OS error's text. ``detail`` is the whole
    story (paths, uids), for the console's log only."""

    def __init__(self, shown: str, detail: str | None = None) -> None:
        super().__init__(shown)
        self.detail = detail or shown


class OnBehalf(msgspec.Struct, frozen=True, kw_only=True):
    """The operator a request is made for, and where they connected from."""

    operator: str
    source: str


class NodeClient:
    """Requests to the node listening at ``path``. ``expected_uid``: the account the
    node must run as (default: its journal's owner, looked up on each request)."""

    def __init__(
        self, name: str, path: Path, *, timeout_s: float, expected_uid: int | None = None
    ) -> None:
        self.name = name
        self.path = path
        self._timeout_s = timeout_s
        self._expected_uid = expected_uid

    def __repr__(self) -> str:
        return f"NodeClient({self.name!r}, {str(self.path)!r})"

    async def request(
        self, req: dict[str, Any], *, on_behalf: OnBehalf | None = None
    ) -> dict[str, Any]:
        """Send ``req`` (with ``on_behalf`` when given); the node's answer as it sent it.
        ``NodeUnreachable`` when there is none."""
        line = dict(req)
        if on_behalf is not None:
            line["on_behalf"] = {"operator": on_behalf.operator, "source": on_behalf.source}
        data = _encoder.encode(line) + b"\n"
        if len(data) > MAX_REQUEST_BYTES:
            raise NodeUnreachable(
                f"node {self.name}: request longer than {MAX_REQUEST_BYTES} bytes"
            )
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the answer does, and the console's shutdown then
        # waits forever for the task it cancelled (the auth recorder, the poller)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(data)
        except TimeoutError:
            raise NodeUnreachable(
                f"node {self.name}: no answer within {self._timeout_s:g} s"
            ) from None

    def _unreachable(self, why: str, detail: str) -> NodeUnreachable:
        return NodeUnreachable(
            f"node {self.name}: {why}", f"node {self.name} ({self.path}): {detail}"
        )

    async def _exchange(self, data: bytes) -> dict[str, Any]:
        try:
            expected = (
                journal_owner(self.path) if self._expected_uid is None else self._expected_uid
            )
        except BastionError as e:
            raise self._unreachable("no journal to check the node against", str(e)) from None
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.path), limit=_MAX_RESPONSE_BYTES
            )
        except OSError as e:
            raise self._unreachable("not listening", str(e)) from None
        try:
            sock: socket.socket = writer.get_extra_info("socket")
            server = peer_credentials(sock)
            if server is None or server.uid != expected:
                raise self._unreachable(
                    "the process on its socket is not the node's account; nothing was sent",
                    f"peer uid {None if server is None else server.uid}, expected {expected}",
                )
            writer.write(data)
            await writer.drain()
            line = await reader.readline()
        except (OSError, ValueError) as e:
            raise self._unreachable("connection failed", str(e)) from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        try:
            answer = msgspec.json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise NodeUnreachable(f"node {self.name}: no valid answer") from None
        if not isinstance(answer, dict):
            raise NodeUnreachable(f"node {self.name}: no valid answer")
        return answer

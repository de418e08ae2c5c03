"""Sign-in, step-up, sign-out, expiry and lockout outcomes, sent to every watched node
as ``record_auth`` so that each node's journal holds the console's audit trail.

Best effort and off the request path: outcomes wait in a bounded queue that one task
drains; a node that does not answer, or a full queue, is logged and never delays or
fails a sign-in. At shutdown what is queued is still sent (``close``, bounded in
time). Never a password or a code: only the operator's name (a name that is not a
valid operator name is not sent as typed: it may be a password in the wrong field), the
source address, the kind, the outcome and its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, Literal

import structlog

from bastion.console.client import NodeClient, NodeUnreachable
from bastion.errors import UsageError
from bastion.security.users import check_name

__all__ = ["AuthKind", "AuthRecorder"]

log = structlog.get_logger("bastion.console.recorder")

AuthKind = Literal["login", "step_up", "logout", "expired", "lockout"]
_QUEUE: Final = 1024
NOT_A_NAME: Final = "(not an operator name)"


def shown_name(name: str) -> str:
    """``name`` as it may be journaled: itself when it is a valid operator name."""
    try:
        check_name(name)
    except UsageError:
        return NOT_A_NAME
    return name


class AuthRecorder:
    """Queues ``record_auth`` requests for ``clients``; ``run`` sends them."""

    def __init__(self, clients: Sequence[NodeClient]) -> None:
        self._clients = list(clients)
        self._queue: asyncio.Queue[dict[str, str]] = asyncio.Queue(_QUEUE)
        self._current: dict[str, str] | None = None  # being sent by ``run``
        self.sent = 0

    def record(self, *, operator: str, source: str, kind: AuthKind, outcome: str, why: str) -> None:
        req = {
            "cmd": "record_auth",
            "operator": shown_name(operator),
            "source": source,
            "kind": kind,
            "outcome": outcome,
            "why": why,
        }
        try:
            self._queue.put_nowait(req)
        except asyncio.QueueFull:
            log.error("console_auth_record_dropped", kind=kind, outcome=outcome)

    async def run(self) -> None:
        while True:
            self._current = await self._queue.get()
            await self._send_all(self._current)
            self._current = None

    async def drain(self) -> None:
        """Send what is queued now (tests; shutdown)."""
        while not self._queue.empty():
            await self._send_all(self._queue.get_nowait())

    async def close(self, timeout_s: float) -> None:
        """At shutdown, once ``run`` is cancelled: send what it was sending when it was
        (again: a node may then journal one outcome twice, rather than none) and what
        is still queued, for at most ``timeout_s``; what is left is logged."""
        current, self._current = self._current, None
        try:
            async with asyncio.timeout(timeout_s):
                if current is not None:
                    await self._send_all(current)
                await self.drain()
        except TimeoutError:
            log.error("console_auth_records_unsent", left=self._queue.qsize())

    async def _send_all(self, req: dict[str, str]) -> None:
        await asyncio.gather(*(self._send(client, req) for client in self._clients))
        self.sent += 1

    async def _send(self, client: NodeClient, req: dict[str, str]) -> None:
        try:
            answer = await client.request(dict(req))
        except NodeUnreachable as e:
            log.warning("console_auth_record_failed", node=client.name, error=e.detail)
            return
        if answer.get("ok") is not True:
            log.warning(
                "console_auth_record_refused", node=client.name, error=str(answer.get("error"))
            )

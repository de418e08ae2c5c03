"""The real console app on a stage of fake nodes, for the browser tests: ``ldn-1`` and
``ny-2`` are ``FakeConsoleNode``s fed the canned views of ``kit.console_views`` (which
move with time and react to commands as a node would), ``sgp-3`` is a node whose socket
nobody listens on. The app is ``bastion.console``'s own, served over TLS by uvicorn in
a thread as ``bastion console`` serves it, with a ``SimClock``: each TOTP code a test
asks for is of a step the store has not seen (the store takes a code once), and a test
can move the console past its idle timeout without waiting."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bastion.clock import SimClock
from bastion.console.app import ConsoleApp, create_app
from bastion.console.client import NodeClient
from bastion.console.config import ConsoleConfig, NodeEntry, TlsConfig
from kit import console_views
from kit.browser import ConsoleUnderTest, Operator
from kit.console import PASSWORD, ConsoleDesk, FakeConsoleNode, serving, short_dir, tls_files

__all__ = ["OPERATORS", "Stage", "staged"]

OPERATORS: Final = {
    "risk_officer": ("rita", ("risk_officer",)),
    "second_risk_officer": ("omar", ("risk_officer",)),
    "admin": ("ada", ("admin",)),
    "trader": ("tom", ("trader",)),
    "viewer": ("vic", ("viewer",)),
}
"""The stage's operators by the role ``ConsoleUnderTest`` names; tom trades ``mm-btc``."""
POLL_INTERVAL_MS: Final = 100


@dataclass(frozen=True, slots=True)
class Stage:
    """The console under test (``console``), its app, its operators' desk (clock and
    codes) and the fake nodes it watches, by name."""

    console: ConsoleUnderTest
    app: ConsoleApp
    desk: ConsoleDesk
    nodes: dict[str, FakeConsoleNode]

    def end_sessions_by_idling(self) -> None:
        """Move the console's clock past its idle timeout: every session ends."""
        idle_s = self.app.console.config.idle_timeout_s
        self.desk.clock.set_time(self.desk.clock.timestamp_ns() + (idle_s + 1) * 1_000_000_000)


def _nodes(now_ms: int) -> dict[str, FakeConsoleNode]:
    london = FakeConsoleNode(
        name="ldn-1",
        view=console_views.london(now_ms),
        audit_records=console_views.audit_records(now_ms),
        on_view=console_views.moving(),
        react=console_views.act,
    )
    new_york = FakeConsoleNode(
        name="ny-2", view=console_views.new_york(now_ms), react=console_views.act
    )
    return {n.name: n.start() for n in (london, new_york)}


@contextlib.contextmanager
def staged(directory: Path) -> Iterator[Stage]:
    """The stage, served; its nodes and server stopped at the end."""
    roles = {name: held for name, held in OPERATORS.values()}
    desk = ConsoleDesk.make(
        directory, SimClock(time.time_ns()), roles=roles, strategies={"tom": ("mm-btc",)}
    )
    now_ms = console_views.now_ms()
    nodes = _nodes(now_ms)
    try:
        missing = short_dir() / "j.sqlite.sock"  # nobody listens there
        sockets = {name: node.socket for name, node in nodes.items()}
        sockets[console_views.UNREACHABLE] = missing
        cert, key = tls_files(directory)
        config = ConsoleConfig(
            tls=TlsConfig(cert=str(cert), key=str(key)),
            users="users.bastion",
            users_key="users.key",
            nodes=[NodeEntry(name=name, socket=str(path)) for name, path in sockets.items()],
            poll_interval_ms=POLL_INTERVAL_MS,
        )
        clients = {
            name: NodeClient(name, path, timeout_s=config.node_timeout_s)
            for name, path in sockets.items()
        }
        app = create_app(config, store=desk.users, clients=clients, clock=desk.clock)
        for ts_ms, equity in console_views.equity_history(now_ms):  # watched for an hour
            app.console.poller.equity["ldn-1"].add(ts_ms, equity)
        app.console.ping_s = 1.0
        operators = {role: Operator(name, PASSWORD) for role, (name, _) in OPERATORS.items()}
        with serving(app, config, directory) as base_url:
            console = ConsoleUnderTest(base_url, operators, desk.fresh_code)
            yield Stage(console, app, desk, nodes)
    finally:
        for node in nodes.values():
            node.stop()

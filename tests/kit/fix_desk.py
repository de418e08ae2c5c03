"""The venue simulator config the FIX tests share: one account (CompID ``NODE``, user
``trader``, password from ``BASTION_FIX_PASSWORD``) on venue ``FIXSIM`` (CompID ``SIM``),
one instrument ``XYZ.SIM`` with a synthetic feed; a bastion FIX process with its password
in the environment, and the port of an in-process venue simulator."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bastion.venue_server.server import VenueSimServer
from kit.waiting import until

PROCESS_STOP_TIMEOUT_S = 15.0  # a node's own shutdown deadline is 10 s


@contextmanager
def fix_process(
    *args: str | Path,
    cwd: Path,
    log: Path,
    password: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion ARGS`` as a child process with ``password`` as the FIX password in its
    environment (never on its command line), and ``env`` (say, a vault key file); stderr
    appended to ``log``. Killed if still running when the block ends."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BASTION_FIX_PASSWORD": password,
        **(env or {}),
    }
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion", *(str(a) for a in args)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=PROCESS_STOP_TIMEOUT_S)


def node_fix_venue_toml(
    port: int,
    *,
    table: str = "[fix_venue]",
    heartbeat_s: int | None = None,
    logon_timeout_ms: int | None = None,
    extra: str = "",
) -> str:
    """The FIX venue table of a node trading with ``venue_sim_toml``'s venue: the short
    form ``[fix_venue]``, or ``table = '[[venues]]'`` for an entry of the venue list."""
    kind = 'kind = "fix"\n' if table == "[[venues]]" else ""
    heartbeat = "" if heartbeat_s is None else f"heartbeat_s = {heartbeat_s}\n"
    logon = "" if logon_timeout_ms is None else f"logon_timeout_ms = {logon_timeout_ms}\n"
    return f"""
{table}
{kind}name = "FIXSIM"
port = {port}
sender_comp_id = "NODE"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
store_path = "fix/session.sqlite"
reconnect_initial_ms = 50
reconnect_max_ms = 200
{heartbeat}{logon}{extra}
"""


def venue_sim_toml(
    port: int,
    *,
    seed: int = 3,
    feed_interval_ms: int = 20,
    cancel_on_disconnect: bool = False,
    extra: str = "",
    fencing: str | None = None,
) -> str:
    """``bastion venue sim`` TOML listening on ``port`` (0: any free port); ``extra``: more
    top-level keys and tables (``[limits]``), placed before the accounts; ``fencing``: its
    mode ("off", "tag", "strict"; default: the simulator's)."""
    fence = "" if fencing is None else f'fencing = "{fencing}"'
    return f"""
host = "127.0.0.1"
port = {port}
comp_id = "SIM"
ledger_path = "venue/ledger.sqlite"
session_store_path = "venue/sessions.sqlite"
cancel_on_disconnect = {"true" if cancel_on_disconnect else "false"}
{extra}
{fence}

[[accounts]]
name = "acct"
comp_id = "NODE"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"

[matching]
name = "FIXSIM"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[feeds]]
instrument = "XYZ.SIM"
seed = {seed}
size = "1000"
interval_ms = {feed_interval_ms}
"""


async def listening_port(
    server: VenueSimServer, task: asyncio.Task[Any], timeout_s: float = 10.0
) -> int:
    """The port an in-process ``VenueSimServer`` (``task`` runs it) listens on, once it
    does; fails at the deadline, or at once if the server stopped."""

    def port() -> int:
        if task.done():
            task.result()  # raises what stopped it
            pytest.fail("the venue simulator stopped before it listened")
        return server.port

    return await until(port, timeout_s, what="the venue simulator listening")

"""Runtime code starts background tasks only through ``bastion.tasks``, reads time only
through the injected clock (``bastion.clock``) and bounds an await with
``asyncio.timeout``, never ``asyncio.wait_for`` (on Python 3.11 it can swallow the
cancellation of a task whose awaited call completes at that moment: a stop that never
stops, a connection opened and leaked): a scan of every module under src/bastion, with
a short allow-list, each entry with its reason."""

from __future__ import annotations

import ast
from pathlib import Path

import bastion

SRC = Path(bastion.__file__).parent
TIME_READS = {
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "process_time_ns",
}
TASK_STARTS = {"create_task", "ensure_future"}
BANNED_ASYNCIO = {"wait_for"}
DATETIME_READS = {"now", "utcnow", "today"}

ALLOWED: dict[tuple[str, str], str] = {
    ("clock.py", "time.time_ns"): "the live clock itself",
    ("clock.py", "time.monotonic"): "the live clock itself",
    ("tasks.py", "create_task"): "the task helper itself",
    ("isolation/worker.py", "time.time_ns"): "a strategy process's own live clock",
    ("isolation/worker.py", "time.monotonic"): "a strategy process's own live clock",
    ("node/runner.py", "LiveClock()"): "the live node's composition root picks its clock",
    ("venue_server/server.py", "LiveClock()"): "the venue simulator process picks its clock",
    ("feeds/nats/handler.py", "LiveClock()"): "the feed handler process picks its clock",
    ("console/server.py", "LiveClock()"): "the console process picks its clock",
    ("console/api.py", "loop.time()"): (
        "a live-update stream re-reads its operator every ping_s on the loop's monotonic "
        "time, the time its waits (asyncio.timeout) are measured in"
    ),
    ("backtest/engine.py", "time.perf_counter"): (
        "a backtest reports its own wall-clock speed; its simulated clock cannot"
    ),
    ("cli/common.py", "LiveClock()"): "commands that run no node stamp vault entries with it",
    ("journal/sqlite.py", "time.time_ns"): (
        "opening a journal stamps a torn last record set aside, before any node clock"
    ),
    ("journal/postgres.py", "time.time_ns"): (
        "as journal/sqlite.py: a bad last record set aside at open"
    ),
    ("journal/_writer.py", "time.time_ns"): (
        "the journal's writer thread stamps its anchors (no node clock reaches that thread)"
    ),
    ("journal/_writer.py", "time.monotonic"): (
        "the journal's writer thread times its anchors and the commit lag; no node clock "
        "reaches that thread"
    ),
    ("journal/_pg_watchdog.py", "time.monotonic"): (
        "the watchdog thread that shuts a stalled database socket keeps its own deadline"
    ),
    ("journal/pg_reader.py", "time.monotonic"): (
        "a reader waiting for a commit notification bounds the wait (any thread, no clock)"
    ),
    ("ha/fence.py", "time.monotonic_ns"): (
        "the leader's own fence reads the boot-time clock (monotonic_ns where the kernel "
        "has none), which keeps counting while the host is suspended: no node clock does"
    ),
    ("ha/fix_seqs.py", "time.monotonic"): (
        "a send waiting for a sequence block bounds its wait on the FIX sender's thread"
    ),
    ("ha/members.py", "time.monotonic_ns"): (
        "the heartbeat thread ages its own report (a default an injected clock replaces)"
    ),
    ("ha/members.py", "time.time_ns"): (
        "the standby watch's default wall clock; the leader injects its kernel's"
    ),
    ("ha/node.py", "time.monotonic"): "a switchover times its own release for the log",
    ("ha/standby.py", "time.time_ns"): (
        "`bastion ha status` runs no node: it shows the lease's expiry against wall time"
    ),
    ("ha/tail.py", "time.time_ns"): (
        "a standby's lag in seconds defaults to wall time when the caller gives none"
    ),
    ("backup/create.py", "time.monotonic"): "a backup reports how long it took",
    ("backup/restore.py", "time.monotonic"): "a restore reports how long it took",
    ("backup/drill.py", "time.monotonic"): "a DR drill measures its phases and its RTO",
    ("cli/dr.py", "time.monotonic"): (
        "a drill that cannot restore at all still reports how long it tried"
    ),
    ("backup/drill.py", "LiveClock()"): (
        "the drill recovers a scratch node in its own process: its composition root"
    ),
    ("backup/shipping.py", "time.monotonic"): (
        "`bastion backup ship --every` paces its own loop (a CLI process, no node clock)"
    ),
}


LOOP_GETTERS = {"get_running_loop", "get_event_loop"}


def _is_loop_time(node: ast.Call) -> bool:
    """``loop.time()``, ``self._loop.time()``, ``asyncio.get_running_loop().time()``: the
    event loop's own monotonic clock."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "time" and not node.args):
        return False
    base = func.value
    if isinstance(base, ast.Call):
        getter = base.func
        name = getter.attr if isinstance(getter, ast.Attribute) else getattr(getter, "id", "")
        return name in LOOP_GETTERS
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    return "loop" in name.lower()


def _uses(tree: ast.AST) -> set[str]:
    """Names of the task starts and time reads a module makes (calls or references),
    including a clock made on the spot (``clock or LiveClock()``) instead of injected."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if _is_loop_time(node):
                found.add("loop.time()")
            elif isinstance(node.func, ast.Name) and node.func.id == "LiveClock":
                found.add("LiveClock()")
        if isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in TASK_STARTS:
                found.add(node.attr)
            elif base == "asyncio" and node.attr in BANNED_ASYNCIO:
                found.add(f"asyncio.{node.attr}")
            elif base == "time" and node.attr in TIME_READS:
                found.add(f"time.{node.attr}")
            elif base in ("datetime", "date") and node.attr in DATETIME_READS:
                found.add(f"{base}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            for alias in node.names:
                if alias.name in TIME_READS | TASK_STARTS | BANNED_ASYNCIO:
                    found.add(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Name) and node.id in TASK_STARTS:
            found.add(node.id)
    return found


def _scan() -> set[tuple[str, str]]:
    return {
        (path.relative_to(SRC).as_posix(), use)
        for path in sorted(SRC.rglob("*.py"))
        for use in _uses(ast.parse(path.read_text(), str(path)))
    }


def test_when_runtime_code_starts_a_task_or_reads_time_then_through_the_helpers() -> None:
    """No bare create_task/ensure_future, no direct time read and no asyncio.wait_for
    outside the allow-list."""
    assert sorted(_scan() - ALLOWED.keys()) == []


def test_when_an_allowance_is_no_longer_needed_then_it_is_removed() -> None:
    """Every allow-list entry is still used (the list stays short and true)."""
    assert sorted(ALLOWED.keys() - _scan()) == []


def test_when_a_module_reads_time_directly_then_the_scan_finds_it() -> None:
    """The scan sees calls, references and imports of the forbidden names."""
    source = (
        "import time, asyncio\nfrom time import perf_counter\n"
        "a = time.monotonic()\nb = asyncio.ensure_future(x)\nloop.create_task(y)\n"
        "c = datetime.now()\nf = time.time_ns\n"
        "d = loop.time()\ne = asyncio.get_running_loop().time()\n"
        "def g(clock=None, now=time.monotonic):\n    return clock or LiveClock()\n"
        "h = datetime.time()\n"
        "async def w():\n    await asyncio.wait_for(x, 1)\nfrom asyncio import wait_for\n"
    )
    assert _uses(ast.parse(source)) == {
        "loop.time()",
        "LiveClock()",
        "time.monotonic",
        "time.time_ns",
        "ensure_future",
        "create_task",
        "datetime.now",
        "from time import perf_counter",
        "asyncio.wait_for",
        "from asyncio import wait_for",
    }

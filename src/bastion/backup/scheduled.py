"""Journal shipping run by the node (``[backup] ship_interval_s``).

The node never ships on its own loop nor in its own process: reading the journal,
encrypting and uploading would compete with the trading loop for the GIL. It starts
one child, ``bastion backup ship CONFIG --every N --report-rounds`` (which lowers its
own CPU and I/O priority, ``nice 10`` and the lowest best-effort class), and only reads
the one JSON line the child prints per round. The child logs each failed round
(``backup_failed``) to the node's stderr; the node counts it
(``bastion_backup_failures_total{command="ship"}``, which the ``backup-failed`` rule
watches) and keeps the last shipped seq (``bastion_backup_shipped_seq``). A child that
exits is a failure too, logged by the node and restarted after a pause that doubles up
to ``MAX_RESTART_S``; on the node's stop it is terminated (killed after
``STOP_TIMEOUT_S``).

Bounded: one child at a time, one line per round read with a length limit, nothing
queued; a child that hangs delays only the next segment (the RPO grows, the trading
loop does not notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Final

import structlog

from bastion.config import PaperConfig
from bastion.monitor.node import NodeMonitor
from bastion.monitor.sample import SampleBuilder

log = structlog.get_logger("bastion.backup")

MAX_LINE_BYTES: Final = 64 * 1024
MAX_RESTART_S: Final = 60.0
STOP_TIMEOUT_S: Final = 5.0


class ScheduledShipping:
    """The node's shipping child and what it reported (see the module docstring)."""

    def __init__(self, config_path: Path, *, interval_s: float) -> None:
        self.config_path = config_path
        self.interval_s = interval_s
        self.segments = 0
        self.failures = 0
        self.shipped_seq = 0
        self.rounds = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bastion",
            "backup",
            "ship",
            str(self.config_path),
            "--every",
            repr(self.interval_s),
            "--report-rounds",
        ]

    async def run(self) -> None:
        """Keep one shipping child running until canceled."""
        pause_s = self.interval_s
        while True:
            code = await self._run_child()
            self.failures += 1
            log.error(
                "backup_failed",
                command="ship",
                error=f"the shipping process exited with code {code}; restarted in {pause_s:g} s",
            )
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, MAX_RESTART_S)

    async def _run_child(self) -> int | None:
        proc = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            limit=MAX_LINE_BYTES,
        )
        try:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                self.on_line(line)
            return await proc.wait()
        except ValueError:  # a line past the limit: not the child we started
            return await _stop(proc)
        finally:
            if proc.returncode is None:
                await asyncio.shield(_stop(proc))

    def on_line(self, line: bytes) -> None:
        """One round as the child reported it."""
        try:
            round_ = json.loads(line)
        except ValueError:
            log.warning("backup_round_unreadable", line=line[:200].decode(errors="replace"))
            return
        if not isinstance(round_, dict):
            return
        self.rounds += 1
        if round_.get("ok") is not True:
            self.failures += 1
        if round_.get("segment"):
            self.segments += 1
        last = round_.get("last_seq")
        if isinstance(last, int):
            self.shipped_seq = last

    def sources(self, builder: SampleBuilder) -> None:
        builder.set("bastion_backup_segments_total", self.segments)
        builder.set("bastion_backup_failures_total", self.failures, command="ship")
        builder.set("bastion_backup_shipped_seq", self.shipped_seq)


async def _stop(proc: asyncio.subprocess.Process) -> int | None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            return await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


def scheduled_shipping(
    config: PaperConfig, source: str, monitor: NodeMonitor | None
) -> ScheduledShipping | None:
    """The node's shipping when ``[backup] ship_interval_s`` is set (``source``: the
    node's config file, which the child reads), its series added to the node's samples;
    None otherwise."""
    backup = config.backup
    if backup is None or backup.ship_interval_s is None:
        return None
    path = Path(source)
    if not path.is_file():
        log.warning("backup_shipping_off", reason=f"no config file to ship from ({source})")
        return None
    log.info("backup_shipping_started", interval_s=backup.ship_interval_s)
    shipping = ScheduledShipping(path.resolve(), interval_s=backup.ship_interval_s)
    if monitor is not None:
        monitor.add_source(shipping.sources)
    return shipping

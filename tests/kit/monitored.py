"""A node's kernel watched by a ``NodeMonitor``, for the monitoring unit tests: the
two-venue kernel of ``kit.fix_venue_node`` (in-process venue ``A``, FIX venue ``FIXV``
linked in memory), a journal of its own, and the monitor listening on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bastion.journal.sqlite import SqliteJournal
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.node import NodeMonitor
from bastion.node.kernel import Kernel

MONITORING = MonitoringConfig(listen="127.0.0.1:0", sample_interval_ms=50, quote_stale_s=5.0)
EPOCH = 7


@asynccontextmanager
async def watching(
    kernel: Kernel, journal: SqliteJournal | None, config: MonitoringConfig = MONITORING
) -> AsyncIterator[NodeMonitor]:
    """The monitor started on ``kernel`` (on the running loop), stopped at the end."""
    monitor = NodeMonitor(config, node_id="node-1", mode="paper", clock=kernel.clock)
    monitor.attach(kernel, journal=journal, epoch=EPOCH)
    monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()


def journal_at(path: Path) -> SqliteJournal:
    """A journal committing at once when flushed (the monitor reads its stats)."""
    return SqliteJournal(path, commit_interval_ms=1)

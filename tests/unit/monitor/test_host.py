"""Host and process readings: chrony's and timedatectl's clock reports parsed (absent
when the host says nothing), the process read through psutil, GC pauses timed."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from bastion.clock import LiveClock
from bastion.monitor.host import (
    ClockReading,
    GcWatch,
    HostWatch,
    parse_chrony_tracking,
    parse_timesync_status,
)

CHRONY = (
    "C0A80101,192.168.1.1,3,1733500000.123456789,-0.000012345,0.000001,0.000020,"
    "-3.456,0.001,0.020,0.001234,0.000456,64.2,{leap}\n"
)
SHOW = "Timezone=UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized={synced}\n"
STATUS = "       Server: 10.0.0.1 (ntp.example)\n       Offset: {offset}\n        Delay: 1.5ms\n"


def test_when_chrony_tracks_then_offset_is_minus_its_correction() -> None:
    """chrony's system time field is the correction to apply (positive: the clock is
    slow): the offset is its opposite; "Normal" leap status means synchronized."""
    reading = parse_chrony_tracking(CHRONY.format(leap="Normal"))
    assert reading == ClockReading(offset_s=0.000012345, synchronized=True)
    unsynced = parse_chrony_tracking(CHRONY.format(leap="Not synchronised"))
    assert unsynced is not None and not unsynced.synchronized


@pytest.mark.parametrize(
    "text", ["", "506 Cannot talk to daemon", "a,b,c,d,not-a-number" + ",x" * 9]
)
def test_when_chrony_output_unusable_then_no_reading(text: str) -> None:
    """Nothing parseable: no reading (the metric is left out, never invented)."""
    assert parse_chrony_tracking(text) is None


def test_when_timesyncd_reports_then_offset_and_synchronization_read() -> None:
    """timedatectl: NTPSynchronized from ``show``, the offset from ``timesync-status``."""
    assert parse_timesync_status(STATUS.format(offset="-1.234ms"), SHOW.format(synced="yes")) == (
        ClockReading(offset_s=pytest.approx(-0.001234), synchronized=True)  # type: ignore[arg-type]
    )
    assert parse_timesync_status(STATUS.format(offset="+250us"), SHOW.format(synced="no")) == (
        ClockReading(offset_s=pytest.approx(0.00025), synchronized=False)  # type: ignore[arg-type]
    )
    no_offset = parse_timesync_status("", SHOW.format(synced="yes"))
    assert no_offset == ClockReading(offset_s=None, synchronized=True)
    assert parse_timesync_status("", "Timezone=UTC\n") is None


def test_when_host_read_then_process_and_disk_figures_are_this_process(tmp_path: Path) -> None:
    """psutil's figures of this very process, and the disk holding ``disk_path``."""
    reading = HostWatch(disk_path=tmp_path).read()
    assert reading.rss_bytes > 10_000_000
    assert reading.open_fds > 0 and reading.cpu_percent >= 0
    assert reading.disk_free_bytes is not None and reading.disk_free_bytes > 0
    assert reading.disk_free_ratio is not None and 0 < reading.disk_free_ratio <= 1


def test_when_collector_runs_then_its_pause_is_timed_until_uninstalled() -> None:
    """Each collection between install and uninstall gives one pause."""
    watch = GcWatch(LiveClock().monotonic_s)
    watch.install()
    try:
        gc.collect()
        gc.collect()
    finally:
        watch.uninstall()
    gc.collect()
    pauses = watch.take()
    assert len(pauses) >= 2 and all(p >= 0 for p in pauses)
    assert watch.take() == []

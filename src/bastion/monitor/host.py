"""Host and process readings, taken off the trading loop.

``HostWatch`` is a thread of its own that reads the process (``psutil``: CPU, resident
memory, open files), the free space of the journal's file system and, less often, the
clock's offset as the host's NTP daemon reports it (``chronyc -c tracking``, else
``timedatectl``); the sampler copies its latest ``HostReading`` into each sample. A host
that reports no offset (no chrony, no systemd-timesyncd, a container) leaves the metric
out rather than inventing one.

``GcWatch`` times the cyclic garbage collector's pauses through ``gc.callbacks``.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil
import structlog

log = structlog.get_logger("bastion.monitor")

HOST_INTERVAL_S: Final = 1.0
CLOCK_INTERVAL_S: Final = 30.0
COMMAND_TIMEOUT_S: Final = 2.0
THREAD_NAME: Final = "bastion-monitor-host"


@dataclass(frozen=True, slots=True)
class ClockReading:
    offset_s: float | None
    """System clock minus the time source (positive: ahead); None when not reported."""
    synchronized: bool


@dataclass(frozen=True, slots=True)
class HostReading:
    cpu_percent: float
    rss_bytes: int
    open_fds: int
    disk_free_bytes: int | None
    disk_free_ratio: float | None
    clock: ClockReading | None


def parse_chrony_tracking(text: str) -> ClockReading | None:
    """``chronyc -c tracking``: comma-separated, the system time correction (seconds the
    clock must move: positive when it is slow) fifth, the leap status last."""
    fields = text.strip().split(",")
    if len(fields) < 14:
        return None
    try:
        correction = float(fields[4])
    except ValueError:
        return None
    return ClockReading(offset_s=-correction, synchronized=fields[-1].strip() == "Normal")


def parse_timesync_status(status: str, show: str) -> ClockReading | None:
    """``timedatectl timesync-status`` (``Offset: -1.234ms``) and ``timedatectl show``
    (``NTPSynchronized=yes``); an offset only when the first reports one."""
    synchronized: bool | None = None
    for line in show.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "NTPSynchronized":
            synchronized = value.strip() == "yes"
    if synchronized is None:
        return None
    offset: float | None = None
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Offset":
            offset = _duration_s(value.strip())
    return ClockReading(offset_s=offset, synchronized=synchronized)


_UNITS: Final = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0}


def _duration_s(text: str) -> float | None:
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _UNITS[unit]
            except ValueError:
                return None
    return None


def read_clock() -> ClockReading | None:
    """The clock's offset as the host reports it (None: it reports none)."""
    tracking = _run("chronyc", "-c", "tracking")
    if tracking is not None:
        reading = parse_chrony_tracking(tracking)
        if reading is not None:
            return reading
    show = _run("timedatectl", "show")
    if show is None:
        return None
    return parse_timesync_status(_run("timedatectl", "timesync-status") or "", show)


def _run(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


class HostWatch:
    """A thread that reads the host every ``interval_s``; ``latest`` is its last reading."""

    def __init__(
        self,
        *,
        disk_path: Path | None,
        interval_s: float = HOST_INTERVAL_S,
        clock_interval_s: float = CLOCK_INTERVAL_S,
    ) -> None:
        self._disk_path = disk_path
        self._interval_s = interval_s
        self._clock_every = max(1, round(clock_interval_s / interval_s))  # in readings
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: HostReading | None = None
        self._clock: ClockReading | None = None
        self._readings = 0

    def start(self) -> None:
        self._process.cpu_percent(None)  # the first call starts the measurement
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=COMMAND_TIMEOUT_S + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest = self.read()
            except Exception as error:  # a reading failed: the next one may not
                log.warning("monitor_host_reading_failed", error=repr(error))
            self._stop.wait(self._interval_s)

    def read(self) -> HostReading:
        if self._readings % self._clock_every == 0:
            self._clock = read_clock()
        self._readings += 1
        process = self._process
        with process.oneshot():
            cpu = process.cpu_percent(None)
            rss = process.memory_info().rss
            fds = process.num_fds()
        free = ratio = None
        if self._disk_path is not None:
            try:
                usage = shutil.disk_usage(self._disk_path)
            except OSError:
                pass
            else:
                free = usage.free
                ratio = usage.free / usage.total if usage.total else None
        return HostReading(cpu, rss, fds, free, ratio, self._clock)


class GcWatch:
    """Pauses of the cyclic garbage collector, in seconds (``now``: a monotonic clock),
    until ``take``n."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.pauses: list[float] = []
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def take(self) -> list[float]:
        taken, self.pauses = self.pauses, []
        return taken

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._now()
        else:
            self.pauses.append(self._now() - self._started)

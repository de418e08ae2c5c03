"""A QuickFIX counterparty run as a child process (tests/interop/qf_peer.py, or a script
that speaks the same JSON-lines control protocol).

``QfPeer`` starts the script with the running interpreter, waits for its ready line and
talks to it over its control channel; tests/interop/conftest.py's ``qf_peer`` fixture
yields a started one."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from kit.paths import TESTS_DIR

PEER_SCRIPT = TESTS_DIR / "interop" / "qf_peer.py"


class QfPeerError(RuntimeError):
    """The peer process did not answer as expected; the message carries its stderr tail."""


class QfPeer:
    """A qf_peer.py child process and its control channel.

    ``command("fill", cl_ord_id="A", qty="10", px="1.5")`` sends one JSON line and returns the
    peer's reply; each request carries an ``id`` and stale replies (from a command that timed
    out) are skipped. ``restart()`` keeps the store dir and port, so sequence numbers and the
    peer's order book survive it.
    """

    def __init__(
        self,
        *,
        port: int,
        store_dir: Path,
        stderr_path: Path,
        sender_comp_id: str = "QFVENUE",
        target_comp_id: str = "BASTION",
        username: str | None = None,
        password: str | None = None,
        heartbeat_s: int = 1,
    ) -> None:
        self.port = port
        self.store_dir = store_dir
        self.stderr_path = stderr_path
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.username = username
        self.password = password
        self.heartbeat_s = heartbeat_s
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise QfPeerError("peer is not running")
        return self._proc.pid

    script = PEER_SCRIPT
    what = "peer"

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the process and wait for its ``{"ready": true}`` line."""
        if self._proc is not None and self._proc.poll() is None:
            raise QfPeerError(f"{self.what} is already running")
        args = [
            sys.executable, str(self.script), "--port", str(self.port),
            "--sender-comp-id", self.sender_comp_id, "--target-comp-id", self.target_comp_id,
            "--store-dir", str(self.store_dir), "--heartbeat-s", str(self.heartbeat_s),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.username is not None and self.password is not None:
            # through the environment: a password on the command line shows in ps
            args += ["--username", self.username, "--password-env", "QF_CHILD_PASSWORD"]
            env["QF_CHILD_PASSWORD"] = self.password
        self._lines = queue.Queue()
        with self.stderr_path.open("a") as stderr:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read_lines,
            args=(self._proc.stdout, self._lines),
            name=f"qf-{self.what}-stdout-{self._proc.pid}",
            daemon=True,
        )
        self._reader.start()
        ready = self._next_reply(time.monotonic() + timeout_s, "the ready line")
        if ready.get("ready") is not True:
            raise QfPeerError(f"{self.what} failed to start: {ready}{self._stderr_tail()}")

    @staticmethod
    def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
        try:
            for line in stream:
                lines.put(line)
        except (OSError, ValueError):
            pass  # the pipe went away with the process
        finally:
            lines.put(None)

    def _next_reply(self, deadline: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise QfPeerError(f"no reply ({what}) from the peer{self._stderr_tail()}") from None
        if line is None:
            rc = self._proc.poll() if self._proc else None
            raise QfPeerError(f"peer exited (rc={rc}) awaiting {what}{self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def command(
        self, cmd: str | None = None, /, *, timeout_s: float = 10.0, **fields: Any
    ) -> dict[str, Any]:
        """Send one command (``cmd`` positionally or as a keyword); return the peer's reply."""
        if cmd is None:
            cmd = fields.pop("cmd", None)
        if cmd is None:
            raise TypeError("command() needs a cmd")
        if self._proc is None or self._proc.stdin is None:
            raise QfPeerError("peer is not running")
        request_id = next(self._ids)
        try:
            self._proc.stdin.write(json.dumps({"cmd": cmd, "id": request_id, **fields}) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise QfPeerError(f"peer stdin closed: {e}{self._stderr_tail()}") from e
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._next_reply(deadline, f"{cmd} #{request_id}")
            if reply.get("id") == request_id:
                reply.pop("id")
                return reply

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Ask the peer to quit (``quit``), then kill it if it has not exited by the deadline."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                self.command("quit", timeout_s=timeout_s)
                proc.wait(timeout=timeout_s)
            except (QfPeerError, subprocess.TimeoutExpired):
                pass
        return self.kill()

    def kill(self) -> int | None:
        """SIGCONT (a SIGSTOPped peer cannot die otherwise cleanly) then SIGKILL; reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    break
        rc = proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)  # it ends at the pipe's EOF; then the pipe can close
            self._reader = None
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return rc

    def restart(self, timeout_s: float = 15.0) -> None:
        """Stop the peer and start it again on the same port with the same store dir."""
        self.stop()
        self.start(timeout_s=timeout_s)

    def _stderr_tail(self, max_chars: int = 4000) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"\n--- qf_peer stderr (tail) ---\n{text[-max_chars:]}" if text else ""

"""A child process on a pseudo-terminal, as a person at a keyboard would run it: what
it shows (including anything the terminal echoes) and lines typed to it."""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from kit.waiting import eventually


class Terminal:
    """``cmd`` with stdin, stdout and stderr on one pseudo-terminal. ``screen`` is all it
    has shown so far; ``expect`` polls until a text appears (counting from ``after``)."""

    def __init__(self, cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self._master = master
        self.screen = ""

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _read(self) -> None:
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not chunk:
                return
            self.screen += chunk.decode(errors="replace")

    def expect(self, text: str, *, count: int = 1, timeout_s: float = 30.0) -> str:
        """Wait until ``text`` has been shown ``count`` times; the screen so far."""

        def shown() -> str | None:
            self._read()
            return self.screen if self.screen.count(text) >= count else None

        return eventually(shown, timeout_s, what=f"{text!r} on the terminal")

    def type(self, line: str) -> None:
        """Type ``line`` and Enter."""
        os.write(self._master, (line + "\n").encode())

    def wait(self, timeout_s: float = 60.0) -> int:
        """The exit code, once the child ends (reading what it still shows)."""

        def ended() -> bool:
            self._read()
            return self.proc.poll() is not None

        eventually(ended, timeout_s, what=f"{self.proc.args!r} to exit")
        self._read()
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self._master)
